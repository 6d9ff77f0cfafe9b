"""The line the panel node prints once it listens, and its parser. The node may be asked for port 0
(any free port); whoever started it (a test, `bench/first_run.py`, `scripts/screenshots.py`, a
user's script) learns the address from this line instead of guessing a free port beforehand."""

from __future__ import annotations

import re

_ANNOUNCEMENT = re.compile(r"operator panel: (http://\S+)/#token=(\S+)")


def announcement(url: str, token: str) -> str:
    """The line that says where the panel listens and which token opens it."""
    return f"operator panel: {url}/#token={token}"


def parse_announcement(line: str) -> tuple[str, str] | None:
    """(url, token) from a line of the panel node's output, None for any other line."""
    found = _ANNOUNCEMENT.search(line)
    return (found.group(1), found.group(2)) if found else None
