"""mode=preview: the schedule drawn without training equals what a real run logs as lr/<group>."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run_train
from hydra import compose, initialize_config_dir
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sweep.errors import ConfigError
from sweep.tools import preview
from sweep.train import checks as config
from sweep.train.build import build

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def curves_of(*overrides: str) -> preview.Curves:
    built = build(composed("data=synthetic", *overrides))
    return preview.schedule_curves(built.optimizer.param_groups, built.schedule)


def read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], np.array(rows[1:], dtype=float)


def assert_png(path: Path, min_bytes: int = 10_000) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) >= min_bytes, (path, len(data))
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.size[0] >= 400 and image.size[1] >= 300


def test_modes_are_checked():
    for mode in ("train", "preview", "lr_find"):
        config.validate(composed(f"mode={mode}"))
    with pytest.raises(ConfigError, match="^mode='draw' is not allowed: one of train, preview, lr_find"):
        config.validate(composed("mode=draw"))


def test_step_schedule_changes_at_its_epochs_and_keeps_the_head_ratio():
    c = curves_of(
        "schedule=step", "schedule.step_size=3", "schedule.gamma=0.5", "trainer.epochs=7", "groups.head_lr_mult=4"
    )
    spe = c.steps_per_epoch
    assert c.names == ["backbone", "head"] and c.lrs.shape == (7 * spe, 2)
    backbone, head = c.lrs[:, 0], c.lrs[:, 1]
    assert np.allclose(head, 4 * backbone)
    expected = 0.05 * 0.5 ** (c.epochs // 3)
    assert np.allclose(backbone, expected)
    assert preview.changes(backbone, spe) == "steps at epochs 4, 7"


def test_warmup_and_cosine_move_every_update_and_a_frozen_group_waits():
    c = curves_of("schedule=cosine", "schedule.warmup_epochs=1", "groups.freeze_epochs=2", "trainer.epochs=5")
    spe = c.steps_per_epoch
    backbone, head = c.lrs[:, 0], c.lrs[:, 1]
    assert np.all(backbone[: 2 * spe] == 0) and backbone[2 * spe] == 0 and backbone[2 * spe + 1] > 0
    assert head[0] == 0 and head[spe] == pytest.approx(0.5)  # warmup from 0 to the head's peak
    assert preview.changes(head, spe) == "changes within epochs 1-5"
    assert preview.changes(backbone, spe) == "changes within epochs 3-5"


def test_summary_table_and_plateau_note():
    text = preview.summary(curves_of("schedule=step", "schedule.step_size=2", "trainer.epochs=4"))
    lines = text.splitlines()
    assert lines[1].split() == ["group", "first", "last", "min", "max", "changes"]
    assert lines[2].split()[:5] == ["backbone", "0.05", "0.005", "0.005", "0.05"]
    assert "steps at epoch 3" in lines[2] and "note" not in text
    flat = preview.summary(curves_of("schedule=plateau", "trainer.epochs=3"))
    assert "note: schedule=plateau" in flat and "never" in flat


def test_thousands_of_epochs_without_training(tmp_path: Path):
    c = curves_of("schedule=cosine", "trainer.epochs=2000")
    assert len(c.lrs) == 2000 * c.steps_per_epoch
    preview.write_csv(c, str(tmp_path / "preview.csv"))
    header, rows = read_csv(tmp_path / "preview.csv")
    assert header == ["update", "epoch", "backbone", "head"] and len(rows) == len(c.lrs)
    assert np.array_equal(rows[:, 1], rows[:, 0] // c.steps_per_epoch)


@pytest.mark.slow
def test_preview_equals_the_lr_curves_a_real_run_logs(tmp_path: Path):
    args = [
        "data=synthetic",
        "trainer.epochs=4",
        "schedule=cosine",
        "schedule.warmup_epochs=1.5",
        "groups.freeze_epochs=1",
        "groups.head_lr_mult=5",
        "trainer.threads=1",
    ]
    run_train(*args, f"hydra.run.dir={tmp_path / 'train'}", check=True)
    shown = run_train("mode=preview", *args, f"hydra.run.dir={tmp_path / 'preview'}", check=True)
    assert "first" in shown.stdout + shown.stderr and "changes within epochs" in shown.stdout + shown.stderr
    assert not (tmp_path / "preview" / "tensorboard").exists()  # nothing was trained
    header, rows = read_csv(tmp_path / "preview" / "preview.csv")
    assert header == ["update", "epoch", "backbone", "head"]
    assert_png(tmp_path / "preview" / "preview.png")
    events = EventAccumulator(str(tmp_path / "train" / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    for j, name in enumerate(header[2:], start=2):
        logged = events.Scalars(f"lr/{name}")
        steps = np.array([e.step for e in logged])
        values = np.array([e.value for e in logged])
        assert steps[-1] == len(rows) - 1  # the run and the preview have the same number of updates
        # at the logged knots, the same LR (TensorBoard keeps float32)
        assert np.allclose(rows[steps, j], values, rtol=1e-6, atol=1e-12)
        # between them, the straight-line joins stay within trainer.lr_log_tolerance (0.1%) of the preview
        drawn = np.interp(rows[:, 0], steps, values)
        assert np.all(np.abs(drawn - rows[:, j]) <= 1e-3 * rows[:, j].max() + 1e-12)
        assert len(set(np.round(values, 8))) > 10  # warmup and cosine: a curve, not a constant


@pytest.mark.slow
def test_multirun_writes_a_preview_per_schedule_and_one_side_by_side(tmp_path: Path):
    sweep = tmp_path / "multi"
    run_train(
        "-m",
        "mode=preview",
        "schedule=step,exponential,cosine",
        "data=synthetic",
        f"hydra.sweep.dir={sweep}",
        check=True,
    )
    curves = []
    for job in ("0", "1", "2"):
        header, rows = read_csv(sweep / job / "preview.csv")
        assert header == ["update", "epoch", "backbone", "head"]
        assert_png(sweep / job / "preview.png")
        curves.append(rows[:, 2])
    assert not np.allclose(curves[0], curves[1]) and not np.allclose(curves[1], curves[2])
    assert_png(sweep / "preview.png", min_bytes=20_000)


class _LoggedLRs:
    """Stands in for RunWriter: keeps every `lr/<group>` value the training loop logs, in order."""

    def __init__(self) -> None:
        self.lrs: dict[str, list[float]] = {}

    def lr_curves(self, first: int, curves: dict[str, list[float]]) -> None:
        for name, values in curves.items():
            self.lrs.setdefault(name, []).extend(values)

    def scalars(self, metrics: dict[str, float], step: int) -> None:
        pass


ONE_RULE = (
    "data=synthetic",
    "schedule=cosine",
    "schedule.warmup_epochs=1",
    "groups.freeze_epochs=1",
    "groups.head_lr_mult=4",
    "trainer.epochs=3",
)


def _trained_lrs(*overrides: str) -> dict[str, list[float]]:
    from sweep.train.loop import train

    b = build(composed(*overrides))
    writer = _LoggedLRs()
    train(b.model, b.optimizer, b.schedule, b.data, b.settings["trainer"], writer, task=b.task)  # type: ignore[arg-type]
    return writer.lrs


def test_preview_equals_what_the_loop_logs_and_what_a_users_scheduler_sets():
    """One LR rule: the preview, the job's loop and `sweep.build_scheduler` in a user's loop give the
    same value for every group at every update (exactly: they are the same computation)."""
    import sweep

    c = curves_of(*ONE_RULE[1:])
    logged = _trained_lrs(*ONE_RULE)
    assert list(logged) == c.names
    for j, name in enumerate(c.names):
        assert logged[name] == c.lrs[:, j].tolist(), name
    b = build(composed(*ONE_RULE))
    spe, epochs = b.schedule.steps_per_epoch, int(b.settings["trainer"]["epochs"])
    scheduler = sweep.build_scheduler(b.optimizer, b.settings["schedule"], spe, epochs)
    firsts = scheduler.rule.firsts()
    users = []
    for _ in range(spe * epochs):
        users.append([b.optimizer.param_groups[i]["lr"] for i in firsts.values()])
        b.optimizer.step()
        scheduler.step()
    assert users == c.lrs.tolist()


def test_the_loop_and_the_preview_ask_the_one_rule(monkeypatch):
    """Change the rule (`sweep.lr.rule.GroupLRs.at`) and both the preview and the loop's LRs change
    with it: neither computes base_lr x mult x factor itself."""
    from sweep.lr.rule import GroupLRs

    before = curves_of(*ONE_RULE[1:])
    at = GroupLRs.at
    monkeypatch.setattr(GroupLRs, "at", lambda self, t: [0.5 * lr for lr in at(self, t)])
    assert np.array_equal(curves_of(*ONE_RULE[1:]).lrs, 0.5 * before.lrs)
    logged = _trained_lrs(*ONE_RULE)
    for j, name in enumerate(before.names):
        assert logged[name] == (0.5 * before.lrs[:, j]).tolist(), name


def test_the_lr_rule_is_written_once():
    """No module but sweep/lr/rule.py turns a schedule factor into a group's LR."""
    for path in (
        "sweep/train/loop.py",
        "sweep/tools/preview.py",
        "sweep/batched/stack.py",
        "sweep/lr/torch_scheduler.py",
    ):
        text = (REPO / path).read_text()
        assert ".factor(" not in text and '["mult"]' not in text, path
    assert "peak * factor(t, start)" in (REPO / "sweep/lr/rule.py").read_text()
