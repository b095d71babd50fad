"""`trainer.devices=N`: one run on N processes of this machine, started by the job itself (no torchrun).

The job's own process is rank 0. It holds the trial, so it alone reports, asks the pruner, and
writes TensorBoard, `status.yaml`, the checkpoint, `resume.pt` and the outcome. It starts ranks
1..N-1 as child processes (`python -m sweep.train.devices`), hands them the run's resolved config
through a `TCPStore` it hosts on 127.0.0.1, and each builds the same run (same seed, same data) and
trains its part of every batch (`sweep.train.distributed`) with a `FollowerTrial`. CUDA: rank r
uses the r-th visible GPU and NCCL; CPU: gloo.

Never a hang, and never a process left behind:
- start-up: rank 0 waits for each child to say it has built its run, watching that it is alive; a
  child that fails there fails the trial with its reason;
- a rank that raises writes its reason into the store and exits; its peers' next collective fails
  (a closed connection), and rank 0 fails the trial with that reason ("rank 1: ValueError: ...");
- a watchdog thread in rank 0 notices a child that died without a word (a signal, kill -9) and ends
  the others, so rank 0's collective fails at once rather than at the timeout;
- a rank that hangs: every collective has `trainer.rank_timeout_s` (`init_process_group(timeout=)`);
- however the run ends, rank 0 waits for its children and kills those still there; a child whose
  parent dies is killed by the kernel (PR_SET_PDEATHSIG). Followers ignore SIGINT, SIGTERM and
  SIGUSR2: rank 0 takes the signals and its decision reaches them as data.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from sweep.train.build import Built
from sweep.train.distributed import Ranks, group_freezes, wrap_model
from sweep.trial import FollowerTrial, LeaderTrial, NoTrial

log = logging.getLogger(__name__)

HOST = "127.0.0.1"  # one machine: a trial spanning nodes is not supported (docs/multi-device.md)
GRACE_S = 10.0  # how long rank 0 waits for a failed rank's reason, and for its children to exit
POLL_S = 0.05


class RankFailed(RuntimeError):
    """Another rank of the run failed, or did not start; the message says which and why."""


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def _is_peer_error(err: BaseException) -> bool:
    """An error a collective raises when a peer left (not an error of this rank's own making)."""
    return isinstance(err, (dist.DistError, ConnectionError)) or (
        isinstance(err, RuntimeError) and any(w in str(err) for w in ("gloo", "Gloo", "NCCL", "Connection"))
    )


class Followers:
    """Ranks 1..N-1 as rank 0 sees them: their processes, the store they talk through, a watchdog."""

    def __init__(self, world: int, timeout_s: float) -> None:
        self.world, self.timeout_s = world, timeout_s
        self.store = dist.TCPStore(HOST, 0, world, True, timeout=timedelta(seconds=timeout_s), wait_for_workers=False)
        self.procs: dict[int, subprocess.Popen] = {}
        self.deaths: dict[int, int] = {}  # rank -> exit code, for those that ended with an error
        self.killed: set[int] = set()  # the ranks rank 0 ended itself
        self.done = threading.Event()

    def start(self, payload: dict[str, Any]) -> None:
        self.store.set("payload", pickle.dumps(payload))  # type: ignore[arg-type]  # takes bytes; the stub says str
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        for rank in range(1, self.world):
            command = [
                sys.executable,
                "-m",
                "sweep.train.devices",
                str(self.store.port),
                str(rank),
                str(self.world),
                str(os.getpid()),
            ]
            self.procs[rank] = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
        log.info("ranks 1-%d started (pids %s)", self.world - 1, " ".join(str(p.pid) for p in self.procs.values()))
        threading.Thread(target=self._watch, name="lr-sweep-rank-watchdog", daemon=True).start()

    def _watch(self) -> None:
        """Notice a child that died; the others cannot go on without it, so end them too."""
        while not self.done.wait(0.2):
            for rank, proc in list(self.procs.items()):
                code = proc.poll()
                if code not in (None, 0) and rank not in self.deaths:
                    self.deaths[rank] = int(code)
                    self.kill()

    def wait_ready(self) -> None:
        """Until every child has built its run; a child that failed or died first fails the trial."""
        deadline, waiting = time.monotonic() + self.timeout_s, set(self.procs)
        while waiting:
            waiting = {r for r in waiting if not self.store.check([f"ready/{r}"])}
            reason = self.failure()
            if reason:
                raise RankFailed(reason)
            if waiting and time.monotonic() > deadline:
                raise RankFailed(f"rank {min(waiting)} did not start within trainer.rank_timeout_s={self.timeout_s:g}")
            time.sleep(POLL_S)

    def failure(self) -> str | None:
        """The first failed rank's reason: what it wrote, else how it died; None if none failed."""
        for rank in sorted(self.procs):
            if self.store.check([f"error/{rank}"]):
                return f"rank {rank}: {self.store.get(f'error/{rank}').decode()}"
        for rank, code in sorted(self.deaths.items()):
            if rank not in self.killed:
                how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
                return f"rank {rank} died ({how})"
        return None

    def reason_for(self, err: BaseException) -> str | None:
        """Why the run failed when rank 0 raised `err`: a follower's reason where `err` only says
        that a peer left (waiting up to GRACE_S for it), else None (rank 0's own error)."""
        if isinstance(err, RankFailed) or not _is_peer_error(err):
            return None
        deadline = time.monotonic() + GRACE_S
        while time.monotonic() < deadline:
            reason = self.failure()
            if reason:
                return reason
            time.sleep(POLL_S)
        return None

    def kill(self) -> None:
        for rank, proc in self.procs.items():
            if proc.poll() is None:
                self.killed.add(rank)
                proc.kill()

    def close(self, wait_s: float) -> list[int]:
        """Wait up to `wait_s` for the children to exit, kill those left, stop the watchdog; their
        exit codes (all 0 when every rank left the loop where rank 0 did)."""
        deadline = time.monotonic() + wait_s
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.0, deadline - time.monotonic()))
        self.done.set()
        self.kill()
        return [proc.wait() for proc in self.procs.values()]


