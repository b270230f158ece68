"""The saved model folder: the names of its files, and the sentence-transformers module files that make it load
with `SentenceTransformer(path)`.

The module files are written by hand (a few JSON files) so that training does not depend on sentence-transformers;
the module types and config keys are the long-standing ones that sentence-transformers 2.x to 6.x all read.
"""

from __future__ import annotations

import json
import os

import torch
from safetensors.torch import load_file, save_file

from hncse.errors import ModelNotFoundError
from hncse.modeling.pooling import POOLERS, ST_MODE_FLAGS, Pooler, get_pooler

WEIGHTS_NAME = "model.safetensors"  # the encoder's weights (transformers' own name)
HNCSE_CONFIG_NAME = "hncse_config.json"  # pooler, head use, max length: what `SentenceEncoder.from_pretrained` reads
MLP_WEIGHTS_NAME = "mlp_head.safetensors"  # the Linear+tanh head trained with the `cls` pooler


# What `SentenceEncoder` reproduces of a sentence-transformers folder: its module types, the Pooling modes (those
# of a registered pooler: `st_reader`), and the activations of Dense modules (by the import path sentence-transformers
# writes).
ST_MODULES = ("Transformer", "WeightedLayerPooling", "Pooling", "Dense", "Normalize")
# The pooling_mode_<flag> of sentence-transformers ≤ 5 configs, in the order they list them.
ST_CONFIG_FLAGS = ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "lasttoken")
ST_ACTIVATIONS = {
    "torch.nn.modules.activation.Tanh": "Tanh",
    "torch.nn.modules.linear.Identity": "Identity",
    "torch.nn.modules.activation.ReLU": "ReLU",
    "torch.nn.modules.activation.GELU": "GELU",
    "torch.nn.modules.activation.Sigmoid": "Sigmoid",
}


def st_reader(mode: str) -> Pooler | None:
    """The pooler a sentence-transformers folder whose Pooling module has this mode loads as: the first registered
    one that is that mode alone (no layer mix, no head), e.g. cls → cls_before_pooler; None: not reproduced."""
    return next((p for p in POOLERS.values() if p.st_mode == mode and p.layer_mix is None and not p.mlp_head), None)


