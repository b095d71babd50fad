"""The depth of each backbone parameter, for layer-wise LR decay on models built from blocks.

Deep nets are a stem (embeddings, a first conv), a sequence of blocks, maybe a final norm or
pooler, then the head. Their block sequences have a few spellings: `encoder.layer.N`
(transformers), `blocks.N` / `stages.N` (timm), `layerN` / `features.N` / `encoder_layer_N`
(torchvision). Found in this order of trust:

1. `groups.layers`: module paths from input to head, as the user wrote them.
2. `model.group_matcher()` (timm's protocol, duck-typed): regexes whose ordinals order the layers.
3. The outermost sequence of numbered child modules holding the most parameters: stem before it,
   one layer per block, what follows the blocks (final norm, pooler) after it.
4. Otherwise each top-level child with parameters is a layer (below a wrapping container: a model
   that is one `self.model = nn.Sequential(...)` has that container's children as its layers).
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from sweep.errors import ConfigError

Named = list[tuple[str, nn.Parameter]]
MATCH_PREVIOUS = 99999  # timm: a matcher suffix that joins the previous layer (a final norm)
NUMBERED = re.compile(r"^(.*?)(\d+)$")


@dataclass
class Layer:
    """One depth of the backbone: a name for logs and its parameters."""

    name: str
    params: Named = field(default_factory=list)


def common_prefix(names: Sequence[str], fallback: str) -> str:
    """The module path all parameter names share (`bert.embeddings`), else `fallback`."""
    parts = [n.split(".")[:-1] for n in names]
    shared: list[str] = []
    for column in zip(*parts):
        if len(set(column)) != 1:
            break
        shared.append(column[0])
    return ".".join(shared) or fallback


def _under(name: str, path: str) -> bool:
    return name.startswith(path + ".")


def wrapped_in(model: nn.Module) -> tuple[str, nn.Module]:
    """The module under the containers that wrap the whole model, and its path (`""`, the model
    itself, when nothing wraps it): descend while the module has no parameters of its own and one
    child holds all of them (`self.model = nn.Sequential(...)`, a LightningModule's `self.net`)."""
    path, module = "", model
    while next(module.parameters(recurse=False), None) is None:
        children = [(n, m) for n, m in module.named_children() if next(m.parameters(), None) is not None]
        if len(children) != 1:
            break
        name, module = children[0]
        path = f"{path}.{name}" if path else name
    return path, module


# --------------------------------------------------------------------------- 1. the user's list


def _from_paths(backbone: Named, paths: Sequence[str]) -> list[Layer]:
    layers = [Layer(p) for p in paths]
    for name, param in backbone:
        match = next((layer for layer in layers if fnmatch.fnmatchcase(name, f"{layer.name}.*")), None)
        if match is None:
            raise ConfigError(
                "groups.layers", list(paths), f"module paths that cover every backbone parameter; {name} is in none"
            )
        match.params.append((name, param))
    for layer in layers:
        if not layer.params:
            raise ConfigError(
                "groups.layers",
                layer.name,
                f"a module path of the backbone, e.g. {common_prefix([backbone[0][0]], backbone[0][0])}",
            )
    return layers


# --------------------------------------------------------------------------- 2. timm's group_matcher


def _matcher_key(spec: Mapping[str, Any] | Callable[[str], Any]) -> Callable[[str], tuple[float, ...]]:
    """A sort key per parameter name from a timm-style matcher: {group: regex | [(regex, suffix)]}
    in order, the regex's numbers and the suffix; unmatched names sort last."""
    if callable(spec):

        def call(name: str) -> tuple[float, ...]:
            value = spec(name)
            return tuple(float(v) for v in value) if isinstance(value, (tuple, list)) else (float(value),)

        return call
    compiled = []
    for ordinal, entry in enumerate(spec.values()):
        if entry is None:
            continue
        for regex, suffix in [(entry, None)] if isinstance(entry, str) else list(entry):
            compiled.append((re.compile(regex), ordinal, tuple(suffix or ())))

    def key(name: str) -> tuple[float, ...]:
        for regex, ordinal, suffix in compiled:
            found = regex.match(name)
            if found:
                numbers = tuple(float(g) for g in found.groups() if g is not None)
                return (float(ordinal), *numbers, *(float(s) for s in suffix))
        return (math.inf,)

    return key


def _from_matcher(backbone: Named, spec: Any) -> list[Layer]:
    """Layers in the order of the matcher's keys; a key ending in MATCH_PREVIOUS joins the layer
    before it (timm puts a final norm with the last block this way)."""
    key = _matcher_key(spec)
    by_key: dict[tuple[float, ...], Named] = defaultdict(list)
    for name, param in backbone:
        by_key[key(name)].append((name, param))
    group_names = list(spec) if isinstance(spec, Mapping) else []
    layers: list[Layer] = []
    for k in sorted(by_key):
        if layers and k[-1] == MATCH_PREVIOUS:
            layers[-1].params += by_key[k]
            continue
        ordinal = int(k[0]) if math.isfinite(k[0]) and int(k[0]) < len(group_names) else None
        fallback = group_names[ordinal] if ordinal is not None else f"layer{len(layers)}"
        layers.append(Layer(common_prefix([n for n, _ in by_key[k]], fallback), list(by_key[k])))
    return layers


def _group_matcher(model: nn.Module) -> Any:
    matcher = getattr(model, "group_matcher", None)
    if not callable(matcher):
        return None
    try:
        return matcher(coarse=False)
    except TypeError:
        return matcher()


# --------------------------------------------------------------------------- 3. a block sequence


def _block_sequences(model: nn.Module, skip: str) -> list[list[tuple[str, nn.Module]]]:
    """Every run of numbered children holding parameters (`layer.0`, `layer.1`; `layer1`, `layer2`),
    outside the module path `skip` (the head), as (path, module) lists in order."""
    found = []
    for path, module in model.named_modules():
        if skip and (path == skip or _under(path, skip)):
            continue  # inside the head
        by_stem: dict[str, list[tuple[int, str, nn.Module]]] = defaultdict(list)
        for child, sub in module.named_children():
            child_path = f"{path}.{child}" if path else child
            if child_path == skip:
                continue
            numbered = NUMBERED.match(child)
            if numbered and next(sub.parameters(), None) is not None:
                by_stem[numbered.group(1)].append((int(numbered.group(2)), child, sub))
        for _stem, members in by_stem.items():
            if len(members) >= 2:
                members.sort(key=lambda m: m[0])
                found.append([(f"{path}.{child}" if path else child, sub) for _, child, sub in members])
    return found


def _outermost(sequences: list[list[tuple[str, nn.Module]]]) -> list[tuple[str, nn.Module]] | None:
    """The sequence not nested in another's block that holds the most parameters."""

    def nested(seq: list[tuple[str, nn.Module]]) -> bool:
        first = seq[0][0]
        return any(other is not seq and any(_under(first, block) for block, _ in other) for other in sequences)

    top = [s for s in sequences if not nested(s)]
    if not top:
        return None
    return max(top, key=lambda s: sum(p.numel() for _, m in s for p in m.parameters()))


def _around_blocks(backbone: Named, blocks: list[tuple[str, nn.Module]]) -> list[Layer]:
    """Stem (before the first block), one layer per block, then what follows the last block.
    A parameter between two blocks joins the block before it."""
    layers = [Layer(path) for path, _ in blocks]
    stem: Named = []
    pending: Named = []
    current: Layer | None = None
    for name, param in backbone:
        block = next((layer for layer in layers if _under(name, layer.name)), None)
        if block is None:
            (stem if current is None else pending).append((name, param))
            continue
        if current is not None and pending:
            current.params += pending
            pending = []
        current = block
        block.params.append((name, param))
    first = Layer(common_prefix([n for n, _ in stem], "stem"), stem)
    last = Layer(common_prefix([n for n, _ in pending], "neck"), pending)
    return [layer for layer in [first, *layers, last] if layer.params]


# --------------------------------------------------------------------------- 4. top-level children


def _per_child(backbone: Named, wrapper: str = "") -> list[Layer]:
    """One layer per child of the model (of its wrapping container `wrapper`, when one holds it all)."""
    layers: dict[str, Layer] = {}
    depth = len(wrapper.split(".")) if wrapper else 0
    for name, param in backbone:
        top = ".".join(name.split(".")[: depth + 1])  # the wrapper holds every parameter
        layers.setdefault(top, Layer(top)).params.append((name, param))
    return list(layers.values())


def backbone_layers(
    model: nn.Module, backbone: Named, paths: Sequence[str] | None = None, head_path: str = ""
) -> tuple[list[Layer], str]:
    """The backbone's parameters in layers from input (deepest) to the head, and how they were found."""
    if paths:
        return _from_paths(backbone, paths), "groups.layers"
    spec = _group_matcher(model)
    if spec is not None:
        return _from_matcher(backbone, spec), "the model's group_matcher()"
    blocks = _outermost(_block_sequences(model, head_path))
    if blocks is not None:
        first, last = blocks[0][0], blocks[-1][0]
        return _around_blocks(backbone, blocks), f"the blocks {first} .. {last}"
    wrapper, _ = wrapped_in(model)
    return _per_child(backbone, wrapper), f"each child with parameters of {wrapper or 'the model'}"
