"""Data parallelism for the LOOP update: R processes (ranks) share one update of one batch.

Every rank holds the same policy, optimizer state and batch, and draws the same minibatch order;
each scores only its share of a minibatch's rows. `LoopUpdater` then sums, over the ranks, what
the single-process update would have summed over the whole minibatch: the loss normaliser (so
each rank's loss is divided by the minibatch's token / query / trial count, not its own), the
gradients and the statistics. Every rank therefore clips and steps with the same gradient and
takes the same target_kl decision, and the ranks stay in lock-step without exchanging weights.

Initialise torch.distributed first (`torchrun` + `init_process_group`, gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

import datetime
import socket
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor


class DataParallel:
    """This process's place in a process group that shares LOOP updates."""

    def __init__(self, group: dist.ProcessGroup | None = None) -> None:
        if not dist.is_initialized():
            raise RuntimeError("DataParallel needs torch.distributed initialised (init_process_group) first")
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        self.source_rank = dist.get_global_rank(group, 0) if group is not None else 0
        # NCCL only moves CUDA tensors; gloo moves CPU ones (statistics are assembled on either).
        nccl = dist.get_backend(group) == "nccl"
        self.device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")

    def shard(self, rows: Tensor) -> Tensor:
        """This rank's contiguous share of `rows` (shares differ by at most one; some may be empty)."""
        return torch.tensor_split(rows, self.world_size)[self.rank]

    def sum(self, value: Tensor) -> Tensor:
        """`value` summed over the ranks (a new tensor on value's device; value is untouched)."""
        return self._all_reduce(value, dist.ReduceOp.SUM)

    def max(self, value: Tensor) -> Tensor:
        """Elementwise maximum of `value` over the ranks."""
        return self._all_reduce(value, dist.ReduceOp.MAX)

    def _all_reduce(self, value: Tensor, op: dist.ReduceOp.RedOpType) -> Tensor:
        buffer = value.detach().to(self.device, copy=True)
        dist.all_reduce(buffer, op=op, group=self.group)
        return buffer.to(value.device)

    def from_rank0(self, message: object = None) -> object:
        """Rank 0's `message` (any picklable object), returned on every rank (the others' is ignored)."""
        box = [message]
        dist.broadcast_object_list(box, src=self.source_rank, group=self.group)
        return box[0]

    @torch.no_grad()
    def broadcast_parameters(self, parameters: Sequence[Tensor]) -> None:
        """Every rank takes rank 0's values."""
        for p in parameters:
            dist.broadcast(p.data, src=self.source_rank, group=self.group)

    @torch.no_grad()
    def sum_gradients(self, parameters: Sequence[Tensor]) -> None:
        """Replace each parameter's gradient by its sum over the ranks.

        A parameter no rank's rows reached keeps grad None (as in a single process, where the
        optimizer then leaves it alone); one that only some ranks' rows reached counts as zero
        on the others."""
        reached = torch.tensor([p.grad is not None for p in parameters], dtype=torch.float32)
        reached_anywhere = self.sum(reached) > 0
        pending = []
        for p, reached_by_some in zip(parameters, reached_anywhere.tolist()):
            if not reached_by_some:
                continue
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            pending.append(dist.all_reduce(p.grad, op=dist.ReduceOp.SUM, group=self.group, async_op=True))
        for work in pending:
            work.wait()


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for ranks that meet on this machine)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def join_loopback_group(rank: int, world_size: int, port: int, timeout: datetime.timedelta) -> DataParallel:
    """Join a gloo process group of `world_size` ranks on this machine, rank 0 listening on
    127.0.0.1:`port` (tests and benchmarks that spawn their own ranks; torchrun sets up the rest)."""
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size, timeout=timeout
    )
    return DataParallel()
