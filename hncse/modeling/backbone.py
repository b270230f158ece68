"""The transformers model under the sentence encoder, set up before its weights load: which families it can be,
its dropout, which way it attends, and the poolers that make sense for it. Read from its config alone, so that the
preflight refuses a bad choice before a model loads."""

from __future__ import annotations

from transformers import AutoConfig

from hncse.errors import ConfigError
from hncse.modeling.attention import is_decoder_only, set_attention_direction
from hncse.modeling.dropout import set_dropout, views_differ
from hncse.modeling.pooling import POOLERS
from hncse.modeling.resolve import explain_load_failure, resolve_model_path


def load_config(name: str, argument: str = "--model_name_or_path", **hub_kwargs):
    """The model's transformers config (config.json alone: no weights), or one line saying why it cannot be had."""
    try:
        return AutoConfig.from_pretrained(resolve_model_path(name), **hub_kwargs)
    except (OSError, ValueError) as error:
        raise explain_load_failure(name, error, argument) from error


def default_pooler(config) -> str:
    """SimCSE's `cls` for encoders; the last token (EOS) for decoders, whose first token sees only itself."""
    return "lasttoken" if is_decoder_only(config) else "cls"


def prepare_config(config, name: str, bidirectional: bool | None = None, dropout: float | None = None) -> None:
    """Refuse what cannot be a sentence encoder, then set `--dropout` and `--bidirectional` on the config (None: as
    the folder has them), which the loaded model and the saved folder then follow."""
    if getattr(config, "is_encoder_decoder", False):
        raise ConfigError(
            f"--model_name_or_path {name}: an encoder-decoder model ({config.model_type}); hncse trains encoder-only "
            "and decoder-only models (save the encoder alone as its own folder)"
        )
    set_dropout(config, dropout)
    set_attention_direction(config, bidirectional, name)


def check_pooler(config, pooler_type: str, name: str) -> None:
    """A first-token pooler on a causal decoder is refused (an unknown name is refused where the model is built)."""
    pooler = POOLERS.get(pooler_type)
    if pooler is not None and pooler.first_token and is_decoder_only(config) and getattr(config, "is_causal", True):
        raise ConfigError(
            f"--pooler_type {pooler_type}: {name} is a causal decoder ({config.model_type}), whose first token sees "
            "only itself; use lasttoken or avg (or --bidirectional true)"
        )


def check_views_differ(config, name: str, unsupervised: bool, extra_dropout: float = 0.0) -> None:
    """Unsupervised objectives contrast two dropout views of each sentence: with no dropout anywhere they are the
    same vector and nothing is learned."""
    if unsupervised and not views_differ(config, extra_dropout):
        raise ConfigError(
            f"{name} ({config.model_type}) has no dropout (every dropout probability of its config is 0): the two "
            "views of a sentence would be identical and unsupervised training would learn nothing; set --dropout, "
            "e.g. --dropout 0.1 (llm2vec uses 0.3 for decoders)"
        )
