"""What each run writes to TensorBoard, and under which tags.

One x axis: every scalar's step is the global optimizer-update count, and the epoch is a scalar of
its own (`epoch`), as Lightning does, so `lr/<group>` and `val/acc` line up.

Tags: `lr/<group>`, `train/loss`, `val/loss`, `val/acc`, `epoch`, and `best/val_acc` (the best
objective value so far, `best/<metric with _>`: a curve rather than a lone dot). A custom-scalars layout draws every `lr/*` tag of a
run in one chart (CUSTOM SCALARS tab).

LR curves read right at TensorBoard's default smoothing (0.6). TensorBoard smooths by point index,
not by step: a debiased moving average over the points as written. Sparse, unevenly spaced points
(the knots of the curve) make that average lag by whole epochs and cut the peak. So the LR is
written at evenly spaced updates: every update while the run has at most `max_lr_points` (1000,
TensorBoard's default number of scalar points it keeps per tag; above it, it samples at random),
else every k-th update. At 0.6 the smoothed line then lags by 1.5 points, a fraction of an epoch.
Writing is cheap because it is batched: `lr()` only appends to a list; each `flush()` (once an
epoch) serialises one event per kept update holding every group's value, straight to the event
file, without SummaryWriter's queue thread (about 17 us per update on this machine's CPU against a
0.6 ms update; see bench/job_vs_hand_loop.py).

HPARAMS: the session (start and end time, status, hyperparameters, metrics) is written when the run
ENDS, into a small event file of its own beside the run's (`*.session`; TensorBoard reads every
event file of a run, so the sweep's experiment is built from these without reading any LR curve),
with its real status: complete -> success, failed/diverged -> failure, pruned -> unknown (the
plugin has no "pruned"; the `status` column says which). The experiment that declares the columns
is written once: in the run for a single run, at the sweep root for a sweep (`write_sweep_experiment`),
never in a trial's run, since TensorBoard uses the first experiment it finds. Searched keys are
marked `differs` (TensorBoard lists those columns first); keys set for the whole sweep and derived
values (each group's peak LR, `peak_lr/<group>`) are not.

Layout of a sweep: each trial's run is `<job dir>/tensorboard/` (the job's outputs stay together),
and `<sweep dir>/tensorboard/<trial number>` is a relative symlink to it, next to the experiment:
`tensorboard --logdir <sweep dir>/tensorboard` names the runs 0, 1, 2, ... (TensorBoard's data
server follows links). `--logdir <sweep dir>` works too, but lists each trial twice.
"""

from __future__ import annotations

import glob
import math
import os
import socket
import time
from typing import Any, Iterable, Mapping, Sequence

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.compat.proto.types_pb2 import DT_FLOAT, DT_STRING
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

from sweep.logs.tfrecord import read_records, record

AUTO = "auto"
MAX_LR_POINTS = 1000  # TensorBoard keeps this many points per scalar tag by default
DEFAULT_METRICS = ("val/acc", "val/loss", "train/loss", "best/val_acc")
EXPERIMENT_SUFFIX = ".experiment"
SESSION_SUFFIX = ".session"  # a run's HPARAMS session, in a small file of its own (see RunWriter.finish)
LR_CHART = ("lr", "lr/* (every group)", r"lr/.*")  # custom-scalars category, chart title, tag regex

# The HPARAMS plugin's names, as tensorboard.plugins.hparams.metadata defines them (that module is
# not imported: it imports TensorBoard's TensorFlow stub, see sweep/logs/tfrecord.py).
HPARAMS_PLUGIN, HPARAMS_DATA_VERSION = "hparams", 0
EXPERIMENT_TAG = "_hparams_/experiment"
SESSION_START_INFO_TAG = "_hparams_/session_start_info"
SESSION_END_INFO_TAG = "_hparams_/session_end_info"
NULL_TENSOR = TensorProto(dtype=DT_FLOAT, tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=0)]))

