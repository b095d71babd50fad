"""train.py tunes its own process (GC paused while it starts up, no teardown once finished), but
only as the program itself: run inside another program, it leaves that process alone."""

from __future__ import annotations

import gc
import runpy
import subprocess
import sys

from conftest import REPO

SCRIPT = """
import atexit, gc, logging, sys
from sweep.train.process import end_of_program, pause_gc, startup_done
pause_gc()
paused = not gc.isenabled()
startup_done()
print(f"paused={paused} enabled={gc.isenabled()} frozen={gc.get_freeze_count() > 1000} ", end="")
atexit.register(lambda: open(sys.argv[1] + ".atexit", "w").write("ran"))
handler = logging.FileHandler(sys.argv[1] + ".log")
logging.getLogger().addHandler(handler)
logging.getLogger().warning("logged before the end")
print("printed before the end", end="")  # no newline: still in stdout's buffer
end_of_program()
print(" and after it")
"""


def test_as_the_program_it_pauses_the_gc_and_ends_with_everything_flushed(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(script), str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    # GC off until start-up is done, then on again with start-up's objects frozen; stdout flushed,
    # and nothing after end_of_program ran
    assert proc.stdout == "paused=True enabled=True frozen=True printed before the end"
    assert (tmp_path / "out.atexit").read_text() == "ran"
    assert (tmp_path / "out.log").read_text() == "logged before the end\n"


def test_inside_another_program_it_leaves_the_process_alone(tmp_path, capsys):
    script = tmp_path / "app.py"
    script.write_text(
        "import gc\nfrom sweep.train.process import end_of_program, pause_gc\npause_gc()\n"
        "print('gc on' if gc.isenabled() else 'gc off')\nend_of_program()\nprint('after')\n"
    )
    frozen = gc.get_freeze_count()
    runpy.run_path(str(script), run_name="__main__")  # as IPython's %run or a test would: this process goes on
    assert capsys.readouterr().out == "gc on\nafter\n"
    assert gc.isenabled() and gc.get_freeze_count() == frozen
