"""The package's shape: each subpackage imports only the layers below it (also inside functions),
its `__init__` says what it owns and may import, and no module outgrows one screen's worth of
reading by much."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

SWEEP = REPO / "sweep"
# top to bottom; a module may import its own layer and the layers after it
LAYERS = ["app", "integrations", "search", "tools", "batched", "train", "lr", "logs", "bottom"]
INTEGRATIONS = {"lightning", "hf", "_callbacks"}
BOTTOM = {"trial", "errors", "plain", "resolvers", "_moved", "__init__", "__main__"}
MAX_MODULE_LINES = 320


def layer_of(module: str) -> str:
    """`sweep.search.plan` -> search; `sweep.trial` -> bottom; `sweep.lightning` -> integrations."""
    parts = module.split(".")
    if len(parts) == 1:
        return "bottom"
    if parts[1] in INTEGRATIONS:
        return "integrations"
    return parts[1] if parts[1] in LAYERS else "bottom"


def sweep_imports(path: Path) -> list[tuple[int, str]]:
    """Every `sweep.*` module the file imports, with the line: top-level and inside functions."""
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "sweep":
                out += [(node.lineno, f"sweep.{a.name}") for a in node.names]
            elif node.module.startswith("sweep."):
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("sweep.")]
    return out


def modules() -> list[Path]:
    return sorted(p for p in SWEEP.rglob("*.py") if "conf" not in p.parts)


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    return ".".join(rel.parts)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_imports_point_down_the_layers(path: Path) -> None:
    own = layer_of(module_name(path))
    if module_name(path) in ("sweep", "sweep.__main__", "sweep._moved"):
        return  # the package's front door and the aliases of old paths name modules of every layer
    upward = [(line, m) for line, m in sweep_imports(path) if LAYERS.index(layer_of(m)) < LAYERS.index(own)]
    assert not upward, f"{path.relative_to(REPO)} ({own}) imports upward: {upward}"


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from sweep.search.sweeper import LRSweeper\n")
    assert sweep_imports(bad) == [(2, "sweep.search.sweeper")]
    assert LAYERS.index(layer_of("sweep.search.sweeper")) < LAYERS.index(layer_of("sweep.train.loop"))


@pytest.mark.parametrize("package", [p for p in LAYERS if (SWEEP / p).is_dir()])
def test_each_layer_says_what_it_owns_and_may_import(package: str) -> None:
    doc = ast.get_docstring(ast.parse((SWEEP / package / "__init__.py").read_text())) or ""
    assert doc and "import" in doc.lower()


def test_the_sweeper_layer_never_imports_torch() -> None:
    for path in (SWEEP / "search").glob("*.py"):
        tree = ast.parse(path.read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
        assert not any(name == "torch" or name.startswith("torch.") for name in names), path


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_modules_stay_short(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_MODULE_LINES


MAX_FUNCTION_LINES = 70  # about one screen, as the formatter lays calls out one argument a line


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_functions_stay_short(path: Path) -> None:
    long = [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, long
