"""One training job: build -> loop -> logs and a metric, ended by one `Outcome`.

`train_job(cfg, trial)` trains, reports each epoch to the trial it is handed, finishes it with one
`Outcome`, writes `status.yaml` from that same outcome, and returns the objective (NaN unless the
run completed, so any Hydra sweeper can drive it).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from omegaconf import DictConfig

from sweep.logs.tensorboard import RunWriter
from sweep.resolvers import direction_of
from sweep.train.build import Built, build
from sweep.train.devices import on_devices
from sweep.train.loop import Result, save_checkpoint, train
from sweep.train.resume import ResumePoint, fingerprint
from sweep.train.runtime import in_multirun, job_dir, task_overrides
from sweep.trial import NoTrial, Outcome, Status, complete, write_status

log = logging.getLogger(__name__)

HPARAM_KEYS = (
    "optimizer.name",
    "optimizer.lr",
    "optimizer.weight_decay",
    "groups.name",
    "groups.head_lr_mult",
    "schedule.name",
    "trainer.epochs",
    "trainer.batch_size",
)


def hparams_of(settings: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """The core settings plus every key the command line or the sweeper set (`settings`: the
    run's resolved config, `Built.settings`)."""
    keys = list(HPARAM_KEYS) + [o.split("=", 1)[0].lstrip("+~") for o in overrides if "=" in o]
    out = {}
    for key in dict.fromkeys(keys):
        if key.startswith(("trial.", "hydra.")):
            continue
        value = lookup(settings, key)
        if isinstance(value, dict):
            value = value.get("name", str(value))
        out[key] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out


def lookup(settings: dict[str, Any], key: str) -> Any:
    """`settings["a"]["b"]` for the dotted key "a.b"; None where a part is missing."""
    node: Any = settings
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def outcome_of(result: Result, value: float) -> Outcome:
    """The one outcome of a run: COMPLETE with its objective, or PRUNED or FAILED with the reason."""
    if result.status == Status.COMPLETE:
        return complete(value, result.epochs)
    return Outcome(result.status, None, result.reason, result.epochs)


def end_of_run_lines(out: str) -> str:
    """Where a single run's outputs went, and how to look at them."""
    return f"outputs: {out}\ntensorboard --logdir {os.path.join(out, 'tensorboard')}"


def open_writer(b: Built, out: str) -> RunWriter:
    """The run's TensorBoard writer (in a sweep, also linked into `<sweep dir>/tensorboard/<number>`)."""
    main = b.task.metrics[0]  # val/acc or val/rmse: TensorBoard's best/<main> curve
    epochs = int(b.settings["trainer"]["epochs"])
    return RunWriter(
        os.path.join(out, "tensorboard"),
        total_updates=b.schedule.steps_per_epoch * epochs,
        objective=main,
        maximize=direction_of(main) == "maximize",
    )


def close_writer(writer: RunWriter, b: Built, trial: NoTrial, status: str) -> None:
    """The run's HPARAMS session, written at its end with its real status: every set and searched
    key (the searched ones marked as varying) and each group's peak LR. A paused run's says pruned,
    which it is unless it resumes (its resumed run then writes its own in its place)."""
    if status == Status.INTERRUPTED.value:  # the resumed run writes it at its real end
        writer.close(last_point=False)
        return
    paused = status == Status.PAUSED.value
    main = b.task.metrics[0]
    peaks = {pg["group"]: pg["base_lr"] * pg["mult"] for pg in b.optimizer.param_groups}
    writer.finish(
        hparams_of(b.settings, task_overrides()),
        Status.PRUNED.value if paused else status,
        searched=[k.lstrip("+~") for k in trial.params],
        peaks=peaks,
        metric_tags=[main, "val/loss", "best/" + main.replace("/", "_")],
        last_point=not paused,
    )


def conclude(b: Built, out: str, outcome: Outcome, updates: int, trial: NoTrial) -> None:
    """The end of a run: `status.yaml`, the checkpoint of a complete run (the model as `b` holds
    it, and the run's resolved config), and the one `finish`."""
    tr, objective = b.settings["trainer"], b.settings["objective"]
    write_status(out, outcome)
    if outcome.status == Status.COMPLETE:
        meta = {"epochs": outcome.epochs, "updates": updates, "config": b.settings}
        save_checkpoint(os.path.join(out, "checkpoint.pt"), b.model, meta)
        if tr.get("save_to"):  # a fixed path (relative to the launch dir) that model.init_from can name
            os.makedirs(os.path.dirname(os.path.abspath(str(tr["save_to"]))), exist_ok=True)
            save_checkpoint(str(tr["save_to"]), b.model, meta)
            log.info("checkpoint saved to %s", tr["save_to"])
        log.info("%s (%s) = %.4f", objective["metric"], objective["reduce"], outcome.value)
    trial.finish(outcome)


def stopped_outcome(err: BaseException, resume: ResumePoint | None) -> Outcome:
    """The outcome of a run ended by an exception: Ctrl-C or an exit leaves it INTERRUPTED (its
    resume.pt kept); any other error FAILED (resume.pt deleted)."""
    if isinstance(err, (KeyboardInterrupt, SystemExit)):
        name = "SIGINT" if isinstance(err, KeyboardInterrupt) else "exit"
        return Outcome(Status.INTERRUPTED, None, f"interrupted: {name}; resumable from its last epoch end")
    if resume is not None:
        resume.discard()
    return Outcome(Status.FAILED, None, f"{type(err).__name__}: {err}".splitlines()[0])


def train_job(cfg: DictConfig, trial: NoTrial | None = None) -> float:
    """Train one model as `cfg` says; finish `trial` with one Outcome and return the objective
    (NaN unless the run completed). An exception (bad input included) finishes it as FAILED and
    goes on up. Without a trial (a library call) the run reports nowhere."""
    trial = trial or NoTrial()
    out, writer, b, status, resume = trial.job_dir or job_dir(), None, None, Status.FAILED.value, None
    try:
        b = build(cfg)
        resume = ResumePoint(out, int(trial.number), fingerprint(b.settings)) if trial.number is not None else None
        data, objective = b.data, b.settings["objective"]
        log.info(
            "device %s, %d train / %d val samples, %d updates per epoch, task %s\n%s",
            b.device,
            data.n_train,
            data.n_val,
            b.schedule.steps_per_epoch,
            b.task.name,
            b.table,
        )
        metric, maximize = str(objective["metric"]), objective["direction"] == "maximize"
        writer = open_writer(b, out)
        with on_devices(b, trial, resume) as (model, handle, ranks):  # trainer.devices: rank 0 here, the others started
            result = train(
                model,
                b.optimizer,
                b.schedule,
                data,
                b.settings["trainer"],
                writer,
                handle,
                metric,
                b.task,
                resume=resume,
                ranks=ranks,
            )
        outcome = outcome_of(result, result.metric(metric, objective["reduce"], maximize))
        status = outcome.status.value
    except BaseException as err:
        outcome = stopped_outcome(err, resume)
        status = outcome.status.value
        write_status(out, outcome)
        trial.finish(outcome)
        raise
    finally:
        if writer is not None and b is not None:  # the writer is opened once the job is built
            close_writer(writer, b, trial, status)
    if resume is not None and outcome.status not in (Status.INTERRUPTED, Status.PAUSED):
        resume.discard()
    conclude(b, out, outcome, result.updates, trial)
    if not in_multirun():
        log.info(end_of_run_lines(out))
    return outcome.objective_or_nan()
