"""Layer groups (sweep.lr.groups) and the optimizer built from them (sweep.lr.optimizer)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from conftest import REPO
from omegaconf import OmegaConf
from torch import nn

from sweep.errors import ConfigError
from sweep.lr.groups import build_groups, group_table
from sweep.lr.optimizer import build_optimizer
from sweep.train.models import MLP

CONF = REPO / "conf"


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
    cfg = {
        "name": "custom",
        "rules": [
            {"name": "head_bias", "pattern": "head.bias", "mult": 5.0},
            {"name": "head", "pattern": "head.*", "mult": 2.0},
            {"name": "rest", "pattern": "*"},
        ],
    }
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
        assert pg["group"] in mults
        assert pg["mult"] == mults[pg["group"]]
        assert pg["base_lr"] == 0.02
        assert pg["lr"] == pytest.approx(0.02 * pg["mult"])
        for p in pg["params"]:
            want_wd = 0.05 if (decay_norm_bias or p.ndim > 1) else 0.0
            assert pg["weight_decay"] == want_wd, (pg["name"], tuple(p.shape))
        seen += [id(p) for p in pg["params"]]
    assert sorted(seen) == sorted(id(p) for p in m.parameters())
    assert {pg["group"] for pg in opt.param_groups} == {"backbone", "head"}
    names = [pg["name"] for pg in opt.param_groups]
    assert len(set(names)) == len(names)  # unique, as Lightning's LearningRateMonitor requires
    if not decay_norm_bias:  # both groups split into a decayed and a plain param group
        assert names == ["backbone", "backbone/no_decay", "head", "head/no_decay"]
        assert all(pg["weight_decay"] == 0.0 for pg in opt.param_groups if pg["name"].endswith("/no_decay"))
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
    cfg = {
        "rules": [
            {"name": "backbone", "pattern": "backbone.*", "frozen": True},
            {"name": "head", "pattern": "head.*", "mult": 10.0},
        ]
    }
    groups = build_groups(m, cfg)
    opt = build_optimizer(optimizer_cfg("sgd", lr=0.1), groups, decay_norm_bias=False)
    for name, p in m.named_parameters():
        assert p.requires_grad == (not name.startswith("backbone.")), name
    for pg in opt.param_groups:
        if pg["group"] == "backbone":
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
    rows = table.splitlines()[1 : len(groups) + 1]  # a header, one row per group, then the notes
    assert [r.split()[0] for r in rows] == [g.name for g in groups]
    assert "head: head (the child called head)" in table.splitlines()
    groups = build_groups(model(), groups_cfg("backbone_head", head_lr_mult=10.0))
    table = group_table(groups, 0.05, 1e-4, decay_norm_bias=False)
    assert "backbone" in table and "head" in table
    assert "0.5" in table.splitlines()[2]  # the head's peak LR, 0.05 x 10


# --------------------------------------------------------------------------- the head of any model


class FeaturesClassifier(nn.Module):
    """Parts named as torchvision's VGG/AlexNet: `features`, a parameter-free pool, `classifier`."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU())
        self.pool = nn.Identity()
        self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(16, 3))


class WithGetClassifier(nn.Module):
    """timm's protocol: the classifier is not the last child, `get_classifier()` says which it is."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(8, 16)
        self.fc_out = nn.Linear(16, 3)
        self.aux = nn.Linear(16, 16)  # registered last, but not the classifier

    def get_classifier(self) -> nn.Module:
        return self.fc_out


class ResNetLike(nn.Module):
    """torchvision's ResNet layout: stem conv1/bn1, stages layer1..layer3 of numbered blocks, `fc`."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3)
        self.bn1 = nn.BatchNorm2d(4)
        self.layer1 = nn.Sequential(nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3))
        self.layer2 = nn.Sequential(nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3))
        self.layer3 = nn.Sequential(nn.Conv2d(4, 4, 3))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)


