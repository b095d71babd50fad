"""One trial on several processes (trainer.devices=N, CPU gloo here): the same run as on one process,
decisions taken on rank 0 reaching every rank, a failing rank failing the trial and leaving no
process behind, and a user's torchrun-started loop reporting once per epoch. Every subprocess has a
timeout, so no test can hang."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from conftest import REPO, composed, read_trials, run_train

from sweep.errors import ConfigError
from sweep.search import keys
from sweep.search.handoff import current_trials, process_rank
from sweep.search.processes import resolve_workers, visible_devices
from sweep.train.build import resolved
from sweep.train.checks import validate
from sweep.train.data import TensorData, train_batches
from sweep.train.distributed import ShardedBatches
from sweep.trial import FollowerTrial, LeaderTrial, NoTrial

TESTS = str(REPO / "tests")
TINY = ["data=synthetic", "trainer.epochs=2", "trainer.threads=1"]
CUSTOM = ["model=custom", "+model.in_features=${data.num_features}", "+model.num_classes=${data.num_classes}"]
ENV = {"PYTHONPATH": TESTS, "OMP_NUM_THREADS": "1"}
TIMEOUT = 300


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def started_pids(output: str) -> list[int]:
    return [int(p) for line in re.findall(r"ranks 1-\d+ started \(pids ([\d ]+)\)", output) for p in line.split()]


def job_logs(sweep_dir: Path) -> str:
    """Every job's log in a sweep dir (a job logs to its own dir in a sweep)."""
    return "".join(p.read_text() for p in sorted(sweep_dir.glob("*/*.log")))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is not a process left running
        return f.read().split()[2] != "Z"


# Fast: the pieces, in this process.


def test_each_sample_once_per_epoch_and_weights_give_the_global_mean():
    """50 samples, global batch 16 on 3 ranks: every sample once, the same number of updates on
    each rank, and the weights of a batch's shares add up to the number of ranks (DDP's average
    of the weighted losses is then the global batch's mean), the uneven last batch included."""
    x, y = torch.arange(50.0).reshape(50, 1), torch.arange(50)
    data = TensorData(x, y, x[:0], y[:0], 50)
    shards = [ShardedBatches(data, 16, torch.device("cpu"), 0, 256, r, 3) for r in range(3)]
    seen, per_update = [], []
    for batches in zip(*shards):
        weights = [s.shares.weight for s in shards]
        assert sum(weights) == pytest.approx(3.0)
        seen += [int(v) for (xb, yb), w in zip(batches, weights) if w > 0 for v in yb]
        per_update.append(len(batches))
    assert sorted(seen) == list(range(50)) and len(per_update) == 4
    one = [yb.tolist() for _, yb in train_batches(data, 16, torch.device("cpu"), 0)]  # the one-process run
    order = torch.randperm(50, generator=torch.Generator().manual_seed(0)).tolist()
    assert sum(one, []) == order  # the same permutation, split the same way
    fresh = [ShardedBatches(data, 16, torch.device("cpu"), 0, 256, r, 3) for r in range(3)]
    first = next(iter(zip(*fresh)))  # the first update, on each rank
    assert sorted(sum((yb.tolist() for _, yb in first), [])) == sorted(order[:16])


def test_leader_and_follower_trials():
    class Recording(NoTrial):
        number, reports = 7, []

        def report(self, value, step):
            self.reports.append((value, step))

        def should_prune(self):
            return True

    seen = []
    leader = LeaderTrial(Recording(), lambda decision: seen.append(decision) or decision)
    leader.report(0.5, 1)
    assert leader.should_prune() and seen == [True] and leader.number == 7
    assert leader.trial.reports == [(0.5, 1)]
    follower = FollowerTrial(lambda decision: True, rank=1, number=7)
    follower.report(0.9, 1)  # reports nowhere
    assert follower.should_prune() and follower.number == 7


