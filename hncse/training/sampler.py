"""The training order, in flat memory: accelerate's seedable shuffle without a Python list of every index.

The Trainer's RandomSampler, which accelerate swaps for its `SeedableRandomSampler`, shuffles with
`torch.randperm(N).tolist()`: a list of N Python ints (about 40 bytes a sentence) held for the whole epoch.
`PermutationSampler` draws the same permutation from the same seed (`data_seed`, else torch's initial seed, plus
the epoch) and keeps it as one int64 tensor (8 bytes a sentence), handing out indices a slice at a time.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

SLICE = 1 << 16  # indices converted to Python ints at a time


class PermutationSampler(Sampler[int]):
    """Every index of a dataset of `size` rows once per epoch, in `SeedableRandomSampler`'s order.

    Args:
        size: number of rows.
        data_seed: seed of the order; None: torch's initial seed when the sampler is made (the run's --seed),
            as accelerate does.
    """

    def __init__(self, size: int, data_seed: int | None = None):
        self.size = size
        self.initial_seed = data_seed if data_seed is not None else torch.random.initial_seed()
        self.epoch = 0

    def __len__(self) -> int:
        return self.size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self.initial_seed + self.epoch)
        # 4 bytes per row held for the epoch (the same order as randperm's default int64, tested).
        dtype = torch.int32 if self.size <= torch.iinfo(torch.int32).max else torch.int64
        order = torch.randperm(self.size, generator=generator, dtype=dtype)
        for part in order.split(SLICE):
            yield from part.tolist()
        self.set_epoch(self.epoch + 1)  # as SeedableRandomSampler: a finished pass moves to the next epoch
