"""What SLURM says about a sweep's worker jobs: their states (for `python -m sweep status` and the
submitting command's wait), and how many nodes a partition has (may a journal file be shared?).

Read with `squeue` (it lists a job for `MinJobAge` seconds after it ends), then `sacct` for the
rest where accounting is on; a job neither knows is "unknown", as is every job on a machine
without SLURM's commands. Nothing here imports submitit.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from optuna.trial import TrialState

from sweep.search import keys

ACTIVE = {
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "RESIZING",
    "SUSPENDED",
    "STAGE_OUT",
    "SIGNALING",
    "PREEMPTED",
}
UNKNOWN = "unknown"
TIMEOUT_S = 10
PENDING_ARRAY = re.compile(r"^(\d+)_\[(.+)\]$")


def job_of(worker: str) -> str | None:
    """The SLURM job id in a worker identity (`slurm:123_4` -> `123_4`), None for a local worker."""
    return worker[len("slurm:") :] if worker.startswith("slurm:") else None


def _run(command: list[str]) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _array_indices(spec: str) -> set[str]:
    """`0-3,5%2` -> {"0", "1", "2", "3", "5"} (a pending array's task list as squeue prints it)."""
    out: set[str] = set()
    for part in spec.split("%")[0].split(","):
        low, _, high = part.partition("-")
        if low.isdigit() and (not high or high.isdigit()):
            out.update(str(i) for i in range(int(low), int(high or low) + 1))
    return out


def _parse(text: str, wanted: Iterable[str]) -> dict[str, str]:
    """{job id: state} from `id state` lines; a pending array's `123_[0-3]` line covers its tasks."""
    wanted = set(wanted)
    states: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        job, state = parts[0], parts[1].rstrip("+")
        match = PENDING_ARRAY.match(job)
        if match:
            for index in _array_indices(match.group(2)):
                states.setdefault(f"{match.group(1)}_{index}", state)
        elif job in wanted:
            states[job] = state
    return states


def job_states(job_ids: Sequence[str]) -> dict[str, str]:
    """{job id: SLURM state} for `job_ids` (`123` or `123_4`), "unknown" where SLURM cannot say."""
    ids = list(dict.fromkeys(job_ids))
    if not ids:
        return {}
    states: dict[str, str] = {}
    for group in ([ids], [[j] for j in ids]):  # all at once; one by one if squeue refuses one of them
        for chunk in group:
            text = _run(["squeue", "-h", "-t", "all", "-j", ",".join(chunk), "-o", "%i %T"])
            if text is not None:
                states.update(_parse(text, ids))
        if states:
            break
    missing = [j for j in ids if j not in states]
    if missing:
        text = _run(["sacct", "-n", "-X", "-P", "--delimiter", " ", "-j", ",".join(missing), "-o", "JobID,State"])
        if text is not None:
            states.update(_parse(text, missing))
    return {j: states.get(j, UNKNOWN) for j in ids}


def partition_nodes(partition: str | None) -> int | None:
    """How many nodes `partition` (None: the default one) has, or None when sinfo cannot say."""
    text = _run(["sinfo", "-h", "-o", "%P %D"])
    if text is None:
        return None
    nodes: Counter[str] = Counter()
    default = None
    for line in text.splitlines():
        name, _, count = line.partition(" ")
        if name.endswith("*"):
            name = default = name[:-1]
        if count.strip().isdigit():
            nodes[name] += int(count)
    chosen = partition or default
    return nodes[chosen] if chosen is not None and chosen in nodes else None


def worker_lines(trials: Sequence[Any], study_jobs: Sequence[str] = ()) -> list[str]:
    """One line per worker of a study: its identity, its SLURM job and state (for SLURM workers),
    and its trials. `study_jobs`: jobs submitted for the study that may hold no trial yet."""
    by_worker: dict[str, list[Any]] = {}
    for t in trials:
        worker = t.user_attrs.get(keys.WORKER)
        if worker:
            by_worker.setdefault(str(worker), []).append(t)
    for submitted in study_jobs:
        by_worker.setdefault(f"slurm:{submitted}", [])
    states = job_states([j for j in (job_of(w) for w in by_worker) if j])
    lines = []
    for worker, own in sorted(by_worker.items()):
        job = job_of(worker)
        where = f"SLURM job {job} {states.get(job, UNKNOWN)}" if job else "local"
        running = [f"#{t.number}" for t in own if t.state == TrialState.RUNNING]
        finished = sum(keys.counts_as_finished(t) for t in own)
        failed = sum(keys.shown_state(t) == "FAIL" for t in own)
        text = f"{finished} finished, {failed} failed" + (f", running {' '.join(running)}" if running else "")
        lines.append(f"  {worker}  {where}  trials: {text}")
    return lines
