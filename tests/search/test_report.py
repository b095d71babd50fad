"""The LR report: its findings on synthetic in-memory studies (fast), and a real sweep's page
loaded in headless Chromium (slow): every image loaded, no script error, a screenshot."""

from __future__ import annotations

import csv
import math
import os
import re
import shutil
import subprocess
import sys
import time

import optuna
import pytest
from conftest import FAST, REPO, run_train
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from sweep.search import report_analysis as an
from sweep.search import report_checks as checks
from sweep.search import results
from sweep.search.report import build
from sweep.search.report_context import Context

LR = FloatDistribution(1e-3, 0.5, log=True)
MULT = FloatDistribution(1.0, 100.0, log=True)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def add(
    study, lr, value=None, state=TrialState.COMPLETE, mult=10.0, reason="", curve=None, key="optimizer.lr", extra=None
):
    params, dists = {key: lr, "groups.head_lr_mult": mult}, {key: LR, "groups.head_lr_mult": MULT}
    for k, (v, d) in (extra or {}).items():
        params[k], dists[k] = v, d
    attrs = {"fail_reason": reason} if reason else {}
    curve = curve if curve is not None else ([0.5, value] if value is not None else [])
    study.add_trial(
        create_trial(
            params=params,
            distributions=dists,
            value=value if state == TrialState.COMPLETE else None,
            state=state,
            user_attrs=attrs,
            intermediate_values=dict(enumerate(curve)),
        )
    )


def lr_study(**kw) -> optuna.Study:
    """Accuracy peaked at LR 0.03, diverging from 0.3 up; trial 0 the one-LR baseline."""
    study = optuna.create_study(direction="maximize")
    add(study, 0.02, 0.90, mult=1.0)  # 0: one LR
    for lr, v in [(0.03, 0.95), (0.01, 0.93), (0.003, 0.80), (0.1, 0.94), (0.2, 0.70)]:
        add(study, lr, v, **kw)  # 1-5
    add(study, 0.35, state=TrialState.FAIL, reason="diverged at epoch 1/3, update 5/7: loss=nan")  # 6
    add(study, 0.45, state=TrialState.FAIL, reason="diverged at epoch 2/3, update 1/7: loss=nan")  # 7
    return study


def points(study, key="optimizer.lr"):
    return [an.to_point(t, key) for t in study.get_trials()]


def test_the_lr_key_is_whichever_searched_key_is_the_lr():
    assert an.lr_key(["groups.head_lr_mult", "model.optim.lr"]) == "model.optim.lr"
    assert an.lr_key(["x.lr", "optimizer.lr"]) == "optimizer.lr"
    assert an.lr_key(["lr", "momentum"]) == "lr"
    assert an.lr_key(["x", "y"]) is None
    assert an.multiplier_keys(["optimizer.lr", "groups.head_lr_mult", "groups.decay", "optimizer.weight_decay"]) == [
        "groups.head_lr_mult",
        "groups.decay",
    ]


def test_noise_ties_and_the_band_of_base_lrs():
    pts = points(lr_study())
    best = an.ranked(pts, True)[0]
    assert best.number == 1
    nz = an.noise(pts, best, "val/acc", n_val=400)
    p = (0.95 * 400 + 1) / 402
    assert nz.se == pytest.approx(math.sqrt(p * (1 - p) / 400))
    assert "n = 400" in nz.how and nz.tie == pytest.approx(2 * math.sqrt(2) * nz.se)
    tied = an.ties(pts, best, nz, True)
    assert [t.number for t in tied] == [1, 4, 2]  # 0.95, 0.94, 0.93 within ~0.034; 0.90 is not
    band = an.band(pts, tied, best)
    assert (band.low, band.high) == (0.01, 0.1) and band.decades == pytest.approx(1.0)
    # without a validation size: the spread of the last epochs
    spread = an.noise(pts, best, "val/rmse", None)
    assert "around a straight line" in spread.how or spread.se == 0


def test_without_a_validation_size_the_noise_is_the_spread_around_the_trend():
    assert an.trend_spread([0.5, 0.6, 0.7, 0.8]) == pytest.approx(0.0, abs=1e-12)  # improving is not noise
    assert an.trend_spread([1.0, 2.0, 1.0, 2.0]) > 0.4
    study = optuna.create_study(direction="minimize")
    for lr in (0.01, 0.02, 0.05):
        add(study, lr, 1.0, curve=[3.0, 2.0, 1.1, 0.9, 1.0])
    pts = points(study)
    nz = an.noise(pts, an.ranked(pts, False)[0], "val/rmse", None)
    assert nz.se == pytest.approx(an.trend_spread([3.0, 2.0, 1.1, 0.9, 1.0])) and "straight line" in nz.how


