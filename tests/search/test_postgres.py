"""A sweep on a shared PostgreSQL study (the many-machines set-up). .ci/run starts a server on
loopback and sets LRSWEEP_TEST_POSTGRES_URL; without a server this test cannot run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import optuna
import pytest
from conftest import FAST, REPO, read_trials, run_train
from pg_util import fresh_database

from sweep.search.storage import masked

URL = os.environ.get("LRSWEEP_TEST_POSTGRES_URL")


def test_password_is_masked_in_what_is_written():
    assert masked("postgresql://user:s3cret@host:5432/db") == "postgresql://user:***@host:5432/db"
    assert masked("postgresql://user@host/db") == "postgresql://user@host/db"
    assert masked("/tmp/x/study.journal") == "/tmp/x/study.journal"


@pytest.mark.slow
@pytest.mark.skipif(not URL, reason="needs a PostgreSQL server: set LRSWEEP_TEST_POSTGRES_URL (.ci/run does)")
def test_sweep_on_a_postgres_study_resumes(tmp_path):
    name = f"pg-{uuid.uuid4().hex[:8]}"
    common = [
        "-m",
        "search=lr",
        *FAST,
        "hydra.sweeper.pruner=none",
        f"hydra.sweeper.storage={URL}",
        f"hydra.sweeper.study_name={name}",
        f"hydra.sweep.dir={tmp_path / 'pg'}",
    ]
    run_train(*common, "hydra.sweeper.n_trials=2", check=True)
    run_train(*common, "hydra.sweeper.n_trials=3", check=True)
    study = optuna.load_study(study_name=name, storage=URL)
    assert [t.number for t in study.get_trials()] == [0, 1, 2]
    assert all(t.state.name == "COMPLETE" for t in study.get_trials())
    results = (tmp_path / "pg" / "optimization_results.yaml").read_text()
    assert "lrsweep:***@" in results and URL.split("@")[0].split(":")[-1] + "@" not in results
    assert len(read_trials(tmp_path / "pg")) == 3


@pytest.mark.slow
@pytest.mark.skipif(not URL, reason="needs a PostgreSQL server: set LRSWEEP_TEST_POSTGRES_URL (.ci/run does)")
def test_three_workers_started_together_on_a_new_database_reach_exactly_n_trials(tmp_path):
    """A job array: three sweep processes, one study, a database Optuna has never seen."""
    with fresh_database(URL) as url:
        name = "array"
        start = time.time() + 6  # every worker has imported torch and optuna by then
        gate = (
            f"import time,runpy,sys; time.sleep(max(0, {start} - time.time())); sys.argv = sys.argv[1:]; "
            f"runpy.run_path(sys.argv[0], run_name='__main__')"
        )
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    gate,
                    str(REPO / "train.py"),
                    "-m",
                    "search=lr",
                    *FAST,
                    "trainer.epochs=2",
                    "trainer.threads=1",
                    "hydra.sweeper.pruner=none",
                    "hydra.sweeper.plots=false",
                    "hydra.sweeper.n_trials=4",
                    f"hydra.sweeper.storage={url}",
                    f"hydra.sweeper.study_name={name}",
                    f"hydra.sweep.dir={tmp_path / f'worker{i}'}",
                ],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(3)
        ]
        outs = [p.communicate(timeout=600) for p in procs]
        for p, (_out, err) in zip(procs, outs):
            assert p.returncode == 0, err[-3000:]
            assert "Traceback" not in err and "UniqueViolation" not in err
        study = optuna.load_study(study_name=name, storage=url)
        finished = [t for t in study.get_trials() if t.state.name in ("COMPLETE", "PRUNED")]
        assert len(finished) == 4