def st_readers() -> dict[str, Pooler]:
    """The Pooling modes `SentenceEncoder` reproduces, as configs spell them (the ≤ 5 flag, then the 6 name), each
    with the pooler it loads as."""
    readers = {}
    for mode in ST_MODE_FLAGS:
        pooler = st_reader(mode)
        if pooler is not None:
            readers.update(dict.fromkeys((ST_MODE_FLAGS[mode], mode), pooler))
    return readers


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
    layer_mix: dict | None = None,
    dense: list[dict] | None = None,
    normalize: bool = False,
    prompt: str | None = None,
    prompt_in_pooling: bool = True,
) -> None:
    """Describe the pooling as sentence-transformers modules: Transformer → [layer mix] → Pooling → [Dense+tanh]
    → [Dense …] → [Normalize]; `prompt` as the default prompt that `encode` puts before every sentence, its tokens
    left out of the pooling unless `prompt_in_pooling` (the Pooling module's `include_prompt`).

    mlp_state: the MLP head's weights when the head is part of the inference embedding (pooler `cls` with
    mlp_only_train=False), else None. layer_mix, dense, normalize: the modules of a sentence-transformers folder
    the model was loaded from (`read_sentence_transformers_modules`), written back as they were.
    """
    if pooler_type not in POOLERS:
        raise ValueError(f"unknown pooler_type {pooler_type!r}")
    pooler = POOLERS[pooler_type]
    modules = [{"name": "transformer", "path": "", "type": "sentence_transformers.models.Transformer"}]
    bert_config: dict = {"max_seq_length": max_seq_length, "do_lower_case": False}

    layer_mix = layer_mix if layer_mix is not None else pooler.weighted_layers(num_hidden_layers)
    if layer_mix is not None:
        layer_start, weights = layer_mix["layer_start"], layer_mix["weights"].tolist()
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

    pooling_dir = f"{len(modules)}_Pooling"
    os.makedirs(os.path.join(output_dir, pooling_dir), exist_ok=True)
    _write_json(
        os.path.join(output_dir, pooling_dir, "config.json"),
        {
            "word_embedding_dimension": hidden_size,
            # one flag per mode, which every version reads (pooling_mode_lasttoken: sentence-transformers ≥ 2.3)
            **{f"pooling_mode_{flag}": flag == ST_MODE_FLAGS[pooler.st_mode] for flag in ST_CONFIG_FLAGS},
            "include_prompt": prompt_in_pooling,
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

    paths = {name: path for path, name in ST_ACTIVATIONS.items()}
    for layer in dense or []:
        dense_dir = f"{len(modules)}_Dense"
        os.makedirs(os.path.join(output_dir, dense_dir), exist_ok=True)
        _write_json(
            os.path.join(output_dir, dense_dir, "config.json"),
            {
                "in_features": layer["in_features"],
                "out_features": layer["out_features"],
                "bias": layer["bias"],
                "activation_function": paths[layer["activation"]],
            },
        )
        state = {f"linear.{k}": v.detach().cpu().contiguous() for k, v in layer["state"].items()}
        save_file(state, os.path.join(output_dir, dense_dir, "model.safetensors"))
        modules.append({"name": "dense", "path": dense_dir, "type": "sentence_transformers.models.Dense"})
    if normalize:
        normalize_dir = f"{len(modules)}_Normalize"
        os.makedirs(os.path.join(output_dir, normalize_dir), exist_ok=True)
        modules.append({"name": "normalize", "path": normalize_dir, "type": "sentence_transformers.models.Normalize"})

    for idx, module in enumerate(modules):
        module["idx"] = idx
        module["name"] = str(idx)
    _write_json(os.path.join(output_dir, "modules.json"), modules)
    _write_json(os.path.join(output_dir, "sentence_bert_config.json"), bert_config)
    _write_json(
        os.path.join(output_dir, "config_sentence_transformers.json"),
        {
            "similarity_fn_name": "cosine",
            "prompts": {"default": prompt} if prompt else {},
            "default_prompt_name": "default" if prompt else None,
        },
    )


def _read_json(path: str):
    """A JSON file of the folder, or one line naming it (not a traceback from the parser)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelNotFoundError(f"{path}: not readable JSON ({str(error).splitlines()[0]})") from None


def _read_module_weights(path: str) -> dict[str, torch.Tensor]:
    """A module folder's weights: model.safetensors, else pytorch_model.bin (older sentence-transformers)."""
    if os.path.isfile(os.path.join(path, "model.safetensors")):
        return load_file(os.path.join(path, "model.safetensors"))
    if os.path.isfile(os.path.join(path, "pytorch_model.bin")):
        return torch.load(os.path.join(path, "pytorch_model.bin"), map_location="cpu", weights_only=True)
    raise ModelNotFoundError(f"{path}: no model.safetensors or pytorch_model.bin (a sentence-transformers module)")


def read_sentence_transformers_modules(folder: str) -> dict:
    """What a sentence-transformers folder computes, for `SentenceEncoder`: {} when it is not one, else
    `pooler_type` (the Pooling module's mode), `max_seq_length`, and the modules that change the vectors besides:
    `layer_mix` (WeightedLayerPooling: first layer and weights), `dense` (each Dense module's sizes, activation and
    weights), `normalize` (a Normalize module last). A module or mode it cannot reproduce is a one-line
    `ModelNotFoundError` naming it."""
    modules_file = os.path.join(folder, "modules.json")
    if not os.path.isfile(modules_file):
        return {}
    modules = _read_json(modules_file)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise ModelNotFoundError(f"{modules_file}: not a list of modules (edited by hand?)")
    # `files`: where each module's settings are, so that a message can name the file that says what it says
    found: dict = {"layer_mix": None, "dense": [], "normalize": False, "order": [], "files": {"Dense": []}}
    order = found["order"]
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        path = os.path.join(folder, str(module.get("path", "")))
        if kind not in ST_MODULES:
            raise ModelNotFoundError(
                f"{folder}: its sentence-transformers module {kind} ({module.get('path')}) is one SentenceEncoder "
                f"does not reproduce (it reproduces {', '.join(ST_MODULES)}); load it with sentence-transformers"
            )
        order.append(kind)
        config = {}
        if os.path.isfile(os.path.join(path, "config.json")) and kind != "Transformer":
            config = _read_json(os.path.join(path, "config.json"))
            if not isinstance(config, dict):
                raise ModelNotFoundError(f"{os.path.join(path, 'config.json')}: not a JSON object (edited by hand?)")
        if kind == "Dense":
            found["files"]["Dense"].append(path)
        else:
            found["files"][kind] = os.path.join(path, "config.json") if kind == "Pooling" else path
        if kind == "Pooling":
            found["pooler_type"] = _read_pooling(folder, config).name
            found["prompt_in_pooling"] = bool(config.get("include_prompt", True))
        elif kind == "WeightedLayerPooling":
            weights = _read_module_weights(path).get("layer_weights")
            if weights is None or not isinstance(config.get("layer_start"), int):
                raise ModelNotFoundError(f"{path}: no layer_weights or layer_start (a WeightedLayerPooling module)")
            found["layer_mix"] = {"layer_start": config["layer_start"], "weights": weights.float()}
        elif kind == "Dense":
            found["dense"].append(_read_dense(folder, str(module.get("path")), path, config))
        elif kind == "Normalize":
            found["normalize"] = True
    expected = ["Transformer", "WeightedLayerPooling", "Pooling", "Dense", "Normalize"]
    if order[:1] != ["Transformer"] or "Pooling" not in order or order != sorted(order, key=expected.index):
        raise ModelNotFoundError(
            f"{folder}: its sentence-transformers modules come in the order {' → '.join(order)}; SentenceEncoder "
            "reproduces Transformer → [WeightedLayerPooling] → Pooling → [Dense …] → [Normalize]"
        )
    max_seq_length = sentence_transformers_length(folder)
    if max_seq_length is not None:
        found["max_seq_length"] = max_seq_length
    found["prompt"] = default_prompt(folder)
    return found


def _read_pooling(folder: str, config: dict) -> Pooler:
    """The registered pooler a Pooling module's config computes (`st_readers`), or one line saying it has none."""
    # sentence-transformers ≤ 5 writes one pooling_mode_<mode> flag per mode, 6 a `pooling_mode` string
    modes = [k.removeprefix("pooling_mode_") for k, v in config.items() if k.startswith("pooling_mode_") and v]
    if isinstance(config.get("pooling_mode"), str):
        modes = [config["pooling_mode"]]
    readers = st_readers()
    if len(modes) != 1 or modes[0] not in readers:
        raise ModelNotFoundError(
            f"{folder}: its Pooling module uses {' + '.join(modes) or 'no mode'} pooling; SentenceEncoder "
            f"reproduces {' or '.join(readers)} alone; load it with sentence-transformers"
        )
    return readers[modes[0]]


def _read_dense(folder: str, name: str, path: str, config: dict) -> dict:
    """A Dense module's sizes, activation and weights; `name`: its path in modules.json."""
    activation = config.get("activation_function", "torch.nn.modules.activation.Tanh")
    if activation not in ST_ACTIVATIONS:
        raise ModelNotFoundError(
            f"{folder}: its Dense module {name} uses the activation {activation}, which "
            "SentenceEncoder does not reproduce; load it with sentence-transformers"
        )
    state = _read_module_weights(path)
    if not all(isinstance(config.get(k), int) for k in ("in_features", "out_features")):
        raise ModelNotFoundError(
            f"{os.path.join(path, 'config.json')}: no in_features and out_features (a Dense module's sizes)"
        )
    return {
        "in_features": config["in_features"],
        "out_features": config["out_features"],
        "bias": bool(config.get("bias", True)),
        "activation": ST_ACTIVATIONS[activation],
        "state": {k.removeprefix("linear."): v for k, v in state.items()},
    }


def default_prompt(folder: str) -> str | None:
    """The prompt a sentence-transformers folder's `encode` puts before every sentence by default, if any."""
    path = os.path.join(folder, "config_sentence_transformers.json")
    if not os.path.isfile(path):
        return None
    config = _read_json(path)
    if not isinstance(config, dict):
        return None
    name = config.get("default_prompt_name")
    return (config.get("prompts") or {}).get(name) or None if name else None


def sentence_transformers_length(folder: str) -> int | None:
    """The max_seq_length of a sentence-transformers folder, if it says one."""
    bert_config = os.path.join(folder, "sentence_bert_config.json")
    if not os.path.isfile(bert_config):
        return None
    config = _read_json(bert_config)
    max_seq_length = config.get("max_seq_length") if isinstance(config, dict) else None
    return max_seq_length if isinstance(max_seq_length, int) else None


def hncse_config_disagreement(
    folder: str, saved: dict, modules: dict, num_hidden_layers: int, given: tuple[str, ...] = ()
) -> str | None:
    """Where a folder's hncse_config.json (`saved`, its pooler filled in) and its sentence-transformers files
    (`modules`, as `read_sentence_transformers_modules` read them) describe different embeddings, as one line
    naming both files, or None when `SentenceEncoder` and `SentenceTransformer` compute the same vectors from it.

    Both files are written together by `save_pretrained`; they disagree only when one was edited (or copied in
    from another folder) afterwards, and then neither can be assumed to be the intended one. `given`: the settings
    the caller sets itself (max_seq_length, prompt, prompt_in_pooling), whose files are not compared.
    """
    config = HNCSE_CONFIG_NAME
    pooler, files = saved["pooler_type"], modules["files"]
    mlp_only_train = saved.get("mlp_only_train", True)
    mode = get_pooler(modules["pooler_type"]).st_mode  # the Pooling module's, as its reader has it
    if get_pooler(pooler).st_mode != mode:
        return f"{files['Pooling']} says {mode} pooling but {config} says {pooler}"
    # hncse's own modules, as its save_pretrained writes them; those read from a sentence-transformers folder
    # (`sentence_transformers_modules`) come from these same files, so they agree by construction.
    own = bool(saved.get("sentence_transformers_modules"))
    head = get_pooler(pooler).mlp_head and not mlp_only_train  # the MLP head in the embedding: the first Dense module
    mix = modules["layer_mix"] if own else get_pooler(pooler).weighted_layers(num_hidden_layers)
    dense = int(head) + (len(modules["dense"]) if own else 0)
    expected = (["Transformer"] + ["WeightedLayerPooling"] * (mix is not None) + ["Pooling"] + ["Dense"] * dense
                + ["Normalize"] * (modules["normalize"] if own else 0))  # fmt: skip
    if modules["order"] != expected:
        settings = f"pooler {pooler}" + (", mlp_only_train false" if head else "")
        return (
            f"{os.path.join(folder, 'modules.json')} lists {' → '.join(modules['order'])} but {config} ({settings}) "
            f"computes {' → '.join(expected)}"
        )
    if mix is not None and not own:
        found = modules["layer_mix"]
        weights, expected_weights = found["weights"], mix["weights"]
        same = found["layer_start"] == mix["layer_start"] and weights.shape == expected_weights.shape
        if not same or not torch.allclose(weights / weights.sum(), expected_weights / expected_weights.sum()):
            return (
                f"{files['WeightedLayerPooling']} weighs the layers from {found['layer_start']} by "
                f"{[round(w, 4) for w in weights.tolist()]} but {config} says pooler {pooler} (from layer "
                f"{mix['layer_start']}, by {expected_weights.tolist()})"
            )
    if head:
        why = _head_disagreement(folder, modules["dense"][0], files["Dense"][0], pooler)
        if why:
            return why
    length = modules.get("max_seq_length")
    if "max_seq_length" not in given and None not in (length, saved.get("max_seq_length")):
        if length != saved["max_seq_length"]:
            return (
                f"{os.path.join(folder, 'sentence_bert_config.json')} says max_seq_length {length} but {config} "
                f"says {saved['max_seq_length']}"
            )
    if "prompt" not in given:
        prompt = saved.get("prompt") or None
        if prompt != modules.get("prompt"):
            said = [repr(p) if p else "none" for p in (modules.get("prompt"), prompt)]
            return (
                f"{os.path.join(folder, 'config_sentence_transformers.json')}'s default prompt is {said[0]} but "
                f"{config}'s prompt is {said[1]}"
            )
        in_pooling = bool(saved.get("prompt_in_pooling", True))
        if prompt and "prompt_in_pooling" not in given and in_pooling != modules["prompt_in_pooling"]:
            return (
                f"{files['Pooling']} says include_prompt {str(modules['prompt_in_pooling']).lower()} but {config} "
                f"says prompt_in_pooling {str(in_pooling).lower()}"
            )
    return None


def _head_disagreement(folder: str, dense: dict, dense_path: str, pooler: str) -> str | None:
    """Whether the Dense module after the Pooling is the MLP head that hncse_config.json puts in the embedding
    (its pooler's head, mlp_only_train false): its sizes, activation and weights, those of mlp_head.safetensors."""
    head_file = os.path.join(folder, MLP_WEIGHTS_NAME)
    if not os.path.isfile(head_file):
        return (
            f"{head_file} is missing but {HNCSE_CONFIG_NAME} says the MLP head is part of the embedding (pooler "
            f"{pooler}, mlp_only_train false) and {dense_path} holds one"
        )
    head = load_file(head_file)
    weight, bias = head.get("weight"), head.get("bias")
    if weight is None or bias is None or weight.dim() != 2:
        return f"{head_file}: not the MLP head's weights (weight and bias)"
    size = f"{weight.shape[1]} → {weight.shape[0]}"
    shape = f"{dense['in_features']} → {dense['out_features']}"
    if (shape, dense["activation"], dense["bias"]) != (size, "Tanh", True):
        return (
            f"{os.path.join(dense_path, 'config.json')} says {shape} with {dense['activation']} but the MLP head "
            f"that {HNCSE_CONFIG_NAME} puts in the embedding ({MLP_WEIGHTS_NAME}) is {size} with Tanh"
        )
    state = dense["state"]
    for name, value in (("weight", weight), ("bias", bias)):
        if state.get(name) is None or state[name].shape != value.shape or not torch.allclose(state[name], value):
            return (
                f"{dense_path}'s weights are not those of {MLP_WEIGHTS_NAME}, the MLP head that {HNCSE_CONFIG_NAME} "
                f"puts in the embedding (pooler {pooler}, mlp_only_train false)"
            )
    return None
