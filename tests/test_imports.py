"""The import graph of dlhash_jax: no cycles (module-level or inside functions), layers one way."""

import ast
import os

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_DIR = os.path.join(REPO_ROOT, "dlhash_jax")


def _module_name(path: str) -> str:
    relative = os.path.relpath(path, os.path.dirname(PACKAGE_DIR))[: -len(".py")]
    parts = relative.split(os.sep)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, str]:
    found = {}
    for root, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                found[_module_name(path)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """``{module: modules of dlhash_jax (or experiments) it imports}``, at any depth of its code.

    ``from package import name`` counts as an import of ``package.name`` when that is a module,
    else of ``package``; importing a submodule does not count as importing its parent package
    (Python runs the parent's ``__init__`` first, but that is not a dependency of the code).
    """
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    child = f"{node.module}.{alias.name}"
                    targets.add(child if child in modules else node.module)
        graph[name] = {
            t for t in targets if t.split(".")[0] in ("dlhash_jax", "experiments") and t != name
        }
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first repeated at the end), or ``None``."""
    state = {}
    stack = []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_find_cycle_detects_a_cycle_and_accepts_a_dag():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a2"}, "a2": {"b"}, "b": {"b2"}, "b2": {"b"}}) == ["b", "b2", "b"]


def test_library_import_graph_has_no_cycle():
    graph = import_graph()
    assert "dlhash_jax.train.loop" in graph and "dlhash_jax.evaluate" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_library_never_imports_experiments():
    offenders = {m for m, targets in import_graph().items() if any(
        t.split(".")[0] == "experiments" for t in targets)}
    assert not offenders


@pytest.mark.parametrize("lower, upper", [
    ("dlhash_jax.train", "dlhash_jax.evaluate"),
    ("dlhash_jax.train", "dlhash_jax.experiment"),
    ("dlhash_jax.evaluate", "dlhash_jax.experiment"),
    ("dlhash_jax.methods", "dlhash_jax.train"),
    ("dlhash_jax.losses", "dlhash_jax.methods"),
    ("dlhash_jax.metrics", "dlhash_jax.train"),
])
def test_layers_import_one_way(lower, upper):
    graph = import_graph()
    for module, targets in graph.items():
        if module == lower or module.startswith(lower + "."):
            bad = [t for t in targets if t == upper or t.startswith(upper + ".")]
            assert not bad, (module, bad)
