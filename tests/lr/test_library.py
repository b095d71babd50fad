"""The library API for a user's own loop: sweep.build_groups / build_optimizer / build_scheduler /
current_trial, with plain dicts and DictConfigs, against sweep.lr.schedule and torch's schedulers."""

from __future__ import annotations

import io
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import REPO
from omegaconf import OmegaConf
from torch import nn
from torch.optim import lr_scheduler as torch_sched

import sweep
from sweep.errors import ConfigError
from sweep.lr.schedule import Schedule

CONF = REPO / "conf"
SPE, EPOCHS = 4, 6
TOTAL = SPE * EPOCHS
BASE_LR, HEAD_MULT = 0.1, 10.0


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8))
        self.classifier = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def schedule_cfg(name: str, **overrides: Any) -> dict[str, Any]:
    cfg = OmegaConf.merge(
        OmegaConf.load(CONF / "schedule" / "_base.yaml"), OmegaConf.load(CONF / "schedule" / f"{name}.yaml")
    )
    out = OmegaConf.to_container(cfg, resolve=True)
    out.pop("defaults", None)
    return {**out, **overrides}


def setup(schedule: dict[str, Any], freeze_epochs: int = 0, seed: int = 0):
    torch.manual_seed(seed)
    model = Net()
    groups = sweep.build_groups(
        model, {"name": "backbone_head", "head_lr_mult": HEAD_MULT, "freeze_epochs": freeze_epochs}
    )
    optimizer = sweep.build_optimizer({"name": "sgd", "lr": BASE_LR, "momentum": 0.9}, groups)
    return model, optimizer, sweep.build_scheduler(optimizer, schedule, SPE, EPOCHS)


def lrs_per_update(
    optimizer, scheduler, updates: int, metrics: dict[int, float] | None = None, model: nn.Module | None = None
) -> list[list[float]]:
    """Each update's LR per param group, read before the update, as a loop would use them."""
    out = []
    for t in range(updates):
        out.append([pg["lr"] for pg in optimizer.param_groups])
        if model is not None:
            model(torch.randn(3, 4)).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        if metrics is not None and (t + 1) % SPE == 0:
            scheduler.end_of_epoch(metrics[(t + 1) // SPE - 1])
    return out


CASES = ["constant", "step", "multistep", "exponential", "piecewise", "cosine", "linear", "poly", "onecycle"]


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("warmup", [0, 1])
def test_scheduler_follows_sweep_schedules_value_for_value(name: str, warmup: int) -> None:
    overrides = {"step_size": 2} if name == "step" else {"milestones": [2, 4]} if name == "multistep" else {}
    spec = schedule_cfg(name, warmup_epochs=warmup, **overrides)
    _, optimizer, scheduler = setup(spec)
    assert isinstance(scheduler, torch_sched.LRScheduler)
    got = lrs_per_update(optimizer, scheduler, TOTAL)
    reference = Schedule(spec, BASE_LR, SPE, EPOCHS)
    for t, row in enumerate(got):
        for pg, lr in zip(optimizer.param_groups, row):
            peak = BASE_LR * (HEAD_MULT if pg["group"] == "head" else 1.0)
            assert lr == pytest.approx(peak * reference.factor(t), rel=1e-12, abs=1e-15), (t, pg["group"])
    assert scheduler.get_last_lr() == [pg["lr"] for pg in optimizer.param_groups]
    if name != "constant" or warmup:
        assert len({row[0] for row in got}) > 1  # the curve moves: not a vacuous comparison


@pytest.mark.parametrize(
    "name, make, per_update",
    [
        ("step", lambda o: torch_sched.StepLR(o, step_size=2, gamma=0.5), False),
        ("cosine", lambda o: torch_sched.CosineAnnealingLR(o, T_max=TOTAL), True),
        (
            "onecycle",
            lambda o: torch_sched.OneCycleLR(
                o, max_lr=[BASE_LR, BASE_LR * HEAD_MULT], total_steps=TOTAL, cycle_momentum=False
            ),
            True,
        ),
    ],
)
def test_scheduler_matches_torchs_own(name: str, make, per_update: bool) -> None:
    spec = schedule_cfg(name, **({"step_size": 2, "gamma": 0.5} if name == "step" else {}))
    torch.manual_seed(0)
    model = Net()
    groups = sweep.build_groups(model, {"name": "backbone_head", "head_lr_mult": HEAD_MULT})
    optimizer = sweep.build_optimizer({"name": "sgd", "lr": BASE_LR}, groups, decay_norm_bias=True)
    ours = lrs_per_update(optimizer, sweep.build_scheduler(optimizer, spec, SPE, EPOCHS), TOTAL)
    params = [nn.Parameter(torch.zeros(1)) for _ in range(2)]
    ref_opt = torch.optim.SGD(
        [{"params": [params[0]], "lr": BASE_LR}, {"params": [params[1]], "lr": BASE_LR * HEAD_MULT}]
    )
    ref = make(ref_opt)
    want = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for t in range(TOTAL):
            want.append([pg["lr"] for pg in ref_opt.param_groups])
            if t < TOTAL - 1 and (per_update or (t + 1) % SPE == 0):
                ref.step()
    assert [pg["group"] for pg in optimizer.param_groups] == ["backbone", "head"]
    for t, (g, w) in enumerate(zip(ours, want)):
        assert g == pytest.approx(w, rel=1e-9, abs=1e-15), t


def test_any_optimizer_works_its_group_lrs_are_the_peaks() -> None:
    params = [nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))]
    optimizer = torch.optim.AdamW([{"params": [params[0]], "lr": 0.01}, {"params": [params[1]], "lr": 0.1}], lr=0.01)
    scheduler = sweep.build_scheduler(optimizer, {"name": "cosine"}, SPE, EPOCHS)
    got = lrs_per_update(optimizer, scheduler, TOTAL)
    reference = Schedule({"name": "cosine"}, 0.01, SPE, EPOCHS)
    assert [row[1] for row in got] == pytest.approx([0.1 * reference.factor(t) for t in range(TOTAL)])
    assert [row[0] for row in got] == pytest.approx([0.01 * reference.factor(t) for t in range(TOTAL)])


