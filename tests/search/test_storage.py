"""Storage errors are one line naming hydra.sweeper.storage (never the password), and many workers
may start together on a new journal file or a new PostgreSQL database."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from conftest import REPO, run_train
from pg_util import URL, fresh_database

from sweep.errors import ConfigError
from sweep.search.storage import create_or_load_study, open_storage, open_storage_readonly

SECRET = "s3cr3t-pw"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_unreachable_database_names_host_port_user_not_password():
    port = closed_port()
    with pytest.raises(ConfigError) as err:
        open_storage(f"postgresql://alice:{SECRET}@127.0.0.1:{port}/studies")
    text = str(err.value)
    assert err.value.key == "hydra.sweeper.storage"
    assert f"127.0.0.1:{port}" in text and "'alice'" in text and "studies" in text
    assert SECRET not in text and "\n" not in text


def test_missing_driver_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` now raises ImportError
    with pytest.raises(ConfigError) as err:
        open_storage(f"postgresql://alice:{SECRET}@127.0.0.1:{closed_port()}/studies")
    assert "'psycopg' is missing" in str(err.value) and "pip install -e .[postgres]" in str(err.value)
    assert SECRET not in str(err.value)


def test_unknown_scheme_is_one_line():
    with pytest.raises(ConfigError, match="a database URL SQLAlchemy knows"):
        open_storage("nosuchdb://host/x")


def test_journal_path_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="a journal file path that can be created"):
        open_storage(str(blocker / "sweep" / "study.journal"))  # its parent is a file
    with pytest.raises(ConfigError, match="is a directory"):
        open_storage(str(tmp_path))


def test_readonly_open_creates_nothing(tmp_path):
    path = tmp_path / "sub" / "study.journal"
    with pytest.raises(ConfigError, match="an existing journal file"):
        open_storage_readonly(str(path))
    assert not (tmp_path / "sub").exists()


def test_create_or_load_study_loads_what_another_worker_made(tmp_path):
    storage = open_storage(str(tmp_path / "study.journal"))
    first = create_or_load_study(storage, "s", "maximize")
    first.add_trial(optuna.trial.create_trial(value=1.0))
    again = create_or_load_study(storage, "s", "maximize")
    assert again._study_id == first._study_id and len(again.trials) == 1


WORKER = textwrap.dedent("""
    import json, sys, time
    from sweep.search.storage import create_or_load_study, open_storage
    spec, start = sys.argv[1], float(sys.argv[2])
    time.sleep(max(0.0, start - time.time()))  # all workers reach the storage at the same moment
    storage = open_storage(spec)
    study = create_or_load_study(storage, "race", "minimize")
    for _ in range(2):
        trial = study.ask()
        study.tell(trial, trial.suggest_float("x", 0, 1))
    print(json.dumps({"study_id": study._study_id}))
""")


def start_together(spec: str, n: int) -> list[subprocess.CompletedProcess]:
    start = time.time() + 3.0  # after every interpreter has imported optuna
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, spec, str(start)],
            cwd=REPO,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(n)
    ]
    return [subprocess.CompletedProcess(p.args, p.wait(120), *p.communicate()) for p in procs]


def check_race(spec: str, n: int) -> None:
    done = start_together(spec, n)
    for p in done:
        assert p.returncode == 0, p.stderr[-3000:]
        assert "Traceback" not in p.stderr
    assert len({json.loads(p.stdout)["study_id"] for p in done}) == 1  # one study, made once
    study = optuna.load_study(study_name="race", storage=open_storage(spec))
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 2 * n


@pytest.mark.slow
def test_workers_starting_together_on_a_new_journal(tmp_path):
    check_race(str(tmp_path / "new" / "study.journal"), 3)


@pytest.mark.slow
@pytest.mark.skipif(not URL, reason="needs a PostgreSQL server: set LRSWEEP_TEST_POSTGRES_URL (.ci/run does)")
def test_workers_starting_together_on_a_new_postgres_database():
    with fresh_database(URL) as url:
        check_race(url, 3)


@pytest.mark.slow
def test_sweep_on_an_unreachable_database_is_one_line_before_training(tmp_path):
    url = f"postgresql://alice:{SECRET}@127.0.0.1:{closed_port()}/studies"
    proc = run_train(
        "-m", "search=lr", "data=synthetic", f"hydra.sweeper.storage={url}", f"hydra.sweep.dir={tmp_path / 's'}"
    )
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: hydra.sweeper.storage="), proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    assert not list(Path(tmp_path / "s").glob("*/tensorboard"))  # no trial trained


# --------------------------------------------------------------------------- opening the sweep's study


def _plan(tmp_path: Path, **changes):
    from omegaconf import OmegaConf
    from optuna.distributions import FloatDistribution

    from sweep.search.plan import Plan

    fields = dict(
        space={"x": FloatDistribution(-2, 2)},
        fixed=[],
        job_cfg=OmegaConf.create({"x": 0.5}),
        hook=None,
        lr_bounds=None,
        pruner_spec={"name": "median", "n_startup_trials": 1},
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1),
        sweep_dir=str(tmp_path),
        storage_spec=str(tmp_path / "study.journal"),
        study_name="s",
        in_process=True,
        n_workers=1,
    )
    return Plan(**{**fields, **changes})


def test_open_study_stores_the_pruner_for_jobs_elsewhere_and_enqueues_the_current_values_once(tmp_path):
    from sweep.search import keys
    from sweep.search.settings import SweeperConf
    from sweep.search.study import open_study

    conf = SweeperConf(direction="minimize", enqueue_current=True, seed=3)
    study, storage = open_study(conf, _plan(tmp_path))
    assert study.user_attrs[keys.PRUNER] == {"name": "median", "n_startup_trials": 1}
    assert isinstance(study.pruner, optuna.pruners.MedianPruner)  # the plan's own pruner, built once
    study.tell(study.ask({"x": optuna.distributions.FloatDistribution(-2, 2)}), 1.0)
    assert study.trials[0].params == {"x": 0.5}
    again, _ = open_study(conf, _plan(tmp_path))  # a resume: nothing enqueued a second time
    assert not [t for t in again.trials if t.state == optuna.trial.TrialState.WAITING]


def test_open_study_refuses_a_study_of_the_other_direction(tmp_path):
    from sweep.search.settings import SweeperConf
    from sweep.search.study import open_study

    open_study(SweeperConf(direction="minimize"), _plan(tmp_path))
    with pytest.raises(ConfigError, match="the direction of the existing study 's' \\(minimize\\)"):
        open_study(SweeperConf(direction="maximize"), _plan(tmp_path))
