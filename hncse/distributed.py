"""How an objective sees the batch: this process's sentences only, or the global batch of every process.

With P processes, `GlobalBatch.gather` concatenates a tensor from all of them (in rank order) and returns where
this process's rows start, so each anchor is scored against every sentence of the global batch and PM / HNM
mine their hardest negatives over it. Gradients flow back to each slice's owner: the backward pass sums, over
processes, the gradient every process computed for a slice. Since DDP and DeepSpeed average parameter
gradients over processes, P processes with batch N then take the same step as one process with batch P·N.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


class LocalBatch:
    """Negatives come from this process's batch only."""

    world_size = 1

    def gather(self, x: Tensor) -> tuple[Tensor, int]:
        return x, 0

    def sum(self, x: Tensor) -> Tensor:
        return x


class _AllGatherWithGrad(torch.autograd.Function):
    """all_gather whose backward all-reduces the incoming gradient and keeps this process's rows."""

    @staticmethod
    def forward(ctx, x: Tensor, sizes: list[int], rank: int) -> Tensor:
        ctx.sizes, ctx.rank = sizes, rank
        longest = max(sizes)
        padded = x.new_zeros((longest, *x.shape[1:]))
        padded[: x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
        return torch.cat([part[:n] for part, n in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad: Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None, None


class GlobalBatch:
    """Negatives come from the batches of all processes of the default process group."""

    def __init__(self, equal_sizes: bool = False):
        """equal_sizes: every process always gathers as many rows as this one (full batches, e.g. with
        dataloader_drop_last), so the sizes need not be exchanged first — an exchange the host would wait for."""
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("GlobalBatch needs an initialised torch.distributed process group")
        self.world_size = dist.get_world_size()
        self.rank = dist.get_rank()
        self.equal_sizes = equal_sizes

    def gather(self, x: Tensor) -> tuple[Tensor, int]:
        """(rows of every process in rank order, index of this process's first row). Batches may differ in size
        unless `equal_sizes`."""
        if self.equal_sizes:
            sizes = [x.shape[0]] * self.world_size
        else:
            size = torch.tensor([x.shape[0]], device=x.device)
            all_sizes = [torch.zeros_like(size) for _ in range(self.world_size)]
            dist.all_gather(all_sizes, size)
            sizes = torch.cat(all_sizes).tolist()
        return _AllGatherWithGrad.apply(x, sizes, self.rank), sum(sizes[: self.rank])

    def sum(self, x: Tensor) -> Tensor:
        """Sum over processes (no gradient)."""
        x = x.detach().clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x


def batch_exchange(gather_negatives: bool, equal_sizes: bool = False) -> LocalBatch | GlobalBatch:
    """GlobalBatch when asked and more than one process runs, else LocalBatch."""
    if gather_negatives and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return GlobalBatch(equal_sizes)
    return LocalBatch()
