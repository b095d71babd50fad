"""The README's two commands are the ones CI runs, and the main one works as written."""

from __future__ import annotations

import re
import subprocess

import pytest
from conftest import REPO

README = (REPO / "README.md").read_text()


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_quick_start_has_a_run_command_and_a_test_command():
    run, test = quick_start_commands()
    assert run.endswith("train.py") and "setup.sh" in run
    assert "pytest" in test and "setup.sh" in test


def test_ci_runs_the_readme_test_command():
    _, test = quick_start_commands()
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test in ci


def test_setup_pins_torch_when_none_is_installed_and_keeps_an_existing_one():
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert 'if ! .venv/bin/python -c "import torch"' in setup and "torch==2.13.0" in setup
    assert "--system-site-packages" in setup


@pytest.mark.slow
def test_readme_run_command_trains_the_default_job():
    run, _ = quick_start_commands()
    proc = subprocess.run(["bash", "-c", run], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "epoch 20/20" in proc.stderr + proc.stdout and "val/acc (last)" in proc.stderr + proc.stdout
