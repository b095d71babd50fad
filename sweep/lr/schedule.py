"""Learning-rate schedules as pure functions of the optimizer-update count.

Every group's LR is `peak_g * factor(t)` with `peak_g = base_lr * mult_g` and `t` the number of
updates done so far. A shape is a small function `shape(u, n, **params) -> factor` where `u` and
the horizon `n` are counted in the schedule's unit: epochs for the classic epoch rules (step,
multistep, exponential, piecewise, plateau), updates for the smooth ones (cosine, linear, poly,
onecycle). Specs in epochs are converted once, with the updates per epoch known up front, so a
resumed run needs only `t` and the config.

Conventions (each tested value for value against PyTorch's scheduler of the same name):
- A milestone `m` means "the new LR applies from epoch == m" (MultiStepLR, StepLR).
- Floors (`floor`) and the warmup start (`warmup_start`) are fractions of each group's own peak,
  so a head multiplier survives both.
- Past the horizon the last value holds (no "tried to step N times" error).
- Warmup runs first, linear per update over `warmup_epochs`; the main schedule then starts at its
  own t = 0 with the remaining horizon, as torch's SequentialLR(LinearLR, main) does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sweep.errors import ConfigError, check
from sweep.lr import shapes
from sweep.plain import is_int, is_list, is_number, plain

EPOCH, UPDATE = "epoch", "update"


Spec = Mapping[str, Any]


def _check_gamma(spec: Spec) -> None:
    g = spec.get("gamma")
    check(is_number(g) and 0 < g <= 1, "schedule.gamma", g, "a number in (0, 1]")


def _check_floor(spec: Spec) -> None:
    v = spec.get("floor", 0.0)
    check(is_number(v) and 0 <= v <= 1, "schedule.floor", v, "a fraction in [0, 1]")


def _check_none(spec: Spec) -> None:
    """A shape without parameters."""


def _check_step(spec: Spec) -> None:
    s = spec.get("step_size")
    check(is_int(s) and s >= 1, "schedule.step_size", s, "an integer >= 1 (epochs)")
    _check_gamma(spec)


def _check_multistep(spec: Spec) -> None:
    m = spec.get("milestones")
    ok = is_list(m) and len(m) > 0 and all(is_int(x) and x >= 0 for x in m) and list(m) == sorted(set(m))
    check(ok, "schedule.milestones", m, "a non-empty, strictly increasing list of epochs >= 0, e.g. [10, 15]")
    _check_gamma(spec)


def _check_piecewise(spec: Spec) -> None:
    p = spec.get("pieces")
    ok = (
        is_list(p)
        and len(p) > 0
        and all(is_list(x) and len(x) == 2 and is_int(x[0]) and x[0] >= 1 and is_number(x[1]) and x[1] > 0 for x in p)
    )
    check(ok, "schedule.pieces", p, "a non-empty list of [n_epochs >= 1, lr > 0] pairs, e.g. [[5, 0.1], [10, 0.01]]")


def _check_poly(spec: Spec) -> None:
    v = spec.get("power")
    check(is_number(v) and v > 0, "schedule.power", v, "a number > 0")
    _check_floor(spec)


def _check_onecycle(spec: Spec) -> None:
    v = spec.get("pct_start")
    check(is_number(v) and 0 < v < 1, "schedule.pct_start", v, "a fraction in (0, 1)")
    for key in ("div_factor", "final_div_factor"):
        v = spec.get(key)
        check(is_number(v) and v > 0, f"schedule.{key}", v, "a number > 0")
    check(spec.get("anneal") in ("cos", "linear"), "schedule.anneal", spec.get("anneal"), "cos or linear")
    check(isinstance(spec.get("three_phase"), bool), "schedule.three_phase", spec.get("three_phase"), "true or false")


def _check_plateau(spec: Spec) -> None:
    v = spec.get("factor")
    check(is_number(v) and 0 < v < 1, "schedule.factor", v, "a number in (0, 1)")
    check(spec.get("mode") in ("min", "max"), "schedule.mode", spec.get("mode"), "min or max")
    check(
        spec.get("threshold_mode") in ("rel", "abs"),
        "schedule.threshold_mode",
        spec.get("threshold_mode"),
        "rel or abs",
    )
    for key in ("patience", "cooldown"):
        v = spec.get(key)
        check(is_int(v) and v >= 0, f"schedule.{key}", v, "an integer >= 0 (epochs)")
    v = spec.get("threshold")
    check(is_number(v) and v >= 0, "schedule.threshold", v, "a number >= 0")
    check(
        isinstance(spec.get("monitor"), str),
        "schedule.monitor",
        spec.get("monitor"),
        "the name of a metric the job logs each epoch, e.g. val/loss",
    )
    _check_floor(spec)


@dataclass(frozen=True)
class Shape:
    """A registered schedule: its function, its unit, the parameters it reads from the config, and
    the check of those parameters (a ConfigError naming the key; the one place they are checked)."""

    fn: Callable[..., float]
    unit: str
    params: tuple[str, ...] = ()
    check: Callable[[Spec], None] = _check_none
    defaults: Mapping[str, Any] = field(default_factory=dict)  # torch's, for keys a plain dict leaves out


SHAPES: dict[str, Shape] = {
    "constant": Shape(shapes.constant, EPOCH),
    "step": Shape(shapes.step, EPOCH, ("step_size", "gamma"), _check_step, {"gamma": 0.1}),
    "multistep": Shape(shapes.multistep, EPOCH, ("milestones", "gamma"), _check_multistep, {"gamma": 0.1}),
    "exponential": Shape(shapes.exponential, EPOCH, ("gamma",), _check_gamma),
    "piecewise": Shape(shapes.piecewise, EPOCH, ("pieces",), _check_piecewise),
    "plateau": Shape(
        shapes.plateau,
        EPOCH,
        (),
        _check_plateau,
        {
            "monitor": "val/loss",
            "mode": "min",
            "factor": 0.1,
            "patience": 10,
            "threshold": 1e-4,
            "threshold_mode": "rel",
            "cooldown": 0,
            "floor": 0.0,
        },
    ),
    "cosine": Shape(shapes.cosine, UPDATE, ("floor",), _check_floor, {"floor": 0.0}),
    "linear": Shape(shapes.linear, UPDATE, ("floor",), _check_floor, {"floor": 0.0}),
    "poly": Shape(shapes.poly, UPDATE, ("power", "floor"), _check_poly, {"power": 1.0, "floor": 0.0}),
    "onecycle": Shape(
        shapes.onecycle,
        UPDATE,
        ("pct_start", "div_factor", "final_div_factor", "anneal", "three_phase"),
        _check_onecycle,
        {"pct_start": 0.3, "div_factor": 25.0, "final_div_factor": 1e4, "anneal": "cos", "three_phase": False},
    ),
}


def with_defaults(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A plain copy of `spec` (a dict or DictConfig) with its shape's defaults for missing keys."""
    spec = plain(spec)
    name = spec.get("name")
    if not (isinstance(name, str) and name in SHAPES):
        raise ConfigError("schedule", name, f"one of {', '.join(SHAPES)}")
    return {**SHAPES[name].defaults, **spec}


