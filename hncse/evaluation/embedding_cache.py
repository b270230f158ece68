"""Encode every distinct sentence of an evaluation once, then look embeddings up by sentence."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


class EmbeddingLookup:
    """Embeddings (float32, CPU) of a fixed set of sentences; `lookup(sentences)` gathers rows by text."""

    def __init__(self, sentences: list[str], embeddings: Tensor):
        self.index = {s: i for i, s in enumerate(sentences)}
        self.embeddings = embeddings

    def __call__(self, sentences: list[str]) -> Tensor:
        return self.embeddings[[self.index[s] for s in sentences]]

    def __len__(self) -> int:
        return len(self.index)


def encode_unique(encoder, sentences: Iterable[str], batch_size: int = 128, bf16: bool = False) -> EmbeddingLookup:
    """One forward pass per distinct sentence (the encoder batches by length, without gradients).

    bf16: run the encoder under bfloat16 autocast (GPU inference speed); embeddings come back as float32.
    """
    unique = list(dict.fromkeys(sentences))
    device = next(encoder.parameters()).device
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
        embeddings = encoder.encode(unique, batch_size=batch_size)
    return EmbeddingLookup(unique, embeddings.float())
