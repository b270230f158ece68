"""SimCSE's poolers: how token states become one sentence vector (docs/method.md §1)."""

from __future__ import annotations

import torch
from torch import Tensor

# cls: [CLS] state followed by the MLP head (in training only, unless mlp_only_train=False).
# cls_before_pooler: [CLS] state, never an MLP. avg*: masked mean over tokens of one layer or a mean of two layers.
# lasttoken: the last non-padding token's state, a causal decoder's summary of the whole sentence (sentence-
# transformers' `lasttoken`).
POOLER_TYPES = ("cls", "cls_before_pooler", "avg", "avg_top2", "avg_first_last", "lasttoken")
FIRST_TOKEN_POOLERS = ("cls", "cls_before_pooler")  # a causal decoder's first token sees only itself
NEEDS_HIDDEN_STATES = ("avg_top2", "avg_first_last")


def masked_mean(states: Tensor, attention_mask: Tensor) -> Tensor:
    """Mean over the non-padding tokens. states (B, L, d), attention_mask (B, L) → (B, d)."""
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def pool(pooler_type: str, attention_mask: Tensor, last_hidden_state: Tensor, hidden_states=None) -> Tensor:
    """Pool one batch of encoder outputs. hidden_states: the tuple (embeddings, layer 1, …, layer L)."""
    if pooler_type in ("cls", "cls_before_pooler"):
        return last_hidden_state[:, 0]
    if pooler_type == "lasttoken":  # the last 1 of the mask, under right or left padding
        last = attention_mask.shape[1] - 1 - attention_mask.flip(dims=(1,)).int().argmax(dim=1)
        return last_hidden_state[torch.arange(last_hidden_state.shape[0], device=last.device), last]
    if pooler_type == "avg":
        return masked_mean(last_hidden_state, attention_mask)
    if pooler_type == "avg_top2":
        return masked_mean((hidden_states[-1] + hidden_states[-2]) / 2.0, attention_mask)
    if pooler_type == "avg_first_last":
        # hidden_states[0] is the embedding layer; SimCSE's "first" is the first transformer layer.
        return masked_mean((hidden_states[1] + hidden_states[-1]) / 2.0, attention_mask)
    raise ValueError(f"unknown pooler_type {pooler_type!r}; choose one of {', '.join(POOLER_TYPES)}")
