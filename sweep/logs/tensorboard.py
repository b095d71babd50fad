"""What each run writes to TensorBoard, and under which tags.

One x axis: every scalar's step is the global optimizer-update count, and the epoch is a scalar of
its own (`epoch`), as Lightning does, so `lr/<group>` and `val/acc` line up.

Tags: `lr/<group>`, `train/loss`, `val/loss`, `val/acc`, `epoch`, and `best/val_acc` (the best
objective value so far, `best/<metric with _>`: a curve rather than a lone dot). A custom-scalars
layout draws every `lr/*` tag of a run in one chart (CUSTOM SCALARS tab).

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

This module is the run's writer; `events.py` holds the event file and the summary values,
`hparams.py` the HPARAMS columns, the sweep's experiment and its run index.
"""

from __future__ import annotations

import glob
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

from sweep.logs.events import (
    EXPERIMENT_TAG,
    SESSION_END_INFO_TAG,
    SESSION_START_INFO_TAG,
    EventFile,
    hparams_value,
    lr_layout_value,
    scalar_value,
)
from sweep.logs.hparams import (
    DEFAULT_METRICS,
    SESSION_SUFFIX,
    STATUS_TO_TB,
    clean_hparams,
    experiment,
    link_run,
    peak_lrs,
    run_sessions,
    set_hparam,
    sweep_of,
    write_sweep_experiment,
)

__all__ = ["RunWriter", "experiment", "link_run", "run_sessions", "sweep_of", "write_sweep_experiment"]

AUTO = "auto"
MAX_LR_POINTS = 1000  # TensorBoard keeps this many points per scalar tag by default


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

    def __init__(
        self,
        log_dir: str,
        *,
        total_updates: int | None = None,
        max_lr_points: int = MAX_LR_POINTS,
        objective: str = "val/acc",
        maximize: bool = True,
        sweep_dir: str | None = AUTO,
        name: str | None = None,
    ) -> None:
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

    def lr_curves(self, first_update: int, curves: Mapping[str, Sequence[float]]) -> None:
        """An epoch's per-update LRs, `curves[group][i]` at update `first_update + i`."""
        groups = list(curves)
        for i in range(len(curves[groups[0]]) if groups else 0):
            self.lr(first_update + i, {g: curves[g][i] for g in groups})
        self.flush()

    def scalars(self, values: Mapping[str, float | None], step: int) -> None:
        """Scalars at update `step` (the global update count); None and non-finite values are skipped."""
        out = [scalar_value(tag, v) for tag, v in values.items() if v is not None and math.isfinite(v)]
        value = values.get(self.objective)
        if value is not None and math.isfinite(value):
            if self.best is None or (value > self.best if self.maximize else value < self.best):
                self.best = float(value)
            out.append(scalar_value(self.best_tag, self.best))
        self._write_lr()
        if out:
            self.events.summary(out, step)
        self._last_step = max(self._last_step, int(step))

    def flush(self) -> None:
        self._write_lr()
        self.events.flush()

    def resume_at(self, step: int, history: Sequence[Mapping[str, float]]) -> None:
        """Continue a resumed run at update `step`, after the epochs in `history`: points the
        interrupted run wrote from `step` on are dropped (a purge marker), the last epoch's scalars
        written again at `step`, and `best/...` goes on from the history's best."""
        self.events.restart_at(step)
        for old in glob.glob(os.path.join(self.log_dir, f"events.out.tfevents.*{SESSION_SUFFIX}")):
            os.remove(old)  # a paused run's session; this run writes its own at its end
        for h in history[:-1]:
            value = h.get(self.objective)
            if (
                value is not None
                and math.isfinite(value)
                and (self.best is None or (value > self.best if self.maximize else value < self.best))
            ):
                self.best = float(value)
        if history:
            self.scalars({**history[-1], "epoch": len(history)}, step)
        self._last_step = max(self._last_step, int(step))

    def _write_lr(self, final: bool = False) -> None:
        if final and self._last_lr is not None:
            done = self._lr[-1][0] if self._lr else self._written_until
            if self._last_lr[0] > done:
                self._lr.append(self._last_lr)  # the curve's last update, even off the stride
        for step, wall, lrs in self._lr:
            self.events.summary([scalar_value(f"lr/{g}", v) for g, v in lrs.items()], step, wall)
            self._written_until = step
        self._lr = []

    # -- the end --------------------------------------------------------------------------------
    def finish(
        self,
        hparams: Mapping[str, Any],
        status: Any,
        metrics: Mapping[str, float] | None = None,
        searched: Iterable[str] = (),
        peaks: Mapping[str, float] | None = None,
        metric_tags: Iterable[str] = DEFAULT_METRICS,
        last_point: bool = True,
    ) -> None:
        """Write the HPARAMS session with the run's real status and times, then close (`last_point`
        False: a paused run, whose resumed run goes on from here, keeps its LR curve on the stride).

        `status`: complete | pruned | failed | diverged (a sweep.trial.Status works too);
        `metrics`: final values to add at the last step (e.g. {"objective": 0.93});
        `peaks`: each group's peak LR; `searched`: the swept keys (for a single run's own experiment).
        """
        if self.finished:
            return
        status_text = str(getattr(status, "value", status)).lower()
        self._write_lr(final=last_point)
        if metrics:
            self.scalars(dict(metrics), self._last_step)
        values = {**clean_hparams(hparams), **peak_lrs(peaks or {}), "status": status_text}
        start = plugin_data_pb2.SessionStartInfo(start_time_secs=self.start_time)
        for key, value in values.items():
            set_hparam(start.hparams[key], value)
        end = plugin_data_pb2.SessionEndInfo(
            status=STATUS_TO_TB.get(status_text, api_pb2.STATUS_UNKNOWN), end_time_secs=time.time()
        )
        summaries = [
            hparams_value(SESSION_START_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_start_info=start)),
            hparams_value(SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=end)),
        ]
        if self.sweep_dir is None:  # a run of its own declares its columns itself
            exp = experiment([values], list(searched), metric_tags)
            summaries.insert(0, hparams_value(EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=exp)))
        self.events.close()
        # In a file of its own, named after the run's events so TensorBoard reads it last: the sweep's
        # experiment (run_sessions) reads these few bytes, not every LR point of every trial.
        session = EventFile(self.log_dir, SESSION_SUFFIX)
        session.summary(summaries, self._last_step)
        session.close()
        self.finished = True

    def close(self, last_point: bool = True) -> None:
        """Close without an HPARAMS session (a run that is not a trial: a benchmark, a test; or an
        interrupted trial, `last_point=False`: its resumed run goes on from its last epoch end)."""
        if self.finished:
            return
        self._write_lr(final=last_point)
        self.events.close()
        self.finished = True
