"""What one training step encodes, and how the embeddings become an objective's inputs.

One sentence per row: the batch twice, so that two dropout masks give each sentence two views (SimCSE). Labelled
rows (pairs, triplets; `hncse.data`): each sentence of the row once — anchor, positive, given negatives.
Either way every sentence of the step is encoded in one pass, stacked column by column.
"""

from __future__ import annotations

import inspect

import torch
from torch import Tensor

from hncse.modeling import FEATURE_KEYS


def stacked_features(inputs: dict[str, Tensor]) -> tuple[dict[str, Tensor], int]:
    """(the features of every sentence to encode, column after column; the number of columns C): (N, L) inputs are
    one sentence per row, encoded twice (C = 2); (N, C, L) inputs are C sentences per row."""
    if inputs["input_ids"].dim() == 3:
        rows, columns = inputs["input_ids"].shape[:2]
        return {k: inputs[k].transpose(0, 1).reshape(rows * columns, -1) for k in FEATURE_KEYS if k in inputs}, columns
    return {k: torch.cat([inputs[k], inputs[k]]) for k in FEATURE_KEYS if k in inputs}, 2


def split_views(embeddings: Tensor, columns: int) -> tuple[Tensor, Tensor, Tensor | None]:
    """(anchors z1 (N, d), positives z2 (N, d), given negatives (N, K, d) or None) from the (C·N, d) embeddings of
    `stacked_features`' rows."""
    parts = embeddings.view(columns, -1, embeddings.shape[-1])
    return parts[0], parts[1], parts[2:].transpose(0, 1) if columns > 2 else None


def objective_loss(loss_fn, embeddings: Tensor, columns: int, exchange) -> tuple[Tensor, dict[str, Tensor]]:
    """The objective on the step's embeddings; the given negatives are passed only when there are some, so that an
    objective written for sentences alone needs no `negatives` argument."""
    z1, z2, negatives = split_views(embeddings, columns)
    if negatives is None:
        return loss_fn(z1, z2, exchange=exchange)
    return loss_fn(z1, z2, exchange=exchange, negatives=negatives)


def takes_negatives(loss_fn) -> bool:
    """Whether the objective's forward accepts given hard negatives (`negatives=`)."""
    parameters = inspect.signature(loss_fn.forward).parameters
    return "negatives" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
