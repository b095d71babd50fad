"""One run on several processes: what each rank does inside the loop so that all ranks agree.

Rank 0 owns the trial (it reports, asks the pruner, writes every file); the other ranks train the
same model on their share of each batch. Nothing is decided on one rank alone: every value that
ends the loop is the result of a collective every rank joins at the same point, so all ranks leave
at the same update and none waits for a peer that has left (the hang Optuna's and Ray's trackers
report when pruning raises on one rank only).

- Batches: `trainer.batch_size` is the GLOBAL batch. Each epoch's order is the one-process run's
  (the same seeded permutation on every rank); each global batch is split across the ranks, rank r
  taking its samples r, r+N, r+2N, ... So each sample is seen once per epoch, every rank runs the
  same number of updates, and the LR that suits a batch size does not change with `trainer.devices`.
- Loss: each rank's batch loss is weighted by its share of the global batch (times N, since DDP
  averages gradients), so the gradient is the one-process gradient, a last batch that does not
  split evenly included. A rank whose share of a batch is empty trains on one sample with weight 0.
- Losses: at each sync point (`trainer.sync_every` updates, each epoch's end) the window of
  per-update losses is summed over the ranks in ONE all-reduce, which also carries each rank's
  stop request (`sweep.train.resume`): `train/loss` is the one-process value, and a non-finite loss
  on any rank is seen by all of them at the same update.
- Validation: each rank evaluates a disjoint part of the validation set; loss sums, score sums and
  counts are summed over the ranks, so the objective is the one-process value (to float rounding).
- Decisions: `agree(prune)` (what `LeaderTrial`/`FollowerTrial.should_prune()` call) is one small
  all-reduce carrying rank 0's pruning decision and every rank's stop request.

`Ranks.current()` works in any process group (a user's torchrun- or srun-started loop included);
`sweep.train.devices` starts the processes of train.py's own runs. A one-process run uses
`ONE_PROCESS`, which does what the loop did before, with no collective.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Subset

from sweep.train import data as datasets
from sweep.train import resume
from sweep.train.data import Batches, DeviceLoader, TensorData, TrainValData
from sweep.train.task import Task, call_model

STOP_NAMES = (*resume.STOP_SIGNALS, "a stop request")  # one slot each in the collectives


def collective_device() -> torch.device:
    """Where this process group's collectives take their tensors: the current GPU for NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _stop_slots(device: torch.device) -> torch.Tensor:
    """This rank's stop request, one slot per signal name (all zero without one)."""
    slots = torch.zeros(len(STOP_NAMES), device=device)
    name = resume.stop_requested()
    if name is not None:
        slots[STOP_NAMES.index(name) if name in STOP_NAMES else -1] = 1
    return slots


def _adopt_stop(slots: list[float]) -> str | None:
    """A stop requested on any rank is requested on this one too; the name, or None."""
    for name, count in zip(STOP_NAMES, slots):
        if count > 0:
            resume.request_stop(name)
            return name
    return None


def agree(prune: bool) -> bool:
    """Rank 0's pruning decision on every rank (other ranks pass False); any rank's stop request
    becomes every rank's. One all-reduce; every rank calls it at the same point. Without a process
    group (or in a group of one) it is `prune` as is."""
    return _agree(prune)[0]


