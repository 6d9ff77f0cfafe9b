"""Command-line path arguments that name files or folders of them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def files_under(paths: Iterable[str | Path], suffix: str, what: str) -> list[Path]:
    """Files named directly plus every `*<suffix>` below the folders named (sorted per folder);
    FileNotFoundError naming the `what` when a path does not exist or nothing is found."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(path.rglob(f"*{suffix}"))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no {what} file or folder at {path}")
    if not files:
        raise FileNotFoundError(f"no *{suffix} {what} files under {[str(p) for p in paths]}")
    return files
