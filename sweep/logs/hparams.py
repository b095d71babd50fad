"""The HPARAMS tab: values it can show, the experiment that declares its columns, and the sweep's
experiment, built from the trials' own session files; plus the sweep's run index
(`<sweep dir>/tensorboard/<trial number>` links) that TensorBoard names the runs by."""

from __future__ import annotations

import glob
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

from sweep.logs.events import EXPERIMENT_TAG, SESSION_START_INFO_TAG, EventFile, hparams_value, lr_layout_value
from sweep.logs.tfrecord import read_records

DEFAULT_METRICS = ("val/acc", "val/loss", "train/loss", "best/val_acc")
EXPERIMENT_SUFFIX = ".experiment"
SESSION_SUFFIX = ".session"  # a run's HPARAMS session, in a small file of its own (see RunWriter.finish)

STATUS_TO_TB = {
    "complete": api_pb2.STATUS_SUCCESS,
    "completed": api_pb2.STATUS_SUCCESS,
    "failed": api_pb2.STATUS_FAILURE,
    "diverged": api_pb2.STATUS_FAILURE,
    "pruned": api_pb2.STATUS_UNKNOWN,
    "running": api_pb2.STATUS_RUNNING,
}


def hparam_value(value: Any) -> Any | None:
    """A value the HPARAMS tab can show (bool, number, string), or None to leave it out."""
    if value is None:
        return None
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else str(value)
    return str(value)


def set_hparam(proto_value: Any, value: Any) -> None:
    if isinstance(value, bool):
        proto_value.bool_value = value
    elif isinstance(value, (int, float)):
        proto_value.number_value = float(value)
    else:
        proto_value.string_value = str(value)


def clean_hparams(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """Values the HPARAMS tab can show; unset ones (None, 'None') are left out, not shown as 'None'."""
    out = {}
    for key, value in hparams.items():
        v = hparam_value(value)
        if v is not None and v != "None":
            out[key] = v
    return out


def peak_lrs(peaks: Mapping[str, float]) -> dict[str, float]:
    """Each group's peak LR as an HPARAMS column."""
    return {f"peak_lr/{group}": float(lr) for group, lr in peaks.items()}


DERIVED = ("peak_lr/", "status")  # columns computed from others, never searched themselves


def experiment(
    sessions: Sequence[Mapping[str, Any]], searched: Iterable[str] = (), metrics: Iterable[str] = DEFAULT_METRICS
) -> api_pb2.Experiment:
    """The HPARAMS columns: every key of any session, typed by its values; searched keys first
    (marked `differs`, which TensorBoard sorts first), then the rest by name. Without `searched`,
    the keys whose values differ between sessions count as searched (derived columns excepted)."""
    searched = [k for k in dict.fromkeys(searched)]
    values: dict[str, list[Any]] = {}
    for session in sessions:
        for key, value in clean_hparams(session).items():
            values.setdefault(key, []).append(value)
    if not [k for k in searched if not k.startswith(DERIVED)]:
        varying = sorted(k for k, v in values.items() if len({str(x) for x in v}) > 1 and not k.startswith(DERIVED))
        searched = varying + searched
    infos = []
    for key in searched + sorted(k for k in values if k not in searched):
        seen = values.get(key, [])
        info = api_pb2.HParamInfo(name=key, differs=key in searched)
        if seen and all(isinstance(v, bool) for v in seen):
            info.type = api_pb2.DATA_TYPE_BOOL
            info.domain_discrete.extend(sorted(set(seen)))
        elif seen and all(isinstance(v, float) and not isinstance(v, bool) for v in seen):
            info.type = api_pb2.DATA_TYPE_FLOAT64
            info.domain_interval.min_value, info.domain_interval.max_value = min(seen), max(seen)
        else:
            info.type = api_pb2.DATA_TYPE_STRING
            info.domain_discrete.extend(sorted({str(v) for v in seen}))
        infos.append(info)
    metric_infos = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=t)) for t in dict.fromkeys(metrics)]
    return api_pb2.Experiment(hparam_infos=infos, metric_infos=metric_infos, time_created_secs=time.time())


def write_experiment_file(log_dir: str, exp: api_pb2.Experiment) -> str:
    """A fresh experiment event file in `log_dir`, replacing the one written before (TensorBoard
    keeps the first summary of a tag in a run, so an update must not sit beside the old one)."""
    for old in glob.glob(os.path.join(log_dir, f"events.out.tfevents.*{EXPERIMENT_SUFFIX}")):
        os.remove(old)
    events = EventFile(log_dir, EXPERIMENT_SUFFIX)
    events.summary(
        [hparams_value(EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=exp)), lr_layout_value()], 0
    )
    events.close()
    return events.path


def sweep_of(log_dir: str) -> tuple[str, str] | None:
    """(sweep dir, trial number) when `log_dir` is `<sweep dir>/<number>/tensorboard` of a Hydra
    multirun (Hydra writes multirun.yaml into the sweep dir), else None."""
    job = os.path.dirname(os.path.abspath(log_dir))
    sweep_dir, name = os.path.dirname(job), os.path.basename(job)
    if name.isdigit() and os.path.isfile(os.path.join(sweep_dir, "multirun.yaml")):
        return sweep_dir, name
    return None


def run_sessions(index_dir: str) -> list[dict[str, Any]]:
    """The hyperparameters of every finished run under `index_dir` (as their sessions recorded them):
    read from each run's small session file, or from all its events where it has none."""
    sessions = []
    for entry in sorted(os.listdir(index_dir)) if os.path.isdir(index_dir) else []:
        run = os.path.join(index_dir, entry)
        if not os.path.isdir(run):
            continue
        paths = sorted(glob.glob(os.path.join(run, f"events.out.tfevents.*{SESSION_SUFFIX}"))) or sorted(
            glob.glob(os.path.join(run, "events.out.tfevents.*"))
        )
        for path in paths:
            for data in read_records(path):
                for value in Event.FromString(data).summary.value:
                    if value.tag != SESSION_START_INFO_TAG:
                        continue
                    plugin_data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                    info = plugin_data.session_start_info
                    sessions.append({k: _unpack(v) for k, v in info.hparams.items()})
    return sessions


def _unpack(value: Any) -> Any:
    kind = value.WhichOneof("kind")
    return {"bool_value": value.bool_value, "number_value": value.number_value}.get(kind, value.string_value)


def write_sweep_experiment(
    sweep_dir: str,
    searched: Iterable[str] = (),
    sessions: Sequence[Mapping[str, Any]] | None = None,
    metrics: Iterable[str] = DEFAULT_METRICS,
) -> str:
    """The experiment at the sweep root (`<sweep dir>/tensorboard/`): the HPARAMS columns of all
    trials, read from the trials' own sessions unless `sessions` gives them. Call at the end of a
    sweep, and again after a resume; `searched` names the swept keys (listed first)."""
    index_dir = os.path.join(sweep_dir, "tensorboard")
    found = run_sessions(index_dir) if sessions is None else list(sessions)
    return write_experiment_file(index_dir, experiment(found, [*searched, "status"], metrics))


def link_run(index_dir: str, name: str, run_dir: str) -> str:
    """`<index_dir>/<name>` -> run_dir (relative), so TensorBoard names the run `name`."""
    os.makedirs(index_dir, exist_ok=True)
    link = os.path.join(index_dir, str(name))
    target = os.path.relpath(os.path.abspath(run_dir), os.path.abspath(index_dir))
    if os.path.islink(link):
        if os.readlink(link) == target:
            return link
        os.remove(link)
    if not os.path.exists(link):
        os.symlink(target, link, target_is_directory=True)
    return link
