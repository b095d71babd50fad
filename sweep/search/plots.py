"""The sweep's plots: optimization history, parameter importance, objective by base LR and head
multiplier (PNG, in the sweep dir).

Drawn after the sweep in a process of their own (`python -m sweep.search.plots DIR --storage S --study N`,
also `python -m sweep plots DIR`): importing matplotlib and fitting an importance evaluator cost
seconds that the sweep's wall time need not include. A plot that cannot be drawn is listed by
`unavailable` with the reason, which the sweep's summary prints.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import optuna
from optuna.trial import TrialState

LR, HEAD_MULT = "optimizer.lr", "groups.head_lr_mult"


def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def unavailable(study: optuna.Study) -> dict[str, str]:
    """Plots that cannot be drawn from this study, with the reason."""
    complete = _complete(study)
    out = {}
    if not complete:
        out["history.png"] = "no complete trial"
    varied = {k for t in complete for k in t.params if len({str(u.params.get(k)) for u in complete}) > 1}
    if len(complete) < 2 or not varied:
        out["importance.png"] = f"needs 2 complete trials with a parameter that varies (has {len(complete)})"
    if not any(LR in t.params for t in complete):
        out["lr_vs_head_mult.png"] = f"no complete trial searched {LR}"
    return out


def draw(sweep_dir: str, study: optuna.Study) -> list[str]:
    """Draw every plot that can be drawn; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    skip = unavailable(study)
    makers = {
        "history.png": lambda: ovm.plot_optimization_history(study).figure,
        # PED-ANOVA: no scikit-learn forest to import and fit (fANOVA, Optuna's default, costs ~5 s)
        "importance.png": lambda: ovm.plot_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()).figure,
        "lr_vs_head_mult.png": lambda: _lr_vs_head_mult(plt, _complete(study)),
    }
    written = []
    for name, make in makers.items():
        if name in skip:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig = make()
        tmp = os.path.join(sweep_dir, f".{name}.tmp.png")
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
        os.replace(tmp, os.path.join(sweep_dir, name))
        plt.close(fig)
        written.append(name)
    return written


def _lr_vs_head_mult(plt, trials):  # noqa: ANN001, ANN202 - matplotlib's module and figure
    pts = [t for t in trials if LR in t.params]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    mult = [t.params.get(HEAD_MULT, 1.0) for t in pts]
    sc = ax.scatter([t.params[LR] for t in pts], mult, c=[t.value for t in pts], cmap="viridis")
    ax.set(xscale="log", yscale="log", xlabel=f"{LR} (base LR)", ylabel=HEAD_MULT,
           title="objective by base LR and head multiplier")
    fig.colorbar(sc, ax=ax, label="objective")
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sweep plots", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir")
    parser.add_argument("--storage", help="default: SWEEP_DIR/study.journal")
    parser.add_argument("--study", help="default: the sweep dir's name")
    args = parser.parse_args(argv)
    from sweep.search.storage import open_storage

    sweep_dir = os.path.abspath(args.sweep_dir)
    storage = open_storage(args.storage or os.path.join(sweep_dir, "study.journal"))
    study = optuna.load_study(study_name=args.study or os.path.basename(sweep_dir.rstrip("/")), storage=storage)
    written = draw(sweep_dir, study)
    for name, why in unavailable(study).items():
        print(f"{name} not drawn: {why}")
    print(f"plots in {sweep_dir}: {', '.join(written) or 'none'}")
    return 0


if __name__ == "__main__":
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sys.exit(main())
