"""A `Policy` to serve, from a checkpoint or an ONNX export: the torch model or onnxruntime."""

from __future__ import annotations

from pathlib import Path

import torch

from ript.core.policy import Policy
from ript.policies.checkpoint import load_checkpoint
from ript.policies.onnx_export import export_onnx
from ript.policies.onnx_policy import POLICY_JSON, OnnxPolicy


def load_policy(
    path: str | Path, backend: str = "torch", device: str | None = None, threads: int | None = None
) -> Policy:
    """A `Policy` from a checkpoint file or an ONNX export folder.

    backend='torch': the VLAPolicy (device: 'cuda' when available unless given).
    backend='onnx': an OnnxPolicy; `path` is an export folder, or a checkpoint that is exported
    (once) into '<checkpoint>.onnx/' beside it.
    threads: CPU threads of one query (torch's intra-op threads for this process, or the ONNX
    session's); None leaves the library's default.
    """
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    path = Path(path)
    if backend == "torch":
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if threads is not None:
            torch.set_num_threads(threads)
        return load_checkpoint(path, device)[0]
    if backend == "onnx":
        if path.is_file():
            folder = path.with_name(path.name + ".onnx")
            if not (folder / POLICY_JSON).is_file() or (folder / POLICY_JSON).stat().st_mtime < path.stat().st_mtime:
                export_onnx(path, folder)
            path = folder
        return OnnxPolicy(path, device=device, threads=threads)
    raise ValueError(f"backend must be 'torch' or 'onnx', got {backend!r}")
