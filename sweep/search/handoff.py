"""How a job gets the trial the sweeper asked for: one path between sweeper and job.

The sweeper asks Optuna for a trial and hands the job a handle to it; the job reports each epoch's
objective, asks `should_prune()`, and ends with one `finish(Outcome)`; the sweeper reads that
outcome and tells the study. Two ways to hand over:

- In the sweeper's own process, the handle is passed through `sweep.trial.handed_over(...)` around
  the job's call, and the job's `current_trial(cfg)` returns that same object (the very
  `optuna.Trial` the sweeper asked for: no second object, no reloading the storage).
- In another process (a launcher that spawns jobs, a worker on another machine), the job's config
  carries `trial.storage`, `trial.study_name` and `trial.number`; `current_trial(cfg)` opens the
  storage and the outcome travels back as the trial's `outcome` user attribute.

Outside a sweep `current_trial` returns a `NoTrial`.

A job that is several processes (a user's loop started by torchrun or srun: `RANK`/`WORLD_SIZE`,
else `SLURM_PROCID`/`SLURM_NTASKS`): rank 0 gets its trial behind a `LeaderTrial` and every other
rank a `FollowerTrial`, which opens no storage. `report` counts on rank 0 only (once per epoch, not
once per rank), and `should_prune()` is one small collective that hands rank 0's decision to every
rank, so all leave the loop together. The one rule: every rank calls `should_prune()` at the same
points (`sweep.train.distributed.agree`; without an initialized process group it is rank 0's
decision as is, and never waits).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from sweep.trial import OUTCOME_ATTR, FollowerTrial, LeaderTrial, NoTrial, Outcome, handed_over_trials


class StudyTrial(NoTrial):
    """A trial of an Optuna study; `remote` when the sweeper that asked for it is in another process.

    In the sweeper's process the handle also carries the trial's own job `config` (without the
    `hydra` node) and `job_dir`, which a job that trains several trials together needs.
    """

    def __init__(self, trial: Any, remote: bool = False, config: Any = None, job_dir: str | None = None) -> None:
        import optuna

        super().__init__()
        self.trial, self.remote, self.config, self.job_dir = trial, remote, config, job_dir
        self.number = trial.number
        # Values are reported for the pruner; without one they would be a storage write per epoch
        # for nothing (the curves are in TensorBoard).
        self.prunes = not isinstance(trial.study.pruner, optuna.pruners.NopPruner)

    @property
    def params(self) -> Mapping[str, Any]:  # type: ignore[override]
        return self.trial.params

    def report(self, value: float, step: int) -> None:
        if self.prunes and math.isfinite(value):
            self.trial.report(float(value), int(step))

    def should_prune(self) -> bool:
        return self.prunes and self.trial.should_prune()

    def allow_pause(self) -> None:
        from sweep.search import keys
        from sweep.search.pausing import PausingHalving

        if self.prunes and isinstance(self.trial.study.pruner, PausingHalving):
            self.trial.set_user_attr(keys.PAUSABLE, True)  # the pruner pauses it at its rungs from now on
            self.pauses = True

    def finish(self, outcome: Outcome) -> None:
        self.outcome = outcome
        if self.remote:  # the sweeper reads it back from the storage
            self.trial.set_user_attr(OUTCOME_ATTR, outcome.to_dict())


def _trial_node(cfg: Any) -> Mapping[str, Any] | None:
    if cfg is None:
        return None
    node = cfg.get("trial") if hasattr(cfg, "get") else None
    return node if node and node.get("storage") is not None else None


def process_rank() -> tuple[int, int]:
    """(rank, world size) of this process as its launcher tells it: torchrun's RANK and WORLD_SIZE,
    else srun's SLURM_PROCID and SLURM_NTASKS; (0, 1) for a single process."""
    for rank_key, world_key in (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS")):
        try:
            return int(os.environ[rank_key]), int(os.environ[world_key])
        except (KeyError, ValueError):
            continue
    return 0, 1


def agree(prune: bool) -> bool:
    """Rank 0's pruning decision on every rank of the job (torch only here, in a multi-process job)."""
    from sweep.train.distributed import agree as agree_over_ranks

    return agree_over_ranks(prune)


def current_trials(cfg: Any = None) -> list[NoTrial]:
    """The trials this job trains: those handed over in this process (several when the sweeper
    trains them together), else the one its config names (`trial.number`), else one NoTrial. In a
    job of several processes: a FollowerTrial on ranks other than 0, rank 0's trial behind a LeaderTrial."""
    rank, world = process_rank()
    if world > 1 and rank > 0:
        node = _trial_node(cfg)
        return [FollowerTrial(agree, rank, int(node["number"]) if node is not None else None)]
    trials = _own_trials(cfg)
    if world > 1 and len(trials) == 1:
        return [LeaderTrial(trials[0], agree)]
    return trials


def _own_trials(cfg: Any) -> list[NoTrial]:
    handed = handed_over_trials()
    if handed is not None:
        return list(handed)
    node = _trial_node(cfg)
    if node is None:
        return [NoTrial()]
    return [StudyTrial(_remote_trial(node["storage"], node["study_name"], int(node["number"])), remote=True)]


def current_trial(cfg: Any = None) -> NoTrial:
    """The one trial this job trains (see `current_trials`); a NoTrial outside a sweep."""
    trials = current_trials(cfg)
    if len(trials) != 1:
        raise RuntimeError(f"this job trains {len(trials)} trials together; use sweep.search.handoff.current_trials")
    return trials[0]


def _remote_trial(storage_spec: str, study_name: str, number: int) -> Any:
    """The Optuna trial a sweeper in another process asked for, with the pruner the sweeper stored
    in the study."""
    import optuna

    from sweep.search import keys
    from sweep.search.space import build_pruner
    from sweep.search.storage import open_storage

    storage = open_storage(storage_spec)
    study_id = storage.get_study_id_from_name(study_name)
    spec = storage.get_study_user_attrs(study_id).get(keys.PRUNER, {"name": "none"})
    study = optuna.load_study(study_name=study_name, storage=storage, pruner=build_pruner(dict(spec)))
    return optuna.trial.Trial(study, storage.get_trial_id_from_study_id_trial_number(study_id, number))
