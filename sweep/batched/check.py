"""Before a batched job trains: can the model be vmapped over trials, and do K trials fit in memory?

Both checks run before the first update, so a model vmap cannot run (data-dependent control flow,
in-place updates of tensors that are not registered buffers) falls back to sequential trials with a
one-line notice, and a K that cannot fit is a one-line ConfigError rather than an out-of-memory
crash halfway through a sweep.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import torch
from torch import nn
from torch.func import vmap

from sweep.batched.forward import StackedModel, call
from sweep.errors import ConfigError
from sweep.train.task import Task, call_model, output_of

KEY = "hydra.sweeper.trials_per_job"
STATE_SLOTS = {"sgd": 1, "adam": 2, "adamw": 2}  # optimizer state tensors per parameter
MARGIN = 1.5  # vmap's temporaries and the update's intermediates, measured on the shipped models


class NotBatchable(Exception):
    """These trials cannot be trained as one stack; run them one by one. The message says why."""


def check_batchable(model: nn.Module, batch: tuple[Any, torch.Tensor], task: Task | None = None) -> None:
    """Run two copies of `model` as a stack on `batch` (one training step's forward and backward in
    train mode, one forward in eval mode compared with each copy's own); raise NotBatchable if any
    of it fails or disagrees."""
    task = task or Task()
    inputs, target = batch
    copies = [copy.deepcopy(model).train() for _ in range(2)]
    try:
        stack = StackedModel([copy.deepcopy(c) for c in copies], task)
        stack.losses(inputs, target).sum().backward()
        stack = StackedModel([copy.deepcopy(c) for c in copies], task)
        stack.base.eval()
        with torch.no_grad():
            stacked = vmap(lambda p, b: output_of(call(stack.base, (p, b), inputs)))(stack.params, stack.buffers)
            alone = [output_of(call_model(c.eval(), inputs)) for c in copies]
    except Exception as err:  # noqa: BLE001 - any failure means: not this model, run it sequentially
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise NotBatchable(
            f"{type(model).__name__} cannot be vmapped over trials ({type(err).__name__}: {first[:200]})"
        ) from err
    if not all(torch.allclose(stacked[k], alone[k], rtol=1e-4, atol=1e-5) for k in range(2)):
        raise NotBatchable(
            f"{type(model).__name__} gives other outputs when vmapped over trials "
            "(state kept outside its registered parameters and buffers?)"
        )


def _saved_bytes(model: nn.Module, batch: tuple[Any, torch.Tensor], task: Task) -> int:
    """Bytes autograd keeps for backward in one training forward of one member."""
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[(t.untyped_storage().data_ptr(), t.device.index or 0)] = t.untyped_storage().nbytes()
        return t

    probe = copy.deepcopy(model).train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        task.loss(call_model(probe, batch[0]), batch[1])
    return sum(seen.values())


def free_bytes(device: torch.device) -> int:
    """Free device memory: torch.cuda.mem_get_info on CUDA, the kernel's MemAvailable on a CPU."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def bytes_per_member(
    model: nn.Module, optimizer: str, batch: tuple[Any, torch.Tensor] | None = None, task: Task | None = None
) -> int:
    """Weights, gradients and optimizer state of one member, plus what one batch's backward keeps."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    activations = _saved_bytes(model, batch, task or Task()) if batch is not None else 0
    return int(MARGIN * (weights * (2 + STATE_SLOTS.get(optimizer, 2)) + buffers + activations))


def check_memory(
    k: int,
    model: nn.Module,
    device: torch.device,
    optimizer: str = "adam",
    batch: tuple[Any, torch.Tensor] | None = None,
    task: Task | None = None,
) -> int:
    """Raise ConfigError naming hydra.sweeper.trials_per_job when K members would not fit in free
    memory; return the largest K that fits."""
    each = max(bytes_per_member(model, optimizer, batch, task), 1)
    free = free_bytes(torch.device(device))
    fits = free // each
    if k > fits:
        raise ConfigError(
            KEY,
            k,
            f"at most {fits} trials of this model fit in the {free / 2**20:.0f} MiB free "
            f"on {device} (about {each / 2**20:.1f} MiB each: weights, gradients, optimizer "
            "state, one batch's activations)",
        )
    return int(fits)
