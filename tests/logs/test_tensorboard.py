"""What a run writes to TensorBoard: one x axis, LR curves that survive the default smoothing,
HPARAMS sessions written at the end with the real status, and runs named by trial number."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import yaml
from conftest import REPO
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

from sweep.logs.tensorboard import RunWriter, experiment, run_sessions, write_sweep_experiment
from sweep.lr.schedule import Schedule

SESSION_START, SESSION_END, EXPERIMENT = (
    "_hparams_/session_start_info",
    "_hparams_/session_end_info",
    "_hparams_/experiment",
)


def load(path) -> EventAccumulator:
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def hparams_content(acc: EventAccumulator) -> dict[str, plugin_data_pb2.HParamsPluginData]:
    try:
        content = acc.PluginTagToContent("hparams")
    except KeyError:  # no hparams summary in this run
        content = {}
    return {tag: plugin_data_pb2.HParamsPluginData.FromString(c) for tag, c in content.items()}


def tb_smooth(values, weight: float = 0.6) -> np.ndarray:
    """TensorBoard's scalar smoothing: a debiased moving average over the points, by index."""
    v = np.asarray(values, float)
    if np.all(v == v[0]):
        return v
    out, last = [], 0.0
    for n, x in enumerate(v, 1):
        last = last * weight + (1 - weight) * x
        out.append(last / (1 - weight**n))
    return np.array(out)


def schedule_spec(name: str, warmup: float) -> dict:
    spec = yaml.safe_load((REPO / "conf/schedule/_base.yaml").read_text())
    spec.update(
        {k: v for k, v in yaml.safe_load((REPO / f"conf/schedule/{name}.yaml").read_text()).items() if k != "defaults"}
    )
    spec["warmup_epochs"] = warmup
    return spec


SCHEDULES = sorted(
    os.path.basename(p)[:-5]
    for p in glob.glob(str(REPO / "conf/schedule/*.yaml"))
    if not os.path.basename(p).startswith("_")
)


def run_schedule(tmp_path, name: str, warmup: float, spe: int, epochs: int):
    """Write a two-group run of the schedule as the loop does; return (true head curve, written points)."""
    schedule = Schedule(schedule_spec(name, warmup), 0.1, spe, epochs)
    writer = RunWriter(str(tmp_path / "run"), total_updates=spe * epochs)
    true = []
    for epoch in range(epochs):
        for i in range(spe):
            t = epoch * spe + i
            f = schedule.factor(t)
            true.append(1.0 * f)
            writer.lr(t, {"backbone": 0.1 * f, "head": 1.0 * f})
        writer.scalars({"val/loss": 1.0, "epoch": epoch + 1}, (epoch + 1) * spe)
        schedule.end_of_epoch(1.0)  # a stalled metric: plateau reduces
        writer.flush()
    writer.finish({}, "complete")
    points = [(e.step, e.value) for e in load(tmp_path / "run").Scalars("lr/head")]
    return np.array(true), points


@pytest.mark.parametrize("warmup", [0, 2])
@pytest.mark.parametrize("name", SCHEDULES)
def test_lr_curves_read_right_at_the_default_smoothing(tmp_path, name, warmup):
    true, points = run_schedule(tmp_path, name, warmup, spe=23, epochs=12)
    steps = [s for s, _ in points]
    assert steps == list(range(len(true)))  # every update while the run is short: evenly spaced
    smooth = tb_smooth([v for _, v in points])
    peak, lag = true.max(), 8  # updates (a third of an epoch here)
    low = np.array([true[max(0, i - lag) : i + 1].min() for i in range(len(true))])
    high = np.array([true[max(0, i - lag) : i + 1].max() for i in range(len(true))])
    # the smoothed line stays within the true curve's range over the last `lag` updates
    assert np.maximum(low - smooth, smooth - high).max() <= 0.01 * peak
    assert smooth.max() >= 0.95 * peak  # and reaches the peak


def test_long_runs_keep_evenly_spaced_points_under_the_limit(tmp_path):
    true, points = run_schedule(tmp_path, "step", 1, spe=100, epochs=30)
    steps = np.array([s for s, _ in points])
    assert len(steps) <= 1001 and len(steps) >= 900
    assert set(np.diff(steps[:-1])) == {3}  # every 3rd update,
    assert steps[-1] == len(true) - 1  # and the run's last update
    smooth = tb_smooth([v for _, v in points])
    lag = 8 * 3
    low = np.array([true[max(0, s - lag) : s + 1].min() for s in steps])
    high = np.array([true[max(0, s - lag) : s + 1].max() for s in steps])
    assert np.maximum(low - smooth, smooth - high).max() <= 0.01 * true.max()


