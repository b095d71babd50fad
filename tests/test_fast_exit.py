"""train.py ends a finished run without the interpreter's teardown, but only as the program itself."""

from __future__ import annotations

import runpy
import subprocess
import sys

from conftest import REPO

SCRIPT = """
import atexit, logging, sys
from sweep.fast_exit import end_of_program
atexit.register(lambda: open(sys.argv[1] + ".atexit", "w").write("ran"))
handler = logging.FileHandler(sys.argv[1] + ".log")
logging.getLogger().addHandler(handler)
logging.getLogger().warning("logged before the end")
print("printed before the end", end="")  # no newline: still in stdout's buffer
end_of_program()
print(" and after it")
"""


def test_as_the_program_it_ends_the_process_with_everything_flushed(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(script), str(out)], cwd=REPO, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO)}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "printed before the end"  # flushed, and nothing after end_of_program ran
    assert (tmp_path / "out.atexit").read_text() == "ran"
    assert (tmp_path / "out.log").read_text() == "logged before the end\n"


def test_inside_another_program_it_returns(tmp_path, capsys):
    script = tmp_path / "app.py"
    script.write_text("from sweep.fast_exit import end_of_program\nprint('before')\nend_of_program()\nprint('after')\n")
    runpy.run_path(str(script), run_name="__main__")  # as IPython's %run or a test would: this process goes on
    assert capsys.readouterr().out == "before\nafter\n"