def _destroy_group() -> None:
    if dist.is_initialized():
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


@contextlib.contextmanager
def on_devices(b: Built, trial: NoTrial, resume: Any = None) -> Iterator[tuple[nn.Module, NoTrial, Ranks | None]]:
    """The model, trial and ranks the loop trains with: as they are for `trainer.devices=1`; for N,
    the model in DDP, the trial behind a `LeaderTrial`, and N-1 followers training alongside (their
    failure becomes a `RankFailed` with their reason)."""
    trainer = b.settings["trainer"]
    world = int(trainer.get("devices") or 1)
    if world == 1:
        yield b.model, trial, None
        return
    timeout_s = float(trainer.get("rank_timeout_s") or 300)
    followers = Followers(world, timeout_s)
    try:
        followers.start({"settings": b.settings, "sys_path": list(sys.path), "number": trial.number, "resume": resume})
        followers.wait_ready()
        dist.init_process_group(
            backend_for(b.device),
            store=dist.PrefixStore("group", followers.store),
            rank=0,
            world_size=world,
            timeout=timedelta(seconds=timeout_s),
        )
        ranks = Ranks(0, world)
        model = wrap_model(b.model, b.device, group_freezes(b.settings["groups"]))
        yield model, LeaderTrial(trial, ranks.agree), ranks
    except BaseException as err:
        reason = followers.reason_for(err)
        followers.kill()
        _destroy_group()
        followers.close(0)
        if reason:
            raise RankFailed(reason) from err
        raise
    codes = followers.close(GRACE_S)  # they exit without tearing the group down (rank 0 does, after)
    _destroy_group()
    (log.info if not any(codes) else log.warning)("ranks 1-%d ended: exit codes %s", world - 1, codes)


def _follow(store: dist.TCPStore, payload: dict[str, Any], rank: int, world: int) -> None:
    """Rank `rank`'s part of the run: build it as rank 0 did, join the group, train with a FollowerTrial."""
    from omegaconf import OmegaConf

    from sweep.train.build import build
    from sweep.train.loop import pick_device, train

    settings = payload["settings"]
    trainer = settings["trainer"]
    if pick_device(trainer["device"]).type == "cuda":
        torch.cuda.set_device(rank)
    b = build(OmegaConf.create(settings))
    store.set(f"ready/{rank}", "1")
    dist.init_process_group(
        backend_for(b.device),
        store=dist.PrefixStore("group", store),
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=float(trainer.get("rank_timeout_s") or 300)),
    )
    ranks = Ranks(rank, world)
    model = wrap_model(b.model, b.device, group_freezes(b.settings["groups"]))
    train(
        model,
        b.optimizer,
        b.schedule,
        b.data,
        b.settings["trainer"],
        None,
        FollowerTrial(ranks.agree, rank, payload["number"]),
        str(b.settings["objective"]["metric"]),
        b.task,
        resume=payload["resume"],
        ranks=ranks,
    )


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this process when its parent (rank 0) dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)


def follower_main(argv: list[str]) -> int:
    """A follower process: `python -m sweep.train.devices PORT RANK WORLD PARENT_PID`."""
    port, rank, world, parent = (int(a) for a in argv)
    _die_with_parent(parent)
    for name in ("SIGINT", "SIGTERM", "SIGUSR2"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    logging.basicConfig(level=logging.ERROR)
    store = dist.TCPStore(HOST, port, world, False, timeout=timedelta(seconds=60))
    try:
        payload = pickle.loads(store.get("payload"))
        sys.path.extend(p for p in payload["sys_path"] if p not in sys.path)
        _follow(store, payload, rank, world)
    except BaseException as err:  # noqa: BLE001 - every failure goes to rank 0 as a reason
        with contextlib.suppress(Exception):
            store.set(f"error/{rank}", f"{type(err).__name__}: {err}".splitlines()[0])
        return 1
    return 0


if __name__ == "__main__":
    from sweep.train.process import exit_now

    exit_now(follower_main(sys.argv[1:]))
