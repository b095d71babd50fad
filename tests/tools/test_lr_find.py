"""mode=lr_find: the LR range test keeps group ratios, restores what it touched, and points near the
base LR that real training finds best."""

from __future__ import annotations

import copy
import csv
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, run_train
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image

from sweep.errors import ConfigError
from sweep.tools import lr_suggestion
from sweep.tools import range_test as lr_find
from sweep.train.build import build
from sweep.train.job import train_job

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FAST = ["data=synthetic", "trainer.threads=1", "lr_find.num_updates=60"]


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- rules and settings


def test_sweep_is_exponential_from_start_to_end():
    lrs = [lr_find.base_lr_at(i, 5, 1e-4, 1.0) for i in range(5)]
    assert lrs == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0])


def test_rules_read_the_curve_as_documented():
    lrs = list(np.logspace(-5, 0, 51))  # 10 points a decade
    # flat, then a fall that is steepest at index 30, the lowest loss at 36, then divergence
    x = np.arange(51)
    loss = list(2.0 - 1.5 / (1 + np.exp(-(x - 30) / 2.0)) + np.where(x > 36, 0.3 * (x - 36), 0.0))
    assert lr_suggestion.steepest(lrs, loss) == 30
    assert lr_suggestion.minimum(lrs, loss) == 36
    lr, (low, high) = lr_find.suggest(lrs, loss, "steepest")
    assert lr == pytest.approx(lrs[30])
    assert low == pytest.approx(lrs[30] / 10) and high == pytest.approx(lrs[36])  # the lowest loss bounds it
    assert lr_find.suggest(lrs, loss, "minimum")[0] == pytest.approx(lrs[36] / 10)
    assert 0 < lr_suggestion.valley(lrs, loss) < 36  # halfway along the longest fall, which ends at the minimum
    falls_on = list(2.0 - 1.5 / (1 + np.exp(-(x - 20) / 2.0)) - 0.001 * x)  # lowest loss at the very end
    lr, (low, high) = lr_find.suggest(lrs, falls_on, "steepest")
    assert lr == pytest.approx(lrs[20]) and high == pytest.approx(10 * lr)  # at most a decade above


def test_interval_always_holds_the_suggestion():
    lrs = list(np.logspace(-4, 0, 20))
    loss = list(np.linspace(2.0, 1.0, 20))  # falls to the very end: steepest and minimum coincide
    lr, (low, high) = lr_find.suggest(lrs, loss, "steepest")
    assert low < lr < high and lr * math.sqrt(10) * 0.999 <= high <= lr * 10 * 1.001


@pytest.mark.parametrize(
    "key, value",
    [("start_lr", 0), ("end_lr", 1e-9), ("num_updates", 3), ("smoothing", 1.0), ("diverge", 1.0), ("rule", "fastest")],
)
def test_bad_settings_are_one_line_errors(key, value):
    with pytest.raises(ConfigError, match=f"^lr_find.{key}="):
        lr_find.settings({key: value})


def test_a_config_without_lr_find_gets_the_shipped_settings():
    assert lr_find.settings(None) == OmegaConf.to_container(composed().lr_find)


def test_too_few_points_before_divergence_is_an_error_that_says_what_to_do():
    with pytest.raises(ConfigError, match="lower lr_find.start_lr"):
        lr_find.suggest([1e-3, 1e-2], [1.0, 5.0], "steepest")


# --------------------------------------------------------------------------- the test itself


def test_model_and_optimizer_state_are_restored():
    cfg = composed(*FAST)
    built = build(cfg)
    batches, loss_of = lr_find.training_batches(cfg, built), lr_find.batch_loss_of(cfg, built)
    for batch in batches():  # one real step, so the optimizer has momentum buffers to restore
        built.optimizer.zero_grad()
        loss_of(batch).backward()
        built.optimizer.step()
        break
    weights = copy.deepcopy(built.model.state_dict())
    state = copy.deepcopy(built.optimizer.state_dict())
    lrs = [g["lr"] for g in built.optimizer.param_groups]
    rng = torch.get_rng_state()
    grads = {n: p.grad.clone() for n, p in built.model.named_parameters()}
    record = lr_find.range_test(built.model, built.optimizer, batches, loss_of, lr_find.settings(cfg.lr_find))
    assert len(record.losses) > 10 and record.losses[0] != record.losses[-1]  # it did train
    after = built.model.state_dict()
    assert all(torch.equal(weights[k], after[k]) for k in weights)
    restored = built.optimizer.state_dict()
    assert [g["lr"] for g in built.optimizer.param_groups] == lrs
    for key, buffers in state["state"].items():
        assert all(torch.equal(v, restored["state"][key][name]) for name, v in buffers.items())
    assert restored["param_groups"] == state["param_groups"]
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(p.requires_grad for p in built.model.parameters())
    assert all(torch.equal(grads[n], p.grad) for n, p in built.model.named_parameters())  # the step's before


