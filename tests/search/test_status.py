"""`python -m sweep status`: counts, best trial, running trials with worker and heartbeat, failure
reasons; read-only, so it answers while workers hold the study."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import optuna
import pytest
from conftest import REPO
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from pg_util import URL, fresh_database

from sweep.search import status
from sweep.search.storage import create_or_load_study, open_storage

LR = {"optimizer.lr": FloatDistribution(1e-3, 1, log=True)}


def make_trial(state: TrialState, value=None, lr=0.01, **attrs):
    return create_trial(state=state, value=value, params={"optimizer.lr": lr}, distributions=LR, user_attrs=attrs)


def fill(study: optuna.Study, now: float) -> None:
    study.add_trial(make_trial(TrialState.COMPLETE, 0.81, lr=0.02))
    study.add_trial(make_trial(TrialState.COMPLETE, 0.93, lr=0.05))
    study.add_trial(make_trial(TrialState.PRUNED, lr=0.3))
    study.add_trial(make_trial(TrialState.FAIL, lr=0.9, fail_reason="diverged: loss=nan at epoch 2, update 31"))
    study.add_trial(
        make_trial(
            TrialState.FAIL,
            lr=0.8,
            outcome={"status": "failed", "value": None, "reason": "space hook: KeyError: 'x'", "epochs": 0},
        )
    )
    running = study.ask()
    running.suggest_float("optimizer.lr", 1e-3, 1, log=True)
    running.set_user_attr("worker", "node7:4242")
    running.set_user_attr("heartbeat", now - 42)


@pytest.fixture
def sweep_dir(tmp_path):
    d = tmp_path / "sweep1"
    study = create_or_load_study(open_storage(str(d / "study.journal")), "sweep1", "maximize")
    fill(study, time.time())
    return d


def test_report_lists_counts_best_running_and_failures(sweep_dir):
    text = status.status(str(sweep_dir))
    lines = text.splitlines()
    assert lines[0].startswith("study 'sweep1' in ") and "(maximize)" in lines[0]
    assert lines[1] == "trials: 2 COMPLETE, 1 PRUNED, 2 FAIL, 1 RUNNING (6 in all)"
    assert lines[2].startswith("best: #1 value 0.93  optimizer.lr=0.05")
    running = next(ln for ln in lines if ln.startswith("  #5"))
    assert "worker node7:4242" in running and "heartbeat 42s ago" in running
    assert "  #3  diverged: loss=nan at epoch 2, update 31" in lines
    assert "  #4  space hook: KeyError: 'x'" in lines  # from the job's outcome when no fail_reason


def test_minimize_picks_the_lowest_value(tmp_path):
    study = create_or_load_study(open_storage(str(tmp_path / "j")), "loss", "minimize")
    for v in (0.5, 0.2, 0.7):
        study.add_trial(make_trial(TrialState.COMPLETE, v))
    assert "best: #1 value 0.2" in status.status(str(tmp_path / "j"))


def test_no_completed_trial_says_so(tmp_path):
    study = create_or_load_study(open_storage(str(tmp_path / "j")), "s", "maximize")
    study.add_trial(make_trial(TrialState.FAIL, fail_reason="boom"))
    assert "best: none yet" in status.status(str(tmp_path / "j"))


def test_a_dir_whose_study_has_another_name_uses_its_only_study(tmp_path):
    d = tmp_path / "runs"
    create_or_load_study(open_storage(str(d / "study.journal")), "custom-name", "maximize")
    assert status.status(str(d)).startswith("study 'custom-name'")


def test_several_studies_are_listed_and_one_can_be_picked(tmp_path):
    storage = open_storage(str(tmp_path / "j"))
    for name, v in (("a", 0.5), ("b", 0.6)):
        create_or_load_study(storage, name, "maximize").add_trial(make_trial(TrialState.COMPLETE, v))
    listing = status.status(str(tmp_path / "j"))
    assert listing.splitlines()[0].startswith("2 studies in")
    assert "  a: 1 COMPLETE (1 in all), best #0 0.5" in listing and "  b: " in listing
    assert status.status(str(tmp_path / "j"), "b").startswith("study 'b'")


def test_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert status.main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    (tmp_path / "empty").mkdir()
    assert status.main([str(tmp_path / "empty")]) == 2
    assert "study.journal" in capsys.readouterr().err
    create_or_load_study(open_storage(str(tmp_path / "j")), "a", "maximize")
    assert status.main([str(tmp_path / "j"), "--study", "zzz"]) == 2
    assert "one of the studies in" in capsys.readouterr().err


def test_reads_while_a_worker_holds_the_journal_lock_and_changes_nothing(sweep_dir):
    journal = sweep_dir / "study.journal"
    lock = optuna.storages.journal.JournalFileOpenLock(str(journal))
    before = (journal.stat().st_size, journal.stat().st_mtime_ns, sorted(os.listdir(sweep_dir)))
    assert lock.acquire()
    try:
        started = time.perf_counter()
        text = status.status(str(sweep_dir))
        assert time.perf_counter() - started < 10  # did not wait for the lock (its grace period is 30 s)
    finally:
        lock.release()
    assert "1 RUNNING" in text
    after = (journal.stat().st_size, journal.stat().st_mtime_ns, sorted(os.listdir(sweep_dir)))
    assert after == before


def test_command_line_exits_0_without_importing_torch(sweep_dir):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sweep", "status", str(sweep_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "trials: 2 COMPLETE" in proc.stdout
    imported = {ln.split("|")[-1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}
    assert "optuna" in imported and not any(m.split(".")[0] == "torch" for m in imported)


def test_unknown_command_is_usage_and_exit_2():
    proc = subprocess.run([sys.executable, "-m", "sweep", "stat"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "usage: python -m sweep {status,plots" in proc.stderr  # more commands may follow


@pytest.mark.skipif(not URL, reason="needs a PostgreSQL server: set LRSWEEP_TEST_POSTGRES_URL (.ci/run does)")
def test_status_of_a_postgres_study_masks_the_password():
    with fresh_database(URL) as url:
        study = create_or_load_study(open_storage(url), "pg-status", "maximize")
        fill(study, time.time())
        proc = subprocess.run(
            [sys.executable, "-m", "sweep", "status", url], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        optuna.storages.RDBStorage(url).engine.dispose()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("study 'pg-status' in postgresql") and ":***@" in proc.stdout
    password = url.split("://", 1)[1].split("@")[0].split(":")[1]
    assert f":{password}@" not in proc.stdout
    assert "worker node7:4242" in proc.stdout and "2 FAIL" in proc.stdout


@pytest.mark.skipif(not URL, reason="needs a PostgreSQL server: set LRSWEEP_TEST_POSTGRES_URL (.ci/run does)")
def test_status_of_an_empty_postgres_database_creates_no_tables():
    import sqlalchemy

    with fresh_database(URL) as url:
        assert status.main([url]) == 2
        engine = sqlalchemy.create_engine(url)
        assert sqlalchemy.inspect(engine).get_table_names() == []
        engine.dispose()


def test_a_failure_with_no_reason_says_so(tmp_path):
    study = create_or_load_study(open_storage(str(tmp_path / "j")), "s", "maximize")
    study.add_trial(make_trial(TrialState.FAIL))
    study.add_trial(make_trial(TrialState.FAIL, outcome="not an outcome"))
    text = status.status(str(tmp_path / "j"))
    assert "  #0  no reason recorded" in text and "  #1  no reason recorded" in text
    assert "trials: 2 FAIL (2 in all)" in text


def test_a_paused_trial_says_where_it_waits(tmp_path):
    d = tmp_path / "sweep2"
    study = create_or_load_study(open_storage(str(d / "study.journal")), "sweep2", "maximize")
    now = time.time()
    waiting = study.ask()
    waiting.suggest_float("optimizer.lr", 1e-3, 1, log=True)
    waiting.set_user_attr("worker", "node7:4242")
    waiting.set_user_attr("paused", {"epoch": 3, "time": now - 90})
    line = next(ln for ln in status.status(str(d)).splitlines() if ln.startswith("  #0"))
    assert "paused after epoch 3 90s ago" in line
