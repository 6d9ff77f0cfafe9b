"""launch/*.launch.py and `ript up` start the same graph (no `launch` packages exist on PyPI, so the
launch files run here against stand-in `launch`/`launch_ros` modules that record every call)."""
from __future__ import annotations

import runpy
import sys
import types
from pathlib import Path

import pytest

from ript_trainer import up_cli
from ript_trainer.graph import ARGUMENTS, MODES, graph_nodes

LAUNCH_DIR = Path(__file__).resolve().parents[2] / "launch"


class LaunchConfiguration:
    def __init__(self, name):
        self.name = name


def _stand_in_modules(recorded: dict) -> dict[str, types.ModuleType]:
    def module(name, **attrs):
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        return mod

    def record(kind):
        return lambda **kwargs: recorded.setdefault(kind, []).append(kwargs) or kwargs

    return {
        "launch": module("launch", LaunchDescription=lambda actions: list(actions)),
        "launch.actions": module("launch.actions", DeclareLaunchArgument=lambda name, **kw: record("arguments")(
            name=name, **kw)),
        "launch.substitutions": module("launch.substitutions", LaunchConfiguration=LaunchConfiguration),
        "launch_ros": module("launch_ros"),
        "launch_ros.actions": module("launch_ros.actions", Node=record("nodes")),
    }


def _resolve(value, arguments):
    """What launch would pass for a parameter value built from LaunchConfiguration substitutions."""
    if isinstance(value, LaunchConfiguration):
        return arguments[value.name]
    if isinstance(value, list):
        return "".join(str(_resolve(part, arguments)) for part in value)
    return value


def launch_file_commands(mode: str, arguments: dict[str, str], monkeypatch) -> tuple[list, list]:
    recorded: dict = {}
    for name, mod in _stand_in_modules(recorded).items():
        monkeypatch.setitem(sys.modules, name, mod)
    description = runpy.run_path(str(LAUNCH_DIR / f"{mode}.launch.py"))["generate_launch_description"]()
    assert len(description) == len(recorded["arguments"]) + len(recorded["nodes"])
    nodes = []
    for node in recorded["nodes"]:
        (parameters,) = node["parameters"]
        nodes.append({"package": node["package"], "executable": node["executable"], "name": node["name"],
                      "parameters": {k: _resolve(v, arguments) for k, v in parameters.items()},
                      "remappings": [tuple(r) for r in node["remappings"]]})
    return nodes, recorded["arguments"]


def ript_up_view(command: list[str]) -> dict:
    """Parse `python -m module --ros-args ...` back into name, parameters and remappings."""
    args = command[command.index("--ros-args") + 1:]
    pairs = list(zip(args[::2], args[1::2]))
    remaps = [tuple(value.split(":=", 1)) for flag, value in pairs if flag == "-r"]
    name = next(target for source, target in remaps if source == "__node")
    params = dict(tuple(value.split(":=", 1)) for flag, value in pairs if flag == "-p")
    return {"name": name, "parameters": params, "remappings": [r for r in remaps if r[0] != "__node"]}


@pytest.mark.parametrize("mode", MODES)
def test_launch_file_and_ript_up_start_the_same_graph(mode, monkeypatch):
    arguments = up_cli.launch_arguments(mode, ["checkpoint=/models/policy.ckpt", "run_dir=/runs/x"])
    launched, declared = launch_file_commands(mode, arguments, monkeypatch)
    planned = [ript_up_view(command) for command in up_cli.plan(mode, arguments)]
    specs = graph_nodes(mode)

    assert [n["name"] for n in launched] == [p["name"] for p in planned] == [s.name for s in specs]
    for node, plan, spec in zip(launched, planned, specs):
        assert (node["package"], node["executable"]) == (spec.package, spec.executable)
        stringified = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in node["parameters"].items()}
        assert stringified == plan["parameters"], node["name"]
        assert node["remappings"] == plan["remappings"], node["name"]
    assert {a["name"]: a["default_value"] for a in declared} == {k: v[0] for k, v in ARGUMENTS[mode].items()}
    policy = next(p for p in planned if p["name"] == "policy_node")
    assert policy["parameters"]["record_dir"] == "/runs/x/incoming"
    assert policy["parameters"]["checkpoint"] == "/models/policy.ckpt"


def test_every_graph_node_module_has_a_main_and_console_script():
    import importlib

    setup_texts = {p: p.read_text() for p in Path(__file__).resolve().parents[2].glob("**/setup.py")}
    pyproject = (Path(__file__).resolve().parents[2] / "sim" / "pyproject.toml").read_text()
    for mode in MODES:
        for spec in graph_nodes(mode):
            assert callable(importlib.import_module(spec.module).main)
            entry = f"{spec.executable} = {spec.module}:main"
            quoted = f'{spec.executable} = "{spec.module}:main"'
            assert any(entry in text for text in setup_texts.values()) or quoted in pyproject, entry


def test_ript_up_rejects_unknown_arguments():
    with pytest.raises(SystemExit, match="unknown argument"):
        up_cli.launch_arguments("sim", ["checkpiont=x"])
