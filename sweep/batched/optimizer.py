"""SGD, Adam and AdamW on stacked parameters: one update for K trials, each with its own LRs.

Every parameter tensor has a leading member dimension K. Hyperparameters that may differ between
trials (LR, momentum, betas, eps, weight decay) are (K,) vectors broadcast over that dimension; the
math follows torch.optim's single-tensor code step for step, so K trials updated together match K
trials updated one by one with torch.optim (tests/batched/test_batched.py, float64 to 1e-9).

A member that must not move (diverged, or one of its groups still frozen while another member's
trains) is masked: its parameters and optimizer state keep their values exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

KINDS = {torch.optim.SGD: "sgd", torch.optim.Adam: "adam", torch.optim.AdamW: "adamw"}
SHARED_FLAGS = ("nesterov", "amsgrad", "maximize")  # must agree across members: they change the math


@dataclass
class ParamSettings:
    """One stacked parameter's per-member optimizer settings, read from each trial's param group."""

    weight_decay: torch.Tensor  # (K,)
    momentum: torch.Tensor
    dampening: torch.Tensor
    beta1: torch.Tensor
    beta2: torch.Tensor
    eps: torch.Tensor

    @classmethod
    def from_groups(cls, groups: Sequence[Mapping[str, Any]], device: torch.device) -> ParamSettings:
        def vec(get: Any) -> torch.Tensor:
            return torch.tensor([float(get(g)) for g in groups], dtype=torch.float64, device=device)

        return cls(
            vec(lambda g: g.get("weight_decay", 0.0)),
            vec(lambda g: g.get("momentum", 0.0)),
            vec(lambda g: g.get("dampening", 0.0)),
            vec(lambda g: g.get("betas", (0.9, 0.999))[0]),
            vec(lambda g: g.get("betas", (0.9, 0.999))[1]),
            vec(lambda g: g.get("eps", 1e-8)),
        )

    def __post_init__(self) -> None:  # read once here, not at every update (each would be a device sync)
        self.decays = bool((self.weight_decay != 0).any())
        self.has_momentum = bool((self.momentum != 0).any())
        self.damped = bool((self.dampening != 0).any())

    def select(self, keep: torch.Tensor) -> ParamSettings:
        return ParamSettings(*(getattr(self, f).index_select(0, keep) for f in self.__dataclass_fields__))


def _member(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(K,) -> (K, 1, ..., 1) in `like`'s dtype, to broadcast over one stacked tensor."""
    return v.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))