STATUS_TO_TB = {
    "complete": api_pb2.STATUS_SUCCESS, "completed": api_pb2.STATUS_SUCCESS,
    "failed": api_pb2.STATUS_FAILURE, "diverged": api_pb2.STATUS_FAILURE,
    "pruned": api_pb2.STATUS_UNKNOWN, "running": api_pb2.STATUS_RUNNING,
}


# ------------------------------------------------------------------------------------- event file

class EventFile:
    """One TensorBoard event file, written by this process only (no queue, no thread)."""

    def __init__(self, log_dir: str, suffix: str = "") -> None:
        os.makedirs(log_dir, exist_ok=True)
        name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}{suffix}"
        self.path = os.path.join(log_dir, name)
        self._file = open(self.path, "wb")
        self.write(Event(wall_time=time.time(), step=0, file_version="brain.Event:2"))
        self.flush()

    def write(self, event: Event) -> None:
        self._file.write(record(event.SerializeToString()))

    def summary(self, values: Sequence[Summary.Value], step: int, wall_time: float | None = None) -> None:
        self.write(Event(wall_time=time.time() if wall_time is None else wall_time, step=int(step),
                         summary=Summary(value=values)))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def _scalar(tag: str, value: float) -> Summary.Value:
    return Summary.Value(tag=tag, simple_value=float(value))


def _plugin_value(tag: str, plugin: str, content: bytes, tensor: TensorProto | None = None) -> Summary.Value:
    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name=plugin, content=content))
    return Summary.Value(tag=tag, metadata=meta, tensor=tensor or NULL_TENSOR)


def _hparams_value(tag: str, data: plugin_data_pb2.HParamsPluginData) -> Summary.Value:
    data.version = HPARAMS_DATA_VERSION
    return _plugin_value(tag, HPARAMS_PLUGIN, data.SerializeToString())


def lr_layout_value() -> Summary.Value:
    """The custom-scalars layout: all `lr/*` tags of a run in one chart."""
    from tensorboard.plugins.custom_scalar import layout_pb2

    category, title, regex = LR_CHART
    layout = layout_pb2.Layout(category=[layout_pb2.Category(title=category, chart=[
        layout_pb2.Chart(title=title, multiline=layout_pb2.MultilineChartContent(tag=[regex]))])])
    tensor = TensorProto(dtype=DT_STRING, string_val=[layout.SerializeToString()])
    return _plugin_value("custom_scalars__config__", "custom_scalars", b"", tensor)


# ------------------------------------------------------------------------------------- hparams

def hparam_value(value: Any) -> Any | None:
    """A value the HPARAMS tab can show (bool, number, string), or None to leave it out."""
    if value is None:
        return None
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else str(value)
    return str(value)


def _set(proto_value: Any, value: Any) -> None:
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


def experiment(sessions: Sequence[Mapping[str, Any]], searched: Iterable[str] = (),
               metrics: Iterable[str] = DEFAULT_METRICS) -> api_pb2.Experiment:
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


def _write_experiment_file(log_dir: str, exp: api_pb2.Experiment) -> str:
    """A fresh experiment event file in `log_dir`, replacing the one written before (TensorBoard
    keeps the first summary of a tag in a run, so an update must not sit beside the old one)."""
    for old in glob.glob(os.path.join(log_dir, f"events.out.tfevents.*{EXPERIMENT_SUFFIX}")):
        os.remove(old)
    events = EventFile(log_dir, EXPERIMENT_SUFFIX)
    events.summary([_hparams_value(EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=exp)),
                    lr_layout_value()], 0)
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
        paths = sorted(glob.glob(os.path.join(run, f"events.out.tfevents.*{SESSION_SUFFIX}"))) or \
            sorted(glob.glob(os.path.join(run, "events.out.tfevents.*")))
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