def names_of(group) -> set[str]:
    return {n for n, _ in group.params}


@pytest.mark.parametrize(
    "make, head, how",
    [
        (FeaturesClassifier, "classifier", "last child with parameters"),
        (WithGetClassifier, "fc_out", "get_classifier()"),
        (ResNetLike, "fc", "last child with parameters"),
        (lambda: MLP(in_features=8, num_classes=3), "head", "the child called head"),
    ],
)
def test_backbone_head_finds_the_head(make, head: str, how: str) -> None:
    m = make()
    groups = by_name(build_groups(m, groups_cfg("backbone_head", head_lr_mult=4.0)))
    assert names_of(groups["head"]) == {f"{head}.{n}" for n, _ in m.get_submodule(head).named_parameters()}
    assert names_of(groups["backbone"]) == {n for n, _ in m.named_parameters()} - names_of(groups["head"])
    assert groups["head"].mult == 4.0 and groups["backbone"].mult == 1.0
    table = group_table(list(groups.values()), 0.1, 0.0)
    assert f"head: {head} ({how})" in table.splitlines()


def test_get_classifier_without_parameters_falls_back_to_the_last_child() -> None:
    m = WithGetClassifier()
    m.get_classifier = lambda: nn.Identity()  # timm's model with num_classes=0
    groups = by_name(build_groups(m, groups_cfg("backbone_head")))
    assert names_of(groups["head"]) == {"aux.weight", "aux.bias"}


class SimpleDenseNet(nn.Module):
    """The lightning-hydra-template's model: the whole net is one `self.model = nn.Sequential(...)`."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Linear(8, 16),
            nn.BatchNorm1d(16),
            nn.ReLU(),
            nn.Linear(16, 16),
            nn.BatchNorm1d(16),
            nn.ReLU(),
            nn.Linear(16, 3),
        )


class Wrapper(nn.Module):
    """A LightningModule's shape: `self.net` holds every parameter, next to parameterless parts."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.criterion = nn.CrossEntropyLoss()
        self.net = net


class Plain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed, self.body, self.out = nn.Linear(8, 16), nn.Linear(16, 16), nn.Linear(16, 3)


@pytest.mark.parametrize(
    "make, head, how",
    [
        (SimpleDenseNet, "model.6", "last child with parameters of model"),
        (lambda: Wrapper(SimpleDenseNet()), "net.model.6", "last child with parameters of net.model"),
        (lambda: Wrapper(FeaturesClassifier()), "net.classifier", "last child with parameters of net"),
        (lambda: Wrapper(MLP(in_features=8, num_classes=3)), "net.head", "the child called head of net"),
        (lambda: Wrapper(WithGetClassifier()), "net.fc_out", "get_classifier() of net"),
    ],
)
def test_the_head_is_found_inside_a_wrapping_container(make, head: str, how: str) -> None:
    m = make()
    groups = by_name(build_groups(m, groups_cfg("backbone_head")))
    assert names_of(groups["head"]) == {f"{head}.{n}" for n, _ in m.get_submodule(head).named_parameters()}
    assert names_of(groups["backbone"]) == {n for n, _ in m.named_parameters()} - names_of(groups["head"])
    assert f"head: {head} ({how})" in group_table(list(groups.values()), 0.1, 0.0).splitlines()
    layered = build_groups(m, groups_cfg("layer_decay", decay=0.5))
    assert names_of(layered[-1]) == names_of(groups["head"]) and len(layered) > 2


def test_layer_decay_inside_a_wrapper_has_one_layer_per_child_of_the_wrapped_model() -> None:
    groups = build_groups(Wrapper(Plain()), groups_cfg("layer_decay", decay=0.5))
    assert [g.name for g in groups] == ["net.embed", "net.body", "head"]
    assert [g.mult for g in groups] == [0.25, 0.5, 1.0]


