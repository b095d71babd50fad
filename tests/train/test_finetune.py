"""The fine-tuning recipe: experiment=pretrain -> experiment=finetune, loading a backbone safely,
gradual unfreezing, and the search=finetune space."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from conftest import REPO, read_trials, run_train, trial_params
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sweep.errors import ConfigError
from sweep.lr.groups import build_groups
from sweep.lr.optimizer import build_optimizer
from sweep.lr.schedule import Schedule
from sweep.search.space_hooks import finetune_space
from sweep.train import data as datasets
from sweep.train.loop import save_checkpoint, train
from sweep.train.models import CNN, MLP, load_backbone
from sweep.trial import NoTrial, Status

CONF = REPO / "conf"
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # tiny models on a small shared CPU: one BLAS thread is faster
TINY = ["trainer.epochs=2"]


def job_cfg(*overrides: str, hydra: bool = False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra)


def error_lines(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


# --------------------------------------------------------------------------- the two experiments


def test_finetune_reads_where_pretrain_writes_with_the_same_architecture():
    pre, ft = job_cfg("experiment=pretrain"), job_cfg("experiment=finetune")
    assert pre.trainer.save_to == ft.model.init_from == "checkpoints/pretrain_digits04.pt"
    strip = lambda m: {k: v for k, v in OmegaConf.to_container(m).items() if k != "init_from"}  # noqa: E731
    assert strip(pre.model) == strip(ft.model)
    # task A and task B are disjoint digits
    assert set(pre.data.classes).isdisjoint(ft.data.classes)
    assert sorted(pre.data.classes + ft.data.classes) == list(range(10))
    assert ft.data.train_per_class and not pre.data.train_per_class


def test_command_line_groups_replace_the_experiments_choice():
    assert job_cfg("experiment=finetune").groups.name == "backbone_head"
    assert job_cfg("experiment=finetune", "groups=single").groups.name == "single"
    assert job_cfg("experiment=finetune", "groups=layer_decay").groups.name == "layer_decay"


# --------------------------------------------------------------------------- load_backbone


def saved(tmp_path: Path, model: torch.nn.Module, name: str = "ckpt.pt") -> str:
    path = str(tmp_path / name)
    save_checkpoint(path, model, {"epochs": 1, "config": {"model": {"hidden": [1, 2]}}})
    return path


def test_load_backbone_copies_the_backbone_and_leaves_the_head_new(tmp_path):
    torch.manual_seed(0)
    src = MLP(64, 5, hidden=(32, 32))
    torch.manual_seed(1)
    dst = MLP(64, 10, hidden=(32, 32))  # another number of classes: another head
    head_before = dst.head.weight.detach().clone()
    report = load_backbone(dst, saved(tmp_path, src))
    assert report == {"missing": [], "unexpected": []}
    for (k, a), b in zip(src.backbone.state_dict().items(), dst.backbone.state_dict().values()):
        assert torch.equal(a, b), k
    assert torch.equal(dst.head.weight, head_before)


def test_missing_and_unexpected_backbone_keys_are_reported(tmp_path, caplog):
    shallow, deep = MLP(64, 5, hidden=(32, 32)), MLP(64, 5, hidden=(32, 32, 32))
    with caplog.at_level(logging.INFO, logger="sweep.train.models"):
        report = load_backbone(MLP(64, 5, hidden=(32, 32, 32)), saved(tmp_path, shallow, "shallow.pt"))
    assert report["missing"] == ["backbone.4.weight", "backbone.4.bias"] and report["unexpected"] == []
    assert "backbone.4.weight" in caplog.text
    report = load_backbone(MLP(64, 5, hidden=(32, 32)), saved(tmp_path, deep, "deep.pt"))
    assert report == {"missing": [], "unexpected": ["backbone.4.weight", "backbone.4.bias"]}


@pytest.mark.parametrize(
    "src, dst",
    [
        (lambda: CNN(64, 5, channels=(16, 32)), lambda: MLP(64, 5)),
        (lambda: MLP(64, 5, hidden=(128,)), lambda: MLP(64, 5, hidden=(256, 256))),
        (lambda: CNN(64, 5, channels=(16, 32)), lambda: CNN(64, 5, channels=(32, 64, 128))),
    ],
)
def test_a_checkpoint_of_another_architecture_is_an_error_naming_init_from(tmp_path, src, dst):
    with pytest.raises(ConfigError) as err:
        load_backbone(dst(), saved(tmp_path, src()))
    msg = str(err.value)
    assert msg.startswith("model.init_from=") and "architecture" in msg and "\n" not in msg


def test_a_checkpoint_without_backbone_keys_is_an_error(tmp_path):
    path = str(tmp_path / "other.pt")
    torch.save({"model": {"features.0.weight": torch.zeros(3, 3)}}, path)
    with pytest.raises(ConfigError, match="model.init_from=.*architecture"):
        load_backbone(MLP(64, 5), path)


class Payload:
    """Unpickling this object would create `marker`: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def evil_checkpoint(tmp_path: Path) -> tuple[str, Path]:
    marker = tmp_path / "unpickled"
    path = str(tmp_path / "evil.pt")
    state = MLP(64, 5).state_dict()
    torch.save({"model": state, "extra": Payload(marker)}, path)
    assert not marker.exists()
    return path, marker


