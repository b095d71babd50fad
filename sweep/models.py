"""The shipped models, each a `backbone` and a `head`, and loading a pretrained backbone."""

from __future__ import annotations

import logging
import math
import os
import pickle
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from sweep.errors import check

log = logging.getLogger(__name__)


class MLP(nn.Module):
    """Fully connected backbone (Linear + ReLU per hidden size) and a linear head."""

    def __init__(self, in_features: int, num_classes: int, hidden: Sequence[int] = (256, 256),
                 norm: bool = False, dropout: float = 0.0) -> None:
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
        check(self.side * self.side == in_features, "model", "CNN",
              f"inputs that are square images; got {in_features} features")
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


def build_model(cfg: Mapping[str, Any], in_features: int, num_classes: int) -> nn.Module:
    from hydra.utils import instantiate

    kwargs = {k: v for k, v in cfg.items() if k != "init_from"}
    return instantiate(kwargs, in_features=in_features, num_classes=num_classes, _convert_="all")


def load_backbone(model: nn.Module, path: str) -> dict[str, list[str]]:
    """Copy the checkpoint's `backbone.*` weights into `model`; the head stays new.

    Loads with weights_only=True (no arbitrary unpickling). Returns and logs the missing and
    unexpected keys; a shape mismatch means another architecture and is an error.
    """
    check(os.path.isfile(path), "model.init_from", path,
          "the path of an existing checkpoint (python train.py experiment=pretrain writes one)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = next((line for line in str(err).splitlines() if "Unpickler" in line), "refused")
        check(False, "model.init_from", path,
              f"a checkpoint of tensors and plain data only; weights_only loading refused it ({first.strip()})")
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else None
    check(isinstance(state, dict), "model.init_from", path, "a checkpoint holding a state dict")
    backbone = {k: v for k, v in state.items() if k.startswith("backbone.")}
    own = model.state_dict()
    for k, v in backbone.items():
        if k in own and own[k].shape != v.shape:
            check(False, "model.init_from", path,
                  f"a checkpoint of this architecture; {k} has shape {tuple(v.shape)}, "
                  f"the model expects {tuple(own[k].shape)}")
    own_backbone = [k for k in own if k.startswith("backbone.")]
    check(any(k in own for k in backbone), "model.init_from", path,
          f"a checkpoint of this architecture; none of its backbone keys match {own_backbone[:3]}")
    result = model.load_state_dict(backbone, strict=False)
    report = {"missing": [k for k in result.missing_keys if k.startswith("backbone.")],
              "unexpected": list(result.unexpected_keys)}
    log.info("init_from %s: loaded %d backbone tensors; missing %s; unexpected %s",
             path, len(backbone) - len(report["unexpected"]), report["missing"] or "none",
             report["unexpected"] or "none")
    return report