def _agree(prune: bool) -> tuple[bool, str | None]:
    """`agree`, and the stop request every rank now shares (None without one)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return prune, resume.stop_requested()  # no group to agree with: nothing to wait for
    device = collective_device()
    flags = torch.cat([torch.tensor([float(prune and dist.get_rank() == 0)], device=device), _stop_slots(device)])
    dist.all_reduce(flags)
    values = flags.tolist()
    return values[0] > 0, _adopt_stop(values[1:])


def _share(size: int, rank: int, world: int) -> int:
    """How many of a global batch's `size` samples rank `rank` of `world` takes (r, r+N, ...)."""
    return max(0, -(-(size - rank) // world))


class _Weights:
    """The loss weight of each update of an epoch on one rank: its share of the global batch x N
    (0 for a rank whose share is empty: it trains on a stand-in sample)."""

    def __init__(self, n: int, batch_size: int, rank: int, world: int) -> None:
        self.n, self.batch_size, self.rank, self.world = n, batch_size, rank, world
        self.weight = 1.0

    def set_for(self, index: int) -> None:
        size = min(self.batch_size, self.n - index * self.batch_size)
        self.weight = _share(size, self.rank, self.world) * self.world / size

    def indices(self, order: torch.Tensor, index: int) -> torch.Tensor:
        """This rank's samples of global batch `index` in `order` (a stand-in with weight 0 if none)."""
        batch = order[index * self.batch_size : (index + 1) * self.batch_size]
        mine = batch[self.rank :: self.world]
        return mine if len(mine) else batch[:1]


class ShardedBatches(Batches):
    """A TensorData's training batches on one rank: its share of each global batch, in the
    one-process run's order (the same generator, the same permutation)."""

    def __init__(
        self, data: TensorData, batch_size: int, device: torch.device, seed: int, max_mb: float, rank: int, world: int
    ) -> None:
        generator = torch.Generator().manual_seed(int(seed))
        super().__init__(data.x_train, data.y_train, batch_size, device, True, max_mb, generator)
        self.shares = _Weights(len(data.y_train), batch_size, rank, world)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.y), generator=self.generator)
        for index in range(len(self)):
            idx = self.shares.indices(order, index)
            self.shares.set_for(index)
            if self.on_device:
                idx = idx.to(self.device)
                yield self.x[idx], self.y[idx]
            else:
                yield datasets.to_device((self.x[idx], self.y[idx]), self.device, self.pin)