def test_rank_from_the_launcher_environment(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(key, raising=False)
    assert process_rank() == (0, 1)
    monkeypatch.setenv("SLURM_PROCID", "2")
    monkeypatch.setenv("SLURM_NTASKS", "4")
    assert process_rank() == (2, 4)
    handle = current_trials(None)[0]
    assert isinstance(handle, FollowerTrial) and not handle.should_prune()  # no process group: never waits
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert process_rank() == (0, 2) and isinstance(current_trials(None)[0], LeaderTrial)


def test_workers_auto_hold_their_devices():
    assert visible_devices(1, 2) == "2,3" and visible_devices(0, 1) == "0"
    expected = max(1, torch.cuda.device_count() // 2)
    assert resolve_workers("auto", 2) == expected and resolve_workers(3, 2) == 3


@pytest.mark.parametrize(
    "override, key",
    [
        ("trainer.devices=0", "trainer.devices"),
        ("trainer.devices=two", "trainer.devices"),
        ("trainer.rank_timeout_s=0", "trainer.rank_timeout_s"),
    ],
)
def test_bad_device_settings_are_one_line(override, key):
    with pytest.raises(ConfigError) as err:
        validate(resolved(composed(*TINY, override)))
    assert err.value.key == key


def test_batch_smaller_than_the_devices_is_refused():
    with pytest.raises(ConfigError) as err:
        validate(resolved(composed(*TINY, "trainer.devices=4", "trainer.batch_size=2")))
    assert err.value.key == "trainer.batch_size" and "global batch" in str(err.value)


def test_more_devices_than_cuda_has_is_refused_on_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError) as err:
        validate(resolved(composed(*TINY, "trainer.devices=2")))
    assert err.value.key == "trainer.devices" and "at most 1" in str(err.value)


def test_devices_with_trials_per_job_is_one_line_exit_2(tmp_path):
    proc = run_train(
        "-m",
        "search=lr",
        *TINY,
        "trainer.devices=2",
        "hydra.sweeper.trials_per_job=2",
        f"hydra.sweep.dir={tmp_path}",
        timeout=TIMEOUT,
        env=ENV,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "trials_per_job" in line]
    assert len(lines) == 1 and "trainer.devices=2" in lines[0]


# End to end: train.py on 2 processes.


@pytest.mark.slow
def test_two_processes_train_the_one_process_run(tmp_path):
    """Same objective, same per-group LR curve, same losses: batch 48 leaves an uneven last batch."""
    runs = {}
    for devices in (1, 2):
        out = tmp_path / f"d{devices}"
        proc = run_train(
            *TINY,
            "trainer.epochs=3",
            "trainer.batch_size=48",
            f"trainer.devices={devices}",
            f"hydra.run.dir={out}",
            timeout=TIMEOUT,
            env=ENV,
            check=True,
        )
        runs[devices] = (yaml.safe_load((out / "status.yaml").read_text()), scalars(out), proc.stdout + proc.stderr)
    (one, curves1, _), (two, curves2, log2) = runs[1], runs[2]
    assert one["status"] == two["status"] == "complete"
    assert two["value"] == pytest.approx(one["value"], abs=1e-6)
    assert "ranks 1-1 ended: exit codes [0]" in log2
    for tag in ("lr/backbone", "lr/head", "train/loss", "val/loss", "val/acc"):
        steps1, values1 = zip(*curves1[tag])
        steps2, values2 = zip(*curves2[tag])
        assert steps1 == steps2, tag
        assert values2 == pytest.approx(values1, rel=1e-4, abs=1e-6), tag


@pytest.mark.slow
def test_pruning_on_rank_0_stops_both_ranks_at_the_same_epoch(tmp_path):
    run_train(
        "-m",
        "search=lr",
        *TINY,
        "trainer.epochs=3",
        "trainer.devices=2",
        "hydra.sweeper.n_trials=1",
        "hydra.sweeper.plots=false",
        "hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,lower:1.5}",
        "hydra.sweeper.min_complete_trials=0",  # prune the first trial (the presets wait for 3)
        f"hydra.sweep.dir={tmp_path}",
        timeout=TIMEOUT,
        env=ENV,
    )  # exits 1: no trial completed
    [row] = read_trials(tmp_path)
    assert row["state"] == "PRUNED" and "pruned after epoch 1/3" in row["failure_reason"]
    # rank 1 left the loop where rank 0 did: it ended cleanly, not by a failed collective or a kill
    assert "ranks 1-1 ended: exit codes [0]" in job_logs(tmp_path)


@pytest.mark.slow
def test_a_rank_that_raises_fails_the_trial_and_the_sweep_goes_on(tmp_path):
    run_train(
        "-m",
        "search=lr",
        *TINY,
        *CUSTOM,
        "model._target_=distributed_parts.RaisesOnRankOne",
        "trainer.devices=2",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.max_consecutive_failures=2",
        "hydra.sweeper.plots=false",
        f"hydra.sweep.dir={tmp_path}",
        timeout=TIMEOUT,
        env=ENV,
    )
    rows = read_trials(tmp_path)
    assert [r["state"] for r in rows] == ["FAIL", "FAIL"]
    assert all("rank 1: ValueError: boom on rank 1" in r["failure_reason"] for r in rows)
    pids = started_pids(job_logs(tmp_path))
    assert len(pids) == 2 and not any(alive(p) for p in pids)


@pytest.mark.slow
def test_a_rank_that_dies_or_diverges_ends_every_rank(tmp_path):
    died = run_train(
        *TINY,
        *CUSTOM,
        "model._target_=distributed_parts.DiesOnRankOne",
        "trainer.devices=2",
        f"hydra.run.dir={tmp_path / 'died'}",
        timeout=TIMEOUT,
        env=ENV,
    )
    status = yaml.safe_load((tmp_path / "died" / "status.yaml").read_text())
    assert died.returncode != 0 and "rank 1 died (exited with code 7)" in status["reason"]
    assert not any(alive(p) for p in started_pids(died.stdout + died.stderr))
    diverged = run_train(
        *TINY,
        *CUSTOM,
        "model._target_=distributed_parts.DivergesOnRankOne",
        "trainer.devices=2",
        f"hydra.run.dir={tmp_path / 'nan'}",
        timeout=TIMEOUT,
        env=ENV,
    )
    status = yaml.safe_load((tmp_path / "nan" / "status.yaml").read_text())
    assert diverged.returncode == 3 and status["reason"].startswith("diverged at epoch 1/2, update 5/")


@pytest.mark.slow
def test_a_sweep_of_trials_on_two_devices_reaches_n_trials(tmp_path):
    run_train(
        "-m",
        "search=lr",
        *TINY,
        "trainer.devices=2",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.pruner=none",
        "hydra.sweeper.plots=false",
        f"hydra.sweep.dir={tmp_path}",
        timeout=2 * TIMEOUT,
        env=ENV,
        check=True,
    )
    rows = read_trials(tmp_path)
    assert len(rows) == 4 and all(r["state"] == "COMPLETE" for r in rows)


@pytest.mark.slow
def test_a_users_torchrun_loop_reports_once_per_epoch_and_prunes(tmp_path):
    storage = str(tmp_path / "study.journal")
    from sweep.search.storage import open_storage

    study = optuna.create_study(study_name="ddp", storage=open_storage(storage), direction="maximize")
    study.set_user_attr(keys.PRUNER, {"_target_": "optuna.pruners.ThresholdPruner", "upper": 2.9})
    number = study.ask().number
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        str(REPO / "tests" / "apps" / "ddp_loop.py"),
        storage,
        "ddp",
        str(number),
        str(tmp_path),
    ]
    proc = subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, **ENV, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["stopped"] for r in ranks] == [3, 3]
    assert [r["handle"] for r in ranks] == ["LeaderTrial", "FollowerTrial"]
    trial = optuna.load_study(study_name="ddp", storage=open_storage(storage)).trials[number]
    assert trial.intermediate_values == {1: 1.0, 2: 2.0, 3: 3.0}  # rank 0's values only, once per epoch
    assert trial.user_attrs["outcome"]["status"] == "pruned"