class StackedOptimizer:
    """The optimizer of K trials at once; `step` takes each tensor's per-member LR vector."""

    def __init__(self, kind: str, settings: Sequence[ParamSettings], flags: Mapping[str, bool]) -> None:
        if kind not in ("sgd", "adam", "adamw") or flags.get("amsgrad") or flags.get("maximize"):
            raise ValueError(f"no stacked {kind} with {dict(flags)}")
        self.kind, self.settings, self.nesterov = kind, list(settings), bool(flags.get("nesterov"))
        self.state: list[dict[str, torch.Tensor]] = [{} for _ in self.settings]

    @torch.no_grad()
    def step(
        self,
        params: Sequence[torch.Tensor],
        grads: Sequence[torch.Tensor | None],
        lrs: Sequence[torch.Tensor],
        moving: Sequence[torch.Tensor | None],
    ) -> None:
        """Update every tensor whose grad is not None. `lrs[i]` is (K,) float64; `moving[i]` a (K,)
        bool mask of the members that update it, or None for all."""
        for i, (p, g) in enumerate(zip(params, grads)):
            if g is None:
                continue
            update = self._sgd if self.kind == "sgd" else self._adam
            update(p, g, lrs[i], self.settings[i], self.state[i], moving[i])

    def _sgd(
        self,
        p: torch.Tensor,
        g: torch.Tensor,
        lr: torch.Tensor,
        s: ParamSettings,
        state: dict[str, torch.Tensor],
        moving: torch.Tensor | None,
    ) -> None:
        """torch.optim.SGD's step; in place (a few passes over memory) unless some members must not move."""
        if s.decays:
            g = g.addcmul_(p, _member(s.weight_decay, p))  # the grad is ours: the stack's own, taken off it
        if s.has_momentum:
            buf = state.get("momentum_buffer")
            if buf is None:  # torch starts the buffer at the first gradient, undamped
                buf = state["momentum_buffer"] = torch.zeros_like(p)
                state["started"] = torch.zeros(len(lr), dtype=torch.bool, device=p.device)
            if moving is None and not s.damped:
                buf.mul_(_member(s.momentum, p)).add_(g)
                new_buf = buf
            else:
                damp = torch.where(state["started"], 1.0 - s.dampening, 1.0)
                new_buf = buf.mul(_member(s.momentum, p)).add_(g * _member(damp, p))
                self._write(buf, new_buf, moving)
            state["started"] |= True if moving is None else moving
            g = g.addcmul_(new_buf, _member(s.momentum, p)) if self.nesterov else new_buf
        if moving is None:
            p.addcmul_(g, _member(-lr, p))
        else:
            self._write(p, p.addcmul(g, _member(-lr, p)), moving)  # the same kernel as in place: same rounding

    def _adam(
        self,
        p: torch.Tensor,
        g: torch.Tensor,
        lr: torch.Tensor,
        s: ParamSettings,
        state: dict[str, torch.Tensor],
        moving: torch.Tensor | None,
    ) -> None:
        """torch.optim.Adam's (AdamW's) step, the same operations in the same order."""
        if not state:
            state.update(
                step=torch.zeros(len(lr), dtype=torch.float64, device=p.device),
                exp_avg=torch.zeros_like(p),
                exp_avg_sq=torch.zeros_like(p),
            )
        state["step"] += 1.0 if moving is None else moving.to(torch.float64)
        if self.kind == "adamw":
            decay = _member(1.0 - lr * s.weight_decay, p)
            p.mul_(decay) if moving is None else self._write(p, p * decay, moving)
        elif s.decays:
            g = g.addcmul_(p, _member(s.weight_decay, p))
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        if moving is None:
            exp_avg.lerp_(g, _member(1.0 - s.beta1, p))
            exp_avg_sq.mul_(_member(s.beta2, p)).addcmul_(g * _member(1.0 - s.beta2, p), g)
        else:
            self._write(exp_avg, exp_avg.lerp(g, _member(1.0 - s.beta1, p)), moving)
            self._write(
                exp_avg_sq, (exp_avg_sq * _member(s.beta2, p)).addcmul_(g * _member(1.0 - s.beta2, p), g), moving
            )
        step = state["step"]
        step_size = lr / (1.0 - s.beta1**step)
        bias_correction2_sqrt = (1.0 - s.beta2**step).sqrt()
        denom = exp_avg_sq.sqrt().div_(_member(bias_correction2_sqrt, p)).add_(_member(s.eps, p))
        update = (exp_avg * _member(-step_size, p)).div_(denom)
        p.add_(update) if moving is None else self._write(p, p + update, moving)

    @staticmethod
    def _write(target: torch.Tensor, value: torch.Tensor, moving: torch.Tensor | None) -> None:
        if moving is None:
            target.copy_(value)
        else:
            target.copy_(torch.where(moving.view(-1, *([1] * (target.ndim - 1))), value, target))

    def select(self, keep: torch.Tensor) -> None:
        """Keep only the members at `keep` (dropping pruned and failed ones from the stack)."""
        self.settings = [s.select(keep) for s in self.settings]
        self.state = [{k: v.index_select(0, keep) for k, v in st.items()} for st in self.state]


@torch.no_grad()
def clip_grad_norms(grads: Sequence[torch.Tensor | None], max_norm: float) -> None:
    """torch.nn.utils.clip_grad_norm_ for each member: the norm over all of that member's grads."""
    present = [g for g in grads if g is not None]
    if not present:
        return
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in present])
    total = torch.linalg.vector_norm(norms, dim=0)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in present:
        g.mul_(_member(coef, g))