def test_loading_never_unpickles_arbitrary_objects(tmp_path):
    path, marker = evil_checkpoint(tmp_path)
    with pytest.raises(Exception) as err:
        load_backbone(MLP(64, 5), path)
    assert "weights" in str(err.value).lower() or isinstance(err.value, ConfigError)
    assert not marker.exists()


# --------------------------------------------------------------------------- gradual unfreezing


class Snapshots(NoTrial):
    """A trial handle that keeps the weights at every epoch's end (the loop reports each epoch)."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.model, self.optimizer = model, optimizer
        self.epochs: list[dict[str, Any]] = []

    def report(self, value: float, epoch: int) -> None:
        self.epochs.append(
            {"state": copy.deepcopy(self.model.state_dict()), "n_param_groups": len(self.optimizer.param_groups)}
        )


def groups_cfg(name: str, **overrides: Any) -> dict[str, Any]:
    root = OmegaConf.create({"groups": OmegaConf.load(CONF / "groups" / f"{name}.yaml")})
    for k, v in overrides.items():
        root.groups[k] = v
    return OmegaConf.to_container(root, resolve=True)["groups"]


def changed(a: dict, b: dict, prefix: str) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a if k.startswith(prefix))


@pytest.mark.parametrize("groups_name", ["backbone_head", "layer_decay"])
def test_backbone_is_frozen_for_freeze_epochs_then_warms_up_and_trains(groups_name):
    freeze, epochs, warmup = 2, 5, 1
    data = datasets.load(
        {
            "name": "synthetic",
            "n_samples": 160,
            "n_features": 16,
            "n_classes": 4,
            "noise": 1.0,
            "val_fraction": 0.2,
            "seed": 0,
        }
    )
    torch.manual_seed(0)
    model = MLP(16, 4, hidden=(16, 16))
    initial = copy.deepcopy(model.state_dict())
    groups = build_groups(model, groups_cfg(groups_name, freeze_epochs=freeze))
    # weight decay too: a frozen parameter must not decay either
    optimizer = build_optimizer({"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}, groups, False)
    batch_size = 32
    spe = -(-len(data.y_train) // batch_size)
    schedule = Schedule(
        {"name": "cosine", "floor": 0.0, "warmup_epochs": warmup, "warmup_start": 0.0}, 0.05, spe, epochs
    )
    lrs: list[dict[str, float]] = []
    optimizer.register_step_pre_hook(  # each update's LRs, as the step sees them
        lambda opt, args, kwargs: lrs.append({pg["name"]: pg["lr"] for pg in opt.param_groups})
    )
    n_groups = len(optimizer.param_groups)
    trial = Snapshots(model, optimizer)
    result = train(
        model, optimizer, schedule, data, {"seed": 0, "batch_size": batch_size, "epochs": epochs}, None, trial
    )
    assert result.status == Status.COMPLETE and len(trial.epochs) == epochs
    states = [initial] + [e["state"] for e in trial.epochs]
    backbone_names = [g.name for g in groups if g.name != "head"]
    for epoch in range(freeze):  # frozen: the backbone is exactly the loaded one; the head learns
        assert not changed(initial, states[epoch + 1], "backbone."), epoch
        assert changed(states[epoch], states[epoch + 1], "head."), epoch
    for epoch in range(freeze, epochs):  # then every epoch moves it
        assert changed(states[epoch], states[epoch + 1], "backbone."), epoch
    # the backbone's LR: 0 while frozen, then its own warmup from 0 over `warmup` epochs, from the unfreezing
    start = freeze * spe
    for name in backbone_names:
        assert all(lr[name] == 0.0 for lr in lrs[: start + 1])
        ramp = [lr[name] for lr in lrs[start : start + warmup * spe + 1]]
        assert ramp == sorted(ramp) and ramp[-1] > 0
        peak = max(lr[name] for lr in lrs)
        assert ramp[-1] == pytest.approx(peak)
    # the head warmed up from update 0
    assert lrs[0]["head"] == 0.0 and lrs[spe]["head"] > 0
    # no param group was added mid-run
    assert all(e["n_param_groups"] == n_groups for e in trial.epochs)


# --------------------------------------------------------------------------- search=finetune


def ask(cfg, n: int = 1, params: dict | None = None) -> list[dict[str, Any]]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    out = []
    for _ in range(n):
        trial = study.ask()
        for k, v in (params or {}).items():
            trial.suggest_float(k, *v)
        overrides = finetune_space(trial, cfg)
        study.tell(trial, 0.5)
        out.append(overrides)
    return out


@pytest.mark.parametrize(
    "groups, keys",
    [
        ("single", set()),
        ("backbone_head", {"groups.head_lr_mult"}),
        ("layer_decay", {"groups.head_lr_mult", "groups.decay"}),
    ],
)
def test_finetune_space_searches_what_each_groups_setup_has(groups, keys):
    cfg = job_cfg("experiment=finetune", "search=finetune", f"groups={groups}", hydra=True)
    # 40 trials mix step and exponential schedules: one study must accept both gammas
    for overrides in ask(cfg, 40):
        assert {k for k in overrides if k.startswith("groups.")} == keys
        assert overrides["schedule"] in ("step", "exponential", "cosine")
        if "groups.decay" in overrides:
            assert 0.5 <= overrides["groups.decay"] <= 1.0
        if "groups.head_lr_mult" in overrides:
            assert 1.0 <= overrides["groups.head_lr_mult"] <= 100.0


def test_finetune_space_leaves_fixed_and_command_line_ranges_alone():
    cfg = job_cfg("experiment=finetune", "search=finetune", "groups=layer_decay", "groups.head_lr_mult=7", hydra=True)
    (overrides,) = ask(cfg, 1, params={"groups.decay": (0.9, 1.0)})
    assert "groups.head_lr_mult" not in overrides and "groups.decay" not in overrides


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A launch dir where `experiment=pretrain` (2 epochs) wrote checkpoints/pretrain_digits04.pt."""
    d = tmp_path_factory.mktemp("launch")
    run_train("experiment=pretrain", *TINY, cwd=d, env=ONE_THREAD, check=True)
    return d


