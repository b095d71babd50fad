"""End a finished run's process without the interpreter's teardown.

Tearing down torch's modules (and torch._dynamo's, which torch's first optimizer constructor
imports) takes about a second on a small machine (`bench/startup_floor.py`: "exit without
teardown"), and does nothing for a run that has finished: every file the run wrote is closed
by then (journal, TensorBoard event files, checkpoint, status), and what a clean exit would still
do for us is done here first: the atexit handlers run (logging's flush and close among them) and
stdout/stderr are flushed. Only train.py's successful end uses it, and only when train.py is the
program itself (`python train.py`): run inside another program (runpy, IPython's `%run`, a test),
it returns and that program goes on. An error, Ctrl-C or a user's own app exits the usual way.
"""

from __future__ import annotations

import atexit
import os
import sys


def end_of_program() -> None:
    """Call at the end of a script's top level: end the process now if the script is the program
    itself (its top-level frame has no caller); inside another program, return."""
    if sys._getframe(1).f_back is None:
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
