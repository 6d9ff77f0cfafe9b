"""Crash-safe, verifiable files for checkpoints and stored trials.

A file is `MAGIC`, the SHA-256 of the payload in hex, a newline, then the payload (a torch.save
blob). It is written to a temporary file in the same folder, fsynced, then renamed over the
target, so a reader sees either the old file or the complete new one — never half of one, even
after SIGKILL or a power cut. A truncated or altered file fails the digest check with a clear error
instead of unpickling garbage.

Reading never runs code: payloads are loaded with `torch.load(weights_only=True)` (tensors, numbers,
strings and plain containers only), because a file's digest proves it is whole, not who wrote it —
any peer on the DDS domain can name a file in a message. `confined_file` checks such a name before
anything is read.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

MAGIC = b"RIPT1\n"

log = logging.getLogger("ript.safe_io")


class CorruptFileError(RuntimeError):
    """The file is truncated, altered, not a ript file, or holds more than plain tensors and containers."""


class RefusedFileError(CorruptFileError):
    """A file named by a message that is refused before it is read (outside its folder, too large, not a file)."""


def confined_file(path: str | Path, root: str | Path, max_bytes: int | None = None) -> Path:
    """`path` with symlinks resolved, if it is a regular file inside `root` of at most `max_bytes`;
    else RefusedFileError saying why. For file names that arrive in messages."""
    root = Path(root).resolve()
    try:
        resolved = Path(path).resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise RefusedFileError(f"{path}: cannot be resolved ({exc})") from exc
    if root not in resolved.parents:
        raise RefusedFileError(f"{path}: outside {root}, the only folder this node reads such files from")
    if not resolved.is_file():
        raise RefusedFileError(f"{path}: not a regular file")
    size = resolved.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise RefusedFileError(f"{path}: {size} bytes, over the limit of {max_bytes}")
    return resolved


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Write a file through `write(f)` so that readers see the old file or the whole new one: a
    temporary file in the same folder, fsynced, renamed over `path`, then the folder fsynced."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    # Make the rename itself durable.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_verified(obj: Any, path: str | Path) -> str:
    """Atomically write `obj`; returns the payload's sha256 hex digest."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    atomic_write(path, lambda f: f.write(MAGIC + digest.encode() + b"\n" + payload))
    return digest


def file_digest(path: str | Path) -> str:
    """The digest recorded in a verified file's header (cheap: reads the header only)."""
    with open(path, "rb") as f:
        header = f.read(len(MAGIC) + 65)
    if not header.startswith(MAGIC) or len(header) < len(MAGIC) + 65:
        raise CorruptFileError(f"{path}: not a ript checkpoint (bad header)")
    return header[len(MAGIC) : len(MAGIC) + 64].decode()


def load_verified(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """Load a file written by save_verified; raises CorruptFileError if it does not verify."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CorruptFileError(f"{path}: cannot be read ({exc})") from exc
    header_len = len(MAGIC) + 65
    if not data.startswith(MAGIC) or len(data) < header_len or data[header_len - 1 : header_len] != b"\n":
        raise CorruptFileError(f"{path}: not a ript checkpoint or truncated header ({len(data)} bytes)")
    expected = data[len(MAGIC) : header_len - 1].decode(errors="replace")
    payload = data[header_len:]
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected:
        raise CorruptFileError(
            f"{path}: checksum mismatch (file truncated or altered; header {expected[:12]}…, content {actual[:12]}…)"
        )
    try:
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError for a global outside the allowlist, and torch's own
        # torch's message suggests weights_only=False; quote only the line that names what was refused
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = next(
            (line for line in lines if "Unsupported" in line or "GLOBAL" in line),
            lines[0] if lines else type(exc).__name__,
        )
        raise CorruptFileError(f"{path}: payload refused, not plain tensors and containers ({reason[:200]})") from exc


def load_or_set_aside(path: str | Path, what: str) -> Any | None:
    """load_verified, except that a file that does not verify is logged, renamed to *.corrupt
    (kept for inspection, never read again) and None is returned."""
    path = Path(path)
    try:
        return load_verified(path)
    except CorruptFileError as exc:
        log.error("setting aside corrupt %s: %s", what, exc)
        path.rename(path.with_suffix(".corrupt"))
        return None