@pytest.mark.parametrize("path", ["classifier.1", "features.2"])
def test_head_path_names_the_head(path: str) -> None:
    m = FeaturesClassifier()
    groups = by_name(build_groups(m, groups_cfg("backbone_head", head=path)))
    assert names_of(groups["head"]) == {f"{path}.weight", f"{path}.bias"}
    assert f"{path}.weight" not in names_of(groups["backbone"])
    assert "head: " + path + " (groups.head)" in group_table(list(groups.values()), 0.1, 0.0)


@pytest.mark.parametrize("path", ["classifer", "classifier.7", "pool"])
def test_head_path_that_names_no_module_with_parameters(path: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_groups(FeaturesClassifier(), groups_cfg("backbone_head", head=path))
    assert info.value.key == "groups.head" and info.value.value == path
    assert "features, classifier" in str(info.value)  # what the model does have
    assert "\n" not in str(info.value)


def test_a_head_that_holds_every_parameter_is_refused() -> None:
    m = nn.Sequential(nn.Linear(4, 2))
    with pytest.raises(ConfigError) as info:
        build_groups(m, groups_cfg("backbone_head"))
    assert info.value.key == "groups.head"


def test_user_rules_still_override_the_discovered_head() -> None:
    cfg = groups_cfg("backbone_head")
    cfg["rules"] = [{"name": "head", "pattern": "classifier.*", "mult": 3.0}, {"name": "backbone", "pattern": "*"}]
    groups = by_name(build_groups(FeaturesClassifier(), cfg))
    assert names_of(groups["head"]) == {"classifier.1.weight", "classifier.1.bias"}
    assert groups["head"].mult == 3.0


def test_groups_config_may_be_a_dictconfig() -> None:
    root = OmegaConf.create({"groups": OmegaConf.load(CONF / "groups" / "backbone_head.yaml"), "x": 7.0})
    root.groups.head_lr_mult = "${x}"  # interpolations resolve against the whole config
    groups = by_name(build_groups(FeaturesClassifier(), root.groups))
    assert groups["head"].mult == 7.0


# --------------------------------------------------------------------------- layer_decay depth


def mults(groups) -> dict[str, float]:
    return {g.name: g.mult for g in groups}


def test_layer_decay_resnet_like_stem_then_stages_then_head() -> None:
    groups = build_groups(ResNetLike(), groups_cfg("layer_decay", decay=0.5, head_lr_mult=1.0))
    assert mults(groups) == {"stem": 0.5**4, "layer1": 0.5**3, "layer2": 0.5**2, "layer3": 0.5, "head": 1.0}
    g = by_name(groups)
    assert names_of(g["stem"]) == {"conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias"}
    assert names_of(g["head"]) == {"fc.weight", "fc.bias"}


class TimmLike(nn.Module):
    """A ViT-shaped model with timm's `group_matcher` and `get_classifier` (timm is not needed)."""

    def __init__(self) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 8))
        self.patch_embed = nn.Linear(4, 8)
        self.blocks = nn.Sequential(*[nn.Linear(8, 8) for _ in range(3)])
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 2)

    def group_matcher(self, coarse: bool = False) -> dict:
        return {"stem": r"^cls_token|patch_embed", "blocks": [(r"^blocks\.(\d+)", None), (r"^norm", (99999,))]}


def test_layer_decay_uses_timms_group_matcher() -> None:
    groups = build_groups(TimmLike(), groups_cfg("layer_decay", decay=0.5))
    # timm's convention: the final norm joins the last block (suffix 99999)
    names = [g.name for g in groups]
    assert names == ["stem", "blocks.0", "blocks.1", "blocks.2", "head"]
    assert [g.mult for g in groups] == pytest.approx([0.5**4, 0.5**3, 0.5**2, 0.5, 1.0])
    g = by_name(groups)
    assert names_of(g["stem"]) == {"cls_token", "patch_embed.weight", "patch_embed.bias"}
    assert names_of(g["blocks.2"]) == {"blocks.2.weight", "blocks.2.bias", "norm.weight", "norm.bias"}
    assert "group_matcher" in g["stem"].note