def test_freeze_epochs_zero_lr_and_no_gradients_until_the_start_epoch() -> None:
    model, optimizer, scheduler = setup(schedule_cfg("constant"), freeze_epochs=2)
    backbone = [p for pg in optimizer.param_groups if pg["group"] == "backbone" for p in pg["params"]]
    start = [p.detach().clone() for p in backbone]
    for t in range(TOTAL):
        epoch = t // SPE
        lrs = {pg["group"]: pg["lr"] for pg in optimizer.param_groups}
        assert lrs["backbone"] == (0.0 if epoch < 2 else BASE_LR)
        assert lrs["head"] == pytest.approx(BASE_LR * HEAD_MULT)
        assert all(p.requires_grad == (epoch >= 2) for p in backbone), t
        model(torch.randn(3, 4)).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
        if t == 2 * SPE - 1:  # the backbone has not moved while frozen
            assert all(torch.equal(a, p) for a, p in zip(start, backbone))
        scheduler.step()
    assert not all(torch.equal(a, p) for a, p in zip(start, backbone))


def test_plain_steps_equal_torchs_own_path_and_a_tensor_lr_is_filled() -> None:
    """After its first step, ScheduleLR writes the rule's values itself: the same LRs as torch's own
    path (`step(epoch)`); a tensor LR takes torch's path and is filled in place."""
    spec = schedule_cfg("cosine", warmup_epochs=1)
    _, optimizer, scheduler = setup(spec)
    plain = lrs_per_update(optimizer, scheduler, TOTAL)
    _, optimizer, scheduler = setup(spec)
    closed = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch deprecates step(epoch)
        for t in range(TOTAL):
            scheduler.step(t)
            closed.append([pg["lr"] for pg in optimizer.param_groups])
    assert closed == plain
    param = nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([param], lr=torch.tensor(0.1))
    scheduler = sweep.build_scheduler(optimizer, {"name": "cosine"}, SPE, EPOCHS)
    lr = optimizer.param_groups[0]["lr"]
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] is lr
    assert float(lr) == pytest.approx(0.1 * Schedule({"name": "cosine"}, 0.1, SPE, EPOCHS).factor(3))


def _through_bytes(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)  # plain data: loads without unpickling code


