"""The LR report's figures, each returned as a matplotlib figure: sensitivity (objective against
the base LR, with the range test's curve), base LR x multiplier, learning curves and LR curves."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sweep.search.figures import STYLE, colour_bar, colour_scale, colours, log_ticks, metric_label, pyplot
from sweep.search.report_analysis import Band, Point

Curve = Sequence[tuple[float, float]]


def _mark_best(ax: Any, x: Any, y: Any, number: int) -> None:
    """The best trial as a gold star, the same on every figure."""
    ax.scatter([x], [y], marker="*", s=260, color="gold", edgecolors="black", zorder=5, label=f"best #{number}")


def _value_axis(ax: Any, values: Sequence[float]) -> None:
    """A log value axis where positive values span more than 1.5 decades (one outlier, many trials)."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if vals and min(vals) > 0 and math.log10(max(vals) / min(vals)) > 1.5:
        ax.set_yscale("log")


def _mark_failed(ax: Any, xs: Sequence[float], maximize: bool, label: str) -> None:
    """Failed trials at the bad edge of the value axis (bottom when maximizing), x where they ran."""
    if xs:
        y = 0.03 if maximize else 0.97
        ax.scatter(xs, [y] * len(xs), transform=ax.get_xaxis_transform(), clip_on=False, label=label, **STYLE["FAIL"])
        ax.update_datalim([(x, ax.get_ylim()[0]) for x in xs], updatex=True, updatey=False)  # x-limits hold them
        ax.autoscale_view()


def _points(ax: Any, points: Sequence[Point], x: Any, maximize: bool) -> None:
    """Complete (filled) and pruned (hollow, last reported value) trials, then failed ones."""
    done = [p for p in points if p.complete and x(p) is not None]
    pruned = [p for p in points if p.state == "PRUNED" and p.value is not None and x(p) is not None]
    if done:
        ax.scatter(
            [x(p) for p in done], [p.value for p in done], color="tab:blue", label="complete", **STYLE["COMPLETE"]
        )
    if pruned:
        ax.scatter(
            [x(p) for p in pruned],
            [p.value for p in pruned],
            edgecolors="tab:orange",
            label="pruned (last reported value)",
            **STYLE["PRUNED"],
        )
    _value_axis(ax, [p.value for p in done + pruned])  # type: ignore[misc]
    _mark_failed(
        ax,
        [x(p) for p in points if p.state == "FAIL" and x(p) is not None],
        maximize,
        f"failed (at the {'bottom' if maximize else 'top'} edge)",
    )


def sensitivity(
    points: Sequence[Point],
    best: Point | None,
    band: Band,
    lr_key: str,
    metric: str,
    maximize: bool,
    lr_find: Curve | None = None,
) -> Any:
    fig, ax = pyplot().subplots(figsize=(8, 4.6))
    _points(ax, points, lambda p: p.lr, maximize)
    if best is not None and best.lr is not None:
        _mark_best(ax, best.lr, best.value, best.number)
    if band.low is not None and band.high is not None:
        ax.axvspan(band.low, band.high, color="tab:green", alpha=0.12, label="tied with the best")
    if band.lowest_diverged is not None:
        ax.axvline(
            band.lowest_diverged.lr,
            color="tab:red",
            linestyle="--",
            linewidth=1,
            label=f"lowest LR that diverged (#{band.lowest_diverged.number})",
        )
    if lr_find:
        twin = ax.twinx()
        twin.plot(
            [lr for lr, _ in lr_find],
            [loss for _, loss in lr_find],
            color="0.6",
            linewidth=1,
            label="range test loss (right axis)",
        )
        twin.set_ylabel("range test loss (smoothed)")
        twin.legend(loc="upper right", fontsize=8)
    ax.set_xlabel(f"{lr_key} (base LR, log scale)")
    ax.set_ylabel(metric_label(metric, maximize))
    log_ticks(ax, "x")
    ax.legend(loc="best", fontsize=8)
    ax.set_title("sensitivity: objective against the base LR (every trial)")
    return fig


def _value(p: Point) -> float:
    """A complete point's value (`Point.complete` guarantees one)."""
    assert p.value is not None
    return p.value


