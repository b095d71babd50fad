"""`hydra.sweeper.workers=N`: N processes of the same sweep command on one study, started from one
command. Each is an ordinary sweep process marked by `LRSWEEP_WORKER_INDEX` (it asks for trials
until the study is done and leaves the results to the process that started it), pinned to its own
GPU where there are GPUs, else given an equal share of the CPU threads. How the workers share the
study's trials: `sweep.search.workers`.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Any

from sweep.errors import check
from sweep.search.storage import masked

log = logging.getLogger(__name__)

WORKER_ENV = "LRSWEEP_WORKER_INDEX"


def resolve_workers(value: Any, devices: int = 1) -> int:
    """`workers=auto`: one per `devices` visible CUDA devices (`trainer.devices`: the GPUs each
    trial trains on), 1 without CUDA."""
    if value == "auto":
        try:
            import torch  # only here, for the device count: the sweeper itself needs no torch

            return max(1, torch.cuda.device_count() // max(1, devices))
        except ImportError:
            return 1
    check(isinstance(value, int) and value >= 1, "hydra.sweeper.workers", value, "an integer >= 1 or auto")
    return int(value)


def is_worker() -> bool:
    """Whether this process is one of the workers another sweep process started."""
    return WORKER_ENV in os.environ


def worker_command(index: int, sweep_dir: str) -> list[str]:
    """This process's command line, as worker `index` of one sweep in `sweep_dir`."""
    argv = [a for a in sys.argv[1:] if not a.startswith(("hydra.sweeper.workers=", "hydra.sweep.dir="))]
    return [
        sys.executable,
        sys.argv[0],
        *argv,
        f"hydra.sweep.dir={sweep_dir}",
        "hydra.sweeper.workers=1",
        f"hydra.sweeper.worker_index={index}",
    ]


def job_devices(job_cfg: Any) -> int:
    """`trainer.devices` of the job config (the processes, one GPU each, a trial trains on); 1 where
    the job has no such key or it is not a number (the job's own checks say so)."""
    from omegaconf import OmegaConf

    devices = OmegaConf.select(job_cfg, "trainer.devices", default=1)
    return devices if isinstance(devices, int) and devices >= 1 else 1


def visible_devices(index: int, devices: int) -> str:
    """CUDA_VISIBLE_DEVICES of worker `index` when each holds `devices` GPUs: "2,3" for index 1 of 2."""
    return ",".join(str(index * devices + d) for d in range(devices))


def run_workers(
    n: int, sweep_dir: str, pin_gpus: bool, study_name: str, storage_spec: str, devices: int = 1
) -> list[int]:
    """Start `n` workers, `devices` GPUs each where `pin_gpus`; wait for them; their exit codes. Ctrl-C
    stops them all and leaves the study resumable (each marks its running trial as interrupted)."""
    n_gpus = resolve_workers("auto") if pin_gpus else 0
    threads = max(1, (os.cpu_count() or 1) // n)
    log.info("starting %d workers on study '%s' in %s", n, study_name, masked(storage_spec))
    procs = []
    for i in range(n):
        env = {**os.environ, WORKER_ENV: str(i)}
        if n_gpus:
            env["CUDA_VISIBLE_DEVICES"] = visible_devices(i, devices)
        else:
            env.setdefault("OMP_NUM_THREADS", str(threads))
        procs.append(subprocess.Popen(worker_command(i, sweep_dir), env=env))

    def pass_on(signum: int, frame: object) -> None:
        """A kill or a preemption reaches every worker, which marks its running trial interrupted."""
        for p in procs:
            p.send_signal(signum)

    main = threading.current_thread() is threading.main_thread()  # only there may handlers change
    forward = signal.signal(signal.SIGTERM, pass_on) if main else None
    try:
        return [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            p.wait()
        raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, forward if forward is not None else signal.SIG_DFL)
