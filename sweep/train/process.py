"""What train.py does to its own process for speed: no cyclic garbage collection while it starts
up, no interpreter teardown once it is done. A user's own app gets neither unless it asks.

Both apply only when train.py is the program itself (`python train.py`): imported or run inside
another program (runpy, IPython's `%run`, a test), train.py leaves that program's process alone.

Start-up (Hydra, Optuna, torch, and torch._dynamo, which torch's first optimizer constructor
imports) makes many long-lived objects and next to no garbage, and the cyclic GC walks them all
several times meanwhile (0.30 s on a 2-core machine: `bench/trial_steps.py`). `pause_gc()`, at
the top of train.py, turns the GC off; `startup_done()`, called once a job has built its optimizer, moves
every object alive into the permanent generation (`gc.freeze()`) and turns the GC back on, so
later collections scan only what the runs make.

Tearing down torch's modules takes 0.7 s there (`bench/startup_floor.py`: the floor with and
without teardown) and does nothing for a run that has finished: every file the run wrote is closed by
then (journal, TensorBoard event files, checkpoint, status). `end_of_program()` does what a clean
exit would still do for us (the atexit handlers, logging's flush and close among them; stdout and
stderr flushed) and ends the process. An error or Ctrl-C exits the usual way.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys

_paused = False


def _caller_is_the_program() -> bool:
    """Whether the script that called our caller is the program itself (its top-level frame has no
    caller: `python script.py`, not runpy, IPython's %run or an import)."""
    return sys._getframe(2).f_back is None


def pause_gc() -> None:
    """Call at the top of a script: turn the cyclic GC off until `startup_done()` (reference
    counting frees as usual), if the script is the program itself."""
    global _paused
    if _caller_is_the_program() and gc.isenabled():
        gc.disable()
        _paused = True


def startup_done() -> None:
    """Freeze what start-up made and turn the GC back on, if `pause_gc()` turned it off."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()


def end_of_program() -> None:
    """Call at the end of a script's top level: end the process now if the script is the program
    itself; inside another program, return."""
    if _caller_is_the_program():
        exit_now(0)


def exit_now(code: int = 0) -> None:
    """Run the atexit handlers, flush stdio, and end the process with `code`."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can reach it
            pass
    os._exit(code)
