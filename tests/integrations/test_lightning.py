"""sweep.lightning: a LightningModule shaped like the lightning-hydra-template's (the net wrapped in
`self.net`, itself one `self.model = nn.Sequential(...)`) trained by a real Trainer on CPU, with
lr-sweep's optimizer and scheduler from the helper, LearningRateMonitor, and the trial callback on
an in-memory Optuna study."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

pl = pytest.importorskip("lightning.pytorch")
optuna = pytest.importorskip("optuna")

import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import sweep.lightning  # noqa: E402
from sweep.errors import ConfigError  # noqa: E402
from sweep.lr.torch_scheduler import ScheduleLR  # noqa: E402
from sweep.search.handoff import StudyTrial  # noqa: E402
from sweep.trial import NoTrial, Status  # noqa: E402

OPTIMIZER = {"name": "adamw", "lr": 3e-3, "weight_decay": 0.01}
GROUPS = {"name": "backbone_head", "head_lr_mult": 10.0}
COSINE = {"name": "cosine", "warmup_epochs": 1}
BATCH = 128


class SimpleDenseNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Linear(64, 32),
            nn.BatchNorm1d(32),
            nn.ReLU(),
            nn.Linear(32, 32),
            nn.BatchNorm1d(32),
            nn.ReLU(),
            nn.Linear(32, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class DigitsModule(pl.LightningModule):
    def __init__(self, schedule: dict[str, Any] | None = None, fail_at_epoch: int | None = None) -> None:
        super().__init__()
        self.net = SimpleDenseNet()
        self.criterion = nn.CrossEntropyLoss()
        self.schedule = schedule or COSINE
        self.fail_at_epoch = fail_at_epoch

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.current_epoch == self.fail_at_epoch:
            raise RuntimeError("boom in training_step")
        x, y = batch
        loss = self.criterion(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        logits = self.net(x)
        self.log("val/loss", self.criterion(logits, y))
        self.log("val/acc", (logits.argmax(1) == y).float().mean())
        self.log("val/const", 1.0)  # never improves: plateau reduces after `patience` epochs

    def configure_optimizers(self) -> Any:
        return sweep.lightning.configure_optimizers(self, OPTIMIZER, GROUPS, self.schedule)


def loaders() -> tuple[DataLoader, DataLoader]:
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(y), generator=g)
    train, val = order[:1000], order[1000:1400]
    return (
        DataLoader(TensorDataset(x[train], y[train]), batch_size=BATCH, shuffle=True, generator=g),
        DataLoader(TensorDataset(x[val], y[val]), batch_size=400),
    )


def fit(module: pl.LightningModule, callbacks: list, max_epochs: int = 3, logger: Any = False) -> pl.Trainer:
    torch.manual_seed(0)
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        callbacks=callbacks,
    )
    train, val = loaders()
    trainer.fit(module, train, val)
    return trainer


class Never(optuna.pruners.BasePruner):
    def prune(self, study: Any, trial: Any) -> bool:
        return False


class Always(optuna.pruners.BasePruner):
    def prune(self, study: Any, trial: Any) -> bool:
        return True


def study_trial(pruner: optuna.pruners.BasePruner) -> tuple[Any, Any, StudyTrial]:
    study = optuna.create_study(direction="maximize", pruner=pruner)
    trial = study.ask()
    return study, trial, StudyTrial(trial)


# --------------------------------------------------------------------------- tests


def test_only_the_lightning_adapter_imports_lightning() -> None:
    """`import sweep` stays light: lightning is imported by sweep/lightning.py alone, on its import."""
    root = Path(sweep.lightning.__file__).parent
    importers = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if any(
            line.strip().startswith(("import lightning", "from lightning", "from pytorch_lightning"))
            for line in p.read_text().splitlines()
        )
    )
    assert importers == ["lightning.py"]


@pytest.mark.slow
def test_complete_run_reports_every_epoch_and_finishes_complete_with_the_last_value(tmp_path: Path) -> None:
    study, trial, handle = study_trial(Never())
    callback = sweep.lightning.LRSweepCallback(handle, monitor="val/acc")
    monitor = pl.callbacks.LearningRateMonitor(logging_interval="step")
    logger = pl.loggers.CSVLogger(tmp_path, name="run")
    module = DigitsModule()
    trainer = fit(module, [callback, monitor], logger=logger)

    reported = study.trials[0].intermediate_values  # the trial's own storage
    assert sorted(reported) == [0, 1, 2]
    outcome = handle.outcome
    assert outcome is not None and outcome.status == Status.COMPLETE and outcome.epochs == 3
    assert outcome.value == pytest.approx(float(trainer.callback_metrics["val/acc"]))
    assert outcome.value == pytest.approx(reported[2]) and outcome.value > 0.5
    study.tell(trial, outcome.value)

    # the scheduler: per update, laid out over the trainer's updates and epochs
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert isinstance(scheduler, ScheduleLR) and trainer.lr_scheduler_configs[0].interval == "step"
    assert (scheduler.schedule.steps_per_epoch, scheduler.schedule.epochs) == (8, 3)  # 1000 / 128 -> 8
    assert scheduler.last_epoch == 24

    # LearningRateMonitor: unique names, one column per param group, head at 10x the backbone
    rows = list(csv.DictReader(open(Path(logger.log_dir) / "metrics.csv")))
    columns = set(rows[0])
    for name in ("backbone", "backbone/no_decay", "head", "head/no_decay"):
        assert f"lr-AdamW/{name}" in columns
    steps = [r for r in rows if r.get("lr-AdamW/backbone")]
    backbone = [float(r["lr-AdamW/backbone"]) for r in steps]
    head = [float(r["lr-AdamW/head"]) for r in steps]
    assert len(steps) >= 20 and len(set(backbone)) > 5  # warmup then cosine: the LR moves every update
    assert head == pytest.approx([10 * b for b in backbone])
    # the head found inside the wrappers: net.model.6
    head_group = next(pg for pg in scheduler.optimizer.param_groups if pg["name"] == "head")
    assert {id(p) for p in head_group["params"]} == {id(module.net.model[6].weight)}


@pytest.mark.slow
def test_a_pruned_trial_stops_training_without_an_exception() -> None:
    study, trial, handle = study_trial(Always())
    callback = sweep.lightning.LRSweepCallback(handle, monitor="val/acc")
    trainer = fit(DigitsModule(), [callback], max_epochs=5)
    assert trainer.current_epoch == 1  # stopped after the first epoch's validation
    assert sorted(study.trials[0].intermediate_values) == [0]
    outcome = handle.outcome
    assert outcome.status == Status.PRUNED and outcome.value is None and outcome.epochs == 1
    assert outcome.reason.startswith("pruned after epoch 1/5 (val/acc=")
    assert callback.outcome == outcome


@pytest.mark.slow
def test_an_exception_finishes_the_trial_failed() -> None:
    handle = NoTrial()
    with pytest.raises(RuntimeError, match="boom"):
        fit(DigitsModule(fail_at_epoch=1), [sweep.lightning.LRSweepCallback(handle, monitor="val/acc")])
    assert handle.outcome.status == Status.FAILED and handle.outcome.reason == "RuntimeError: boom in training_step"


@pytest.mark.slow
def test_a_metric_never_logged_fails_the_trial_naming_what_was_logged() -> None:
    handle = NoTrial()
    fit(DigitsModule(), [sweep.lightning.LRSweepCallback(handle, monitor="val/accuracy")], max_epochs=2)
    assert handle.outcome.status == Status.FAILED
    assert "monitor='val/accuracy' was never logged" in handle.outcome.reason and "val/acc" in handle.outcome.reason


@pytest.mark.slow
def test_plateau_is_driven_by_the_callback() -> None:
    schedule = {"name": "plateau", "monitor": "val/const", "mode": "min", "patience": 0, "factor": 0.5}
    trainer = fit(DigitsModule(schedule), [sweep.lightning.LRSweepCallback(NoTrial(), monitor="val/acc")])
    lrs = {pg["name"]: pg["lr"] for pg in trainer.optimizers[0].param_groups}
    # epoch 1 sets the best, epochs 2 and 3 do not improve: two halvings
    assert lrs["backbone"] == pytest.approx(OPTIMIZER["lr"] * 0.25)
    assert lrs["head"] == pytest.approx(OPTIMIZER["lr"] * 10 * 0.25)


@pytest.mark.slow
def test_plateau_without_the_callback_is_refused_in_one_line() -> None:
    schedule = {"name": "plateau", "monitor": "val/loss"}
    with pytest.raises(ConfigError) as info:
        fit(DigitsModule(schedule), [], max_epochs=2)
    assert info.value.key == "schedule" and "LRSweepCallback" in str(info.value)
    assert "\n" not in str(info.value)
