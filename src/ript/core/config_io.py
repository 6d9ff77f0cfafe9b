"""Typed configs from YAML files and `--set key.sub=value` overrides, with unknown keys rejected."""

from __future__ import annotations

import copy
import dataclasses
import re
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Builds dataclass `cls` from a (nested) dict; unknown keys raise with their dotted path.

    A nested section given in part keeps the field's own defaults for the keys it leaves out
    (`--set train.iterations=3` must not reset the rest of a `train` section whose defaults differ
    from those of its class)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where or 'config'}: unknown keys {unknown}; known: {sorted(names)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, dict):
            factory = fields[key].default_factory
            if factory is not dataclasses.MISSING:
                value = merged(dataclasses.asdict(factory()), value)
            value = from_dict(hint, value, f"{where}.{key}" if where else key)
        kwargs[key] = value
    return cls(**kwargs)


def set_dotted(data: dict, assignment: str) -> None:
    """Applies 'a.b.c=value' to a nested dict; the value is parsed as YAML (numbers, lists, null)."""
    if "=" not in assignment:
        raise ValueError(f"override {assignment!r} must look like key.sub=value")
    path, raw = assignment.split("=", 1)
    keys = path.strip().split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {assignment!r}: {key} is not a section")
    value = yaml.safe_load(raw)
    if isinstance(value, str) and SCIENTIFIC.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads '1e-5' (no dot) as a string
    node[keys[-1]] = value


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None, base: dict | None = None
) -> T:
    """Defaults of `cls`, then `base`, then the YAML file, then the overrides (later wins)."""
    data: dict = {}
    for layer in (base or {}, yaml.safe_load(Path(path).read_text()) if path else {}):
        _merge(data, copy.deepcopy(layer or {}))  # a copy: the overrides below must not edit the caller's base
    for assignment in overrides or []:
        set_dotted(data, assignment)
    return from_dict(cls, data)


def merged(base: dict, update: dict) -> dict:
    """`base` with `update` merged into it, section by section (base is changed and returned)."""
    _merge(base, update)
    return base


def _merge(into: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
