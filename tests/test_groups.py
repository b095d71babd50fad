"""Layer groups (sweep.groups) and the optimizer built from them (sweep.optim)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from sweep.errors import ConfigError
from sweep.groups import build_groups, group_table
from sweep.models import MLP
from sweep.optim import build_optimizer

CONF = Path(__file__).resolve().parents[1] / "conf"


def groups_cfg(name: str, **overrides: Any) -> dict[str, Any]:
    """conf/groups/<name>.yaml resolved as Hydra would (its interpolations point at `groups.`)."""
    root = OmegaConf.create({"groups": OmegaConf.load(CONF / "groups" / f"{name}.yaml")})
    for k, v in overrides.items():
        root.groups[k] = v
    return OmegaConf.to_container(root, resolve=True)["groups"]


def optimizer_cfg(name: str = "sgd", **overrides: Any) -> dict[str, Any]:
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / "optimizer" / f"{name}.yaml"), resolve=True)
    cfg.update(overrides)
    return cfg


def model(**kw: Any) -> nn.Module:
    torch.manual_seed(0)
    return MLP(in_features=8, num_classes=3, **kw)


def by_name(groups):
    return {g.name: g for g in groups}


# --------------------------------------------------------------------------- backbone_head

@pytest.mark.parametrize("mult", [10.0, 3.0, 0.5])
def test_backbone_head_groups(mult: float) -> None:
    m = model()
    groups = build_groups(m, groups_cfg("backbone_head", head_lr_mult=mult))
    assert [g.name for g in groups] == ["backbone", "head"]
    g = by_name(groups)
    assert g["head"].mult == mult
    assert g["backbone"].mult == 1.0
    assert {n for n, _ in g["head"].params} == {"head.weight", "head.bias"}
    assert all(n.startswith("backbone.") for n, _ in g["backbone"].params)


@pytest.mark.parametrize("name", ["backbone_head", "layer_decay", "single"])
@pytest.mark.parametrize("norm", [False, True])
def test_every_parameter_in_exactly_one_group(name: str, norm: bool) -> None:
    m = model(norm=norm)
    groups = build_groups(m, groups_cfg(name))
    assigned = [id(p) for g in groups for _, p in g.params]
    assert len(assigned) == len(set(assigned))
    assert set(assigned) == {id(p) for p in m.parameters()}
    assert sum(g.numel for g in groups) == sum(p.numel() for p in m.parameters())


def test_freeze_epochs_interpolates_into_backbone_start() -> None:
    groups = build_groups(model(), groups_cfg("backbone_head", freeze_epochs=3))
    assert by_name(groups)["backbone"].start_epoch == 3
    assert by_name(groups)["head"].start_epoch == 0


def test_first_match_wins() -> None:
    cfg = {"name": "custom", "rules": [
        {"name": "head_bias", "pattern": "head.bias", "mult": 5.0},
        {"name": "head", "pattern": "head.*", "mult": 2.0},
        {"name": "rest", "pattern": "*"},
    ]}
    g = by_name(build_groups(model(), cfg))
    assert [n for n, _ in g["head_bias"].params] == ["head.bias"]
    assert [n for n, _ in g["head"].params] == ["head.weight"]
    assert all(n.startswith("backbone.") for n, _ in g["rest"].params) and g["rest"].params


def test_pattern_list_in_one_rule() -> None:
    cfg = {"rules": [{"name": "biases", "pattern": ["*.bias", "head.bias"]}, {"name": "weights", "pattern": "*"}]}
    g = by_name(build_groups(model(), cfg))
    assert all(n.endswith(".bias") for n, _ in g["biases"].params)
    assert all(n.endswith(".weight") for n, _ in g["weights"].params)


def test_unmatched_parameter_is_named() -> None:
    cfg = {"rules": [{"name": "backbone", "pattern": "backbone.*"}]}
    with pytest.raises(ConfigError) as info:
        build_groups(model(), cfg)
    assert "head.weight" in str(info.value)


def test_rule_matching_nothing_is_named() -> None:
    cfg = {"rules": [{"name": "neck", "pattern": "neck.*"}, {"name": "all", "pattern": "*"}]}
    with pytest.raises(ConfigError) as info:
        build_groups(model(), cfg)
    assert "neck.*" in str(info.value)
    assert "neck" in info.value.key


def test_rule_shadowed_by_an_earlier_one_matches_nothing() -> None:
    # first match wins, so a catch-all first leaves the head rule empty: an error, not a silent no-op
    cfg = {"rules": [{"name": "all", "pattern": "*"}, {"name": "head", "pattern": "head.*", "mult": 10.0}]}
    with pytest.raises(ConfigError) as info:
        build_groups(model(), cfg)
    assert "head.*" in str(info.value)


@pytest.mark.parametrize("mult", [0, 0.0, -1.0])
def test_head_lr_mult_must_be_positive(mult: float) -> None:
    with pytest.raises(ConfigError) as info:
        build_groups(model(), groups_cfg("backbone_head", head_lr_mult=mult))
    assert "head_lr_mult" in str(info.value)
    assert repr(mult) in str(info.value)


# --------------------------------------------------------------------------- layer_decay

@pytest.mark.parametrize("decay", [0.7, 0.5])
@pytest.mark.parametrize("hidden", [(16, 16), (16, 16, 16)])
def test_layer_decay_one_group_per_linear_counted_from_the_head(decay: float, hidden: tuple) -> None:
    m = model(hidden=hidden)
    groups = build_groups(m, groups_cfg("layer_decay", decay=decay, head_lr_mult=2.0))
    linears = [f"backbone.{i}" for i, mod in enumerate(m.backbone) if isinstance(mod, nn.Linear)]
    assert len(linears) == len(hidden)
    assert [g.name for g in groups] == linears + ["head"]
    depth = len(linears)
    for i, name in enumerate(linears):
        g = by_name(groups)[name]
        assert g.mult == pytest.approx(decay ** (depth - i))
        assert {n for n, _ in g.params} == {f"{name}.weight", f"{name}.bias"}
    assert by_name(groups)[linears[-1]].mult == pytest.approx(decay)  # the last backbone layer: decay ** 1
    assert by_name(groups)["head"].mult == 2.0


def test_layer_decay_freeze_epochs_applies_to_backbone_layers() -> None:
    groups = build_groups(model(), groups_cfg("layer_decay", freeze_epochs=2))
    assert [g.start_epoch for g in groups] == [2, 2, 0]


@pytest.mark.parametrize("decay", [0, 1.5, -0.7])
def test_layer_decay_out_of_range(decay: float) -> None:
    with pytest.raises(ConfigError) as info:
        build_groups(model(), groups_cfg("layer_decay", decay=decay))
    assert "groups.decay" in str(info.value)


# --------------------------------------------------------------------------- optimizer

@pytest.mark.parametrize("opt_name", ["sgd", "adamw"])
@pytest.mark.parametrize("decay_norm_bias", [False, True])
def test_build_optimizer_param_groups(opt_name: str, decay_norm_bias: bool) -> None:
    m = model(norm=True)  # LayerNorm weights are ndim 1 too
    groups = build_groups(m, groups_cfg("backbone_head", head_lr_mult=10.0))
    cfg = optimizer_cfg(opt_name, lr=0.02, weight_decay=0.05)
    opt = build_optimizer(cfg, groups, decay_norm_bias=decay_norm_bias)
    assert isinstance(opt, {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}[opt_name])
    mults = {"backbone": 1.0, "head": 10.0}
    seen = []
    for pg in opt.param_groups:
        assert pg["name"] in mults
        assert pg["mult"] == mults[pg["name"]]
        assert pg["base_lr"] == 0.02
        assert pg["lr"] == pytest.approx(0.02 * pg["mult"])
        for p in pg["params"]:
            want_wd = 0.05 if (decay_norm_bias or p.ndim > 1) else 0.0
            assert pg["weight_decay"] == want_wd, (pg["name"], tuple(p.shape))
        seen += [id(p) for p in pg["params"]]
    assert sorted(seen) == sorted(id(p) for p in m.parameters())
    names = {pg["name"] for pg in opt.param_groups}
    assert names == {"backbone", "head"}
    if not decay_norm_bias:  # both groups split into a decayed and a plain param group
        assert len(opt.param_groups) == 4
        assert any(pg["weight_decay"] == 0.0 for pg in opt.param_groups)
    else:
        assert len(opt.param_groups) == 2


def test_optimizer_keeps_other_settings() -> None:
    groups = build_groups(model(), groups_cfg("backbone_head"))
    opt = build_optimizer(optimizer_cfg("sgd", momentum=0.8, nesterov=True), groups, decay_norm_bias=False)
    assert all(pg["momentum"] == 0.8 and pg["nesterov"] for pg in opt.param_groups)
    opt = build_optimizer(optimizer_cfg("adam", betas=[0.8, 0.9]), groups, decay_norm_bias=False)
    assert all(pg["betas"] == (0.8, 0.9) for pg in opt.param_groups)


def test_frozen_rule() -> None:
    m = model()
    cfg = {"rules": [{"name": "backbone", "pattern": "backbone.*", "frozen": True},
                     {"name": "head", "pattern": "head.*", "mult": 10.0}]}
    groups = build_groups(m, cfg)
    opt = build_optimizer(optimizer_cfg("sgd", lr=0.1), groups, decay_norm_bias=False)
    for name, p in m.named_parameters():
        assert p.requires_grad == (not name.startswith("backbone.")), name
    for pg in opt.param_groups:
        if pg["name"] == "backbone":
            assert pg["lr"] == 0.0 and pg["frozen"]
        else:
            assert pg["lr"] == pytest.approx(1.0) and not pg["frozen"]
    # a frozen group really does not move
    before = [p.detach().clone() for p in m.backbone.parameters()]
    head_before = m.head.weight.detach().clone()
    m(torch.randn(4, 8)).sum().backward()
    opt.step()
    assert all(torch.equal(b, p) for b, p in zip(before, m.backbone.parameters()))
    assert not torch.equal(head_before, m.head.weight)


def test_group_table_names_every_group() -> None:
    groups = build_groups(model(), groups_cfg("layer_decay"))
    table = group_table(groups, 0.05, 1e-4, decay_norm_bias=False)
    for g in groups:
        assert g.name in table
    assert len(table.splitlines()) == len(groups) + 1  # a header and one row per group
    groups = build_groups(model(), groups_cfg("backbone_head", head_lr_mult=10.0))
    table = group_table(groups, 0.05, 1e-4, decay_norm_bias=False)
    assert "backbone" in table and "head" in table
    assert "0.5" in table.splitlines()[2]  # the head's peak LR, 0.05 x 10