def test_layer_decay_explicit_layers() -> None:
    cfg = groups_cfg("layer_decay", decay=0.5, layers=["features.0", "features.2"])
    groups = build_groups(FeaturesClassifier(), cfg)
    assert [g.name for g in groups] == ["features.0", "features.2", "head"]
    assert [g.mult for g in groups] == pytest.approx([0.25, 0.5, 1.0])
    with pytest.raises(ConfigError) as info:
        build_groups(FeaturesClassifier(), groups_cfg("layer_decay", layers=["features.0"]))
    assert "features.2.weight" in str(info.value)


def tiny_bert(layers: int = 3):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=3,
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)  # built from its config: no download


def test_layer_decay_finds_the_depth_of_a_transformers_bert() -> None:
    m = tiny_bert(layers=3)
    groups = build_groups(m, groups_cfg("layer_decay", decay=0.5, head_lr_mult=1.0))
    assert [g.name for g in groups] == [
        "bert.embeddings",
        "bert.encoder.layer.0",
        "bert.encoder.layer.1",
        "bert.encoder.layer.2",
        "bert.pooler.dense",
        "head",
    ]
    assert [g.mult for g in groups] == pytest.approx([0.5**5, 0.5**4, 0.5**3, 0.5**2, 0.5, 1.0])
    g = by_name(groups)
    assert names_of(g["head"]) == {"classifier.weight", "classifier.bias"}
    assert all(n.startswith("bert.encoder.layer.1.") for n in names_of(g["bert.encoder.layer.1"]))
    assigned = [id(p) for grp in groups for _, p in grp.params]
    assert sorted(assigned) == sorted(id(p) for p in m.parameters())  # each parameter exactly once
    backbone_head = by_name(build_groups(m, groups_cfg("backbone_head")))
    assert names_of(backbone_head["head"]) == {"classifier.weight", "classifier.bias"}


def test_bert_layer_decay_trains_with_the_optimizer() -> None:
    m = tiny_bert(layers=2)
    groups = build_groups(m, groups_cfg("layer_decay", decay=0.5))
    opt = build_optimizer(optimizer_cfg("adamw", lr=1e-3), groups)
    lrs = {pg["name"]: pg["lr"] for pg in opt.param_groups}
    assert lrs["bert.embeddings"] == pytest.approx(1e-3 * 0.5**4) and lrs["head"] == pytest.approx(1e-3)
    out = m(input_ids=torch.randint(0, 40, (2, 5)), labels=torch.tensor([0, 2]))
    out.loss.backward()
    before = m.classifier.weight.detach().clone()
    opt.step()
    assert not torch.equal(before, m.classifier.weight)


def test_decay_norm_bias_comes_from_the_groups_config() -> None:
    for flag in (False, True):
        groups = build_groups(model(norm=True), groups_cfg("backbone_head", decay_norm_bias=flag))
        opt = build_optimizer(optimizer_cfg("adamw", weight_decay=0.1), groups)
        assert any(pg["weight_decay"] == 0.0 for pg in opt.param_groups) == (not flag)


# --------------------------------------------------------------------------- optimizer checks


@pytest.mark.parametrize(
    "name, key, value, words",
    [
        ("sgd", "momentum", 1.5, "[0, 1)"),
        ("adam", "betas", [0.9], "two numbers"),
        ("adamw", "eps", 0, "> 0"),
        ("sgd", "eps", 1e-8, "momentum, dampening"),  # not a setting of SGD: the allowed ones are listed
        ("sgd", "lr", "fast", "> 0"),
    ],
)
def test_optimizer_checks_name_the_key(name: str, key: str, value: Any, words: str) -> None:
    from sweep.lr.optimizer import validate

    cfg = optimizer_cfg(name, **{key: value})
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert info.value.key == f"optimizer.{key}"
    assert words in str(info.value)