@pytest.mark.parametrize(
    "name, metrics",
    [
        ("onecycle", None),
        ("step", None),
        ("plateau", {0: 1.0, 1: 1.0, 2: 1.0, 3: 0.5, 4: 0.6, 5: 0.7}),
    ],
)
@pytest.mark.parametrize("stop_at", [5, 13])
def test_state_dict_resumes_the_same_curve(name: str, metrics: dict | None, stop_at: int) -> None:
    spec = schedule_cfg(name, **({"patience": 1} if name == "plateau" else {}))
    model, optimizer, scheduler = setup(spec)
    whole = lrs_per_update(optimizer, scheduler, TOTAL, metrics, model)
    if name == "plateau":
        assert len({row[0] for row in whole}) > 1  # the plateau rule did lower the LR

    model, optimizer, scheduler = setup(spec)
    first = lrs_per_update(optimizer, scheduler, stop_at, metrics, model)
    saved = _through_bytes({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()})

    model, optimizer, scheduler = setup(spec, seed=1)  # a fresh process: new objects
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    rest = []
    for t in range(stop_at, TOTAL):
        rest.append([pg["lr"] for pg in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
        if metrics is not None and (t + 1) % SPE == 0:
            scheduler.end_of_epoch(metrics[(t + 1) // SPE - 1])
    resumed = first + rest
    assert len(resumed) == len(whole)
    for t, (got, want) in enumerate(zip(resumed, whole)):
        assert got == pytest.approx(want, rel=1e-12), t


def test_scheduler_state_alone_restores_the_lrs() -> None:
    """Loading only the scheduler's state sets the optimizer's LRs for the update it resumes at."""
    _, optimizer, scheduler = setup(schedule_cfg("cosine"))
    lrs_per_update(optimizer, scheduler, 9)
    want = [pg["lr"] for pg in optimizer.param_groups]
    _, optimizer, scheduler = setup(schedule_cfg("cosine"))
    scheduler.load_state_dict(_through_bytes(scheduler.state_dict() | {"last_epoch": 9}))
    assert [pg["lr"] for pg in optimizer.param_groups] == pytest.approx(want)


def test_builders_take_dictconfig_nodes() -> None:
    cfg = OmegaConf.create(
        {
            "optimizer": OmegaConf.load(CONF / "optimizer" / "adamw.yaml"),
            "groups": OmegaConf.load(CONF / "groups" / "backbone_head.yaml"),
            "schedule": {"name": "step", "step_size": "${trainer.epochs}", "gamma": 0.5, "warmup_epochs": 0},
            "trainer": {"epochs": 3},
        }
    )
    model = Net()
    groups = sweep.build_groups(model, cfg.groups)
    optimizer = sweep.build_optimizer(cfg.optimizer, groups)
    scheduler = sweep.build_scheduler(optimizer, cfg.schedule, SPE, EPOCHS)
    assert {pg["group"] for pg in optimizer.param_groups} == {"backbone", "head"}
    assert scheduler.schedule.spec["step_size"] == 3  # interpolation resolved against the whole config
    assert isinstance(optimizer, torch.optim.AdamW)


def test_bad_schedule_is_a_config_error() -> None:
    _, optimizer, _ = setup(schedule_cfg("constant"))
    with pytest.raises(ConfigError) as info:
        sweep.build_scheduler(optimizer, {"name": "piecewise", "pieces": [5, 0.1]}, SPE, EPOCHS)
    assert info.value.key == "schedule.pieces"
    with pytest.raises(ConfigError) as info:
        sweep.build_scheduler(optimizer, {"name": "cosine"}, 0, EPOCHS)
    assert info.value.key == "steps_per_epoch"


def test_current_trial_outside_a_sweep_reports_nowhere() -> None:
    trial = sweep.current_trial(OmegaConf.create({"optimizer": {"lr": 0.1}}))  # an app's config, no trial node
    trial.report(0.5, 0)
    assert trial.should_prune() is False


def test_public_api_and_a_light_import() -> None:
    assert sorted(sweep.__all__) == ["build_groups", "build_optimizer", "build_scheduler", "current_trial"]
    code = "import sys, sweep; print(sorted(m for m in ('torch', 'optuna', 'hydra') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    with pytest.raises(AttributeError):
        sweep.not_a_name  # noqa: B018


@pytest.mark.slow
def test_scheduler_drives_a_transformers_trainer(tmp_path: Path) -> None:
    """The scheduler given to a transformers Trainer: stepped once per update, saved in its checkpoint."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    config = transformers.BertConfig(
        vocab_size=30,
        hidden_size=8,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=8,
        num_labels=2,
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)
    data = [{"input_ids": torch.randint(0, 30, (6,)), "labels": torch.tensor(i % 2)} for i in range(32)]
    groups = sweep.build_groups(model, {"name": "layer_decay", "decay": 0.5})
    optimizer = sweep.build_optimizer({"name": "adamw", "lr": 1e-3}, groups)
    steps_per_epoch = 32 // 8
    scheduler = sweep.build_scheduler(optimizer, {"name": "cosine", "warmup_epochs": 1}, steps_per_epoch, 2)
    seen: list[float] = []

    class Record(transformers.TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            seen.append(optimizer.param_groups[-1]["lr"])

    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        num_train_epochs=2,
        save_strategy="epoch",
        report_to=[],
        use_cpu=True,
        logging_strategy="no",
        disable_tqdm=True,
    )
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=data, optimizers=(optimizer, scheduler), callbacks=[Record()]
    )
    trainer.train()
    reference = Schedule({"name": "cosine", "warmup_epochs": 1}, 1e-3, steps_per_epoch, 2)
    assert seen == pytest.approx([1e-3 * reference.factor(t) for t in range(2 * steps_per_epoch)])
    saved = torch.load(tmp_path / "checkpoint-8" / "scheduler.pt", weights_only=True)
    assert saved["last_epoch"] == 8
