"""The simulator's import graph reads in floors (simulator/__init__.py): no circle between
its parts, no import that reaches into another part's `_private` module, and every name a
package's `__all__` promises exists.  Read from the source (ast), so a lazy import inside a
function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections import defaultdict
from pathlib import Path

import pytest

import simulator

def _modules() -> dict[str, Path]:
    """Every module of the simulator, by dotted name (packages by their own name)."""
    found = {"simulator": Path(simulator.__file__)}
    for info in pkgutil.walk_packages(simulator.__path__, "simulator."):
        spec = importlib.util.find_spec(info.name)
        found[info.name] = Path(spec.origin)
    return found


def _imports(name: str, path: Path) -> set[str]:
    """What `name` imports, as absolute dotted names: a module, or a name in one (`_module_of`)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    tree = ast.parse(path.read_text(), str(path))
    # A module's `if __name__ == "__main__":` block is the program started with `python -m`,
    # not something the module depends on: its imports are not edges of the graph.
    tree.body = [node for node in tree.body if not _is_main_block(node)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    return {t for t in targets if t.split(".")[0] in ("simulator", "rating_core")}


def _is_main_block(node: ast.stmt) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def _module_of(target: str, modules: set[str]) -> str | None:
    """The longest known module that `target` (a module, or a name in one) lies in."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def _part(module: str) -> str:
    """The part of the simulator a module belongs to: a subpackage, or a top-level module."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def _circles(edges: dict[str, set[str]]) -> list[str]:
    """Each circle found by a depth-first walk, as "a -> b -> a"."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    circles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return circles


MODULES = _modules()
GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_no_module_reaches_into_another_packages_private_module() -> None:
    """`a.b._c` may be imported from inside `a.b` only; elsewhere through `a.b`'s face."""
    wrong = []
    for name, targets in GRAPH.items():
        importer_package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
        for target in targets:
            parts = target.split(".")
            for i, part in enumerate(parts[1:], start=1):
                if part.startswith("_") and not part.startswith("__"):
                    owner = ".".join(parts[:i])
                    if not (importer_package == owner or importer_package.startswith(owner + ".")):
                        wrong.append(f"{name} imports {target}")
                    break
    assert wrong == []


def test_no_import_circle_between_parts() -> None:
    """Parts are the subpackages and the top-level modules; the package itself is no part."""
    modules = set(GRAPH)
    edges: dict[str, set[str]] = defaultdict(set)
    for name, targets in GRAPH.items():
        if name == "simulator":
            continue
        for target in targets:
            module = _module_of(target, modules)
            if module is None or module == "simulator":
                continue
            if _part(module) != _part(name):
                edges[_part(name)].add(_part(module))
    circles = _circles(edges)
    assert circles == []


def test_no_import_circle_inside_a_package() -> None:
    """Within a package too, modules import downward only (a circle hides behind lazy imports)."""
    modules = set(GRAPH)
    edges: dict[str, set[str]] = defaultdict(set)
    for name, targets in GRAPH.items():
        for target in targets:
            module = _module_of(target, modules)
            # a package's face imports its modules; a module reaching its own face is a circle too
            if module is not None and module != name and _part(module) == _part(name):
                if MODULES[module].name != "__init__.py" or MODULES[name].name != "__init__.py":
                    edges[name].add(module)
    circles = _circles(edges)
    assert circles == []


PACKAGES = ["rating_core"] + sorted(name for name, path in MODULES.items() if path.name == "__init__.py")


@pytest.mark.parametrize("package", PACKAGES)
def test_all_names_exist(package: str) -> None:
    """As trio's test_exports: every name in `__all__` is there (a submodule counts once imported)."""
    module = importlib.import_module(package)
    assert module.__doc__ and "layout" in module.__doc__.lower() or package == "rating_core"
    missing = []
    for name in module.__all__:
        if not hasattr(module, name):
            try:
                importlib.import_module(f"{package}.{name}")
            except ImportError:
                missing.append(name)
    assert missing == []
    assert len(set(module.__all__)) == len(module.__all__)


def test_every_import_names_something_that_exists() -> None:
    """A lazy import of a moved module fails only when its function runs: catch it here."""
    modules = set(GRAPH)
    missing = []
    for name, targets in GRAPH.items():
        for target in targets:
            module = _module_of(target, modules)
            if module is None:
                continue  # rating_core: its own tests own it
            rest = target[len(module) + 1:].split(".")[0] if target != module else ""
            if rest and not hasattr(importlib.import_module(module), rest):
                missing.append(f"{name} imports {target}")
    assert missing == []


# simulator/__init__.py's drawing: each part imports only parts on its own floor or below.
FLOORS = {
    "rating_core": 0,
    "simulator.units": 1,
    "simulator.scenario": 2,
    "simulator.traffic": 3, "simulator.outputs": 3, "simulator.event_counts": 3,
    "simulator.switch": 4, "simulator.expect": 4, "simulator.report": 4, "simulator.progress": 4,
    "simulator.metrics": 4, "simulator.usage": 4,
    "simulator.run": 5, "simulator.server": 5, "simulator.bench": 5, "simulator.sip": 5, "simulator.sweep": 5,
    "simulator.plan": 5,
    "simulator.cli": 6, "simulator._cli_common": 6, "simulator._cli_import": 6, "simulator._cli_server": 6,
    "simulator._bench_run": 6, "simulator._cli_sweep": 6, "simulator._cli_plan": 6,
    "simulator._entry": 7, "simulator.__main__": 8,
}
HELPERS = {"simulator.clock", "simulator._stop_signals", "simulator._malloc", "simulator._version",
           "simulator._gc"}
# The only imports between parts of one floor: the observers read the switch's reports, and
# the command line's modules share _cli_common.
SIDEWAYS = {
    ("simulator.metrics", "simulator.switch"), ("simulator.progress", "simulator.switch"),
    ("simulator.cli", "simulator._cli_common"), ("simulator.cli", "simulator._cli_server"),
    ("simulator.cli", "simulator._cli_import"), ("simulator._cli_import", "simulator._cli_common"),
    ("simulator._cli_server", "simulator._cli_common"), ("simulator._bench_run", "simulator._cli_common"),
    ("simulator.sip", "simulator.server"),  # the SIP edge feeds the server's exchange
    ("simulator.cli", "simulator._cli_sweep"), ("simulator._cli_sweep", "simulator._cli_common"),
    ("simulator.sweep", "simulator.run"), ("simulator.bench", "simulator.sweep"),
    # plan runs its searches as sweeps
    ("simulator.plan", "simulator.sweep"),
    ("simulator.cli", "simulator._cli_plan"), ("simulator._cli_plan", "simulator._cli_common"),
}


def test_imports_go_down_the_floors() -> None:
    """cli -> run/server -> switch/expect/report -> traffic/outputs -> scenario -> units ->
    rating_core: no upward arrow, and none across a floor but SIDEWAYS (the output layer, say,
    does not estimate traffic: its caller decides)."""
    modules = set(GRAPH)
    upward, unplaced = [], set()
    for name, targets in GRAPH.items():
        if name == "simulator" or _part(name) in HELPERS:
            continue
        here = FLOORS.get(_part(name))
        if here is None:
            unplaced.add(_part(name))
            continue
        for target in targets:
            module = "rating_core" if target.startswith("rating_core") else _module_of(target, modules)
            if module is None or module == "simulator" or _part(module) in HELPERS:
                continue
            other = "rating_core" if module == "rating_core" else _part(module)
            there = FLOORS.get(other)
            if other == _part(name) or there is None:
                continue
            if there > here or (there == here and (_part(name), other) not in SIDEWAYS):
                upward.append(f"{name} imports {target}")
    assert unplaced == set()
    assert upward == []
