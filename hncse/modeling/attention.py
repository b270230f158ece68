"""Which way a model attends: decoder LLMs (Llama, Qwen, Mistral, …) causally unless asked otherwise, encoders
both ways; and the attention mask hncse hands the model, which must say the same as the saved folder.

A decoder's saved config.json is what `AutoModel` and `SentenceTransformer` follow after reload: transformers (5.x)
builds a causal mask for it, or a bidirectional one when `config.is_causal` is False (`create_causal_mask`, and
`is_causal` passed down to SDPA's and flash-attention's kernels). hncse trains with that same rule, so training,
evaluation and the reloaded folder attend alike.
"""

from __future__ import annotations

import copy
import tempfile

import torch
from torch import Tensor
from transformers import AutoModel
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
)

from hncse.errors import ConfigError

# Size fields of a decoder config set small for `bidirectional_holds`' probe (those a config has).
PROBE_SIZES = {
    "vocab_size": 64,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "max_window_layers": 1,
}
PROBED: dict[tuple, bool] = {}  # `bidirectional_holds`' answers: (config class, model type, attention) → holds


def is_decoder_only(config) -> bool:
    """A decoder LLM: its architecture is a causal LM and not a masked one (BERT-style models are both)."""
    model_type = getattr(config, "model_type", None)
    if getattr(config, "is_decoder", False):
        return True
    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def is_bidirectional(config) -> bool:
    """Whether the model attends both ways, as its saved config says."""
    return not is_decoder_only(config) or getattr(config, "is_causal", True) is False


def bidirectional_holds(config) -> bool:
    """Whether a folder of this architecture saved with `is_causal: false` attends both ways after reload: a
    one-layer random copy of the config is saved, reloaded by `AutoModel` and run on a sentence and its prefix
    (a prefix's states differ only when later tokens are seen). Models that build their own mask ignore the flag.
    Probed once per architecture and attention implementation in a process (the preflight asks, then the load)."""
    key = (type(config).__name__, getattr(config, "model_type", None), config._attn_implementation)
    if key not in PROBED:
        PROBED[key] = probe_bidirectional(config)
    return PROBED[key]


def probe_bidirectional(config) -> bool:
    try:
        small = copy.deepcopy(config)
        for key, value in PROBE_SIZES.items():
            if hasattr(small, key):
                setattr(small, key, value)
        if isinstance(getattr(small, "layer_types", None), list):  # one entry per layer: the first layer's kind
            small.layer_types = small.layer_types[:1]
        small.is_causal = False
        small._attn_implementation = "sdpa" if config._attn_implementation != "eager" else "eager"
        torch.manual_seed(0)
        model = AutoModel.from_config(small)
        with tempfile.TemporaryDirectory() as folder:
            model.save_pretrained(folder)
            reloaded = AutoModel.from_pretrained(folder, attn_implementation=small._attn_implementation).eval()
        ids = torch.tensor([[5, 6, 7, 8]])
        with torch.no_grad():
            whole = reloaded(input_ids=ids).last_hidden_state[0, :2]
            prefix = reloaded(input_ids=ids[:, :2]).last_hidden_state[0]
        return not torch.allclose(whole, prefix, atol=1e-5)
    except Exception:  # an architecture the probe cannot build: not shown to hold
        return False


def set_attention_direction(config, bidirectional: bool | None, name: str) -> None:
    """`--bidirectional`: a decoder attends both ways (written into its config, so the saved folder does too) or
    causally; None keeps what the folder says (causal for a decoder as released). An encoder always attends both
    ways. One line for what would not hold after reload."""
    if not is_decoder_only(config):
        if bidirectional is False:
            raise ConfigError(
                f"--bidirectional false: {name} is an encoder ({config.model_type}), which attends both ways; "
                "causal attention is for decoder models"
            )
        return
    if bidirectional is None:
        return
    if not bidirectional:
        if getattr(config, "is_causal", True) is False:
            config.is_causal = True  # --bidirectional false on a folder saved bidirectional: causal again
        return
    if not bidirectional_holds(config):
        raise ConfigError(
            f"--bidirectional true: {name} ({config.model_type}) would attend causally again once reloaded "
            "(its transformers code does not honour config.is_causal); train it causally"
        )
    config.is_causal = False


def attention_mask_for(config, attention_mask: Tensor) -> Tensor:
    """The mask to hand the model for a (B, L) padding mask.

    For SDPA, the (B, 1, L, L) boolean mask transformers would build, which it uses as given: built by transformers,
    it first asks whether any token is padding (to pass no mask at all), a read-back the host waits for in every
    forward pass. A causal decoder's has the causal triangle; every query may attend to itself, so a padding row
    (left padding) has a key and SDPA no NaN. Other attention implementations get the (B, L) mask and build their
    own from the config."""
    if getattr(config, "_attn_implementation", None) != "sdpa":
        return attention_mask
    length = attention_mask.shape[1]
    mask = attention_mask.bool()[:, None, None, :].expand(-1, 1, length, length)
    if is_bidirectional(config):
        return mask
    causal = torch.ones(length, length, dtype=torch.bool, device=attention_mask.device).tril()
    return (mask & causal) | torch.eye(length, dtype=torch.bool, device=attention_mask.device)
