"""Batches of prepared, tokenised rows as the trainer takes them."""

from __future__ import annotations

import torch


class ColumnsCollator:
    """Pads a batch of labelled rows to (N, C, L) tensors: C sentences per row (anchor, positive, negatives), every
    sentence of the batch to the same length, so the trainer encodes them in one pass."""

    def __init__(self, tokenizer, pad_to_multiple_of: int | None = None):
        self.tokenizer, self.pad_to_multiple_of = tokenizer, pad_to_multiple_of

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        keys = [k for k in rows[0] if k != "num_tokens"]
        per_row = len(rows[0]["input_ids"])
        sentences = [{k: row[k][c] for k in keys} for row in rows for c in range(per_row)]
        batch = self.tokenizer.pad(sentences, pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="pt")
        return {k: v.view(len(rows), per_row, -1) for k, v in batch.items()}
