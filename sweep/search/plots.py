"""The sweep's plots: optimization history, parameter importance, objective by base LR and head
multiplier (PNG, in the sweep dir), then the LR report (`report.html`, `sweep.search.report`).

Drawn after the sweep in a process of their own (`python -m sweep.search.plots DIR --storage S --study N`,
also `python -m sweep plots DIR`): importing matplotlib and fitting an importance evaluator cost
seconds that the sweep's wall time need not include. A plot that cannot be drawn is listed by
`unavailable` with the reason, which the sweep's summary prints. Every trial is shown (pruned ones
hollow at their last reported value, failed ones as red crosses at the bad edge), the metric and its
direction are named, the best is starred; the LR is whichever searched key is the LR
(`report_analysis.lr_key`), the multiplier the first `*_mult` or layer-decay key.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import optuna
from optuna.trial import TrialState

from sweep.search.report_analysis import multiplier_keys, study_lr_key, to_point


def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _keys(study: optuna.Study) -> tuple[str | None, str | None]:
    """(the LR key, the multiplier key or None) among the study's searched keys."""
    trials = study.get_trials(deepcopy=False)
    mults = multiplier_keys([k for t in trials for k in t.params])
    return study_lr_key(dict(study.user_attrs), trials), next(
        (k for k in mults if "head" in k), mults[0] if mults else None
    )


def unavailable(study: optuna.Study) -> dict[str, str]:
    """Plots that cannot be drawn from this study, with the reason."""
    complete = _complete(study)
    out = {}
    if not complete:
        out["history.png"] = "no complete trial"
    varied = {k for t in complete for k in t.params if len({str(u.params.get(k)) for u in complete}) > 1}
    if len(complete) < 2 or not varied:
        out["importance.png"] = f"needs 2 complete trials with a parameter that varies (has {len(complete)})"
    if _keys(study)[0] is None:
        out["lr_vs_head_mult.png"] = "no LR key (optimizer.lr, lr, *.lr) was searched"
    return out


def draw(sweep_dir: str, study: optuna.Study) -> list[str]:
    """Draw every plot that can be drawn; returns the file names written."""
    from sweep.search.figures import pyplot
    from sweep.search.report_context import objective_metric
    from sweep.search.report_figures import history

    plt = pyplot()
    from optuna.visualization import matplotlib as ovm

    skip = unavailable(study)
    metric = objective_metric(sweep_dir, dict(study.user_attrs))
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    makers = {
        "history.png": lambda: history([to_point(t, None) for t in study.get_trials(deepcopy=False)], metric, maximize),
        # PED-ANOVA: no scikit-learn forest to import and fit (fANOVA, Optuna's default, costs ~5 s)
        "importance.png": lambda: (
            ovm.plot_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), target_name=metric
            ).figure
        ),
        "lr_vs_head_mult.png": lambda: _lr_vs_head_mult(study, metric, maximize),
    }
    written = []
    for name, make in makers.items():
        if name in skip:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig = make()
        tmp = os.path.join(sweep_dir, f".{name}.{os.getpid()}.tmp.png")  # sweeps sharing a sweep dir
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
        os.replace(tmp, os.path.join(sweep_dir, name))
        plt.close(fig)
        written.append(name)
    return written


def _lr_vs_head_mult(study: optuna.Study, metric: str, maximize: bool):  # noqa: ANN202 - a figure
    from sweep.search import report_analysis as an
    from sweep.search.report_figures import multiplier_map, sensitivity

    lr, mult = _keys(study)
    points = [to_point(t, lr) for t in study.get_trials(deepcopy=False)]
    if mult is not None:
        return multiplier_map(points, str(lr), mult, metric, maximize)
    best = next(iter(an.ranked(points, maximize)), None)
    return sensitivity(points, best, an.band(points, [], best), str(lr), metric, maximize)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sweep plots", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir")
    parser.add_argument("--storage", help="default: SWEEP_DIR/study.journal")
    parser.add_argument("--study", help="default: the sweep dir's name")
    parser.add_argument("--no-report", action="store_true", help="draw the plots only, not report.html")
    args = parser.parse_args(argv)
    from sweep.search.storage import open_storage

    sweep_dir = os.path.abspath(args.sweep_dir)
    storage = open_storage(args.storage or os.path.join(sweep_dir, "study.journal"))
    study = optuna.load_study(study_name=args.study or os.path.basename(sweep_dir.rstrip("/")), storage=storage)
    written = draw(sweep_dir, study)
    for name, why in unavailable(study).items():
        print(f"{name} not drawn: {why}")
    print(f"plots in {sweep_dir}: {', '.join(written) or 'none'}")
    if not args.no_report:
        from sweep.search.report import write_report

        print(f"report: {write_report(study, sweep_dir)}")
    return 0


if __name__ == "__main__":
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sys.exit(main())
