"""sweep.lr.schedule against PyTorch's own schedulers, value for value, per param group.

The reference for every schedule is a torch.optim.SGD whose param groups start at each group's
peak LR (backbone = base_lr, head = base_lr * HEAD_MULT), with the torch scheduler of the same
name attached and stepped per epoch (epoch rules) or per update (smooth rules). `pg["lr"]` is
recorded before every update and compared with `peak * Schedule(...).factor(t)`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch
from conftest import REPO
from omegaconf import OmegaConf
from torch.optim import lr_scheduler as sched

from sweep.errors import ConfigError
from sweep.lr.schedule import Schedule, validate

CONF = REPO / "conf" / "schedule"

BASE_LR = 0.1
HEAD_MULT = 10.0
PEAKS = [BASE_LR, BASE_LR * HEAD_MULT]  # backbone, head
SPE = 5  # updates per epoch
EPOCHS = 7
TOTAL = SPE * EPOCHS


def spec(name: str, **overrides: Any) -> dict[str, Any]:
    """The shipped conf/schedule/<name>.yaml (on top of _base.yaml), with overrides."""
    cfg = OmegaConf.merge(OmegaConf.load(CONF / "_base.yaml"), OmegaConf.load(CONF / f"{name}.yaml"))
    out = OmegaConf.to_container(cfg, resolve=True)
    out.pop("defaults", None)
    out.update(overrides)
    return out


def torch_lrs(
    make: Callable[[torch.optim.Optimizer], Any],
    peaks: Sequence[float],
    per: str,
    total: int = TOTAL,
    spe: int = SPE,
    metrics: Sequence[float] | None = None,
) -> list[list[float]]:
    """Per group, the LR torch's scheduler gives each update of a `total`-update run."""
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in peaks]
    opt = torch.optim.SGD([{"params": [p], "lr": pk} for p, pk in zip(params, peaks)], lr=peaks[0])
    # No opt.step() (nothing to train): silence torch's "scheduler stepped before optimizer" and
    # SequentialLR's "epoch argument" warnings, which do not change the values.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _run(make(opt), opt, peaks, per, total, spe, metrics)


