"""LoRA through peft (the optional extra `pip install 'hncse[peft]'`): only the adapters (and the MLP head) train;
the saved model folder holds the **merged** weights, so `SentenceTransformer(path)` and `AutoModel.from_pretrained`
load it without peft; checkpoints hold the adapter too, which resuming loads.

The merge is computed from a state dict (W + scaling · B A per adapted layer) rather than by peft's in-place
`merge_adapter()`, because training goes on after a save (an in-place merge and unmerge would change the frozen
weights by rounding) and under DeepSpeed ZeRO-3 the weights exist whole only in the gathered state dict. The
scaling and layout of each layer are peft's own (`LoraLayer.scaling`, `fan_in_fan_out`); a test checks the result
against peft's `merge_and_unload()`.
"""

from __future__ import annotations

import os

import torch
from safetensors.torch import load_file

from hncse.errors import ConfigError, ModelNotFoundError, first_line

INSTALL_HINT = "pip install 'hncse[peft]'"
ADAPTER = "default"  # peft's name for the one adapter
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"  # peft's file names
# The adapter files go to a subfolder: beside config.json, transformers and sentence-transformers would take the
# folder for an adapter and load its base model again with the adapter on top of the merged weights.
ADAPTER_DIR = "lora_adapter"


def import_peft(flag: str = "--lora_r"):
    try:
        import peft
    except ImportError as error:
        raise ConfigError(f"{flag} trains LoRA adapters with peft ({first_line(error)}): {INSTALL_HINT}") from error
    return peft


def is_lora(module) -> bool:
    return hasattr(module, "peft_config") and hasattr(module, "get_base_model")  # a peft model


def add_lora(encoder, r: int, alpha: float, dropout: float, target_modules: list[str] | None):
    """The encoder with LoRA adapters on `target_modules` (default: every linear layer of its attention and MLP
    blocks, peft's "all-linear"; an encoder's unused pooler layer is left out), everything else frozen."""
    peft = import_peft()
    excluded = r".*\bpooler\b.*" if any(n.split(".")[0] == "pooler" for n, _ in encoder.named_modules()) else None
    config = peft.LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules or "all-linear",
        exclude_modules=excluded if not target_modules else None,
        bias="none",
    )
    try:
        return peft.get_peft_model(encoder, config)
    except ValueError as error:  # e.g. a --lora_target_modules name the model does not have
        raise ConfigError(f"--lora_target_modules: {first_line(error)}") from error


def check_target_modules(config, targets: list[str] | None) -> None:
    """`--lora_target_modules` names modules the model has (each a module name or its last parts, as peft matches
    them), checked on the architecture built on the meta device: no weights, nothing allocated."""
    if not targets:
        return
    from transformers import AutoModel

    with torch.device("meta"):
        modules = dict(AutoModel.from_config(config).named_modules())
    names = [name for name in modules if name]
    missing = [t for t in targets if not any(n == t or n.endswith(f".{t}") for n in names)]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n in names if isinstance(modules[n], torch.nn.Linear)})
        raise ConfigError(
            f"--lora_target_modules: the model has no module {', '.join(map(repr, missing))}; its linear layers are "
            f"{', '.join(linear[:20])}{' …' if len(linear) > 20 else ''}"
        )


def _lora_layers(model) -> dict[str, object]:
    from peft.tuners.lora import LoraLayer

    return {name: module for name, module in model.named_modules() if isinstance(module, LoraLayer)}


def merged_state_dict(model, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The base model's state dict (its own key names) with every LoRA update added into its weight, from the peft
    model's `state_dict` (possibly gathered by DeepSpeed)."""
    prefix = "base_model.model."
    merged = {}
    layers = _lora_layers(model)
    for key, value in state_dict.items():
        if ".lora_" in key:
            continue
        merged[key.removeprefix(prefix).replace(".base_layer.", ".")] = value
    for name, layer in layers.items():
        if ADAPTER not in layer.lora_A:
            continue
        a = state_dict[f"{name}.lora_A.{ADAPTER}.weight"].float()
        b = state_dict[f"{name}.lora_B.{ADAPTER}.weight"].float()
        delta = (b @ a) * layer.scaling[ADAPTER]
        if layer.fan_in_fan_out:
            delta = delta.T
        key = f"{name.removeprefix(prefix)}.weight"
        merged[key] = (merged[key].float() + delta.to(merged[key].device)).to(merged[key].dtype)
    return merged


def save_adapter(model, folder: str, state_dict: dict[str, torch.Tensor]) -> None:
    """peft's adapter files (adapter_config.json, adapter_model.safetensors) in `folder/lora_adapter`, from the peft
    model's state dict: `PeftModel.from_pretrained(base, folder/lora_adapter)` loads them."""
    model.save_pretrained(os.path.join(folder, ADAPTER_DIR), state_dict=state_dict)


def load_adapter(model, folder: str) -> None:
    """Resume: the adapter weights of a checkpoint into the peft model (the frozen weights stay the base model's)."""
    path = os.path.join(folder, ADAPTER_DIR, ADAPTER_WEIGHTS_NAME)
    if not os.path.isfile(path):
        raise ModelNotFoundError(f"{path}: the checkpoint has no LoRA adapter to resume")
    from peft import set_peft_model_state_dict

    result = set_peft_model_state_dict(model, load_file(path, device="cpu"))
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise RuntimeError(f"{path}: adapter weights do not match the model (unexpected {unexpected[:5]})")
