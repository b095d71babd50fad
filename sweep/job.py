"""One training job: config -> data, task, model, groups, optimizer, schedule -> loop -> logs and a metric.

`build(cfg)` makes every object a run needs (the LR tools and the benchmarks use it too);
`train_job(cfg)` trains, reports to the trial it was handed (`sweep.trial.current_trial`) and
finishes it with one `Outcome`, writes `status.yaml` from that same outcome, and returns the
objective (NaN unless the run completed, so any Hydra sweeper can drive it).
"""

from __future__ import annotations

import logging
import os
import random
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from sweep import config, data as datasets, process, trial as trials
from sweep.errors import ConfigError
from sweep.groups import build_groups, group_table
from sweep.loop import DIVERGED, PRUNED, Result, pick_device, save_checkpoint, train
from sweep.models import build_model, load_backbone
from sweep.optim import build_optimizer
from sweep.schedules import Schedule
from sweep.resolvers import direction_of
from sweep.task import Task, build_task
from sweep.tensorboard import RunWriter
from sweep.trial import Outcome, Status

log = logging.getLogger(__name__)

HPARAM_KEYS = ("optimizer.name", "optimizer.lr", "optimizer.weight_decay", "groups.name",
               "groups.head_lr_mult", "schedule.name", "trainer.epochs", "trainer.batch_size")


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


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


def job_dir() -> str:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.output_dir if HydraConfig.initialized() else os.getcwd()


