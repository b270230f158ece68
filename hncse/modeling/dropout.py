"""The encoder's dropout: what makes the two views of a sentence differ in unsupervised SimCSE/HNCSE.

Decoder LLM configs ship with `attention_dropout: 0.0` (Llama, Qwen, Mistral), so both views would be the same
vector and the loss would train nothing; llm2vec sets 0.3 for that reason. `--dropout P` sets every dropout of the
encoder's config that applies to its layers (hidden and attention dropout for BERT-style configs, attention dropout
for Llama-style ones).
"""

from __future__ import annotations

# Config fields that are dropout probabilities of the encoder's own layers, across transformers' families
# (BERT/RoBERTa/XLM-R/ELECTRA/DeBERTa/MPNet: hidden_dropout_prob, attention_probs_dropout_prob; DistilBERT: dropout,
# attention_dropout; Llama/Qwen/Mistral/Gemma: attention_dropout; ModernBERT: attention, embedding and MLP dropout;
# GPT-2 style: attn_pdrop, resid_pdrop, embd_pdrop). Classifier and head dropouts are not the encoder's.
DROPOUT_FIELDS = (
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "attention_dropout",
    "hidden_dropout",
    "dropout",
    "embedding_dropout",
    "mlp_dropout",
    "attn_pdrop",
    "resid_pdrop",
    "embd_pdrop",
)


def dropout_fields(config) -> dict[str, float]:
    """The config's dropout probabilities that `--dropout` sets."""
    return {k: getattr(config, k) for k in DROPOUT_FIELDS if isinstance(getattr(config, k, None), (int, float))}


def set_dropout(config, p: float | None) -> dict[str, float]:
    """Set every dropout field of the config to `p` (None: leave them); returns the fields as they now are."""
    for key in dropout_fields(config) if p is not None else ():
        setattr(config, key, float(p))
    return dropout_fields(config)


def views_differ(config, extra_dropout: float = 0.0) -> bool:
    """Whether two forward passes of one sentence in training can differ: some dropout is on (the encoder's, or
    `extra_dropout`, e.g. LoRA's)."""
    return extra_dropout > 0 or any(v > 0 for v in dropout_fields(config).values())
