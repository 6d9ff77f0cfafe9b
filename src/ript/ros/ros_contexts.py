"""Context ids shared by the trainer node and the LIBERO bridge, so a TrialStart names one scene.

Both nodes read the same contexts file (`ript contexts --out FILE`); the id is derived from the
context itself, never from its position in some list, so two nodes cannot disagree on it.
"""

from __future__ import annotations

from pathlib import Path

from ript.core.interactive import ContextInfo
from ript.sim.contexts import Context, load_contexts


def context_id(context: Context) -> str:
    """e.g. 'libero_spatial/0/train3'."""
    return f"{context.suite}/{context.task_id}/{context.split}{context.index}"


def load_context_infos(path: str | Path) -> list[ContextInfo]:
    return [ContextInfo(context_id(c), c.instruction) for c in load_contexts(path)]
