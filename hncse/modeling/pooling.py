"""SimCSE's poolers: how token states become one sentence vector (docs/method.md §1).

Each pooler is one `Pooler` in `POOLERS`, which says everything the package needs to know of it: the vector, the
model (hidden states, EOS, MLP head), the sentence-transformers modules of the saved folder and the model card's
words. Everything else reads the registry when it is called, so a pooler registered later is accepted everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

# sentence-transformers' Pooling modes, as `Pooling(pooling_mode=...)` and its 6.x configs name them → the
# pooling_mode_<flag> of its ≤ 5.x configs.
ST_MODE_FLAGS = {"mean": "mean_tokens", "cls": "cls_token", "lasttoken": "lasttoken", "max": "max_tokens",
                 "mean_sqrt_len_tokens": "mean_sqrt_len_tokens"}  # fmt: skip


@dataclass(frozen=True)
class Pooler:
    """One pooler, in the style of sentence-transformers' `Pooling` module.

    Args:
        name: the value of `--pooler_type` (and `pooler_type` in hncse_config.json).
        pool: (attention_mask (B, L), last_hidden_state (B, L, d), hidden_states: the tuple (embeddings, layer 1,
            …, layer L) or None) → (B, d).
        st_mode: the sentence-transformers Pooling mode that computes the same vector (after `layer_mix`).
        card_words: the vector in the model card's words ("the mean of …").
        card_code: the model card's plain-transformers lines that compute `embeddings` after
            `outputs = model(**batch, output_hidden_states=True)`.
        layer_mix: num_hidden_layers → the WeightedLayerPooling before the Pooling (`layer_start`, `weights`),
            for a pooler of several layers; None: the last layer alone.
        needs_hidden_states: `pool` reads `hidden_states` (every layer's states are then returned).
        first_token: it pools the first token, which sees only itself in a causal decoder (refused there).
        appends_eos: a decoder's tokenizer appends EOS to every sentence, the token it pools.
        mlp_head: SimCSE's Linear+tanh head follows it in training (and at inference with mlp_only_train=False).
    """

    name: str
    pool: Callable[[Tensor, Tensor, tuple[Tensor, ...] | None], Tensor]
    st_mode: str
    card_words: str
    card_code: tuple[str, ...]
    layer_mix: Callable[[int], dict] | None = None
    needs_hidden_states: bool = False
    first_token: bool = False
    appends_eos: bool = False
    mlp_head: bool = False

    def __post_init__(self):
        if self.st_mode not in ST_MODE_FLAGS:
            modes = ", ".join(ST_MODE_FLAGS)
            raise ValueError(f"pooler {self.name!r}: st_mode must be one of {modes}, got {self.st_mode!r}")

    def weighted_layers(self, num_hidden_layers: int) -> dict | None:
        """The WeightedLayerPooling that computes it in sentence-transformers, or None for a pooler of one layer."""
        return self.layer_mix(num_hidden_layers) if self.layer_mix is not None else None


POOLERS: dict[str, Pooler] = {}


def register_pooler(pooler: Pooler) -> Pooler:
    """Make `pooler` a value of `--pooler_type` (and of every loader, writer and card)."""
    if pooler.name in POOLERS:
        raise ValueError(f"a pooler named {pooler.name!r} is already registered")
    POOLERS[pooler.name] = pooler
    return pooler


def unregister_pooler(name: str) -> None:
    POOLERS.pop(name, None)


def get_pooler(name: str) -> Pooler:
    if name not in POOLERS:
        raise ValueError(f"unknown pooler_type {name!r}; choose one of {', '.join(POOLERS)}")
    return POOLERS[name]


def pool(pooler_type: str, attention_mask: Tensor, last_hidden_state: Tensor, hidden_states=None) -> Tensor:
    """Pool one batch of encoder outputs. hidden_states: the tuple (embeddings, layer 1, …, layer L)."""
    return get_pooler(pooler_type).pool(attention_mask, last_hidden_state, hidden_states)


def masked_mean(states: Tensor, attention_mask: Tensor) -> Tensor:
    """Mean over the non-padding tokens. states (B, L, d), attention_mask (B, L) → (B, d)."""
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def pool_first_token(attention_mask: Tensor, last_hidden_state: Tensor, hidden_states=None) -> Tensor:
    return last_hidden_state[:, 0]


def pool_last_token(attention_mask: Tensor, last_hidden_state: Tensor, hidden_states=None) -> Tensor:
    """The last 1 of the mask, under right or left padding."""
    last = attention_mask.shape[1] - 1 - attention_mask.flip(dims=(1,)).int().argmax(dim=1)
    return last_hidden_state[torch.arange(last_hidden_state.shape[0], device=last.device), last]


def pool_mean(attention_mask: Tensor, last_hidden_state: Tensor, hidden_states=None) -> Tensor:
    return masked_mean(last_hidden_state, attention_mask)


def pool_mean_top2(attention_mask: Tensor, last_hidden_state: Tensor, hidden_states=None) -> Tensor:
    return masked_mean((hidden_states[-1] + hidden_states[-2]) / 2.0, attention_mask)


def pool_mean_first_last(attention_mask: Tensor, last_hidden_state: Tensor, hidden_states=None) -> Tensor:
    # hidden_states[0] is the embedding layer; SimCSE's "first" is the first transformer layer.
    return masked_mean((hidden_states[1] + hidden_states[-1]) / 2.0, attention_mask)


def top2_mix(num_hidden_layers: int) -> dict:
    """The last two layers averaged token-wise (then mean-pooled)."""
    return {"layer_start": num_hidden_layers - 1, "weights": torch.tensor([1.0, 1.0])}


def first_last_mix(num_hidden_layers: int) -> dict:
    """The first and last layers averaged token-wise with a fixed 0/1 weighting (then mean-pooled)."""
    if num_hidden_layers == 1:
        return {"layer_start": 1, "weights": torch.tensor([2.0])}  # first and last layer are the same layer
    return {"layer_start": 1, "weights": torch.tensor([1.0] + [0.0] * (num_hidden_layers - 2) + [1.0])}


MASKED_MEAN_CODE = (
    'mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)',
    "embeddings = (states * mask).sum(dim=1) / mask.sum(dim=1)",
)
CLS_CODE = ("embeddings = outputs.last_hidden_state[:, 0]",)
CLS_WORDS = "the [CLS] token's last hidden state"

# cls: [CLS] state followed by the MLP head (in training only, unless mlp_only_train=False).
# cls_before_pooler: [CLS] state, never an MLP. avg*: masked mean over tokens of one layer or a mean of two layers.
# lasttoken: the last non-padding token's state, a causal decoder's summary of the whole sentence (sentence-
# transformers' `lasttoken`).
for _pooler in (
    Pooler("cls", pool_first_token, "cls", CLS_WORDS, CLS_CODE, first_token=True, mlp_head=True),
    Pooler("cls_before_pooler", pool_first_token, "cls", CLS_WORDS, CLS_CODE, first_token=True),
    Pooler(
        "avg",
        pool_mean,
        "mean",
        "the mean of the last layer's token states",
        ("states = outputs.last_hidden_state", *MASKED_MEAN_CODE),
    ),
    Pooler(
        "avg_top2",
        pool_mean_top2,
        "mean",
        "the mean of the last two layers' token states",
        ("states = (outputs.hidden_states[-1] + outputs.hidden_states[-2]) / 2", *MASKED_MEAN_CODE),
        layer_mix=top2_mix,
        needs_hidden_states=True,
    ),
    Pooler(
        "avg_first_last",
        pool_mean_first_last,
        "mean",
        "the mean of the first and last layers' token states",
        (
            "states = (outputs.hidden_states[1] + outputs.hidden_states[-1]) / 2  # [0] is the embeddings",
            *MASKED_MEAN_CODE,
        ),
        layer_mix=first_last_mix,
        needs_hidden_states=True,
    ),
    Pooler(
        "lasttoken",
        pool_last_token,
        "lasttoken",
        "the last token's last hidden state (the EOS token appended to every sentence)",
        (
            'last = batch["attention_mask"].sum(dim=1) - 1  # the tokenizer pads on the right',
            "embeddings = outputs.last_hidden_state[torch.arange(len(last)), last]",
        ),
        appends_eos=True,
    ),
):
    register_pooler(_pooler)
del _pooler

# The built-in poolers' names (the public `hncse.POOLER_TYPES`); a pooler registered later is in POOLERS only,
# which is what to check membership against.
POOLER_TYPES = tuple(POOLERS)
