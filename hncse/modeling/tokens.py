"""A decoder's tokenizer made fit for sentence vectors, in the saved folder as in training: a pad token, padding
on the right, and the EOS token after every sentence (the last token's state, which `lasttoken` pools, is then the
EOS token's, as in llm2vec, e5-mistral and sentence-transformers' decoder models).

The tokenizer is changed in place and saved with the model, so `SentenceTransformer(path).encode` and
`AutoTokenizer.from_pretrained(path)` feed what training fed; a tokenizer that cannot be made to keep the EOS once
saved is one line (it would give other vectors after reload).
"""

from __future__ import annotations

import logging
import tempfile

from transformers import AutoTokenizer

from hncse.errors import ConfigError

logger = logging.getLogger(__name__)
PROBE_TEXT = "the city is old"


def _ids(tokenizer) -> list[int]:
    return tokenizer(PROBE_TEXT)["input_ids"]


def _ends_with_eos(tokenizer) -> bool:
    ids = _ids(tokenizer)
    return bool(ids) and ids[-1] == tokenizer.eos_token_id


def prepare_decoder_tokenizer(tokenizer, name: str, append_eos: bool = True) -> None:
    """Pad token (EOS when the tokenizer has none, with a warning), right padding, and EOS appended (`append_eos`)."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ConfigError(f"{name}: its tokenizer has neither a pad token nor an EOS token to pad with")
        logger.warning("%s: its tokenizer has no pad token; padding with its EOS token %r", name, tokenizer.eos_token)
        tokenizer.pad_token = tokenizer.eos_token
    # Padding on the right: a causal token never sees the padding after it, and positions start at 0 (with left
    # padding a sentence's rotary positions would shift with the longest sentence of its batch).
    tokenizer.padding_side = "right"
    if not append_eos or _ends_with_eos(tokenizer):
        return
    if tokenizer.eos_token is None:
        raise ConfigError(f"{name}: its tokenizer has no EOS token to end each sentence with (lasttoken pooling)")
    if not hasattr(tokenizer, "add_eos_token"):
        raise ConfigError(
            f"{name}: its tokenizer ({type(tokenizer).__name__}) cannot be set to append its EOS token; use a fast "
            "tokenizer (tokenizer.json) or --pooler_type avg"
        )
    starts_with_bos = _ids(tokenizer)[:1] == [tokenizer.bos_token_id] and tokenizer.bos_token_id is not None
    before = _ids(tokenizer)
    tokenizer.add_bos_token = starts_with_bos  # rebuilding the template keeps a BOS the tokenizer already adds
    tokenizer.add_eos_token = True
    if _ids(tokenizer) != before + [tokenizer.eos_token_id]:
        raise ConfigError(
            f"{name}: its tokenizer did not append EOS as asked (got {_ids(tokenizer)} for {before}); use "
            "--pooler_type avg"
        )
    with tempfile.TemporaryDirectory() as folder:  # what the saved folder will do
        tokenizer.save_pretrained(folder)
        reloaded = AutoTokenizer.from_pretrained(folder)
        if _ids(reloaded) != _ids(tokenizer):
            raise ConfigError(
                f"{name}: its tokenizer ({type(tokenizer).__name__}) forgets the appended EOS once saved; use "
                "--pooler_type avg"
            )
