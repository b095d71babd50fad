"""sweep.hf: a tiny BERT (built offline from its config) trained by transformers' Trainer on CPU with
lr-sweep's optimizer and scheduler (`optimizers=`) and the trial callback on an in-memory Optuna study."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
optuna = pytest.importorskip("optuna")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import Dataset  # noqa: E402

import sweep.hf  # noqa: E402
from sweep.errors import ConfigError  # noqa: E402
from sweep.lr.torch_scheduler import ScheduleLR  # noqa: E402
from sweep.search.handoff import StudyTrial  # noqa: E402
from sweep.trial import NoTrial, Status  # noqa: E402

OPTIMIZER = {"name": "adamw", "lr": 1e-3, "weight_decay": 0.01}
GROUPS = {"name": "layer_decay", "decay": 0.8, "head_lr_mult": 10.0}
COSINE = {"name": "cosine"}


class Tokens(Dataset):
    """Sequences whose label is their first token mod 3."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 40, (n, 8), generator=g)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = self.ids[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids[0] % 3}


def tiny_bert() -> Any:
    config = transformers.BertConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=3,
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


def compute_metrics(p: Any) -> dict[str, float]:
    return {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean()), "const": 1.0}


def arguments(tmp_path: Path, epochs: int = 3, **extra: Any) -> Any:
    return transformers.TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        per_device_eval_batch_size=16,
        num_train_epochs=epochs,
        eval_strategy="epoch",
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        **extra,
    )


def trainer_with(tmp_path: Path, callback: Any, schedule: dict | None = None, epochs: int = 3) -> Any:
    model, args, train = tiny_bert(), arguments(tmp_path, epochs), Tokens(32, 0)
    return transformers.Trainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=Tokens(16, 1),
        compute_metrics=compute_metrics,
        callbacks=[callback],
        optimizers=sweep.hf.optimizers(model, OPTIMIZER, GROUPS, schedule or COSINE, args=args, train_dataset=train),
    )


class Never(optuna.pruners.BasePruner):
    def prune(self, study: Any, trial: Any) -> bool:
        return False


class Always(optuna.pruners.BasePruner):
    def prune(self, study: Any, trial: Any) -> bool:
        return True


# --------------------------------------------------------------------------- fast


def test_metric_names_find_the_trainers_eval_keys() -> None:
    assert sweep.hf.metric_names("eval_accuracy")[0] == "eval_accuracy"
    assert "eval_accuracy" in sweep.hf.metric_names("accuracy")
    assert "eval_loss" in sweep.hf.metric_names("val/loss")


@pytest.mark.parametrize(
    "n, drop_last, accumulate, max_steps, want",
    [
        (32, False, 1, -1, (4, 3)),
        (37, False, 2, -1, (3, 3)),  # 5 batches, the last update takes one
        (37, True, 1, -1, (4, 3)),
        (32, False, 1, 6, (4, 2)),  # max_steps ends the run in epoch 2
    ],
)
def test_steps_per_epoch_and_epochs_as_the_trainer_counts_them(
    n: int, drop_last: bool, accumulate: int, max_steps: int, want: tuple[int, int]
) -> None:
    args = SimpleNamespace(
        train_batch_size=8,
        world_size=1,
        dataloader_drop_last=drop_last,
        gradient_accumulation_steps=accumulate,
        max_steps=max_steps,
        num_train_epochs=3,
    )
    assert sweep.hf.steps_of(args, sweep.hf._batches(args, range(n))) == want


def test_plateau_without_a_trainer_is_refused_in_one_line() -> None:
    args = SimpleNamespace(
        train_batch_size=8,
        world_size=1,
        dataloader_drop_last=False,
        gradient_accumulation_steps=1,
        max_steps=-1,
        num_train_epochs=3,
    )
    with pytest.raises(ConfigError) as info:
        sweep.hf.optimizers(
            torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)),
            OPTIMIZER,
            GROUPS,
            {"name": "plateau"},
            args=args,
            train_dataset=Tokens(8, 0),
        )
    assert info.value.key == "schedule" and "LRSweepCallback" in str(info.value) and "\n" not in str(info.value)


# --------------------------------------------------------------------------- Trainer runs


@pytest.mark.slow
def test_complete_run_reports_every_evaluation_and_finishes_complete(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize", pruner=Never())
    trial = study.ask()
    handle = StudyTrial(trial)
    callback = sweep.hf.LRSweepCallback(handle, monitor="eval_accuracy")
    trainer = trainer_with(tmp_path, callback)
    trainer.train()

    reported = study.trials[0].intermediate_values
    assert sorted(reported) == [0, 1, 2]
    outcome = handle.outcome
    assert outcome.status == Status.COMPLETE and outcome.epochs == 3 and outcome.value == pytest.approx(reported[2])
    last_eval = [h for h in trainer.state.log_history if "eval_accuracy" in h][-1]
    assert outcome.value == pytest.approx(last_eval["eval_accuracy"])
    assert callback.outcome == outcome
    trainer.evaluate()  # after the end: no report, no second finish
    assert sorted(study.trials[0].intermediate_values) == [0, 1, 2] and handle.outcome == outcome
    study.tell(trial, outcome.value)

    scheduler = trainer.lr_scheduler
    assert isinstance(scheduler, ScheduleLR)
    assert (scheduler.schedule.steps_per_epoch, scheduler.schedule.epochs) == (4, 3)
    assert trainer.state.max_steps == 12 and scheduler.last_epoch == 12
    names = [pg["name"] for pg in trainer.optimizer.param_groups]
    assert len(set(names)) == len(names) and "head" in names and "head/no_decay" in names


@pytest.mark.slow
def test_a_pruned_trial_stops_training_without_an_exception(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize", pruner=Always())
    handle = StudyTrial(study.ask())
    trainer = trainer_with(tmp_path, sweep.hf.LRSweepCallback(handle, monitor="accuracy"), epochs=5)
    trainer.train()
    assert trainer.state.global_step == 4  # one epoch of 4 updates
    assert sorted(study.trials[0].intermediate_values) == [0]
    assert handle.outcome.status == Status.PRUNED and handle.outcome.epochs == 1
    assert handle.outcome.reason.startswith("pruned after epoch 1/5 (accuracy=")


@pytest.mark.slow
def test_plateau_is_driven_on_a_trainer_with_the_callback(tmp_path: Path) -> None:
    model, args = tiny_bert(), arguments(tmp_path)
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=Tokens(32, 0),
        eval_dataset=Tokens(16, 1),
        compute_metrics=compute_metrics,
        callbacks=[sweep.hf.LRSweepCallback(NoTrial(), monitor="eval_accuracy")],
    )
    schedule = {"name": "plateau", "monitor": "val/const", "mode": "min", "patience": 0, "factor": 0.5}
    trainer.optimizer, trainer.lr_scheduler = sweep.hf.optimizers(trainer, OPTIMIZER, GROUPS, schedule)
    trainer.train()
    lrs = {pg["name"]: pg["lr"] for pg in trainer.optimizer.param_groups}
    assert lrs["head"] == pytest.approx(OPTIMIZER["lr"] * 10 * 0.25)  # halved after evaluations 2 and 3