@pytest.mark.slow
def test_pretrain_writes_the_fixed_path_and_finetune_loads_it_by_default(workdir):
    ckpt = workdir / "checkpoints" / "pretrain_digits04.pt"
    assert ckpt.is_file()
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert state["model"]["head.weight"].shape[0] == 5 and state["epochs"] == 2
    jobs = list((workdir / "outputs").glob("*/*/checkpoint.pt"))
    assert len(jobs) == 1  # the job dir keeps its own copy too
    proc = run_train("experiment=finetune", *TINY, "hydra.run.dir=ft", cwd=workdir, env=ONE_THREAD, check=True)
    log = (workdir / "ft" / "train.log").read_text()
    assert "init_from checkpoints/pretrain_digits04.pt: loaded" in log
    assert "missing none; unexpected none" in log
    assert "val/acc (last)" in log, proc.stdout
    tuned = torch.load(workdir / "ft" / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert tuned["model"]["head.weight"].shape[0] == 5


@pytest.mark.slow
def test_finetune_without_the_checkpoint_says_how_to_make_it(tmp_path):
    proc = run_train("experiment=finetune", *TINY, cwd=tmp_path, env=ONE_THREAD)
    assert proc.returncode == 2
    (line,) = error_lines(proc)
    assert "model.init_from='checkpoints/pretrain_digits04.pt'" in line
    assert "python train.py experiment=pretrain" in line
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_finetune_from_a_checkpoint_of_another_architecture_is_one_line(tmp_path):
    path = saved(tmp_path, MLP(64, 5))
    proc = run_train("experiment=finetune", *TINY, f"model.init_from={path}", cwd=tmp_path, env=ONE_THREAD)
    assert proc.returncode == 2
    (line,) = error_lines(proc)
    assert line.startswith(f"error: model.init_from='{path}'") and "architecture" in line


@pytest.mark.slow
def test_finetune_refuses_a_checkpoint_holding_a_pickled_object(tmp_path):
    path, marker = evil_checkpoint(tmp_path)
    proc = run_train("experiment=finetune", *TINY, f"model.init_from={path}", cwd=tmp_path, env=ONE_THREAD)
    assert proc.returncode != 0
    assert not marker.exists()
    assert "weights" in (proc.stdout + proc.stderr).lower()


@pytest.mark.slow
@pytest.mark.parametrize(
    "groups, searched",
    [
        ("single", {"optimizer.lr", "schedule"}),
        ("layer_decay", {"optimizer.lr", "schedule", "groups.head_lr_mult", "groups.decay"}),
    ],
)
def test_finetune_sweep_runs_each_groups_setup(workdir, groups, searched):
    d = workdir / f"sweep-{groups}"
    run_train(
        "-m",
        "experiment=finetune",
        "search=finetune",
        f"groups={groups}",
        *TINY,
        "hydra.sweeper.n_trials=2",
        f"hydra.sweep.dir={d}",
        cwd=workdir,
        env=ONE_THREAD,
        check=True,
    )
    rows = read_trials(d)
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE"]
    for r in rows:
        params = set(trial_params(r))
        assert searched <= params
        assert ("groups.head_lr_mult" in params) == (groups != "single")
    results = OmegaConf.load(d / "optimization_results.yaml")
    assert results.best.value == max(float(r["value"]) for r in rows)