def test_the_divergence_boundary_and_headroom():
    pts = points(lr_study())
    best = an.ranked(pts, True)[0]
    band = an.band(pts, [best], best)
    assert band.lowest_diverged.number == 6 and band.lowest_diverged.lr == 0.35
    assert band.highest_ok.number == 5 and band.highest_ok.lr == 0.2
    assert band.headroom == pytest.approx(math.log10(0.35 / 0.03))


def test_a_diverged_trial_held_as_pruned_is_a_failure_of_its_setting():
    study = lr_study()
    study.add_trial(
        create_trial(
            params={"optimizer.lr": 0.3, "groups.head_lr_mult": 10.0},
            distributions={"optimizer.lr": LR, "groups.head_lr_mult": MULT},
            state=TrialState.PRUNED,
            intermediate_values={0: 0.4},
            user_attrs={"diverged": True, "fail_reason": "diverged at epoch 2/3: val/loss=inf"},
        )
    )
    pts = points(study)
    assert pts[8].state == "FAIL" and pts[8].diverged and pts[8].value is None
    best = an.ranked(pts, True)[0]
    assert an.band(pts, [best], best).lowest_diverged.number == 8
    assert checks.budget(pts, study.trials)["pruned"] == []


def test_the_study_names_its_lr_key_and_its_changed_settings():
    from sweep.search.report_context import read_context

    study = optuna.create_study(direction="maximize")
    for i, lr in enumerate([0.01, 0.02]):
        study.add_trial(
            create_trial(
                params={"net.base_lr": lr, "x.lr": 0.1}, value=0.5 + i, distributions={"net.base_lr": LR, "x.lr": LR}
            )
        )
    assert an.study_lr_key({"lr_key": "net.base_lr"}, study.trials) == "net.base_lr"
    assert an.study_lr_key({}, study.trials) == "x.lr"
    attrs = {"settings_changes": [{"from_trial": 4, "changes": {"trainer.epochs": [4, 2]}}]}
    ctx = read_context(None, attrs, study.trials)
    assert ctx.changed == ["from trial #4: trainer.epochs 4 -> 2"]
    warns = checks.warnings(points(study, "net.base_lr"), None, True, "python train.py -m", "/r/s", [], ctx.changed)
    assert any("trainer.epochs 4 -> 2" in w.text and "hydra.sweep.dir=/r/s-new" in w.command for w in warns)


def test_a_best_on_the_edge_of_its_range_warns_with_the_command_that_widens_it():
    study = lr_study()
    add(study, 0.00105, 0.99)  # 8: the best, on the low edge of [1e-3, 0.5]
    pts = points(study)
    best = study.trials[8]
    warns = checks.warnings(
        pts,
        best,
        True,
        "python train.py -m search=lr 'optimizer.lr=tag(log, interval(1e-3, 0.5))'",
        "/runs/s1",
        ["groups.head_lr_mult"],
        [],
    )
    edge = [w for w in warns if "edge" in w.text]
    assert len(edge) == 1 and "optimizer.lr=0.00105" in edge[0].text and edge[0].numbers == [8]
    assert "'optimizer.lr=tag(log, interval(0.0001, 0.5))'" in edge[0].command
    assert "interval(1e-3, 0.5)" not in edge[0].command and "hydra.sweep.dir=/runs/s1-wider" in edge[0].command


def test_too_few_complete_trials_and_short_horizon_bias_warn():
    study = optuna.create_study(direction="maximize")
    add(study, 0.01, 0.8, curve=[0.5, 0.6, 0.8])
    add(study, 0.2, 0.4, state=TrialState.PRUNED, curve=[0.1, 0.4])  # improving fastest when pruned
    warns = checks.warnings(points(study), study.trials[0], True, "python train.py -m search=lr", None, [], [])
    texts = " ".join(w.text for w in warns)
    assert "Only 1 complete trials" in texts
    horizon = [w for w in warns if "short-horizon" in w.text]
    assert horizon and horizon[0].numbers == [1] and "hydra.sweeper.n_warmup_steps=4" in horizon[0].command
    command = "python train.py -m search=lr +hydra.sweeper.pruner_options.min_resource=1"
    halving = checks.warnings(points(study), study.trials[0], True, command, None, [], [], "successive_halving")
    fix = next(w.command for w in halving if "short-horizon" in w.text)
    assert fix.startswith(f"{command[:-2]}=4 ")  # halving's first rung moved, the old override replaced