def multiplier_map(points: Sequence[Point], lr_key: str, mult: str, metric: str, maximize: bool) -> Any:
    fig, ax = pyplot().subplots(figsize=(7, 4.6))
    pts = [p for p in points if p.lr is not None and mult in p.params]
    done = [p for p in pts if p.complete]
    norm, kind = colour_scale([_value(p) for p in done], maximize)
    if done:
        ax.scatter(
            [p.lr for p in done],
            [p.params[mult] for p in done],
            c=colours([_value(p) for p in done], norm),
            **STYLE["COMPLETE"],
        )
        colour_bar(fig, ax, norm, kind, metric_label(metric, maximize))
    pruned = [p for p in pts if p.state == "PRUNED"]
    if pruned:
        ax.scatter(
            [p.lr for p in pruned],
            [p.params[mult] for p in pruned],
            edgecolors="tab:orange",
            label="pruned",
            **STYLE["PRUNED"],
        )
    failed = [p for p in pts if p.state == "FAIL"]
    if failed:
        ax.scatter([p.lr for p in failed], [p.params[mult] for p in failed], label="failed", **STYLE["FAIL"])
    ranked = sorted(done, key=_value, reverse=maximize)
    if ranked:
        ax.scatter(
            [ranked[0].lr],
            [ranked[0].params[mult]],
            marker="*",
            s=260,
            color="gold",
            edgecolors="black",
            zorder=5,
            label=f"best #{ranked[0].number}",
        )
    ax.axhline(1.0, color="0.5", linewidth=0.8, linestyle=":", label=f"{mult}=1 (one LR)")
    ax.set(xlabel=f"{lr_key} (base LR)", ylabel=mult, title=f"base LR x {mult}")
    log_ticks(ax, "x")
    values = [float(p.params[mult]) for p in pts]
    if values and min(values) > 0 and max(values) / min(values) > 10:
        log_ticks(ax, "y")
    ax.legend(loc="best", fontsize=8)
    return fig


def history(points: Sequence[Point], metric: str, maximize: bool) -> Any:
    """Every trial's value by trial number, the best so far as a line, the best starred."""
    fig, ax = pyplot().subplots(figsize=(7, 4.2))
    _points(ax, points, lambda p: p.number, maximize)
    done = sorted((p for p in points if p.complete), key=lambda p: p.number)
    running, line = None, []
    for p in done:
        running = p.value if running is None or (p.value > running if maximize else p.value < running) else running  # type: ignore[operator]
        line.append((p.number, running))
    if line:
        ax.step(
            [n for n, _ in line], [v for _, v in line], where="post", color="tab:red", alpha=0.6, label="best so far"
        )
        best = max(done, key=lambda p: _value(p) if maximize else -_value(p))
        _mark_best(ax, best.number, best.value, best.number)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="trial number", ylabel=metric_label(metric, maximize), title="optimization history (every trial)")
    ax.legend(loc="best", fontsize=8)
    return fig


def learning_curves(top: Sequence[Point], metric: str, maximize: bool) -> Any:
    fig, ax = pyplot().subplots(figsize=(7, 4))
    for p in top:
        lr = f", LR {p.lr:.3g}" if p.lr is not None else ""
        ax.plot(
            [s for s, _ in p.curve],
            [v for _, v in p.curve],
            marker="o",
            markersize=3,
            label=f"#{p.number} ({p.value:.4g}{lr})",
        )
    from matplotlib.ticker import MaxNLocator

    ax.set(
        xlabel="epoch (step the trial reported)",
        ylabel=metric_label(metric, maximize),
        title=f"learning curves of the top {len(top)} trials",
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _value_axis(ax, [v for p in top for _, v in p.curve])
    ax.legend(fontsize=8)
    return fig


def lr_curves(top: Sequence[Point], lrs: Mapping[int, Mapping[str, Curve]]) -> Any:
    """One panel per trial: every group's LR against the update (from the trial's TensorBoard run)."""
    shown = [p for p in top if lrs.get(p.number)]
    fig, axes = pyplot().subplots(1, max(1, len(shown)), figsize=(4.2 * max(1, len(shown)), 3.4), squeeze=False)
    for ax, p in zip(axes[0], shown):
        for tag, curve in lrs[p.number].items():
            ax.plot([s for s, _ in curve], [v for _, v in curve], label=tag.removeprefix("lr/"))
        ax.set(xlabel="update", ylabel="LR (log scale)", title=f"#{p.number}: LR per group")
        log_ticks(ax, "y")
        ax.legend(fontsize=8)
    return fig