class _ShardSampler:
    """Batch sampler of a DataLoader over a user's dataset: this rank's share of each global batch."""

    def __init__(self, shares: _Weights, generator: torch.Generator) -> None:
        self.shares, self.generator = shares, generator

    def __len__(self) -> int:
        return -(-self.shares.n // self.shares.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.shares.n, generator=self.generator)
        for index in range(len(self)):
            yield self.shares.indices(order, index).tolist()


class ShardedLoader(DeviceLoader):
    """A user's datasets' training batches on one rank (the weight follows the batch being
    consumed, whatever the DataLoader has prefetched)."""

    def __init__(self, data: Any, batch_size: int, device: torch.device, seed: int, rank: int, world: int) -> None:
        self.generator = torch.Generator().manual_seed(int(seed))
        self.shares = _Weights(data.n_train, batch_size, rank, world)
        pin = device.type == "cuda" if data.pin_memory == "auto" else bool(data.pin_memory)
        loader = DataLoader(
            data.train,
            batch_sampler=_ShardSampler(self.shares, self.generator),
            num_workers=data.num_workers,
            pin_memory=pin,
            persistent_workers=data.num_workers > 0,
        )
        super().__init__(loader, device)

    def __iter__(self) -> Iterator[Any]:
        for index, batch in enumerate(super().__iter__()):
            self.shares.set_for(index)
            yield batch


class Ranks:
    """The processes of one run as the loop sees them: rank, world size, and the collectives."""

    def __init__(self, rank: int, world: int) -> None:
        self.rank, self.world = rank, world
        self.train: Any = None
        self.stop: str | None = None  # the stop request all ranks agreed on at the last collective

    def stopped(self) -> str | None:
        """The stop request every rank saw at the last collective (a signal that arrives later on
        one rank waits for the next one, so all ranks stop at the same update)."""
        return self.stop

    @classmethod
    def current(cls) -> Ranks:
        return cls(dist.get_rank(), dist.get_world_size())

    def train_batches(self, data: TrainValData, batch_size: int, device: torch.device, seed: int, max_mb: float) -> Any:
        if isinstance(data, TensorData):
            self.train = ShardedBatches(data, batch_size, device, seed, max_mb, self.rank, self.world)
        else:
            self.train = ShardedLoader(data, batch_size, device, seed, self.rank, self.world)
        return self.train

    def val_batches(self, data: TrainValData, device: torch.device, max_mb: float) -> Any:
        """This rank's part of the validation set: samples r, r+N, ... in order."""
        part: TrainValData
        if isinstance(data, TensorData):
            part = TensorData(
                data.x_train[:0],
                data.y_train[:0],
                data.x_val[self.rank :: self.world],
                data.y_val[self.rank :: self.world],
                data.num_classes,
                data.kind,
            )
        else:
            part = datasets.UserDatasets(
                data.train,
                Subset(data.val, range(self.rank, data.n_val, self.world)),
                num_workers=data.num_workers,
                pin_memory=data.pin_memory,
            )
        return datasets.val_batches(part, device, on_device_max_mb=max_mb)

    def batch_loss(self, model: nn.Module, batch: Any, task: Task, autocast: Callable[[], Any]) -> torch.Tensor:
        inputs, target = batch
        with autocast():
            loss = task.loss(call_model(model, inputs), target)
        return loss * self.train.shares.weight

    def sum_losses(self, values: torch.Tensor) -> list[float]:
        """The window's per-update losses summed over the ranks (the global batch's loss), with
        every rank's stop request; one all-reduce."""
        buffer = torch.cat([values.float(), _stop_slots(values.device)])
        dist.all_reduce(buffer)
        summed = buffer.tolist()
        self.stop = _adopt_stop(summed[len(values) :]) or self.stop
        return [v / self.world for v in summed[: len(values)]]

    def evaluate(self, model: nn.Module, batches: Any, task: Task, autocast: Callable[[], Any]) -> dict[str, float]:
        """The validation metrics over every rank's part (the module itself runs: no DDP collective)."""
        module = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        totals = task.val_totals(module, batches, autocast)
        dist.all_reduce(totals)
        loss, score, count = totals.tolist()
        return task.val_metrics(loss, score, int(count)) if count else {}

    def agree(self, prune: bool) -> bool:
        decision, stop = _agree(prune)
        self.stop = stop or self.stop
        return decision


class OneProcess(Ranks):
    """A run on one process: the loop's batches, loss and metrics as they are, no collective."""

    def __init__(self) -> None:
        super().__init__(0, 1)

    def train_batches(self, data: TrainValData, batch_size: int, device: torch.device, seed: int, max_mb: float) -> Any:
        return datasets.train_batches(data, batch_size, device, seed, max_mb)

    def val_batches(self, data: TrainValData, device: torch.device, max_mb: float) -> Any:
        return datasets.val_batches(data, device, on_device_max_mb=max_mb)

    def batch_loss(self, model: nn.Module, batch: Any, task: Task, autocast: Callable[[], Any]) -> torch.Tensor:
        inputs, target = batch
        with autocast():
            return task.loss(call_model(model, inputs), target)

    def sum_losses(self, values: torch.Tensor) -> list[float]:
        return values.tolist()

    def evaluate(self, model: nn.Module, batches: Any, task: Task, autocast: Callable[[], Any]) -> dict[str, float]:
        return task.evaluate(model, batches, autocast)

    def agree(self, prune: bool) -> bool:
        return prune

    def stopped(self) -> str | None:
        return resume.stop_requested()


ONE_PROCESS = OneProcess()


def wrap_model(model: nn.Module, device: torch.device, freezes: bool) -> nn.Module:
    """`model` in DistributedDataParallel on `device`; `freezes`: some group trains only part of the
    run (its parameters then take no gradient, which DDP must be told about)."""
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=freezes)


def group_freezes(groups_cfg: dict[str, Any]) -> bool:
    """Whether the groups config freezes any group for part of the run."""
    rules = groups_cfg.get("rules") or []
    return bool(groups_cfg.get("freeze_epochs")) or any(
        isinstance(r, dict) and (r.get("start_epoch") or r.get("frozen")) for r in rules
    )
