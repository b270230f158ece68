"""Tiny random decoder LLM folders (Llama, Qwen3, Mistral) with word-level tokenizers built by the `tokenizers`
library, as released decoders come: a BOS token (Llama) or none (Qwen), no EOS appended, no pad token,
`attention_dropout: 0.0`. Shared by the modeling and training tests."""

from __future__ import annotations

from pathlib import Path

import torch
from fixture_data import words
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    LlamaConfig,
    LlamaModel,
    MistralConfig,
    MistralModel,
    PreTrainedTokenizerFast,
    Qwen3Config,
    Qwen3Model,
)

SPECIALS = ["<unk>", "<s>", "</s>"]
SIZES = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "max_position_embeddings": 64, "initializer_range": 0.3}  # fmt: skip
FAMILIES = {  # name: (config class, model class, adds a BOS token)
    "llama": (LlamaConfig, LlamaModel, True),
    "qwen3": (Qwen3Config, Qwen3Model, False),
    "mistral": (MistralConfig, MistralModel, True),
}


def write_decoder(root: Path, family: str, text: str, seed: int = 0) -> Path:
    """A folder `root/family` holding the random model and its tokenizer (every word of `text` in its vocabulary)."""
    config_class, model_class, bos = FAMILIES[family]
    folder = root / family
    vocab = {token: i for i, token in enumerate(SPECIALS + sorted(set(words(text))))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    if bos:
        backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", model_max_length=64
    )
    tokenizer.save_pretrained(folder)
    torch.manual_seed(seed)
    config = config_class(
        vocab_size=len(vocab), bos_token_id=1, eos_token_id=2, pad_token_id=None, attention_dropout=0.0, **SIZES
    )
    model_class(config).save_pretrained(folder)
    return folder