def test_find_writes_csv_yaml_png_and_keeps_every_group_ratio(tmp_path: Path):
    cfg = composed(*FAST, "groups.head_lr_mult=7")
    result = lr_find.find(cfg, str(tmp_path))
    rows = read_rows(tmp_path / "lr_find.csv")
    assert list(rows[0]) == ["update", "backbone", "head", "loss", "smoothed_loss"]
    ratios = [float(r["head"]) / float(r["backbone"]) for r in rows]
    assert ratios == pytest.approx([7.0] * len(rows), rel=1e-9)
    base = [float(r["backbone"]) for r in rows]
    assert base[0] == pytest.approx(1e-6) and all(b > a for a, b in zip(base, base[1:]))
    saved = OmegaConf.load(tmp_path / "lr_find.yaml")
    assert saved.suggested_lr == pytest.approx(result.suggested_lr)
    low, high = saved.interval
    assert low < saved.suggested_lr < high and list(result.interval) == pytest.approx([low, high])
    assert saved.group_lrs.head == pytest.approx(7 * saved.suggested_lr)
    data = (tmp_path / "lr_find.png").read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000
    with Image.open(tmp_path / "lr_find.png") as image:
        image.verify()


def test_a_layer_decay_job_keeps_each_layers_ratio(tmp_path: Path):
    cfg = composed(*FAST, "groups=layer_decay", "groups.decay=0.5")
    lr_find.find(cfg, str(tmp_path))
    rows = read_rows(tmp_path / "lr_find.csv")
    names = [k for k in rows[0] if k not in ("update", "loss", "smoothed_loss")]
    assert len(names) >= 3 and names[-1] == "head"
    for row in rows:
        lrs = [float(row[n]) for n in names]
        assert [b / a for a, b in zip(lrs, lrs[1:-1])] == pytest.approx([2.0] * (len(names) - 2))


# --------------------------------------------------------------------------- against real runs

GRID = (0.003, 0.01, 0.03, 0.1, 0.3)  # base LRs of the default digits job, 10 epochs, seed 0


@pytest.mark.slow
def test_suggestion_on_the_default_digits_job_is_within_a_decade_of_the_best_real_run(tmp_path: Path):
    found = run_train("mode=lr_find", "trainer.threads=1", f"hydra.run.dir={tmp_path / 'find'}", check=True)
    printed = found.stdout + found.stderr
    assert "suggested_lr:" in printed and "interval:" in printed
    saved = OmegaConf.load(tmp_path / "find" / "lr_find.yaml")
    for name in ("lr_find.csv", "lr_find.png"):
        assert (tmp_path / "find" / name).stat().st_size > 1000
    here, scores = os.getcwd(), {}
    for lr in GRID:
        job = tmp_path / f"lr{lr}"
        job.mkdir()
        os.chdir(job)  # train_job writes into the current dir outside Hydra
        try:
            scores[lr] = train_job(composed(f"optimizer.lr={lr}", "trainer.epochs=10", "trainer.threads=1"))
        finally:
            os.chdir(here)
    scores = {lr: (0.0 if v != v else v) for lr, v in scores.items()}
    best = max(GRID, key=lambda lr: scores[lr])
    assert abs(math.log10(saved.suggested_lr / best)) <= 1.0, (saved.suggested_lr, scores)
    assert saved.interval[0] <= best <= saved.interval[1], (saved.interval, scores)


def test_any_torch_optimizer_works_and_is_restored():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.Adam([{"params": [model.weight]}, {"params": [model.bias], "lr": 1e-2}], lr=1e-3)
    before = copy.deepcopy(model.state_dict())
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    record = lr_find.range_test(
        model,
        optimizer,
        lambda: iter([(x, y)]),
        lambda b: torch.nn.functional.cross_entropy(model(b[0]), b[1]),
        lr_find.settings({"num_updates": 20, "end_lr": 1.0}),
    )
    assert record.names == ["group0", "group1"] and len(record.losses) == 20
    assert record.group_lrs[-1] == pytest.approx([1.0, 1.0])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [g["lr"] for g in optimizer.param_groups] == [1e-3, 1e-2] and not optimizer.state