def task_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def write_status(out: str, outcome: Outcome) -> None:
    """`status.yaml` in the job dir, from the outcome the trial gets: status (complete, pruned,
    failed), reason, epochs, value. Written atomically (a kill mid-write leaves the old one)."""
    import yaml

    path = os.path.join(out, "status.yaml")
    with open(f"{path}.tmp", "w") as f:
        yaml.dump(outcome.to_dict(), f, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False)
    os.replace(f"{path}.tmp", path)


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@dataclass
class Built:
    """Everything a run needs, made from the config (before any training).

    `data` is a `sweep.data.DataSet` (tensors) or `sweep.data.Datasets` (the user's datasets);
    iterate it with `sweep.loop.train_batches(built.data, batch_size, built.device, seed)` and
    compute a batch's loss with `sweep.loop.batch_loss(built.model, batch, built.task, autocast)`.
    `settings` is the run's config resolved into plain dicts, with what the data told filled in:
    what the run reads its settings from, and what its checkpoint records.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    data: datasets.Data
    device: torch.device
    table: str
    task: Task
    settings: dict[str, Any]


def resolved(cfg: DictConfig) -> dict[str, Any]:
    """The whole config as plain dicts, every `${...}` resolved: done once per run, since each read
    of an interpolated DictConfig value parses it again (most of a short trial's config cost)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def data_config(settings: dict[str, Any]) -> dict[str, Any]:
    """The data node, with the task's name (data=csv reads it)."""
    task_cfg = settings.get("task")
    return {**settings["data"], "task": task_cfg.get("name") if task_cfg is not None else None}


def fill_data_info(cfg: DictConfig, settings: dict[str, Any], data: datasets.Data, task: Task) -> bool:
    """Write what the data knows (num_features, num_classes, num_outputs) into `cfg.data`, where the
    user left it null, so the model config's `${data.num_outputs}` and the like resolve. The output
    width is the class count (the user's, where they set one) or 1 for regression. Says whether
    it filled anything in (the config's resolved values are then stale)."""
    known = {"num_features": data.num_features, "num_classes": data.num_classes}
    filled = {k: v for k, v in known.items() if settings["data"].get(k) is None}
    if settings["data"].get("num_outputs") is None:
        filled["num_outputs"] = 1 if task.regression else filled.get("num_classes", settings["data"]["num_classes"])
    with open_dict(cfg.data):
        for key, value in filled.items():
            cfg.data[key] = value
    return bool(filled)


def model_config(cfg: DictConfig, settings: dict[str, Any]) -> dict[str, Any]:
    """The model node resolved; a size it takes from the data that the data does not know (a
    custom dataset without `classes`) is a one-line error saying which key to set."""
    raw = OmegaConf.to_container(cfg.model, resolve=False)
    model = settings["model"]
    for key, value in raw.items():
        if isinstance(value, str) and "${data.num_" in value and model.get(key) is None:
            name = value[value.index("${") + 2:value.index("}")]
            hint = "data.num_classes" if name == "data.num_outputs" else name  # outputs follow the classes
            raise ConfigError(name, None, f"a number for model.{key}; the data does not say, so set {hint}=...")
    return model


def first_update_lr(settings: dict[str, Any], schedule: Schedule) -> float:
    """optimizer.lr times the schedule's factor at the first update: the base LR the group table
    shows (a piecewise list or a warmup starts elsewhere than optimizer.lr)."""
    return float(settings["optimizer"]["lr"]) * schedule.factor(0)


def build(cfg: DictConfig) -> Built:
    """Check the config, then make data, task, model (with its pretrained weights), groups,
    optimizer, schedule. Fills `cfg.data.num_features/num_classes/num_outputs` from the data."""
    settings = resolved(cfg)
    config.validate(settings)
    tr = settings["trainer"]
    seed_everything(int(tr["seed"]), bool(tr["deterministic"]))
    if tr.get("threads"):
        torch.set_num_threads(int(tr["threads"]))
    device = pick_device(tr["device"])
    data = datasets.load(data_config(settings))
    task = build_task(settings.get("task"), lambda: datasets.train_targets(data))
    data_name = settings["data"].get("name")
    if data.kind and data.kind != task.name and data_name != "custom":
        raise ConfigError("task", task.name, f"task={data.kind} for data={data_name}, whose target is "
                          f"{'a class label' if data.kind == 'classification' else 'a number'}")
    if fill_data_info(cfg, settings, data, task):
        settings = resolved(cfg)  # again, whole: any value may read the sizes, directly or through another
    model = build_model(model_config(cfg, settings))
    model.to(device)
    model_cfg = settings["model"]
    if model_cfg.get("init_from"):
        load_backbone(model, str(model_cfg["init_from"]), model_cfg.get("init_prefix"))
    groups_cfg = settings["groups"]
    groups = build_groups(model, groups_cfg)
    decay_norm_bias = bool(groups_cfg.get("decay_norm_bias", False))
    optimizer = build_optimizer(settings["optimizer"], groups, decay_norm_bias)
    process.startup_done()  # the first optimizer imported the last of what runs need (sweep/process.py)
    tr = settings["trainer"]
    schedule = Schedule(settings["schedule"], float(settings["optimizer"]["lr"]),
                        datasets.steps_per_epoch(data, int(tr["batch_size"])), int(tr["epochs"]))
    table = group_table(groups, first_update_lr(settings, schedule),
                        float(settings["optimizer"].get("weight_decay", 0.0)), decay_norm_bias)
    return Built(model, optimizer, schedule, data, device, table, task, settings)


def outcome_of(result: Result, value: float) -> Outcome:
    """The one outcome of a run: COMPLETE with its objective, PRUNED, or FAILED with the reason."""
    if result.status == PRUNED:
        return Outcome(Status.PRUNED, None, result.reason, result.epochs)
    if result.status == DIVERGED:
        return Outcome(Status.FAILED, None, result.reason, result.epochs)
    return trials.complete(value, result.epochs)


def end_of_run_lines(out: str) -> str:
    """Where a single run's outputs went, and how to look at them."""
    return f"outputs: {out}\ntensorboard --logdir {os.path.join(out, 'tensorboard')}"


def open_writer(b: Built, out: str) -> RunWriter:
    """The run's TensorBoard writer (in a sweep, also linked into `<sweep dir>/tensorboard/<number>`)."""
    main = b.task.metrics[0]  # val/acc or val/rmse: TensorBoard's best/<main> curve
    epochs = int(b.settings["trainer"]["epochs"])
    return RunWriter(os.path.join(out, "tensorboard"), total_updates=b.schedule.steps_per_epoch * epochs,
                     objective=main, maximize=direction_of(main) == "maximize")


def close_writer(writer: RunWriter, b: Built, trial: trials.NoTrial, status: str) -> None:
    """The run's HPARAMS session, written at its end with its real status: every set and searched
    key (the searched ones marked as varying) and each group's peak LR."""
    main = b.task.metrics[0]
    peaks = {pg["name"]: pg["base_lr"] * pg["mult"] for pg in b.optimizer.param_groups}
    writer.finish(hparams_of(b.settings, task_overrides()), status, searched=[k.lstrip("+~") for k in trial.params],
                  peaks=peaks, metric_tags=[main, "val/loss", "best/" + main.replace("/", "_")])


def conclude(b: Built, out: str, outcome: Outcome, updates: int, trial: trials.NoTrial) -> None:
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


def train_job(cfg: DictConfig) -> float:
    """Train one model as `cfg` says; finish the trial with one Outcome and return the objective
    (NaN unless the run completed). An exception (bad input included) finishes it as FAILED and
    goes on up. Several trials handed over together train as one stacked model (sweep.batched_job)."""
    handles = trials.current_trials(cfg)
    if len(handles) > 1:
        from sweep.batched_job import train_together

        return train_together(handles)
    trial = handles[0]
    out, writer, b, status = trial.job_dir or job_dir(), None, None, Status.FAILED.value
    try:
        b = build(cfg)
        data, objective = b.data, b.settings["objective"]
        log.info("device %s, %d train / %d val samples, %d updates per epoch, task %s\n%s", b.device,
                 data.n_train, data.n_val, b.schedule.steps_per_epoch, b.task.name, b.table)
        metric, maximize = str(objective["metric"]), objective["direction"] == "maximize"
        writer = open_writer(b, out)
        result = train(b.model, b.optimizer, b.schedule, data, b.settings["trainer"], writer, trial, metric, b.task)
        outcome = outcome_of(result, result.metric(metric, objective["reduce"], maximize))
        status = outcome.status.value
    except BaseException as err:
        outcome = Outcome(Status.FAILED, None, f"{type(err).__name__}: {err}".splitlines()[0])
        write_status(out, outcome)
        trial.finish(outcome)
        raise
    finally:
        if writer is not None:
            close_writer(writer, b, trial, status)
    conclude(b, out, outcome, result.updates, trial)
    if not in_multirun():
        log.info(end_of_run_lines(out))
    return outcome.value if outcome.status == Status.COMPLETE else float("nan")


def run(cfg: DictConfig) -> float:
    """Hydra task: in a single run a bad setting is one line on stderr and exit 2, a diverged run
    exit 3 with the reason; in a sweep the trial's outcome reaches the sweeper (`sweep.trial`)."""
    try:
        mode = cfg.get("mode", "train")
        if mode == "preview":
            from sweep.preview import run_preview as task
        elif mode == "lr_find":
            from sweep.lr_find import run_lr_find as task
        else:  # train; config.validate refuses any other mode
            task = train_job
        value = task(cfg)
    except ConfigError as err:
        if in_multirun():
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if value != value and not in_multirun() and mode == "train":  # NaN: say why in the exit status
        status = OmegaConf.load(os.path.join(job_dir(), "status.yaml"))
        if status.status == Status.PRUNED.value:  # a trial of a sweeper elsewhere stopped it
            log.info("the run was pruned: %s", status.reason)
            return value
        hint = "; try a lower optimizer.lr" if "diverged" in str(status.reason) else ""
        print(f"error: the run failed: {status.reason} (see {job_dir()}/status.yaml){hint}", file=sys.stderr)
        sys.exit(3)
    return value