def write_sweep_experiment(sweep_dir: str, searched: Iterable[str] = (),
                           sessions: Sequence[Mapping[str, Any]] | None = None,
                           metrics: Iterable[str] = DEFAULT_METRICS) -> str:
    """The experiment at the sweep root (`<sweep dir>/tensorboard/`): the HPARAMS columns of all
    trials, read from the trials' own sessions unless `sessions` gives them. Call at the end of a
    sweep, and again after a resume; `searched` names the swept keys (listed first)."""
    index_dir = os.path.join(sweep_dir, "tensorboard")
    found = run_sessions(index_dir) if sessions is None else list(sessions)
    return _write_experiment_file(index_dir, experiment(found, [*searched, "status"], metrics))


def write_experiment(sweep_dir: str, hparams: Mapping[str, Any], metric_tags: Sequence[str],
                     searched: Iterable[str] = ()) -> str:
    """Older form of write_sweep_experiment: `hparams` adds keys to those the trials' sessions hold."""
    sessions = run_sessions(os.path.join(sweep_dir, "tensorboard")) + [dict(hparams)]
    return write_sweep_experiment(sweep_dir, searched, sessions, metric_tags)


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


# ------------------------------------------------------------------------------------- a run

class RunWriter:
    """One run's TensorBoard events (a trial's, or a single job's).

        w = RunWriter(run_dir, total_updates=epochs * updates_per_epoch, sweep_dir=..., name="6")
        w.lr(t, {"backbone": 0.01, "head": 0.1})            # every update (only buffers)
        w.scalars({"train/loss": ..., "val/loss": ..., "val/acc": ..., "epoch": e}, t)
        w.flush()                                           # once an epoch
        w.finish(hparams, "complete", searched=[...], peaks={...})   # at the end, whatever happened

    `sweep_dir` and `name` (the trial number) put the run into the sweep's index,
    `<sweep dir>/tensorboard/<name>`; by default they are found from the layout
    (`<sweep dir>/<number>/tensorboard` beside Hydra's multirun.yaml); None: a run of its own.
    """

    def __init__(self, log_dir: str, lr_tolerance: float | None = None, *, total_updates: int | None = None,
                 max_lr_points: int = MAX_LR_POINTS, objective: str = "val/acc", maximize: bool = True,
                 sweep_dir: str | None = AUTO, name: str | None = None) -> None:
        self.log_dir = log_dir
        self.events = EventFile(log_dir)
        self.start_time = time.time()
        self.stride = max(1, math.ceil(total_updates / max_lr_points)) if total_updates else 1
        self.objective, self.maximize = objective, maximize
        self.best_tag = "best/" + objective.replace("/", "_")  # val/acc -> best/val_acc
        self.best: float | None = None
        if sweep_dir == AUTO:  # a trial of a sweep, found by the layout Hydra makes
            sweep_dir, name = sweep_of(log_dir) or (None, None)
        self.sweep_dir = sweep_dir
        self._lr: list[tuple[int, float, Mapping[str, float]]] = []
        self._last_lr: tuple[int, float, Mapping[str, float]] | None = None
        self._written_until = -1
        self._last_step = 0
        self._old_hparams: tuple[dict[str, Any], list[str]] | None = None
        self.finished = False
        if sweep_dir is not None and name is not None:
            link_run(os.path.join(sweep_dir, "tensorboard"), name, log_dir)
        else:  # a run of its own: its lr chart layout lives with it
            self.events.summary([lr_layout_value()], 0)

    # -- per update / per epoch ---------------------------------------------------------------
    def lr(self, step: int, lrs: Mapping[str, float]) -> None:
        """Every group's LR at update `step`; kept at evenly spaced updates, written at flush()."""
        point = (int(step), time.time(), lrs)
        self._last_lr = point
        if step % self.stride == 0:
            self._lr.append(point)

    def scalars(self, values: Mapping[str, float | None], step: int) -> None:
        """Scalars at update `step` (the global update count); None and non-finite values are skipped."""
        out = [_scalar(tag, v) for tag, v in values.items() if v is not None and math.isfinite(v)]
        value = values.get(self.objective)
        if value is not None and math.isfinite(value):
            if self.best is None or (value > self.best if self.maximize else value < self.best):
                self.best = float(value)
            out.append(_scalar(self.best_tag, self.best))
        self._write_lr()
        if out:
            self.events.summary(out, step)
        self._last_step = max(self._last_step, int(step))

    def flush(self) -> None:
        self._write_lr()
        self.events.flush()

    def _write_lr(self, final: bool = False) -> None:
        if final and self._last_lr is not None:
            done = self._lr[-1][0] if self._lr else self._written_until
            if self._last_lr[0] > done:
                self._lr.append(self._last_lr)  # the curve's last update, even off the stride
        for step, wall, lrs in self._lr:
            self.events.summary([_scalar(f"lr/{g}", v) for g, v in lrs.items()], step, wall)
            self._written_until = step
        self._lr = []

    # -- the end --------------------------------------------------------------------------------
    def finish(self, hparams: Mapping[str, Any], status: Any, metrics: Mapping[str, float] | None = None,
               searched: Iterable[str] = (), peaks: Mapping[str, float] | None = None,
               metric_tags: Iterable[str] = DEFAULT_METRICS) -> None:
        """Write the HPARAMS session with the run's real status and times, then close.

        `status`: complete | pruned | failed | diverged (a sweep.trial.Status works too);
        `metrics`: final values to add at the last step (e.g. {"objective": 0.93});
        `peaks`: each group's peak LR; `searched`: the swept keys (for a single run's own experiment).
        """
        if self.finished:
            return
        status_text = str(getattr(status, "value", status)).lower()
        self._write_lr(final=True)
        if metrics:
            self.scalars(dict(metrics), self._last_step)
        values = {**clean_hparams(hparams), **peak_lrs(peaks or {}), "status": status_text}
        start = plugin_data_pb2.SessionStartInfo(start_time_secs=self.start_time)
        for key, value in values.items():
            _set(start.hparams[key], value)
        end = plugin_data_pb2.SessionEndInfo(status=STATUS_TO_TB.get(status_text, api_pb2.STATUS_UNKNOWN),
                                             end_time_secs=time.time())
        summaries = [_hparams_value(SESSION_START_INFO_TAG,
                                    plugin_data_pb2.HParamsPluginData(session_start_info=start)),
                     _hparams_value(SESSION_END_INFO_TAG,
                                    plugin_data_pb2.HParamsPluginData(session_end_info=end))]
        if self.sweep_dir is None:  # a run of its own declares its columns itself
            exp = experiment([values], list(searched), metric_tags)
            summaries.insert(0, _hparams_value(EXPERIMENT_TAG,
                                               plugin_data_pb2.HParamsPluginData(experiment=exp)))
        self.events.close()
        # In a file of its own, named after the run's events so TensorBoard reads it last: the sweep's
        # experiment (run_sessions) reads these few bytes, not every LR point of every trial.
        session = EventFile(self.log_dir, SESSION_SUFFIX)
        session.summary(summaries, self._last_step)
        session.close()
        self.finished = True

    def close(self, status: Any = "unknown") -> None:
        """Close; a run that never called finish() but gave hparams() gets a session with `status`."""
        if self.finished:
            return
        if self._old_hparams is not None:
            hparams, tags = self._old_hparams
            self.finish(hparams, status, metric_tags=tags)
            return
        self._write_lr(final=True)
        self.events.close()
        self.finished = True

    # -- the names the loop used before (kept until it calls lr()/finish()) ---------------------
    def lr_curves(self, first_update: int, curves: Mapping[str, Sequence[float]]) -> None:
        """An epoch's per-update LRs, `curves[group][i]` at update `first_update + i`."""
        groups = list(curves)
        for i in range(len(curves[groups[0]]) if groups else 0):
            self.lr(first_update + i, {g: curves[g][i] for g in groups})
        self.flush()

    def hparams(self, hparams: Mapping[str, Any], metric_tags: Sequence[str]) -> None:
        """Remember the hyperparameters; the session is written at close() (its status known then)."""
        self._old_hparams = (dict(hparams), list(metric_tags))