@pytest.mark.parametrize("one, want", [(0.90, "beat one LR"), (0.945, "tied with one LR"), (0.99, "lost to one LR")])
def test_the_per_group_verdict_against_the_one_lr_baseline(one, want):
    study = optuna.create_study(direction="maximize")
    add(study, 0.02, one, mult=1.0)
    add(study, 0.03, 0.95)
    pts = points(study)
    v = an.group_verdict(pts, ["groups.head_lr_mult"], an.Noise(0.01, "test"), True)
    assert want in v.text and sorted(v.numbers) == [0, 1]
    none = an.group_verdict(pts[1:], ["groups.head_lr_mult"], an.Noise(0.01, "test"), True)
    assert "No one-LR trial" in none.text


def test_the_schedule_verdict_names_the_best_of_each_kind():
    study = optuna.create_study(direction="maximize")
    kind = CategoricalDistribution(["step", "cosine"])
    add(study, 0.02, 0.9, extra={"schedule": ("step", kind)})
    add(study, 0.02, 0.8, extra={"schedule": ("cosine", kind)})
    add(study, 0.02, 0.95, extra={"schedule": ("cosine", kind)})
    v = an.schedule_verdict(points(study), True)
    assert "cosine #2 0.95" in v.text and "step #0 0.9" in v.text


def check_page(text: str) -> None:
    assert "<html" in text and "http://" not in text and "https://" not in text
    assert not re.search(r'<(img|script|link)[^>]+(src|href)="(?!data:)', text)


@pytest.mark.parametrize("case", ["full", "only_failures", "no_multiplier", "other_lr_key", "multi_objective"])
def test_the_page_is_built_for_every_kind_of_study(case):
    if case == "multi_objective":
        study = optuna.create_study(directions=["maximize", "minimize"])
        study.add_trial(create_trial(params={"lr": 0.1}, distributions={"lr": LR}, values=[0.9, 1.0]))
    elif case == "only_failures":
        study = optuna.create_study(direction="maximize")
        add(study, 0.3, state=TrialState.FAIL, reason="diverged at epoch 1/3: loss=nan")
    else:
        study = lr_study() if case == "full" else optuna.create_study(direction="minimize")
        if case != "full":
            key = "model.optim.lr" if case == "other_lr_key" else "optimizer.lr"
            for i, lr in enumerate([0.001, 0.01, 0.1]):
                study.add_trial(
                    create_trial(
                        params={key: lr},
                        distributions={key: LR},
                        value=1.0 + i,
                        intermediate_values={0: 3.0, 1: 2.0, 2: 1.0 + i},
                    )
                )
    text = build(study, Context(None, metric="val/acc"))
    check_page(text)
    if case == "multi_objective":
        assert "multi-objective" in text and "not covered" in text.lower()
    elif case == "only_failures":
        assert "No trial completed" in text and "Lowest LR that diverged: 0.3" in text
    else:
        assert "Recommendation" in text and text.count("<img") >= 2
    if case == "other_lr_key":
        assert "model.optim.lr" in text


def test_trials_csv_has_one_column_per_parameter(tmp_path):
    from sweep.search.results import write_csv

    study = lr_study()
    path = tmp_path / "trials.csv"
    write_csv(str(path), study.get_trials(), str(tmp_path))
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    assert {
        "number",
        "state",
        "value",
        "epochs",
        "duration_s",
        "job_dir",
        "failure_reason",
        "optimizer.lr",
        "groups.head_lr_mult",
    } <= set(header)
    assert all(len(r) == len(header) for r in rows)
    first = dict(zip(header, rows[1]))
    assert float(first["optimizer.lr"]) == 0.02 and float(first["groups.head_lr_mult"]) == 1.0
    assert dict(zip(header, rows[7]))["failure_reason"].startswith("diverged")


