"""The stacked model: K members' parameters and buffers stacked by torch.func, the forward vmapped.

Buffers are stacked too, so registered buffers updated in place (BatchNorm's running statistics)
stay per member under vmap. Dropout draws a different mask per member (`randomness="different"`):
such a model trains batched, but not bit-equal to its sequential run.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from sweep.batched.metrics import add_sums, val_metrics, val_sums
from sweep.train.models import MLP
from sweep.train.task import Task, output_of


def call(module: nn.Module, state: tuple[dict, dict], inputs: Any) -> Any:
    """As sweep.train.task.call_model: model(x), model(**x) for a dict, model(*x) for a tuple."""
    if isinstance(inputs, dict):
        return functional_call(module, state, (), inputs)
    return functional_call(module, state, tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,))


def linear_chain(model: nn.Module) -> list[str] | None:
    """For the shipped MLP without norm or dropout (Linear, ReLU, ..., Linear): its Linear layers'
    names in order, so the stack can run as batched matrix products instead of vmap (faster, see
    bench/batched_trials.py); None for any other model."""
    if type(model) is not MLP:
        return None
    layers = [*model.backbone, model.head]
    if not all(isinstance(m, (nn.Linear, nn.ReLU)) for m in layers):
        return None
    names = {id(m): n for n, m in model.named_modules()}
    return [names[id(m)] for m in layers if isinstance(m, nn.Linear)]


def chain_forward(chain: list[str], params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The stacked MLP on one shared batch: (B, in) -> (K, B, out)."""
    k = len(params[f"{chain[0]}.weight"])
    h = x.T.expand(k, *x.T.shape)  # features x batch: each weight's gradient comes out in its own layout
    for i, name in enumerate(chain):
        # one product per member, of the same shape whatever K is: a member's numbers do not
        # depend on which others share the stack (one (B, in) x (in, K*out) product would)
        h = torch.baddbmm(params[f"{name}.bias"].unsqueeze(2), params[f"{name}.weight"], h)
        if i < len(chain) - 1:
            h = torch.relu(h)
    return h.transpose(1, 2)


class StackedModel:
    """K copies of one architecture as stacked tensors (leading dimension = member)."""

    def __init__(self, models: list[nn.Module], task: Task, batched_layers: bool = True) -> None:
        for m in models:
            m.train()
        self.params, self.buffers = stack_module_state(models)
        self.base = copy.deepcopy(models[0])  # the structure functional_call runs; its own tensors go unused
        self.task = task
        self.param_names = list(self.params)
        aliases: dict[int, str] = {}
        for name, t in [
            *self.base.named_parameters(remove_duplicate=False),
            *self.base.named_buffers(remove_duplicate=False),
        ]:
            aliases.setdefault(id(t), name)
        self.state_keys = {key: aliases[id(t)] for key, t in self.base.state_dict(keep_vars=True).items()}

        self.linear_chain = linear_chain(self.base) if batched_layers else None
        if self.linear_chain is None:

            def one_output(params: dict, buffers: dict, x: Any) -> torch.Tensor:
                return output_of(call(self.base, (params, buffers), x))

            self._outputs = vmap(one_output, in_dims=(0, 0, None), randomness="different")
        else:
            chain = self.linear_chain
            self._outputs = lambda params, buffers, x: chain_forward(chain, params, x)
        self._losses = vmap(task.loss, in_dims=(0, None))
        self._sums = vmap(lambda out, y: val_sums(task, out, y), in_dims=(0, None))

    @property
    def device(self) -> torch.device:
        return next(iter(self.params.values())).device

    def __len__(self) -> int:
        return len(next(iter(self.params.values())))

    def losses(self, inputs: Any, target: torch.Tensor) -> torch.Tensor:
        """(K,) training losses of one batch, with the graph for backward."""
        return self._losses(self._outputs(self.params, self.buffers, inputs), target)

    def param_list(self) -> list[torch.Tensor]:
        return [self.params[n] for n in self.param_names]

    def take_grads(self) -> list[torch.Tensor | None]:
        grads = [p.grad for p in self.param_list()]
        for p in self.param_list():
            p.grad = None
        return grads

    def set_trainable(self, flags: list[bool]) -> None:
        for p, flag in zip(self.param_list(), flags):
            p.requires_grad_(flag)

    @torch.no_grad()
    def evaluate(self, batches: Iterable, autocast: Callable[[], Any]) -> list[dict[str, float]]:
        """Each member's validation metrics, in eval mode."""
        self.base.eval()
        total, count = None, 0
        try:
            for inputs, target in batches:
                with autocast():
                    sums = self._sums(self._outputs(self.params, self.buffers, inputs), target)
                total, count = add_sums(total, sums), count + target.shape[0]
        finally:
            self.base.train()
        return val_metrics(self.task, total, count) or [{} for _ in range(len(self))]

    def state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's weights under the model's own state_dict keys."""
        merged = {**self.params, **self.buffers}
        return {key: merged[name][k].detach().clone() for key, name in self.state_keys.items()}

    def select(self, keep: torch.Tensor) -> None:
        """Keep only the members at `keep`."""
        self.params = {
            n: p.detach().index_select(0, keep).requires_grad_(p.requires_grad) for n, p in self.params.items()
        }
        self.buffers = {n: b.index_select(0, keep) for n, b in self.buffers.items()}
