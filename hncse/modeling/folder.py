"""The saved model folder: the names of its files, and the sentence-transformers module files that make it load
with `SentenceTransformer(path)`.

The module files are written by hand (a few JSON files) so that training does not depend on sentence-transformers;
the module types and config keys are the long-standing ones that sentence-transformers 2.x to 6.x all read.
"""

from __future__ import annotations

import json
import os

import torch
from safetensors.torch import save_file

from hncse.modeling.pooling import POOLER_TYPES

WEIGHTS_NAME = "model.safetensors"  # the encoder's weights (transformers' own name)
HNCSE_CONFIG_NAME = "hncse_config.json"  # pooler, head use, max length: what `SentenceEncoder.from_pretrained` reads
MLP_WEIGHTS_NAME = "mlp_head.safetensors"  # the Linear+tanh head trained with the `cls` pooler


def _write_json(path: str, obj: dict | list) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def write_sentence_transformers_files(
    output_dir: str,
    pooler_type: str,
    hidden_size: int,
    num_hidden_layers: int,
    max_seq_length: int,
    mlp_state: dict[str, torch.Tensor] | None,
) -> None:
    """Describe the pooling as sentence-transformers modules: Transformer → [layer mix] → Pooling → [Dense+tanh].

    mlp_state: the MLP head's weights when the head is part of the inference embedding (pooler `cls` with
    mlp_only_train=False), else None.
    """
    if pooler_type not in POOLER_TYPES:
        raise ValueError(f"unknown pooler_type {pooler_type!r}")
    modules = [{"name": "transformer", "path": "", "type": "sentence_transformers.models.Transformer"}]
    bert_config: dict = {"max_seq_length": max_seq_length, "do_lower_case": False}

    if pooler_type in ("avg_top2", "avg_first_last"):
        # Average two layers token-wise with a fixed 0/1 weighting, then mean-pool: exactly SimCSE's pooler.
        if pooler_type == "avg_top2":
            layer_start, weights = num_hidden_layers - 1, [1.0, 1.0]
        else:
            layer_start = 1
            weights = [1.0] + [0.0] * (num_hidden_layers - 2) + [1.0]
            if num_hidden_layers == 1:
                weights = [2.0]  # first and last layer are the same layer
        bert_config["config_kwargs"] = {"output_hidden_states": True}
        layer_dir = os.path.join(output_dir, "1_WeightedLayerPooling")
        os.makedirs(layer_dir, exist_ok=True)
        _write_json(
            os.path.join(layer_dir, "config.json"),
            {
                "word_embedding_dimension": hidden_size,
                "layer_start": layer_start,
                "num_hidden_layers": num_hidden_layers,
            },
        )
        save_file({"layer_weights": torch.tensor(weights)}, os.path.join(layer_dir, "model.safetensors"))
        modules.append(
            {
                "name": "layer_mix",
                "path": "1_WeightedLayerPooling",
                "type": "sentence_transformers.models.WeightedLayerPooling",
            }
        )

    mode = "cls" if pooler_type in ("cls", "cls_before_pooler") else "mean"
    pooling_dir = f"{len(modules)}_Pooling"
    os.makedirs(os.path.join(output_dir, pooling_dir), exist_ok=True)
    _write_json(
        os.path.join(output_dir, pooling_dir, "config.json"),
        {
            "word_embedding_dimension": hidden_size,
            "pooling_mode_cls_token": mode == "cls",
            "pooling_mode_mean_tokens": mode == "mean",
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
    )
    modules.append({"name": "pooling", "path": pooling_dir, "type": "sentence_transformers.models.Pooling"})

    if mlp_state is not None:
        dense_dir = f"{len(modules)}_Dense"
        os.makedirs(os.path.join(output_dir, dense_dir), exist_ok=True)
        _write_json(
            os.path.join(output_dir, dense_dir, "config.json"),
            {
                "in_features": hidden_size,
                "out_features": hidden_size,
                "bias": True,
                "activation_function": "torch.nn.modules.activation.Tanh",
            },
        )
        save_file(
            {"linear.weight": mlp_state["weight"].contiguous(), "linear.bias": mlp_state["bias"].contiguous()},
            os.path.join(output_dir, dense_dir, "model.safetensors"),
        )
        modules.append({"name": "mlp", "path": dense_dir, "type": "sentence_transformers.models.Dense"})

    for idx, module in enumerate(modules):
        module["idx"] = idx
        module["name"] = str(idx)
    _write_json(os.path.join(output_dir, "modules.json"), modules)
    _write_json(os.path.join(output_dir, "sentence_bert_config.json"), bert_config)
    _write_json(
        os.path.join(output_dir, "config_sentence_transformers.json"),
        {"similarity_fn_name": "cosine", "prompts": {}, "default_prompt_name": None},
    )


def read_sentence_transformers_pooling(folder: str) -> dict:
    """Pooler and max length of a sentence-transformers folder (Transformer → Pooling [→ Normalize]).

    Returns {} when the folder is not one, or when its modules are not ones this encoder reproduces exactly.
    """
    modules_file = os.path.join(folder, "modules.json")
    if not os.path.isfile(modules_file):
        return {}
    with open(modules_file, encoding="utf-8") as f:
        modules = json.load(f)
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
        return {}
    with open(os.path.join(folder, modules[1]["path"], "config.json"), encoding="utf-8") as f:
        pooling = json.load(f)
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
    pooler = {"pooling_mode_mean_tokens": "avg", "pooling_mode_cls_token": "cls_before_pooler"}.get(
        modes[0] if len(modes) == 1 else ""
    )
    if pooler is None:
        return {}
    found = {"pooler_type": pooler}
    bert_config = os.path.join(folder, "sentence_bert_config.json")
    if os.path.isfile(bert_config):
        with open(bert_config, encoding="utf-8") as f:
            max_seq_length = json.load(f).get("max_seq_length")
        if isinstance(max_seq_length, int):
            found["max_seq_length"] = max_seq_length
    return found