def test_a_diverged_trial_has_no_value_in_trials_csv_and_a_pruned_one_keeps_its_own(tmp_path):
    from sweep.search import keys
    from sweep.search.results import write_csv

    study = optuna.create_study(direction="minimize")
    for lr, diverged in [(0.01, False), (0.45, True)]:
        study.enqueue_trial({"optimizer.lr": lr})
        trial = study.ask({"optimizer.lr": LR})
        trial.report(50.0 if not diverged else 36000.0, 1)
        if diverged:
            trial.set_user_attr(keys.DIVERGED, True)
        study.tell(trial, state=TrialState.PRUNED)
    path = tmp_path / "trials.csv"
    write_csv(str(path), study.get_trials(), str(tmp_path))
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[0]["value"]) == 50.0 and rows[0]["state"] == "PRUNED"
    assert rows[1]["value"] == "" and rows[1]["state"] == "FAIL"


def chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="headless chromium is not installed")
def test_a_real_sweep_leaves_a_report_that_a_browser_renders_with_every_image(tmp_path):
    d = tmp_path / "sweep"
    run_train(
        "-m",
        "search=lr",
        *FAST,
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.seed=1",
        "optimizer.lr=tag(log, interval(1e-3, 50))",
        f"hydra.sweep.dir={d}",
        check=True,
    )
    deadline = time.time() + 90  # written in the background after the plots
    while time.time() < deadline and not (d / "report.html").exists():
        time.sleep(0.5)
    assert (d / "report.html").exists(), (d / "plots.log").read_text()
    out = tmp_path / "again.html"
    proc = subprocess.run(
        [sys.executable, "-m", "sweep", "report", str(d), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    check_page(text)
    for section in ("Recommendation", "LR band", "Per-group LRs", "Budget", "objective val/acc, maximized"):
        assert section in text
    dom = chromium("--dump-dom", out.as_uri())
    assert 'data-images-ok="yes"' in dom.stdout, dom.stdout[-2000:]
    assert int(re.search(r'data-images="(\d+)"', dom.stdout).group(1)) >= 4
    assert "Uncaught" not in dom.stderr
    shot = tmp_path / "report.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,3000", out.as_uri())
    assert shot.exists() and shot.stat().st_size > 50_000


def test_the_command_writes_the_page_of_a_journal_and_refuses_a_missing_target(tmp_path, capsys):
    from sweep.search.report import main
    from sweep.search.storage import open_storage

    d = tmp_path / "s1"
    d.mkdir()
    study = optuna.create_study(study_name="s1", storage=open_storage(str(d / "study.journal")), direction="maximize")
    for t in lr_study().trials:
        study.add_trial(t)
    assert main([str(d)]) == 0
    check_page((d / "report.html").read_text())
    assert main([str(tmp_path / "missing")]) == 2
    assert "report=" in capsys.readouterr().err


@pytest.mark.parametrize(
    "preset, baseline",
    [("lr", {"groups.head_lr_mult": 1.0}), ("finetune", {"groups.head_lr_mult": 1.0, "groups.decay": 1.0})],
)
def test_the_presets_enqueue_a_one_lr_baseline_inside_their_ranges(preset, baseline):
    import yaml

    conf = yaml.safe_load((REPO / "conf" / "search" / f"{preset}.yaml").read_text())["hydra"]["sweeper"]
    assert conf["enqueue"] == [baseline]
    for key, text in conf["params"].items():
        if key in baseline:
            low = float(re.search(r"interval\(([^,]+),", text).group(1))
            assert low <= baseline[key]


def test_an_enqueued_value_outside_a_narrowed_range_is_left_to_the_sampler():
    from sweep.search.study import fits

    assert fits(MULT, 1.0) and not fits(FloatDistribution(2.0, 100.0, log=True), 1.0)
    assert fits(CategoricalDistribution([1, 10]), 1.0) and not fits(CategoricalDistribution([5, 10]), 1.0)


def _write_csv_often(path: str, trials: list, times: int) -> None:
    for _ in range(times):
        results.write_csv(path, trials)


def test_two_sweeps_ending_together_both_write_their_results(tmp_path):
    """Two sweep processes on one study and sweep dir rewrite trials.csv at their ends: each through a
    temporary file of its own, so neither finds the other's gone (FileNotFoundError) mid-replace."""
    import multiprocessing

    study = optuna.create_study(direction="maximize")
    add(study, 0.01, 0.8)
    path = str(tmp_path / "trials.csv")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_csv_often, args=(path, study.trials, 300)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(list(csv.DictReader(open(path)))) == 1
