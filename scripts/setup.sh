#!/usr/bin/env bash
# Set up lr-sweep in ./.venv: bash scripts/setup.sh [--test]
#
# The venv sees the system's site-packages, so a torch the user already has (a CUDA build, say)
# is used as it is and never replaced. Only when no torch is importable is one installed:
# torch==2.13.0, pinned so that pip does not reach for the newest (multi-GB CUDA) release.
# Set TORCH_SPEC to choose another, e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu".
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv --system-site-packages .venv
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  # shellcheck disable=SC2086
  .venv/bin/python -m pip install -q ${TORCH_SPEC:-torch==2.13.0}
fi
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
# lr-sweep and its extras (lightning, transformers, accelerate depend on torch) are installed against
# the torch now in the venv, pinned by a constraint, so pip never upgrades or replaces it.
torch_version=$(.venv/bin/python -c "import torch; print(torch.__version__.split('+')[0])")
constraint=$(mktemp)
trap 'rm -f "$constraint"' EXIT
echo "torch==${torch_version}" > "$constraint"
.venv/bin/python -m pip install -q -c "$constraint" -e ".${extras}"
.venv/bin/python -c "import torch, sweep; print(f'lr-sweep ready: torch {torch.__version__}, cuda={torch.cuda.is_available()}')"
