"""The running trial as the training loop sees it: report a value, ask whether to stop, say why.

The sweeper hands a job its trial through the config (`trial.storage`, `trial.study_name`,
`trial.number`), so the handle works whether the job runs in the sweeper's process or in another
one: in-process it reuses the sweeper's open study (no storage reload per trial); elsewhere it
opens the same storage. A plain run (no sweeper) gets a handle that reports nowhere.
"""

from __future__ import annotations

from typing import Any, Mapping

# Studies the sweeper opened in this process, by (storage, study name), so in-process jobs reuse them.
OPEN_STUDIES: dict[tuple[str, str], tuple[Any, Any]] = {}

PRUNED_ATTR, FAIL_ATTR = "pruned_reason", "fail_reason"


class NoTrial:
    """A run outside a sweep: reports nowhere, never prunes."""

    number = None

    def report(self, value: float, epoch: int) -> None:
        pass

    def should_prune(self) -> bool:
        return False

    def set_attr(self, key: str, value: object) -> None:
        pass

    def pruned(self, reason: str) -> Exception:
        return RuntimeError(reason)


class StudyTrial(NoTrial):
    """A trial of an Optuna study, found by number in the shared storage."""

    def __init__(self, study: Any, storage: Any, number: int) -> None:
        import optuna

        self._optuna = optuna
        self.number = number
        study_id = storage.get_study_id_from_name(study.study_name)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
        self.trial = optuna.trial.Trial(study, trial_id)

    def report(self, value: float, epoch: int) -> None:
        self.trial.report(value, epoch)

    def should_prune(self) -> bool:
        return self.trial.should_prune()

    def set_attr(self, key: str, value: object) -> None:
        self.trial.set_user_attr(key, value)

    def pruned(self, reason: str) -> Exception:
        self.set_attr(PRUNED_ATTR, reason)
        return self._optuna.TrialPruned(reason)


def from_config(cfg: Mapping[str, Any] | None) -> NoTrial:
    """The handle for `cfg.trial`: StudyTrial when a sweeper filled it in, else NoTrial."""
    if not cfg or cfg.get("storage") is None:
        return NoTrial()
    key = (cfg["storage"], cfg["study_name"])
    if key not in OPEN_STUDIES:
        from sweep.storage import load_study

        OPEN_STUDIES[key] = load_study(cfg["storage"], cfg["study_name"])
    study, storage = OPEN_STUDIES[key]
    return StudyTrial(study, storage, int(cfg["number"]))
