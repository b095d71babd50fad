"""One sweep worker inside a SLURM (or submitit local) job: what submitit runs.

submitit pickles a `ClusterWorker` and calls it in the job with the worker's index (the array task).
It runs the sweep command as a worker process (`hydra.sweeper.workers=1`, Hydra's basic launcher:
trials in-process, one after another, pulling from the study), and stays in between for SLURM's
signals:

- SIGTERM (preemption, `scontrol requeue`, `scancel`) and SIGUSR2 (submitit's `--signal` before the
  time limit) are passed on to the worker process, which ends its trial INTERRUPTED at the next
  check (its state saved at the last epoch end) and exits with `EXIT_INTERRUPTED`.
- After a SIGUSR2, submitit's own handler then runs: it calls `checkpoint()`, which resubmits this
  same worker (`DelayedSubmission`), and requeues the job (`hydra.launcher.max_num_timeout` limits
  how often a job that hits its time limit comes back). After a SIGTERM SLURM decides: a requeued or
  preempted job comes back, a cancelled one does not.

The job keeps its id when requeued, so the worker comes back with the same identity
(`slurm:<job>_<task>`) and first resumes the trial it left (`sweep.search.interruptions`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any

from sweep.search.interruptions import EXIT_INTERRUPTED
from sweep.search.processes import WORKER_ENV

FORWARDED = (signal.SIGTERM, signal.SIGUSR2)


class ClusterWorker:
    """A picklable callable (submitit's Checkpointable shape): worker `index` of a sweep."""

    def __init__(self, command: list[str], cwd: str, env: dict[str, str]) -> None:
        self.command, self.cwd, self.env = list(command), cwd, dict(env)

    def __call__(self, index: int) -> int:
        env = {**os.environ, **self.env, WORKER_ENV: str(index)}
        process = subprocess.Popen([*self.command, f"hydra.sweeper.worker_index={index}"], cwd=self.cwd, env=env)
        requeue = signal.getsignal(signal.SIGUSR2)  # submitit's checkpoint-and-requeue handler
        received: list[int] = []

        def forward(signum: int, frame: Any) -> None:
            received.append(signum)
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)

        for sig in FORWARDED:
            signal.signal(sig, forward)
        code = process.wait()
        if code == EXIT_INTERRUPTED and signal.SIGUSR2 in received and callable(requeue):
            requeue(signal.SIGUSR2, None)  # calls checkpoint(), requeues the job and exits
        if code not in (0, EXIT_INTERRUPTED):
            raise RuntimeError(f"sweep worker {index} exited with code {code}; see its log in the submitit folder")
        return code

    def checkpoint(self, index: int) -> Any:
        """What submitit resubmits when the job is requeued: this worker, unchanged (the study and
        the trial's resume.pt hold the progress)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, index)
