"""`python -m sweep COMMAND ...`: tools around a sweep, each a module with `main(argv) -> exit code`.

    python -m sweep status DIR_OR_STORAGE_URL [--study NAME]   # where a sweep stands
    python -m sweep plots SWEEP_DIR                             # draw (or redraw) its plots
    python -m sweep report DIR_OR_STORAGE_URL [--study NAME]   # the LR report: SWEEP_DIR/report.html

Only the chosen command's module is imported, so `status` starts without torch.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {"status": "sweep.search.status", "plots": "sweep.search.plots", "report": "sweep.search.report"}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(
            f"usage: python -m sweep {{{','.join(COMMANDS)}}} ...  (e.g. python -m sweep status runs/sweep1)",
            file=sys.stderr,
        )
        return 2
    return int(importlib.import_module(COMMANDS[argv[0]]).main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
