"""Imports only point down the layers (CONTRIBUTING.md): every import in hncse/, module-level or inside a function,
is read from the source and checked against the layer table below."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hncse"

# Subsystem → layer. A module may import from a lower layer and from its own subsystem, nothing else.
LAYERS = {
    "hncse.errors": 0,
    "hncse.citations": 0,
    "hncse.distributed": 1,
    "hncse.data.sources": 1,  # where the data comes from (training corpora and SentEval's folder)
    "hncse.data.files": 2,  # reading a table file or Hub dataset (the training data, your own STS sets)
    "hncse.losses": 2,
    "hncse.modeling": 3,
    "hncse.data": 4,  # the training data: files, shapes, tokenising, streaming, the pipeline
    "hncse.data.cli": 8,  # `hncse-data`
    "hncse.evaluation": 4,
    "hncse.config": 5,
    "hncse.plots": 5,  # pictures drawn from a run's logs (matplotlib, optional); asks evaluation for the dev metrics
    "hncse.parser": 6,
    "hncse.training": 7,
    "hncse.evaluate": 8,  # the `python -m hncse.evaluate` entry point
    "hncse.st_losses": 8,  # the objectives as sentence-transformers losses
    "hncse": 9,  # the package's public imports (hncse/__init__.py)
}
# What the losses may use besides their own folder: torch, the standard library and three foundations (they are
# pure tensor code, whatever the data or the model).
LOSSES_MAY_IMPORT = {"torch"}
LOSSES_MAY_IMPORT_OF_HNCSE = {"hncse.errors", "hncse.citations", "hncse.distributed"}


def subsystem(module: str) -> str:
    """The longest LAYERS key that is `module` or a parent package of it."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in LAYERS:
            return name
    raise KeyError(f"{module} is in no layer: add its subsystem to LAYERS (and to CONTRIBUTING.md)")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[str]:
    """Absolute names of everything `source` imports (relative imports resolved against `module`)."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            names.append(prefix)
            # `from hncse.losses import simcse` imports the module hncse.losses.simcse.
            names += [f"{prefix}.{alias.name}" for alias in node.names if prefix.startswith("hncse")]
    return names


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    own = subsystem(module)
    found = []
    for name in imported_modules(source, module, is_package):
        root = name.split(".")[0]
        if root == "hncse":
            try:
                target = subsystem(name)
            except KeyError:  # `from hncse.x import name`: the name is not a module
                target = subsystem(name.rsplit(".", 1)[0])
            if target != own and LAYERS[target] >= LAYERS[own]:
                found.append(f"{module} imports {name} (layer {LAYERS[target]} ≥ {LAYERS[own]})")
            elif own == "hncse.losses" and target != own and target not in LOSSES_MAY_IMPORT_OF_HNCSE:
                found.append(f"{module} imports {name}: losses use only errors, citations and distributed")
        elif own == "hncse.losses" and root not in LOSSES_MAY_IMPORT and root not in sys.stdlib_module_names:
            found.append(f"{module} imports {name}: losses use only torch and the standard library")
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_imports_only_point_down(path):
    source = path.read_text(encoding="utf-8")
    assert violations(source, module_name(path), path.name == "__init__.py") == []


def test_the_check_finds_an_upward_import():
    """The checker itself: each kind of wrong import is reported."""
    assert violations("from hncse.training.trainer import HNCSETrainer", "hncse.evaluation.suite")
    assert violations("def f():\n    import hncse.evaluation.sts", "hncse.modeling.encoder")
    assert violations("import numpy", "hncse.losses.simcse")
    assert violations("from hncse.data.sources import SOURCES", "hncse.losses.simcse")  # lower, but not allowed
    assert violations("from hncse.data import load_sentences", "hncse.evaluation.cli")  # same layer, other room
    assert violations("from ..training import trainer", "hncse.losses.simcse")
    assert not violations("from hncse.losses.common import as_float", "hncse.losses.simcse")
    assert not violations("from hncse.errors import ConfigError\nimport torch", "hncse.losses.registry")


ROOT = PACKAGE.parent
IMPORTABLE = {
    module_name(path) if path.is_relative_to(PACKAGE) else ".".join(path.relative_to(ROOT).with_suffix("").parts): path
    for path in [*MODULES, *sorted((ROOT / "bench").rglob("*.py"))]
}


def import_edges(module: str, path: Path) -> set[str]:
    """The project modules `module` imports (a name imported from a package is its module when it is one)."""
    edges = set()
    for name in imported_modules(path.read_text(encoding="utf-8"), module, path.name == "__init__.py"):
        name = name.removesuffix(".__init__")
        if name in IMPORTABLE and name != module:
            edges.add(name)
    return edges


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the directed graph as a path that ends where it starts, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_circle_in_the_package_or_the_benchmarks():
    graph = {module: import_edges(module, path) for module, path in IMPORTABLE.items()}
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph))


def test_the_circle_check_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