def validate(spec: Mapping[str, Any], base_lr: float, epochs: int) -> None:
    """Check a schedule config before training; raise ConfigError naming the key.

    The shape checks its own parameters (`Shape.check`); warmup and the base LR are checked here,
    as they apply to every shape."""
    spec = with_defaults(spec)
    SHAPES[spec["name"]].check(spec)
    v = spec.get("warmup_start", 0.0)
    check(is_number(v) and 0 <= v <= 1, "schedule.warmup_start", v, "a fraction in [0, 1]")
    w = spec.get("warmup_epochs", 0)
    check(
        is_number(w) and 0 <= w < epochs,
        "schedule.warmup_epochs",
        w,
        f"a number of epochs >= 0 and < trainer.epochs ({epochs})",
    )
    check(is_number(base_lr) and base_lr > 0, "optimizer.lr", base_lr, "a number > 0")


@dataclass
class PlateauState:
    """ReduceLROnPlateau's state, kept whole so a checkpoint restores it exactly."""

    best: float | None = None
    bad_epochs: int = 0
    cooldown_left: int = 0
    scale: float = 1.0


@dataclass
class Schedule:
    """The LR factor of every update for one run; pure except the plateau state."""

    spec: Mapping[str, Any]  # a dict or DictConfig node; a plain dict with the shape's defaults once built
    base_lr: float
    steps_per_epoch: int
    epochs: int
    plateau: PlateauState = field(default_factory=PlateauState)

    def __post_init__(self) -> None:
        self.spec = with_defaults(self.spec)
        validate(self.spec, self.base_lr, self.epochs)
        self.shape = SHAPES[self.spec["name"]]
        self.kwargs = {k: self.spec[k] for k in self.shape.params}
        if self.spec["name"] == "piecewise":
            self.kwargs["base_lr"] = self.base_lr
        if self.spec["name"] == "multistep":
            self.kwargs["milestones"] = list(self.kwargs["milestones"])
        self.total = self.steps_per_epoch * self.epochs
        self.warmup = int(round(self.spec.get("warmup_epochs", 0) * self.steps_per_epoch))
        self.warmup_start = float(self.spec.get("warmup_start", 0.0))

    def factor(self, t: int, start: int = 0) -> float:
        """LR factor (of the group's peak) at update `t` for a group that starts training at `start`.

        Before `start` the group is frozen (factor 0); its warmup and horizon count from `start`.
        """
        t -= start
        if t < 0:
            return 0.0
        if t < self.warmup:
            return self.warmup_start + (1.0 - self.warmup_start) * t / self.warmup
        t -= self.warmup
        n = self.total - start - self.warmup
        if self.shape.unit == EPOCH:
            t, n = t // self.steps_per_epoch, -(-n // self.steps_per_epoch)
        value = self.shape.fn(min(t, n), n, **self.kwargs)  # past the horizon the last value holds
        if self.spec["name"] == "plateau":
            value = max(self.plateau.scale, self.spec["floor"])
        return value

    def end_of_epoch(self, metric: float) -> None:
        """Feed the epoch's validation metric; only the plateau rule uses it (as torch does)."""
        if self.spec["name"] != "plateau":
            return
        s, st = self.spec, self.plateau
        if st.best is None or self._better(metric, st.best):
            st.best, st.bad_epochs = metric, 0
        else:
            st.bad_epochs += 1
        if st.cooldown_left > 0:
            st.cooldown_left -= 1
            st.bad_epochs = 0
        if st.bad_epochs > s["patience"]:
            st.scale = max(st.scale * s["factor"], s["floor"])
            st.cooldown_left, st.bad_epochs = s["cooldown"], 0

    def _better(self, a: float, best: float) -> bool:
        th, rel = self.spec["threshold"], self.spec["threshold_mode"] == "rel"
        if self.spec["mode"] == "min":
            return a < (best * (1.0 - th) if rel else best - th)
        return a > (best * (1.0 + th) if rel else best + th)