def _run(
    s: Any,
    opt: torch.optim.Optimizer,
    peaks: Sequence[float],
    per: str,
    total: int,
    spe: int,
    metrics: Sequence[float] | None,
) -> list[list[float]]:
    out: list[list[float]] = [[] for _ in peaks]
    for t in range(total):
        for i, pg in enumerate(opt.param_groups):
            out[i].append(pg["lr"])
        if t == total - 1:
            break  # OneCycleLR refuses to step past total_steps; nothing reads the value after
        if per == "update":
            s.step()
        elif (t + 1) % spe == 0:
            if metrics is None:
                s.step()
            else:
                s.step(metrics[(t + 1) // spe - 1])
    return out


def ours(s: Schedule, peak: float, total: int = TOTAL, start: int = 0) -> list[float]:
    return [peak * s.factor(t, start) for t in range(total)]


def assert_same(got: Sequence[float], want: Sequence[float]) -> None:
    assert len(got) == len(want)
    for t, (g, w) in enumerate(zip(got, want)):
        assert g == pytest.approx(w, rel=1e-9, abs=1e-15), f"update {t}: ours {g} torch {w}"


def assert_varies(values: Sequence[float]) -> None:
    """Guard against a vacuous comparison (both sides constant by mistake)."""
    assert max(values) > min(values)


# --------------------------------------------------------------------------- epoch rules

EPOCH_CASES = {
    "step": (spec("step", step_size=2, gamma=0.5), lambda o: sched.StepLR(o, step_size=2, gamma=0.5)),
    "multistep": (
        spec("multistep", milestones=[2, 5], gamma=0.3),
        lambda o: sched.MultiStepLR(o, milestones=[2, 5], gamma=0.3),
    ),
    "multistep_from_0": (
        spec("multistep", milestones=[0, 3], gamma=0.5),
        lambda o: sched.MultiStepLR(o, milestones=[0, 3], gamma=0.5),
    ),
    "exponential": (spec("exponential", gamma=0.8), lambda o: sched.ExponentialLR(o, gamma=0.8)),
    "constant": (spec("constant"), lambda o: sched.ConstantLR(o, factor=1.0, total_iters=0)),
}


@pytest.mark.parametrize("case", list(EPOCH_CASES))
def test_epoch_rules_match_torch(case: str) -> None:
    cfg, make = EPOCH_CASES[case]
    s = Schedule(cfg, BASE_LR, SPE, EPOCHS)
    want = torch_lrs(make, PEAKS, per="epoch")
    for g, peak in enumerate(PEAKS):
        assert_same(ours(s, peak), want[g])
    # the head keeps its multiplier at every update
    assert all(h == pytest.approx(HEAD_MULT * b) for b, h in zip(*want))
    if case != "constant":
        assert_varies(want[0])
    else:
        assert want[0] == [PEAKS[0]] * TOTAL


def test_multistep_milestone_at_0_is_applied_from_the_first_update() -> None:
    # torch's MultiStepLR applies a milestone at epoch 0 from the start: "from epoch == m"
    s = Schedule(spec("multistep", milestones=[0, 3], gamma=0.5), BASE_LR, SPE, EPOCHS)
    assert s.factor(0) == pytest.approx(0.5)


# --------------------------------------------------------------------------- update rules


@pytest.mark.parametrize("floor", [0.0, 0.1])
def test_cosine_matches_torch(floor: float) -> None:
    s = Schedule(spec("cosine", floor=floor), BASE_LR, SPE, EPOCHS)
    for peak in PEAKS:
        # torch's eta_min is one absolute LR per scheduler; our floor is a fraction of each
        # group's own peak, so the reference is one optimizer per group with eta_min = floor*peak.
        (want,) = torch_lrs(
            lambda o, peak=peak: sched.CosineAnnealingLR(o, T_max=TOTAL, eta_min=floor * peak), [peak], per="update"
        )
        assert_varies(want)
        assert_same(ours(s, peak), want)
    assert s.factor(TOTAL) == pytest.approx(floor, abs=1e-15)


@pytest.mark.parametrize("floor", [0.0, 0.25])
def test_linear_matches_torch(floor: float) -> None:
    s = Schedule(spec("linear", floor=floor), BASE_LR, SPE, EPOCHS)
    want = torch_lrs(
        lambda o: sched.LinearLR(o, start_factor=1.0, end_factor=floor, total_iters=TOTAL), PEAKS, per="update"
    )
    for g, peak in enumerate(PEAKS):
        assert_varies(want[g])
        assert_same(ours(s, peak), want[g])


@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
def test_poly_matches_torch(power: float) -> None:
    s = Schedule(spec("poly", power=power, floor=0.0), BASE_LR, SPE, EPOCHS)
    want = torch_lrs(lambda o: sched.PolynomialLR(o, total_iters=TOTAL, power=power), PEAKS, per="update")
    for g, peak in enumerate(PEAKS):
        assert_varies(want[g])
        assert_same(ours(s, peak), want[g])


def test_poly_floor_formula() -> None:
    # PolynomialLR has no floor; ours is floor + (1 - floor) * (1 - t/T) ** power (conf/schedule/poly.yaml)
    s = Schedule(spec("poly", power=2.0, floor=0.2), BASE_LR, SPE, EPOCHS)
    for t in range(TOTAL + 1):
        assert s.factor(t) == pytest.approx(0.2 + 0.8 * (1 - t / TOTAL) ** 2, rel=1e-12)


@pytest.mark.parametrize("anneal", ["cos", "linear"])
@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("pct_start", [0.3, 0.25])
def test_onecycle_matches_torch(anneal: str, three_phase: bool, pct_start: float) -> None:
    cfg = spec(
        "onecycle", pct_start=pct_start, div_factor=20.0, final_div_factor=50.0, anneal=anneal, three_phase=three_phase
    )
    s = Schedule(cfg, BASE_LR, SPE, EPOCHS)
    want = torch_lrs(
        lambda o: sched.OneCycleLR(
            o,
            max_lr=PEAKS,
            total_steps=TOTAL,
            pct_start=pct_start,
            div_factor=20.0,
            final_div_factor=50.0,
            anneal_strategy=anneal,
            three_phase=three_phase,
            cycle_momentum=False,
        ),
        PEAKS,
        per="update",
    )
    for g, peak in enumerate(PEAKS):
        assert_same(ours(s, peak), want[g])
        assert max(want[g]) > 0.9 * peak  # it really rises to (about) the peak
        assert want[g][0] == pytest.approx(peak / 20.0)


# --------------------------------------------------------------------------- plateau

PLATEAU_METRICS = [1.0, 0.9, 0.95, 0.95, 0.95, 0.8999, 0.95, 0.7, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75]


@pytest.mark.parametrize("mode,threshold_mode,sign", [("min", "rel", 1.0), ("max", "abs", -1.0)])
def test_plateau_matches_torch(mode: str, threshold_mode: str, sign: float) -> None:
    epochs = len(PLATEAU_METRICS) + 1
    metrics = [sign * m for m in PLATEAU_METRICS]
    floor = 0.2
    cfg = spec(
        "plateau",
        mode=mode,
        factor=0.5,
        patience=1,
        threshold=0.01,
        threshold_mode=threshold_mode,
        cooldown=1,
        floor=floor,
    )
    s = Schedule(cfg, BASE_LR, SPE, epochs)
    want = torch_lrs(
        lambda o: sched.ReduceLROnPlateau(
            o,
            mode=mode,
            factor=0.5,
            patience=1,
            threshold=0.01,
            threshold_mode=threshold_mode,
            cooldown=1,
            min_lr=[floor * p for p in PEAKS],
        ),
        PEAKS,
        per="epoch",
        total=SPE * epochs,
        metrics=metrics,
    )
    got: list[list[float]] = [[] for _ in PEAKS]
    for t in range(SPE * epochs):
        for g, peak in enumerate(PEAKS):
            got[g].append(peak * s.factor(t))
        if (t + 1) % SPE == 0 and t + 1 < SPE * epochs:
            s.end_of_epoch(metrics[(t + 1) // SPE - 1])
    for g, peak in enumerate(PEAKS):
        assert_same(got[g], want[g])
        # the sequence is built to reduce more than once and to hit the floor (min_lr)
        distinct = sorted(set(round(v / peak, 12) for v in want[g]))
        assert len(distinct) >= 3
        assert min(want[g]) == pytest.approx(floor * peak)


def test_plateau_ignores_metric_for_other_rules() -> None:
    s = Schedule(spec("cosine"), BASE_LR, SPE, EPOCHS)
    before = [s.factor(t) for t in range(TOTAL)]
    for m in [1.0, 2.0, 3.0, 4.0, 5.0]:
        s.end_of_epoch(m)
    assert [s.factor(t) for t in range(TOTAL)] == before


# --------------------------------------------------------------------------- warmup


def _warmup_then(main: Callable[[torch.optim.Optimizer], Any], w: int, start: float):
    return lambda o: sched.SequentialLR(
        o, [sched.LinearLR(o, start_factor=start, end_factor=1.0, total_iters=w), main(o)], milestones=[w]
    )


@pytest.mark.parametrize("floor", [0.0, 0.1])
def test_warmup_then_cosine_matches_sequential_lr(floor: float) -> None:
    w = 2 * SPE
    s = Schedule(spec("cosine", floor=floor, warmup_epochs=2, warmup_start=0.1), BASE_LR, SPE, EPOCHS)
    for peak in PEAKS:
        (want,) = torch_lrs(
            _warmup_then(
                lambda o, peak=peak: sched.CosineAnnealingLR(o, T_max=TOTAL - w, eta_min=floor * peak), w, 0.1
            ),
            [peak],
            per="update",
        )
        assert want[0] == pytest.approx(0.1 * peak)
        assert want[w] == pytest.approx(peak)
        assert_same(ours(s, peak), want)


def test_warmup_then_step_matches_sequential_lr() -> None:
    # after warmup the epoch rule restarts at its own t = 0: StepLR stepped per update with
    # step_size in updates, behind SequentialLR, is the same thing
    w = 2 * SPE
    s = Schedule(spec("step", step_size=2, gamma=0.5, warmup_epochs=2, warmup_start=0.25), BASE_LR, SPE, EPOCHS)
    want = torch_lrs(
        _warmup_then(lambda o: sched.StepLR(o, step_size=2 * SPE, gamma=0.5), w, 0.25), PEAKS, per="update"
    )
    for g, peak in enumerate(PEAKS):
        assert_same(ours(s, peak), want[g])


# --------------------------------------------------------------------------- manual rules


@pytest.mark.parametrize("k,gamma", [(1, 0.9), (2, 0.5), (3, 0.1)])
def test_step_formula(k: int, gamma: float) -> None:
    s = Schedule(spec("step", step_size=k, gamma=gamma), BASE_LR, SPE, EPOCHS)
    for peak in PEAKS:
        for t in range(TOTAL):
            epoch = t // SPE
            assert peak * s.factor(t) == pytest.approx(peak * gamma ** (epoch // k), rel=1e-12)


def test_piecewise_formula() -> None:
    pieces = [[2, 0.05], [3, 0.01], [1, 0.002]]  # 6 epochs listed, the run has 7
    s = Schedule(spec("piecewise", pieces=pieces), BASE_LR, SPE, EPOCHS)
    table = [0.05, 0.05, 0.01, 0.01, 0.01, 0.002, 0.002]  # epoch 6: the last value holds
    for mult in (1.0, HEAD_MULT):
        peak = BASE_LR * mult
        for t in range(TOTAL):
            assert peak * s.factor(t) == pytest.approx(table[t // SPE] * mult, rel=1e-12)


# --------------------------------------------------------------------------- horizon, unfreezing, purity

ALL_SPECS = {
    "constant": spec("constant"),
    "step": spec("step", step_size=2, gamma=0.5),
    "multistep": spec("multistep", milestones=[2, 5], gamma=0.3),
    "exponential": spec("exponential", gamma=0.8),
    "piecewise": spec("piecewise", pieces=[[2, 0.05], [3, 0.01]]),
    "plateau": spec("plateau"),
    "cosine": spec("cosine", floor=0.1),
    "linear": spec("linear", floor=0.1),
    "poly": spec("poly", power=2.0, floor=0.0),
    "onecycle": spec("onecycle"),
    "cosine+warmup": spec("cosine", warmup_epochs=2, warmup_start=0.1),
}


@pytest.mark.parametrize("name", list(ALL_SPECS))
def test_past_the_horizon_the_last_value_holds(name: str) -> None:
    s = Schedule(ALL_SPECS[name], BASE_LR, SPE, EPOCHS)
    held = s.factor(TOTAL)
    assert math.isfinite(held) and held >= 0
    for t in range(TOTAL, TOTAL + 10 * SPE):
        assert s.factor(t) == held, f"update {t}"
    assert s.factor(10**7) == held


def test_horizon_values_are_the_end_of_the_curve() -> None:
    assert Schedule(spec("cosine", floor=0.1), BASE_LR, SPE, EPOCHS).factor(TOTAL + 3) == pytest.approx(0.1)
    assert Schedule(spec("linear", floor=0.0), BASE_LR, SPE, EPOCHS).factor(TOTAL + 3) == 0.0
    oc = Schedule(spec("onecycle", div_factor=25.0, final_div_factor=1e4), BASE_LR, SPE, EPOCHS)
    assert oc.factor(TOTAL + 3) == pytest.approx(1 / 25.0 / 1e4)


def test_unfrozen_group_is_zero_before_start_and_warms_up_from_start() -> None:
    start = 2 * SPE  # the group trains from epoch 2
    w = 1 * SPE
    s = Schedule(spec("cosine", floor=0.0, warmup_epochs=1, warmup_start=0.2), BASE_LR, SPE, EPOCHS)
    for peak in PEAKS:
        # its own run: warmup from `start`, then cosine over the rest (TOTAL - start - w)
        (want,) = torch_lrs(
            _warmup_then(lambda o: sched.CosineAnnealingLR(o, T_max=TOTAL - start - w), w, 0.2),
            [peak],
            per="update",
            total=TOTAL - start,
        )
        got = ours(s, peak, start=start)
        assert got[:start] == [0.0] * start
        assert got[start] == pytest.approx(0.2 * peak)
        assert_same(got[start:], want)
    # a group without start is unaffected by another group's start
    assert s.factor(0) == pytest.approx(0.2)


def test_unfrozen_group_with_epoch_rule_counts_epochs_from_start() -> None:
    start = 3 * SPE
    s = Schedule(spec("step", step_size=2, gamma=0.5), BASE_LR, SPE, EPOCHS)
    for t in range(TOTAL):
        want = 0.0 if t < start else 0.5 ** (((t - start) // SPE) // 2)
        assert s.factor(t, start) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("name", list(ALL_SPECS))
def test_factor_is_a_pure_function_of_t(name: str) -> None:
    s = Schedule(ALL_SPECS[name], BASE_LR, SPE, EPOCHS)
    forward = [s.factor(t) for t in range(TOTAL + 5)]
    backward = [s.factor(t) for t in reversed(range(TOTAL + 5))][::-1]
    again = [s.factor(t) for t in range(TOTAL + 5)]
    assert forward == backward == again
    fresh = Schedule(ALL_SPECS[name], BASE_LR, SPE, EPOCHS)
    assert [fresh.factor(t) for t in (17, 3, 30, 0, 17)] == [
        forward[17],
        forward[3],
        forward[30],
        forward[0],
        forward[17],
    ]


# --------------------------------------------------------------------------- validation


def _raises(cfg: dict[str, Any], key: str, value: Any, base_lr: float = BASE_LR, epochs: int = EPOCHS) -> None:
    with pytest.raises(ConfigError) as info:
        validate(cfg, base_lr, epochs)
    msg = str(info.value)
    assert key in msg, msg
    assert repr(value) in msg or str(value) in msg, msg
    assert info.value.key == key
    # and Schedule refuses it too
    with pytest.raises(ConfigError):
        Schedule(cfg, base_lr, SPE, epochs)


def test_shipped_configs_are_valid() -> None:
    for path in CONF.glob("*.yaml"):
        if path.stem != "_base":
            validate(spec(path.stem), BASE_LR, 20)


def test_unknown_schedule_name() -> None:
    _raises({"name": "cosine_restarts"}, "schedule", "cosine_restarts")


@pytest.mark.parametrize("lr", [0.0, -0.1])
def test_lr_must_be_positive(lr: float) -> None:
    _raises(spec("cosine"), "optimizer.lr", lr, base_lr=lr)


@pytest.mark.parametrize("name", ["step", "multistep", "exponential"])
@pytest.mark.parametrize("gamma", [0, -0.5, 1.5])
def test_gamma_outside_0_1(name: str, gamma: float) -> None:
    _raises(spec(name, gamma=gamma), "schedule.gamma", gamma)


def test_gamma_1_is_allowed() -> None:
    validate(spec("exponential", gamma=1.0), BASE_LR, EPOCHS)


@pytest.mark.parametrize("step_size", [0, -2])
def test_step_size_below_1(step_size: int) -> None:
    _raises(spec("step", step_size=step_size), "schedule.step_size", step_size)


@pytest.mark.parametrize("milestones", [[5, 2], [2, 2, 5], [-1, 3]])
def test_bad_milestones(milestones: list[int]) -> None:
    _raises(spec("multistep", milestones=milestones), "schedule.milestones", milestones)


def test_empty_piecewise() -> None:
    _raises(spec("piecewise", pieces=[]), "schedule.pieces", [])


@pytest.mark.parametrize("lr", [0.0, -0.01])
def test_non_positive_piecewise_lr(lr: float) -> None:
    pieces = [[2, 0.05], [3, lr]]
    _raises(spec("piecewise", pieces=pieces), "schedule.pieces", pieces)


@pytest.mark.parametrize("warmup", [EPOCHS, EPOCHS + 0.5, 100])
def test_warmup_not_shorter_than_the_run(warmup: float) -> None:
    _raises(spec("cosine", warmup_epochs=warmup), "schedule.warmup_epochs", warmup)


# --------------------------------------------------------------------------- malformed values


@pytest.mark.parametrize(
    "name, key, value",
    [
        ("piecewise", "pieces", [5, 0.1]),  # flat instead of [[5, 0.1]]
        ("piecewise", "pieces", [[5, 0.1, 3]]),
        ("piecewise", "pieces", [["5", 0.1]]),
        ("piecewise", "pieces", "5,0.1"),
        ("multistep", "milestones", 5),
        ("multistep", "milestones", [[2, 5]]),
        ("multistep", "milestones", ["2"]),
        ("step", "step_size", "10"),
        ("step", "gamma", "0.1"),
        ("poly", "power", "2"),
        ("onecycle", "pct_start", None),
        ("onecycle", "div_factor", [25]),
        ("plateau", "patience", 1.5),
        ("plateau", "factor", "0.1"),
        ("cosine", "floor", [0.1]),
    ],
)
def test_malformed_values_are_one_line_config_errors(name: str, key: str, value: Any) -> None:
    """Wrong shapes and types are ConfigErrors naming the key, never a TypeError from inside a check."""
    _raises(spec(name, **{key: value}), f"schedule.{key}", value)


def test_a_dictconfig_spec_is_checked_the_same() -> None:
    cfg = OmegaConf.create(spec("multistep", milestones=[3, 2]))
    with pytest.raises(ConfigError) as info:
        validate(cfg, BASE_LR, EPOCHS)
    assert info.value.key == "schedule.milestones"
    validate(OmegaConf.create(spec("multistep")), BASE_LR, EPOCHS)  # ListConfig milestones pass


def test_each_shape_owns_its_checks() -> None:
    """The registry entry carries the check of its parameters; `validate` only adds warmup and LR."""
    from sweep.lr.schedule import SHAPES

    with pytest.raises(ConfigError) as info:
        SHAPES["step"].check({"name": "step", "step_size": 0, "gamma": 0.5})
    assert info.value.key == "schedule.step_size"
    SHAPES["step"].check({"name": "step", "step_size": 2, "gamma": 0.5})  # passes
    SHAPES["cosine"].check({"name": "cosine", "step_size": 0})  # not cosine's parameter: not its business


def test_plain_dict_gets_torchs_defaults() -> None:
    s = Schedule({"name": "cosine"}, BASE_LR, SPE, EPOCHS)
    assert s.factor(TOTAL) == 0.0  # floor 0 by default
    s = Schedule({"name": "plateau"}, BASE_LR, SPE, EPOCHS)
    assert s.spec["patience"] == 10 and s.spec["factor"] == 0.1  # torch's ReduceLROnPlateau defaults
