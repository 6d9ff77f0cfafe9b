"""Named implementations loaded on first use: the policy types a checkpoint can name and the
simulators a rollout can run in. An entry is a "module:attribute" string, so a worker process
can be told which one to build by name (picklable), and nothing heavy is imported until it is
chosen. A new policy type or simulator is one new module plus one `register` call (or an entry
in the defaults below)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


class Registry:
    def __init__(self, kind: str, entries: dict[str, str]) -> None:
        self.kind = kind
        self._entries = dict(entries)

    def register(self, name: str, target: str) -> None:
        """Adds (or replaces) `name` -> "module:attribute"."""
        module, _, attribute = target.partition(":")
        if not module or not attribute:
            raise ValueError(f"{self.kind} {name!r}: target must be 'module:attribute', got {target!r}")
        self._entries[name] = target

    def names(self) -> list[str]:
        return sorted(self._entries)

    def target(self, name: str) -> str:
        """The "module:attribute" registered under `name` (what a worker process is handed: a
        registration made in this process does not exist in a freshly spawned one)."""
        if name not in self._entries:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return self._entries[name]

    def get(self, name: str) -> Callable[..., Any]:
        """The callable registered under `name`, imported now."""
        return load(self.target(name))


def load(target: str) -> Callable[..., Any]:
    """Imports "module:attribute" (the attribute may be dotted) and returns it."""
    module, _, attribute = target.partition(":")
    value: Any = importlib.import_module(module)
    for part in attribute.split("."):
        value = getattr(value, part)
    return value


POLICY_TYPES = Registry(
    "policy type",
    {"vla": "ript.policies.vla:policy_from_config", "hf_vla": "ript.policies.hf_vla:policy_from_config"},
)
"""Policy type -> builder(config: dict) -> Policy (an nn.Module whose state_dict the checkpoint holds)."""

POLICY_CONFIGS = Registry(
    "policy type", {"vla": "ript.policies.config:VLAConfig", "hf_vla": "ript.policies.hf_vla:HFVLAConfig"}
)
"""Policy type -> its config dataclass (what `ript sft --set policy.type=... policy.<field>=...` fills)."""

SIMULATORS = Registry("simulator", {"libero": "ript.sim.env:make_env"})
"""Simulator -> factory(base_config, context) -> env with reset/step/close (ript.sim.env.LiberoEnv's)."""
