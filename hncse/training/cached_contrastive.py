"""Cached contrastive step (the GradCache idea): batches far larger than the encoder's memory allows.

A contrastive batch cannot be split by gradient accumulation: every sentence is a negative of every other.
Instead, (1) encode the batch in mini-batches without building graphs, keeping each mini-batch's random state;
(2) compute the objective on the full batch of embeddings — PM and HNM see the whole (global) batch — and
backpropagate to the embeddings only; (3) when the Trainer backpropagates the returned loss, encode each
mini-batch again with its random state restored (so the dropout masks, and hence the embeddings, are the same
as in pass 1) and backpropagate the cached embedding gradients through it. Peak memory is that of one
mini-batch plus the (2N, d) embeddings; the price is a second forward pass.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from hncse.training.views import objective_loss


class RandomState:
    """The CPU and accelerator random state at one point, to replay dropout masks."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cpu = torch.get_rng_state()
        self.accelerator = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.accelerator is not None:
            torch.cuda.set_rng_state(self.accelerator, self.device)


def average_gradients(module: nn.Module) -> None:
    """Mean of every parameter gradient over processes: what DDP's reducer would do for a normal backward."""
    import torch.distributed as dist

    world = dist.get_world_size()
    for param in module.parameters():
        if param.grad is not None:
            dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
            param.grad.div_(world)


def cached_contrastive_loss(
    encoder: nn.Module,
    features: dict[str, Tensor],
    loss_fn: Callable,
    mini_batch_size: int,
    exchange,
    after_backward: Callable[[], None] | None = None,
    columns: int = 2,
    deposit_once: bool = False,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The objective on `features` (every sentence of the step, `columns` blocks of N rows: the doubled batch, whose
    rows i and N+i are two views of sentence i, or the anchors, positives and given negatives of labelled rows;
    `hncse.training.views`), computed mini-batch by mini-batch. Returns a loss whose backward runs pass (3) and
    leaves the parameter gradients of the uncached step; `after_backward` runs after it (e.g. averaging gradients
    over processes).

    deposit_once: sum the mini-batches' parameter gradients aside and add them to the parameters in one backward
    step at the end, so that hooks on gradient accumulation fire once per parameter and step, as in the uncached
    step (DeepSpeed ZeRO-2 reduces each parameter's gradient from such a hook, and refuses a second one)."""
    device = features["input_ids"].device
    rows = features["input_ids"].shape[0]
    chunks = [slice(start, start + mini_batch_size) for start in range(0, rows, mini_batch_size)]
    autocast = {
        "device_type": device.type,
        "enabled": torch.is_autocast_enabled(device.type),
        "dtype": torch.get_autocast_dtype(device.type),
    }

    states, pieces = [], []
    with torch.no_grad():
        for chunk in chunks:
            states.append(RandomState(device))
            pieces.append(encoder(**{k: v[chunk] for k, v in features.items()}))
    after_first_pass = RandomState(device)

    embeddings = torch.cat(pieces).detach().requires_grad_()
    with torch.enable_grad():
        loss, stats = objective_loss(loss_fn, embeddings, columns, exchange)
        loss.backward()  # to the embeddings only: they are a leaf
    cached = embeddings.grad.detach()

    def replay(grad_output: Tensor) -> None:
        params = [p for p in encoder.parameters() if p.requires_grad] if deposit_once else []
        summed: list[Tensor | None] = [None] * len(params)
        for chunk, state in zip(chunks, states):
            state.restore()
            with torch.enable_grad(), torch.autocast(**autocast):
                again = encoder(**{k: v[chunk] for k, v in features.items()})
            grad = (cached[chunk] * grad_output).to(again.dtype)
            if not deposit_once:
                torch.autograd.backward(again, grad)
                continue
            for i, g in enumerate(torch.autograd.grad(again, params, grad, allow_unused=True)):
                if g is not None:
                    summed[i] = g if summed[i] is None else summed[i] + g
        if deposit_once:
            given = [(p, g) for p, g in zip(params, summed) if g is not None]
            torch.autograd.backward([p for p, _ in given], [g for _, g in given])
        after_first_pass.restore()  # the random stream continues as if every mini-batch ran once
        if after_backward is not None:
            after_backward()

    result = loss.detach().requires_grad_()
    result.register_hook(replay)
    return result, stats
