"""The shipped models (each a `backbone` and a `head`), building any model from its config, and
loading pretrained weights (`model.init_from`, `model.init_prefix`)."""

from __future__ import annotations

import logging
import math
import os
import pickle
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from sweep.errors import ConfigError, check

log = logging.getLogger(__name__)


class MLP(nn.Module):
    """Fully connected backbone (Linear + ReLU per hidden size) and a linear head."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: Sequence[int] = (256, 256),
        norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h)] + ([nn.LayerNorm(h)] if norm else []) + [nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        self.backbone = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


class CNN(nn.Module):
    """Small conv net over the square image a flat feature vector holds (digits: 8x8)."""

    def __init__(self, in_features: int, num_classes: int, channels: Sequence[int] = (16, 32)) -> None:
        super().__init__()
        self.side = math.isqrt(in_features)
        check(
            self.side * self.side == in_features,
            "model",
            "CNN",
            f"inputs that are square images; got {in_features} features",
        )
        layers: list[nn.Module] = []
        c_in = 1
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
            c_in = c
        layers += [nn.AdaptiveAvgPool2d(2), nn.Flatten()]
        self.backbone = nn.Sequential(*layers)
        self.head = nn.Linear(c_in * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x.view(-1, 1, self.side, self.side)))


MODEL_OWN_KEYS = ("init_from", "init_prefix")  # read by lr-sweep, not passed to the constructor


def build_model(cfg: Mapping[str, Any]) -> nn.Module:
    """`cfg._target_(**the other keys)`: only the keyword arguments the config sets are passed, so
    any constructor works; the shipped configs pass the data's sizes by interpolation
    (`in_features: ${data.num_features}`). `init_from` and `init_prefix` are lr-sweep's own."""
    from hydra.utils import instantiate

    from sweep.train.user_code import check_arguments, import_object

    target = cfg.get("_target_")
    cls = import_object("model._target_", target)
    kwargs = {k: v for k, v in cfg.items() if k not in MODEL_OWN_KEYS}
    check_arguments("model._target_", target, cls, {k: v for k, v in kwargs.items() if not k.startswith("_")})
    nested = any(isinstance(v, Mapping) and "_target_" in v for v in kwargs.values()) or any(
        k.startswith("_") and k != "_target_" for k in kwargs
    )  # _partial_, _args_: hydra's own
    # hydra's instantiate only where an argument is itself an object to build (it walks the whole config)
    model = (
        instantiate(kwargs, _convert_="all") if nested else cls(**{k: v for k, v in kwargs.items() if k != "_target_"})
    )
    check(
        isinstance(model, nn.Module),
        "model._target_",
        target,
        f"a class or function that makes a torch.nn.Module; {getattr(cls, '__name__', cls)} made a "
        f"{type(model).__name__}",
    )
    return model


def parse_prefix(spec: Any) -> dict[str, str]:
    """`model.init_prefix` as {checkpoint prefix: model prefix}.

    `backbone.` loads the checkpoint's `backbone.*` tensors into the model's `backbone.*`;
    `encoder.:backbone.` loads its `encoder.*` into the model's `backbone.*`; `""` or null loads
    every tensor under its own name; a mapping gives several pairs.
    """
    if spec is None or spec == "":
        return {"": ""}
    if isinstance(spec, Mapping):
        pairs = {str(k): "" if v is None else str(v) for k, v in spec.items()}
    else:
        check(
            isinstance(spec, str) and spec.count(":") <= 1,
            "model.init_prefix",
            spec,
            "PREFIX (the same in checkpoint and model), CHECKPOINT_PREFIX:MODEL_PREFIX, or null (every tensor)",
        )
        src, _, dst = spec.partition(":")
        pairs = {src: dst if ":" in spec else src}
    return pairs


def _read_state(path: str) -> dict[str, torch.Tensor]:
    check(
        os.path.isfile(path),
        "model.init_from",
        path,
        "the path of an existing checkpoint (python train.py experiment=pretrain writes one)",
    )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = next((line for line in str(err).splitlines() if "Unpickler" in line), "refused")
        check(
            False,
            "model.init_from",
            path,
            f"a checkpoint of tensors and plain data only; weights_only loading refused it ({first.strip()})",
        )
    # lr-sweep's checkpoints hold the weights under "model"; a plain state dict is the weights
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):  # Lightning's layout
        state = state["state_dict"]
    if not (isinstance(state, dict) and any(isinstance(v, torch.Tensor) for v in state.values())):
        raise ConfigError("model.init_from", path, "a checkpoint holding a state dict (lr-sweep's own, or a plain one)")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def load_backbone(model: nn.Module, path: str, prefix: Any = "backbone.") -> dict[str, list[str]]:
    """Copy the checkpoint's tensors under `prefix` (see `parse_prefix`) into `model`; the rest of
    the model (the head) stays as built.

    Loads with weights_only=True (no arbitrary unpickling). Returns and logs the missing and
    unexpected keys; a shape mismatch means another architecture and is an error.
    """
    pairs = parse_prefix(prefix)
    state = _read_state(path)
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for src, dst in pairs.items():
            if key.startswith(src):
                mapped[dst + key[len(src) :]] = value
                break
    own = model.state_dict()
    for k, v in mapped.items():
        if k in own and own[k].shape != v.shape:
            check(
                False,
                "model.init_from",
                path,
                f"a checkpoint of this architecture; {k} has shape {tuple(v.shape)}, "
                f"the model expects {tuple(own[k].shape)}",
            )
    own_loaded = [k for k in own if any(k.startswith(dst) for dst in pairs.values())]
    if not any(k in own for k in mapped):
        check(
            False,
            "model.init_from",
            path,
            f"a checkpoint of this architecture; with model.init_prefix={prefix!r} none of its keys "
            f"{list(state)[:3]} match the model's {own_loaded[:3] or list(own)[:3]}",
        )
    result = model.load_state_dict(mapped, strict=False)
    report = {
        "missing": [k for k in result.missing_keys if k in own_loaded],
        "unexpected": list(result.unexpected_keys),
    }
    log.info(
        "init_from %s: loaded %d tensors (%s); missing %s; unexpected %s",
        path,
        len(mapped) - len(report["unexpected"]),
        ", ".join(f"{s or '*'} -> {d or '*'}" for s, d in pairs.items()),
        report["missing"] or "none",
        report["unexpected"] or "none",
    )
    return report
