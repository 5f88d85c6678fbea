"""The package's shape: no import cycles inside ``src/prunekit``; Keras internals in one place.

Imports are read from the source with ``ast`` -- at module level and inside functions alike (a
lazy import hides a cycle from Python, not from this test) -- and resolved to modules of the
package. Only explicit imports count (importing ``prunekit.walk`` also runs
``prunekit/__init__.py``, as for every package; that is not a dependency of ``walk``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "prunekit"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _absolute(node: ast.ImportFrom, importer: str) -> str:
    if not node.level:
        return node.module or ""
    package = importer if MODULES[importer].name == "__init__.py" else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _resolve(name: str) -> str | None:
    """The package module ``name`` refers to (a module, or the nearest package above it)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name if name.startswith("prunekit") else None


def imports_of(module: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module)
            # `from prunekit import walk` imports the module prunekit.walk.
            names = [f"{base}.{alias.name}" for alias in node.names] or [base]
        else:
            continue
        found |= {target for target in map(_resolve, names) if target and target != module}
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle ``[a, b, ..., a]`` in ``graph``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if root in state:
            continue
        path, stack = [root], [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_cycle_finder_finds_a_cycle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_import_resolution_sees_lazy_and_from_imports():
    deps = imports_of("prunekit.prune")
    assert {"prunekit.functional", "prunekit.subclassed", "prunekit.walk"} <= deps
    assert "prunekit.walk" in imports_of("prunekit.export.format")  # imported inside a function


def test_no_import_cycles_in_the_package():
    graph = {module: imports_of(module) for module in MODULES}
    cycle = find_cycle(graph)
    assert cycle is None, "Import cycle inside src/prunekit: " + " -> ".join(cycle or [])


def test_walk_and_compat_are_the_bottom_of_the_model_code():
    """prune, subclassed and callbacks depend on walk; walk depends on none of them."""
    for module in ("prunekit.prune", "prunekit.subclassed", "prunekit.callbacks",
                   "prunekit.summary", "prunekit.policy"):
        assert "prunekit.walk" in imports_of(module), module
    below = imports_of("prunekit.walk") | imports_of("prunekit._keras_compat")
    assert not below & {"prunekit.prune", "prunekit.subclassed", "prunekit.functional",
                        "prunekit.callbacks", "prunekit.summary", "prunekit.policy"}
    assert imports_of("prunekit._keras_compat") == set()


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "prunekit._keras_compat"))
def test_keras_internals_only_in_the_compat_module(module):
    source = MODULES[module].read_text(encoding="utf-8")
    assert not re.search(r"^\s*(from|import)\s+keras\.src\b", source, re.M), (
        f"{module} imports keras.src: move it into prunekit/_keras_compat.py")
    private = re.findall(
        r"\.(_inbound_nodes|_outbound_nodes|_keras_history|_tracker|_flatten_layers|"
        r"_trainable_variables|_non_trainable_variables|_call_has_training_arg|"
        r"_call_signature|_call_context_args|_direct_assign|_input_shape_arg|_modules)\b",
        source)
    assert not private, (f"{module} reads Keras internals {sorted(set(private))}: go through "
                         "prunekit/_keras_compat.py")
