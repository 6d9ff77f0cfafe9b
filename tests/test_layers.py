"""The package's layers import one way: each layer only the ones below it (src/ript/__init__.py
lists them), the core neither ROS nor LIBERO, and no module imports itself back through others.
Every import counts, also one inside a function: a lazy import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
LAYERS = ["core", "policies", "robot", "panel", "sim", "ros", "cli"]
# Third-party stacks a layer must not import, by layer and everything below it.
FORBIDDEN = {
    "core": {"rclpy", "libero", "robosuite", "mujoco", "ript_interfaces", "launch", "launch_ros"},
    "policies": {"rclpy", "libero", "robosuite", "mujoco", "ript_interfaces"},
    "robot": {"rclpy", "libero", "robosuite", "mujoco", "ript_interfaces"},
    "panel": {"rclpy", "libero", "robosuite", "mujoco", "ript_interfaces"},
    "sim": {"rclpy", "ript_interfaces", "launch", "launch_ros"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module name an import statement in the file names (absolute imports only: the project
    uses no relative ones)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            names.add(node.module)
            # `from ript.sim import contexts` imports the module ript.sim.contexts
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}
GRAPH = {name: {m for m in imports_of(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_belongs_to_a_layer():
    loose = [m for m in MODULES if m not in ("ript", "ript.__main__") and layer_of(m) is None]
    assert not loose, f"modules outside the layers {LAYERS}: {loose}"


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_only_the_layers_below_it(layer):
    rank = LAYERS.index(layer)
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if layer_of(module) == layer
        for target in targets
        if layer_of(target) and LAYERS.index(layer_of(target)) > rank
    )
    assert not upward, f"{layer} imports a layer above it: {upward}"
    stacks = FORBIDDEN.get(layer, set())
    foreign = sorted(
        f"{module} -> {name}"
        for module, path in MODULES.items()
        if layer_of(module) == layer
        for name in imports_of(path)
        if name.split(".")[0] in stacks
    )
    assert not foreign, f"{layer} imports a stack it must not: {foreign}"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], _ = 1, path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node], _ = 2, path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_module_imports_itself_back():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    # the check above must be able to fail
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
