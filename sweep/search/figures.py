"""Drawing helpers shared by the sweep's plots and its LR report (matplotlib, Agg, imported late):
the metric named with its direction, colours that separate close values, log axes with ticks that
do not overlap, and every trial marked by its state."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

LOG_SPAN = 1.5  # decades: a colour scale over a wider span of positive values is logarithmic
STYLE = {  # state -> scatter style; failed and pruned are marked, never left out
    "COMPLETE": dict(marker="o", s=36, edgecolors="black", linewidths=0.4),
    "PRUNED": dict(marker="s", s=30, facecolors="none", linewidths=1.2),
    "FAIL": dict(marker="x", s=40, color="tab:red", linewidths=1.5),
}


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.style.use("default")  # Optuna's plots switch to ggplot for the whole process
    return plt


def metric_label(metric: str, maximize: bool) -> str:
    """ "val/acc (maximize: higher is better)"."""
    return f"{metric} ({'maximize: higher' if maximize else 'minimize: lower'} is better)"


def colour_scale(values: Sequence[float], maximize: bool) -> tuple[Any, str]:
    """A norm for the values and its name: logarithmic where positive values span more than
    LOG_SPAN decades, else by rank (so four close top values get four colours); colours run
    from worst (dark) to best (bright)."""
    from matplotlib import colors

    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    if vals and min(vals) > 0 and math.log10(max(vals) / min(vals)) > LOG_SPAN:
        return colors.LogNorm(min(vals), max(vals)), "log"
    return RankNorm(vals, maximize), "rank"


class RankNorm:
    """Maps a value to its rank among `values` in [0, 1], worst 0 and best 1 (for colours)."""

    def __init__(self, values: Sequence[float], maximize: bool) -> None:
        self.maximize = maximize
        self.sorted = sorted(values, reverse=not maximize)  # worst first

    def __call__(self, value: float) -> float:
        if len(self.sorted) < 2:
            return 1.0
        worse = sum((v < value) if self.maximize else (v > value) for v in self.sorted)
        return min(1.0, worse / (len(self.sorted) - 1))


def colours(values: Sequence[float], norm: Any, cmap: str = "viridis") -> list[Any]:
    import matplotlib

    return [matplotlib.colormaps[cmap](float(norm(v))) for v in values]


def colour_bar(fig: Any, ax: Any, norm: Any, kind: str, label: str, cmap: str = "viridis") -> None:
    """A colour bar for `colour_scale`'s norm; a rank bar is labelled with the values at its ticks."""
    import matplotlib
    from matplotlib import colors

    if kind == "log":
        bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax)
    else:
        bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=colors.Normalize(0, 1), cmap=cmap), ax=ax)
        vals = norm.sorted
        if vals:
            idx = sorted({round(i * (len(vals) - 1) / 4) for i in range(5)})
            bar.set_ticks([i / max(1, len(vals) - 1) for i in idx], labels=[f"{vals[i]:.4g}" for i in idx])
        label += " (colour by rank)"
    bar.set_label(label)


def log_ticks(ax: Any, axis: str = "x") -> None:
    """Log scale with at most ~7 plain labels (1e-3, 0.002, 0.005 ... within two decades), no minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    a = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    low, high = ax.get_xlim() if axis == "x" else ax.get_ylim()
    span = math.log10(high / low) if low > 0 and high > low else 3.0
    subs = (1.0, 2.0, 5.0) if span <= 2.2 else (1.0,)
    a.set_major_locator(LogLocator(base=10, subs=subs, numticks=8))
    a.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    a.set_minor_formatter(NullFormatter())
    if axis == "x":
        ax.tick_params(axis="x", labelrotation=30)


def png_uri(fig: Any, dpi: int = 90) -> str:
    """The figure as an inline `data:image/png;base64,...` URI (then closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
