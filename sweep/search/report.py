"""`python -m sweep report DIR_OR_STORAGE_URL [--study NAME] [--out FILE]`: the LR report.

One self-contained page, `report.html` in the sweep dir: the recommended setting and those tied
with it within the metric's noise, the LR band and the divergence boundary, sensitivity to the base
LR, the per-group and schedule verdicts, the budget, warnings with the command that fixes each, and
the top trials' learning and LR curves. Also written at the end of every sweep, in the background
process that draws the plots. Reads only (safe while workers run); imports no torch.

Findings: `report_analysis` (band, ties, verdicts) and `report_checks` (budget, warnings); the
files around the study: `report_context`; figures: `report_figures`; the page: `report_html`.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

import optuna

from sweep.errors import ConfigError
from sweep.search import keys
from sweep.search import report_analysis as an
from sweep.search import report_checks as checks
from sweep.search import report_figures as figs
from sweep.search import report_html as h
from sweep.search.figures import png_uri
from sweep.search.report_context import Context, fill_curves, lr_curves, n_val, read_context

TOP = 3


def fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def group_lrs(best: an.Point, trial: optuna.trial.FrozenTrial, ctx: Context, mults: Sequence[str]) -> list[str]:
    """Each group's peak LR from the best trial's TensorBoard run, else base x multiplier."""
    curves = lr_curves(trial, ctx.sweep_dir)
    if curves:
        peaks = {tag.removeprefix("lr/"): max(v for _, v in c) for tag, c in curves.items()}
        return [
            f"{g}: {peak:.4g}" + (f" (base x {peak / best.lr:.3g})" if best.lr else "") for g, peak in peaks.items()
        ]
    if best.lr is None:
        return []
    return [
        f"{k.rsplit('.', 1)[-1].removesuffix('_mult').removesuffix('_lr')}: base x {fmt(best.params[k])} = "
        f"{best.lr * float(best.params[k]):.4g}"
        for k in mults
        if k in best.params and "mult" in k
    ]


def recommendation(
    best: an.Point | None,
    trial: Any,
    tied: list[an.Point],
    nz: an.Noise,
    ctx: Context,
    lr_key: str | None,
    mults: Sequence[str],
) -> str:
    if best is None:
        return h.section(
            "Recommendation",
            h.finding(
                "No trial completed: there is no setting to recommend; the "
                "warnings and the LR band below say where training failed."
            ),
        )
    rows = [[k, fmt(v)] for k, v in best.params.items()]
    parts = [
        h.finding(f"Best: {ctx.metric} = {best.value:.4g} with {lr_key or 'the LR'} = {fmt(best.lr)}.", [best.number]),
        h.table(["setting", "value"], rows),
    ]
    lrs = group_lrs(best, trial, ctx, mults)
    if lrs:
        parts.append(
            h.finding(
                "Each group's LR (its peak, from the trial's TensorBoard lr/<group> where it has "
                "one): " + "; ".join(lrs) + ".",
                [best.number],
            )
        )
    others = [p for p in tied if p.number != best.number]
    parts.append(
        h.finding(
            f"Tied with it (within {nz.tie:.3g}): "
            + (", ".join(f"#{p.number} {p.value:.4g} (LR {fmt(p.lr)})" for p in others) or "none")
            + ".",
            [p.number for p in others],
        )
    )
    parts.append(
        h.finding(
            f"Noise: {nz.how}; two trials tie when their values differ by at most "
            f"{an.Z:g} x sqrt(2) x SE = {nz.tie:.3g}."
        )
    )
    if ctx.rerun:
        parts += [h.finding("Rerun the best trial:"), h.command(ctx.rerun)]
    return h.section("Recommendation", *parts)


def band_section(
    points: list[an.Point], best: an.Point | None, band: an.Band, ctx: Context, lr_key: str | None, maximize: bool
) -> str:
    if lr_key is None:
        return h.section(
            "LR band",
            h.finding(
                "No LR key was searched (no optimizer.lr, lr or *.lr among the "
                "parameters): no band or sensitivity to draw."
            ),
        )
    parts = []
    if band.low is not None:
        parts.append(
            h.finding(
                f"Base LRs tied with the best: {band.low:.3g} to {band.high:.3g}, {band.decades:.2f} decades wide.",
                band.numbers,
            )
        )
    d, ok = band.lowest_diverged, band.highest_ok
    parts.append(
        h.finding(f"Lowest LR that diverged: {d.lr:.3g}." if d else "No trial diverged.", [d.number] if d else [])
    )
    if ok is not None:
        parts.append(h.finding(f"Highest LR that never diverged: {ok.lr:.3g}.", [ok.number]))
    if band.headroom is not None:
        parts.append(h.finding(f"Headroom from the best LR to divergence: {band.headroom:.2f} decades."))
    elif best is not None and ok is not None and ok.lr is not None and best.lr:
        parts.append(h.finding(f"Headroom: at least {math.log10(ok.lr / best.lr):.2f} decades (nothing diverged)."))
    if ctx.lr_find:
        parts.append(h.finding("The grey curve is the range test's smoothed loss (lr_find.csv), on the same LR axis."))
    fig = figs.sensitivity(points, best, band, lr_key, ctx.metric, maximize, ctx.lr_find)
    parts.append(h.image(png_uri(fig), "sensitivity: objective against the base LR"))
    return h.section("LR band and sensitivity", *parts)


def groups_section(
    points: list[an.Point], mults: Sequence[str], nz: an.Noise, ctx: Context, lr_key: str | None, maximize: bool
) -> str:
    v = an.group_verdict(points, mults, nz, maximize)
    parts = [h.finding(v.text, v.numbers)]
    if lr_key:
        for k in mults:
            fig = figs.multiplier_map(points, lr_key, k, ctx.metric, maximize)
            parts.append(h.image(png_uri(fig), f"base LR x {k}"))
    return h.section("Per-group LRs", *parts)


def curves_section(points: list[an.Point], trials: dict[int, Any], ctx: Context, maximize: bool) -> str:
    top = an.ranked(points, maximize)[:TOP]
    if not top:
        return ""
    parts = [h.image(png_uri(figs.learning_curves(top, ctx.metric, maximize)), "learning curves")]
    lrs = {p.number: lr_curves(trials[p.number], ctx.sweep_dir) for p in top}
    if any(lrs.values()):
        parts.append(h.image(png_uri(figs.lr_curves(top, lrs)), "LR curves per group"))
    return h.section(f"Learning and LR curves of the top {len(top)}", *parts)


def build(study: optuna.Study, ctx: Context) -> str:
    """The report page for `study`, as HTML text."""
    trials = study.get_trials(deepcopy=False)
    title = f"LR report: study '{study.study_name}'"
    meta = f"{len(trials)} trials; written {datetime.datetime.now():%Y-%m-%d %H:%M}"
    if len(study.directions) > 1:
        return h.page(
            title,
            meta,
            [
                h.section(
                    "Not covered",
                    h.finding(
                        f"A multi-objective study ({', '.join(d.name.lower() for d in study.directions)}): "
                        "the LR report covers single-objective studies only."
                    ),
                )
            ],
        )
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    lr_key = an.study_lr_key(dict(study.user_attrs), trials)
    mults = an.multiplier_keys([k for t in trials for k in t.params])
    points = [an.to_point(t, lr_key) for t in trials]
    by_number = {t.number: t for t in trials}
    fill_curves(points, by_number, ctx.metric, ctx.sweep_dir)
    best = next(iter(an.ranked(points, maximize)), None)
    nz = an.noise(points, best, ctx.metric, n_val(by_number.get(best.number) if best else None, ctx.sweep_dir))
    tied = an.ties(points, best, nz, maximize) if best else []
    band = an.band(points, tied, best)
    best_trial = by_number[best.number] if best else None
    pruner = str((study.user_attrs.get(keys.PRUNER) or {}).get("name", "median"))
    warns = checks.warnings(points, best_trial, maximize, ctx.command, ctx.sweep_dir, mults, ctx.changed, pruner)
    sched = an.schedule_verdict(points, maximize)
    meta += f"; objective {ctx.metric}, {'maximized' if maximize else 'minimized'}"
    sections = [
        recommendation(best, best_trial, tied, nz, ctx, lr_key, mults),
        h.section("Warnings", *[h.warning(w.text, w.command, w.numbers) for w in warns]) if warns else "",
        band_section(points, best, band, ctx, lr_key, maximize),
        groups_section(points, mults, nz, ctx, lr_key, maximize),
        h.section("Schedule", h.finding(sched.text, sched.numbers)) if sched else "",
        curves_section(points, by_number, ctx, maximize),
        h.budget_section(checks.budget(points, trials)),
    ]
    return h.page(title, meta, [s for s in sections if s])


def load_study(target: str, study_name: str | None) -> tuple[optuna.Study, str | None]:
    """The study and its sweep dir (None for a database whose trials name no job dir)."""
    from sweep.search.status import resolve
    from sweep.search.storage import masked, open_storage_readonly

    if "://" not in target and not os.path.exists(target):
        raise ConfigError("report", target, "an existing sweep dir, journal file, or a database URL")
    spec, wanted = resolve(target, study_name)
    storage = open_storage_readonly(spec)
    names = [s.study_name for s in storage.get_all_studies()]
    if not names:
        raise ConfigError("report", masked(target), "a storage that holds a study (this one holds none yet)")
    if wanted not in names:
        if study_name is not None or len(names) > 1:
            raise ConfigError("--study", wanted, f"one of the studies in {masked(spec)}: {', '.join(names)}")
        wanted = names[0]
    study = optuna.load_study(study_name=wanted, storage=storage)
    if os.path.isdir(target):
        return study, os.path.abspath(target)
    dirs = [t.user_attrs.get("job_dir") for t in study.get_trials(deepcopy=False) if t.user_attrs.get("job_dir")]
    return study, os.path.dirname(str(dirs[0])) if dirs else (
        os.path.dirname(os.path.abspath(spec)) if os.path.isfile(spec) else None
    )


def write_report(study: optuna.Study, sweep_dir: str | None, out: str | None = None) -> str:
    """Write the page (atomically) to `out`, default `<sweep dir>/report.html`; returns its path."""
    ctx = read_context(sweep_dir, dict(study.user_attrs), study.get_trials(deepcopy=False))
    path = out or os.path.join(sweep_dir or os.getcwd(), "report.html")
    text = build(study, ctx)
    tmp = f"{path}.{os.getpid()}.tmp"  # sweeps sharing a sweep dir may write it at once
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sweep report", description=__doc__.splitlines()[0])
    parser.add_argument(
        "target",
        metavar="DIR_OR_STORAGE_URL",
        help="a sweep dir (its study.journal), a journal file, or a database URL",
    )
    parser.add_argument("--study", default=None, help="the study name (default: the dir's name, or the only one)")
    parser.add_argument("--out", default=None, help="the page to write (default: SWEEP_DIR/report.html)")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study, sweep_dir = load_study(args.target, args.study)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"report: {write_report(study, sweep_dir, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