def test_one_x_axis_and_epoch_as_a_scalar(tmp_path):
    w = RunWriter(str(tmp_path / "run"), total_updates=20)
    for t in range(20):
        w.lr(t, {"all": 0.1})
        if t % 10 == 9:
            w.scalars(
                {"train/loss": 1.0, "val/acc": 0.5 + t / 100, "val/loss": float("nan"), "epoch": (t + 1) // 10}, t + 1
            )
    w.finish({"optimizer.lr": 0.1}, "complete")
    acc = load(tmp_path / "run")
    assert [e.step for e in acc.Scalars("val/acc")] == [10, 20]
    assert [(e.step, e.value) for e in acc.Scalars("epoch")] == [(10, 1.0), (20, 2.0)]
    assert [e.step for e in acc.Scalars("lr/all")] == list(range(20))
    assert "val/loss" not in acc.Tags()["scalars"]  # NaN is not written
    assert [e.value for e in acc.Scalars("best/val_acc")] == pytest.approx([0.59, 0.69])  # a curve


@pytest.mark.parametrize(
    "status, expected",
    [
        ("complete", api_pb2.STATUS_SUCCESS),
        ("pruned", api_pb2.STATUS_UNKNOWN),
        ("failed", api_pb2.STATUS_FAILURE),
        ("diverged", api_pb2.STATUS_FAILURE),
    ],
)
def test_session_is_written_at_the_end_with_the_real_status_and_times(tmp_path, status, expected):
    w = RunWriter(str(tmp_path / "run"))
    w.lr(0, {"all": 0.1})
    w.scalars({"val/acc": 0.5}, 1)
    w.flush()
    assert SESSION_START not in hparams_content(load(tmp_path / "run"))  # nothing claimed before the end
    w.finish(
        {"optimizer.lr": 0.1, "search": None, "schedule.name": "step", "model.hidden": [8, 8]},
        status,
        peaks={"backbone": 0.1, "head": 1.0},
    )
    content = hparams_content(load(tmp_path / "run"))
    start, end = content[SESSION_START].session_start_info, content[SESSION_END].session_end_info
    assert end.status == expected
    assert 0 < start.start_time_secs <= end.end_time_secs
    hp = start.hparams
    assert hp["status"].string_value == status
    assert hp["optimizer.lr"].number_value == pytest.approx(0.1)
    assert hp["peak_lr/head"].number_value == pytest.approx(1.0)
    assert hp["model.hidden"].string_value == "[8, 8]"
    assert "search" not in hp  # no 'None' column


def test_a_single_run_declares_its_own_columns_and_lr_chart(tmp_path):
    w = RunWriter(str(tmp_path / "run"))
    w.finish({"optimizer.lr": 0.1, "trainer.epochs": 3}, "complete", searched=["optimizer.lr"])
    acc = load(tmp_path / "run")
    exp = hparams_content(acc)[EXPERIMENT].experiment
    assert [(i.name, i.differs) for i in exp.hparam_infos] == [  # searched first; one run: nothing varies
        ("optimizer.lr", True),
        ("status", False),
        ("trainer.epochs", False),
    ]
    assert acc.PluginTagToContent("custom_scalars")
    assert os.listdir(tmp_path / "run") and all(
        p.startswith("events.out.tfevents") for p in os.listdir(tmp_path / "run")
    )


def test_an_epochs_lr_curves_at_once_and_close_without_a_session(tmp_path):
    w = RunWriter(str(tmp_path / "run"))
    w.lr_curves(0, {"backbone": [0.01] * 5, "head": [0.1] * 5})
    w.scalars({"val/acc": 0.5}, 0)
    w.close()
    w.close()  # twice is harmless
    acc = load(tmp_path / "run")
    assert [e.step for e in acc.Scalars("lr/head")] == [0, 1, 2, 3, 4]
    assert SESSION_END not in hparams_content(acc)


def sweep_of_three(sweep_dir):
    for number, (lr, status) in enumerate([(0.1, "complete"), (0.3, "pruned"), (5.0, "diverged")]):
        w = RunWriter(str(sweep_dir / str(number) / "tensorboard"), sweep_dir=str(sweep_dir), name=str(number))
        w.lr(0, {"backbone": lr, "head": 10 * lr})
        w.scalars({"val/acc": 0.5}, 1)
        w.finish(
            {"optimizer.lr": lr, "groups.head_lr_mult": 10.0, "trainer.epochs": 4},
            status,
            peaks={"backbone": lr, "head": 10 * lr},
        )
    return write_sweep_experiment(str(sweep_dir), ["optimizer.lr"])


def test_sweep_runs_are_named_by_trial_number_and_share_one_experiment(tmp_path):
    sweep_dir = tmp_path / "sweep"
    sweep_of_three(sweep_dir)
    index = sweep_dir / "tensorboard"
    assert sorted(p for p in os.listdir(index) if not p.startswith("events")) == ["0", "1", "2"]
    assert os.readlink(index / "1") == os.path.join("..", "1", "tensorboard")  # relative: the dir can move
    for n in "012":  # the experiment is declared once, at the root, never in a trial's run
        assert EXPERIMENT not in hparams_content(load(index / n))
    exp = hparams_content(load(index))[EXPERIMENT].experiment
    infos = {i.name: i for i in exp.hparam_infos}
    names = [i.name for i in exp.hparam_infos]
    assert names[:2] == ["optimizer.lr", "status"]  # searched first
    assert infos["optimizer.lr"].differs and infos["status"].differs
    assert not infos["groups.head_lr_mult"].differs and not infos["trainer.epochs"].differs
    assert {"peak_lr/backbone", "peak_lr/head"} <= set(names)
    assert infos["optimizer.lr"].domain_interval.max_value == pytest.approx(5.0)
    assert set(infos["status"].domain_discrete.values[i].string_value for i in range(3)) == {
        "complete",
        "pruned",
        "diverged",
    }
    assert {m.name.tag for m in exp.metric_infos} >= {"val/acc", "val/loss"}


def test_a_resumed_sweep_replaces_its_experiment(tmp_path):
    sweep_dir = tmp_path / "sweep"
    first = sweep_of_three(sweep_dir)
    second = write_sweep_experiment(str(sweep_dir), ["optimizer.lr", "groups.head_lr_mult"])
    experiments = glob.glob(str(sweep_dir / "tensorboard" / "events.out.tfevents.*"))
    assert experiments == [second] and first != second
    exp = hparams_content(load(sweep_dir / "tensorboard"))[EXPERIMENT].experiment
    assert [i.name for i in exp.hparam_infos][:3] == ["optimizer.lr", "groups.head_lr_mult", "status"]


def test_sessions_are_read_back_from_the_runs(tmp_path):
    sweep_of_three(tmp_path / "sweep")
    sessions = run_sessions(str(tmp_path / "sweep" / "tensorboard"))
    assert sorted(s["status"] for s in sessions) == ["complete", "diverged", "pruned"]
    assert experiment(sessions, ["optimizer.lr"]).hparam_infos[0].differs


def test_the_session_sits_in_a_small_file_that_sessions_are_read_from(tmp_path):
    """The end of a sweep reads every run's session: from a file of a few hundred bytes, not the
    run's LR curves (a 20-epoch trial writes hundreds of events)."""
    run = tmp_path / "run"
    w = RunWriter(str(run))
    for t in range(500):
        w.lr(t, {"backbone": 0.01, "head": 0.1})
    w.flush()
    w.finish({"optimizer.lr": 0.01}, "complete")
    files = sorted(os.listdir(run))
    assert len(files) == 2 and files[1].endswith(".session")  # sorts last: TensorBoard reads it after the curves
    assert os.path.getsize(run / files[1]) < os.path.getsize(run / files[0]) / 10
    assert SESSION_START in hparams_content(load(run))  # TensorBoard sees it as the run's session
    os.remove(run / files[0])  # the curves gone: the session alone is what run_sessions reads
    (tmp_path / "index").mkdir()
    os.symlink(run, tmp_path / "index" / "0")
    assert run_sessions(str(tmp_path / "index")) == [{"optimizer.lr": 0.01, "status": "complete"}]


@pytest.mark.slow
def test_tensorboard_itself_names_runs_by_number_and_reads_the_status(tmp_path):
    """The real server (its data server follows the links): run names and the HPARAMS sessions."""
    import json
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    sweep_of_three(tmp_path / "sweep")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tb = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    proc = subprocess.Popen(
        [tb, "--logdir", str(tmp_path / "sweep" / "tensorboard"), "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def get(path, body=None):
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}",
                method="POST" if body else "GET",
                data=json.dumps(body).encode() if body else None,
                headers={"Content-Type": "application/json"},
            )
            return json.loads(urllib.request.urlopen(req, timeout=10).read())

        for _ in range(60):
            try:
                runs = get("/data/runs")
                if len(runs) >= 4:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert sorted(runs) == [".", "0", "1", "2"]
        groups = get(
            "/data/plugin/hparams/session_groups",
            {
                "experimentName": "",
                "startIndex": 0,
                "sliceSize": 10,
                "colParams": [],
                "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
            },
        )
        status = {g["name"]: g["sessions"][0]["status"] for g in groups["sessionGroups"]}
        assert status == {"0": "STATUS_SUCCESS", "1": "STATUS_UNKNOWN", "2": "STATUS_FAILURE"}
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_trial_run_finds_its_sweep_from_hydras_layout(tmp_path):
    sweep_dir = tmp_path / "sweep"
    (sweep_dir / "7").mkdir(parents=True)
    (sweep_dir / "multirun.yaml").write_text("{}")
    w = RunWriter(str(sweep_dir / "7" / "tensorboard"))
    w.finish({"optimizer.lr": 0.1}, "complete")
    assert os.readlink(sweep_dir / "tensorboard" / "7") == os.path.join("..", "7", "tensorboard")
    assert EXPERIMENT not in hparams_content(load(sweep_dir / "7" / "tensorboard"))
    lone = RunWriter(str(tmp_path / "outputs" / "12-00-00" / "tensorboard"))  # a single run: no multirun.yaml
    lone.finish({"optimizer.lr": 0.1}, "complete")
    assert not (tmp_path / "outputs" / "tensorboard").exists()
    assert EXPERIMENT in hparams_content(load(tmp_path / "outputs" / "12-00-00" / "tensorboard"))


def test_without_searched_keys_the_varying_ones_come_first():
    sessions = [
        {"optimizer.lr": lr, "trainer.epochs": 4, "peak_lr/head": 10 * lr, "search": "None"} for lr in (0.1, 0.2)
    ]
    infos = experiment(sessions).hparam_infos
    assert [(i.name, i.differs) for i in infos] == [
        ("optimizer.lr", True),
        ("peak_lr/head", False),
        ("trainer.epochs", False),
    ]  # no 'None' column


def test_records_and_hparams_names_match_tensorboards_own():
    """The event-file format and the HPARAMS names are written without TensorBoard's TensorFlow stub
    (a quarter second of start-up): they must equal what TensorBoard's own modules produce."""
    import random

    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as tb_masked_crc32c
    from tensorboard.plugins.hparams import metadata

    from sweep.logs import events as ours  # the record and HPARAMS names live in sweep/logs/events.py
    from sweep.logs.tfrecord import masked_crc32c

    rng = random.Random(0)
    for n in (0, 1, 7, 8, 64, 1000):
        data = bytes(rng.randrange(256) for _ in range(n))
        assert masked_crc32c(data) == tb_masked_crc32c(data)
    assert (ours.HPARAMS_PLUGIN, ours.HPARAMS_DATA_VERSION) == (metadata.PLUGIN_NAME, metadata.PLUGIN_DATA_VERSION)
    assert (ours.EXPERIMENT_TAG, ours.SESSION_START_INFO_TAG, ours.SESSION_END_INFO_TAG) == (
        metadata.EXPERIMENT_TAG,
        metadata.SESSION_START_INFO_TAG,
        metadata.SESSION_END_INFO_TAG,
    )
    assert ours.NULL_TENSOR.SerializeToString() == metadata.NULL_TENSOR.SerializeToString()


def test_reading_stops_at_a_record_cut_short_or_corrupt(tmp_path):
    from sweep.logs.tfrecord import read_records, record

    path = tmp_path / "events"
    path.write_bytes(record(b"first") + record(b"second") + record(b"third")[:-3])  # the last one cut short
    assert list(read_records(str(path))) == [b"first", b"second"]
    damaged = bytearray(record(b"first") + record(b"second"))
    damaged[-6] ^= 0xFF  # a flipped byte in the second record's data
    path.write_bytes(bytes(damaged))
    assert list(read_records(str(path))) == [b"first"]
