"""A job that trains several trials together (`hydra.sweeper.trials_per_job=K`).

The sweeper hands the job K trial handles, each with its own job config and job dir. Each member
is built exactly as its own sequential job would build it (`sweep.train.build.build`: the same seed, so
the same initial weights and data order), the K are trained as one stacked model
(`sweep.batched.stack.train_members`), and then each member ends as a sequential trial ends: its own
TensorBoard run, `status.yaml`, checkpoint and one `finish(Outcome)`. Members are independent:
one that diverges fails alone, one that is pruned leaves the stack at the next epoch.

A model that vmap cannot train (data-dependent control flow, state kept outside its registered
parameters and buffers; BatchNorm's running statistics are stacked per member and do train), or
members that differ in what cannot be stacked (architecture, data, optimizer kind), fall back to
training the K trials one after another in this job, with a one-line notice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from omegaconf import OmegaConf

from sweep.batched.check import NotBatchable, check_batchable, check_memory
from sweep.batched.member_logs import member, member_logs
from sweep.batched.stack import Decision, Member, train_members
from sweep.train import build, job
from sweep.train.loop import train_batches
from sweep.trial import NoTrial, Outcome, Status

log = logging.getLogger(__name__)

# What all members must share to be one stack: the rest (LRs, multipliers, schedules, weight decay,
# momentum, betas) may differ per member.
SHARED_KEYS = (
    "model",
    "data",
    "task",
    "trainer.epochs",
    "trainer.batch_size",
    "trainer.seed",
    "trainer.device",
    "trainer.precision",
    "trainer.grad_clip",
    "optimizer.name",
    "objective",
)


def _differing(configs: Sequence) -> list[str]:
    first = configs[0]
    return [
        k
        for k in SHARED_KEYS
        if any(OmegaConf.select(c, k, default=None) != OmegaConf.select(first, k, default=None) for c in configs[1:])
    ]


def one_by_one(handles: Sequence[NoTrial], why: str) -> float:
    """The fallback: each trial as its own job, in this process, into its own job dir."""
    log.info(
        "trials_per_job: %s; training these %d trials one after another", why, len(handles), extra={"console": True}
    )  # the sweep's terminal shows it too
    value = float("nan")
    for handle in handles:
        try:
            with member(handle.number):
                value = job.train_job(handle.config, handle)
        except Exception:  # noqa: BLE001 - train_job finished this trial as FAILED; go on with the others
            log.warning("trial %s failed; see %s", handle.number, handle.job_dir, exc_info=True)
    return value


def train_together(handles: Sequence[NoTrial]) -> float:
    """Train the handed-over trials as one stacked model; each finishes with its own outcome, and
    each member's lines (`trial N: ...`) go to its own train.log (`sweep.batched.member_logs`)."""
    with member_logs([h.number for h in handles], [h.job_dir for h in handles]):
        return _train_together(handles)


def _job_dir(handle: NoTrial) -> str:
    """A member's own job dir: the sweeper sets it on every trial it hands over to train together."""
    if handle.job_dir is None:
        raise ValueError(f"trial {handle.number} was handed over without its job dir")
    return handle.job_dir


def _train_together(handles: Sequence[NoTrial]) -> float:
    configs = [h.config for h in handles]
    differing = _differing(configs)
    if differing:
        return one_by_one(handles, f"the trials differ in {', '.join(differing)}")
    built = [build.build(c) for c in configs]
    first = built[0]
    tr, objective = first.settings["trainer"], first.settings["objective"]
    batch = next(iter(train_batches(first.data, int(tr["batch_size"]), first.device, int(tr["seed"]))))
    try:
        check_batchable(first.model, batch, first.task)
    except NotBatchable as err:
        return one_by_one(handles, f"this model cannot be trained as a stack ({err})")
    kind = type(first.optimizer).__name__.lower()
    check_memory(len(handles), first.model, first.device, kind, batch, first.task)
    log.info(
        "training trials %s together (%d members, device %s)",
        ",".join(str(h.number) for h in handles),
        len(handles),
        first.device,
    )
    for b, h in zip(built, handles):
        log.info("%d updates per epoch\n%s", b.schedule.steps_per_epoch, b.table, extra={"trial": h.number})
    epochs = int(tr["epochs"])
    writers = [job.open_writer(b, _job_dir(h)) for b, h in zip(built, handles)]
    metric = str(objective["metric"])
    steps = first.schedule.steps_per_epoch

    def on_epoch_end(k: int, epoch: int, metrics: dict[str, float]) -> Decision:
        writers[k].scalars({**metrics, "epoch": epoch}, epoch * steps)
        shown = "  ".join(f"{name} {value:.4f}" for name, value in metrics.items())
        log.info("epoch %d/%d  %s", epoch, epochs, shown, extra={"trial": handles[k].number})
        handles[k].report(metrics[metric], epoch)
        return Decision.PRUNE if handles[k].should_prune() else Decision.CONTINUE

    try:
        results = train_members(
            [Member(b.model, b.optimizer, b.schedule) for b in built], first.data, tr, first.task, on_epoch_end, metric
        )
    except BaseException as err:
        for b, h, w in zip(built, handles, writers):
            job.close_writer(w, b, h, Status.FAILED.value)
            h.finish(Outcome(Status.FAILED, None, f"{type(err).__name__}: {err}".splitlines()[0]))
        raise
    values = []
    for b, h, w, r in zip(built, handles, writers, results):
        for first_update, curves in r.lr_curves:
            w.lr_curves(first_update, curves)
        outcome = job.outcome_of(r, r.metric(metric, objective["reduce"], objective["direction"] == "maximize"))
        job.close_writer(w, b, h, outcome.status.value)
        if r.state_dict is not None:
            b.model.load_state_dict(r.state_dict)
        with member(h.number):
            if outcome.status != Status.COMPLETE:
                log.info("%s", outcome.reason)
            job.conclude(b, _job_dir(h), outcome, r.updates, h)
        values.append(outcome.objective_or_nan())
    return values[0]
