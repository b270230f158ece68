"""What a checkpoint folder holds beyond the Trainer's files, and which one a run may resume from."""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from hncse.config import ConfigError

logger = logging.getLogger(__name__)

LOSS_STATE_NAME = "loss_state.pt"  # the objective's own state (HNM's pair sampler)
RUN_CONFIG_NAME = "run_config.json"  # the settings a later run compares before resuming


RUN_KEYS = {  # what makes a checkpoint belong to the same run (changing anything else, e.g. max_steps, is fine)
    "model": ["model_name_or_path", "pooler_type", "mlp_only_train"],
    "data": [
        "train_file", "dataset_name", "dataset_config_name", "text_column", "max_seq_length", "max_train_samples",
    ],
    "training": [
        "objective", "temperature", "pm_theta", "pm_w1", "pm_w2", "pm_ratio_grid_size", "pm_detach_coefficients",
        "hnm_k", "hnm_s", "hnm_alpha", "hnm_detach_synthetic", "hnm_seed", "hybrid_lambda", "learning_rate",
        "per_device_train_batch_size", "gradient_accumulation_steps", "seed",
    ],
}  # fmt: skip


def run_config(model_args, data_args, training_args) -> dict:
    """The settings that identify a run; saved in every checkpoint as run_config.json."""
    groups = {"model": model_args, "data": data_args, "training": training_args}
    return {key: getattr(groups[group], key) for group, keys in RUN_KEYS.items() for key in keys}


def check_same_run(checkpoint: str, current: dict) -> None:
    """Refuse to resume a checkpoint written with other settings (ConfigError listing the differences)."""
    path = os.path.join(checkpoint, RUN_CONFIG_NAME)
    if not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    changed = [f"{k}: {saved[k]!r} → {current.get(k)!r}" for k in saved if saved[k] != current.get(k)]
    if changed:
        raise ConfigError(
            f"--output_dir holds {checkpoint} of a different run ({'; '.join(changed)}); nothing was changed. "
            "Pass --resume_from_checkpoint PATH to resume it anyway, --overwrite_output_dir true to start afresh "
            "(its checkpoints are deleted), or another --output_dir"
        )


CHECKPOINT_FILES = ("model.safetensors", "scheduler.pt", "rng_state*.pth", "trainer_state.json")  # written last


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest checkpoint that was written to the end: a run killed while saving leaves a partial folder,
    which is skipped (with a warning) rather than resumed from."""
    folders = glob.glob(os.path.join(output_dir, f"{PREFIX_CHECKPOINT_DIR}-*"))
    steps = sorted((int(f.rsplit("-", 1)[-1]), f) for f in folders if f.rsplit("-", 1)[-1].isdigit())
    for _, folder in reversed(steps):
        missing = missing_checkpoint_files(folder)
        if not missing:
            return folder
        logger.warning("%s is incomplete (no %s): not resuming from it", folder, ", ".join(missing))
    return None


def missing_checkpoint_files(folder: str) -> list[str]:
    """What a checkpoint folder lacks to be resumed from; a trainer_state.json that a kill cut short (it exists but
    is not whole JSON) counts as missing."""
    missing = [name for name in CHECKPOINT_FILES if not glob.glob(os.path.join(folder, name))]
    state = os.path.join(folder, "trainer_state.json")
    if "trainer_state.json" not in missing:
        try:
            with open(state, encoding="utf-8") as f:
                json.load(f)
        except (ValueError, UnicodeDecodeError):
            missing.append("trainer_state.json (cut short)")
    return missing


def check_resumable(path: str) -> None:
    """--resume_from_checkpoint PATH: fail before any loading if PATH is not a whole checkpoint."""
    if not os.path.isdir(path):
        raise ConfigError(f"--resume_from_checkpoint: no such folder: {path}")
    missing = missing_checkpoint_files(path)
    if missing:
        raise ConfigError(f"--resume_from_checkpoint: {path} is not a complete checkpoint (no {', '.join(missing)})")


def remove_checkpoints(output_dir: str) -> None:
    """--overwrite_output_dir: delete every checkpoint folder of the old run."""
    for folder in glob.glob(os.path.join(output_dir, f"{PREFIX_CHECKPOINT_DIR}-*")):
        shutil.rmtree(folder)


# What a checkpoint holds only to resume training; the rest of it is the model folder (weights, configs,
# tokenizer, sentence-transformers modules, card). DeepSpeed adds its own global_step*/, latest, zero_to_fp32.py.
RESUME_STATE = (
    "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth", "trainer_state.json", "training_args.bin",
    LOSS_STATE_NAME, RUN_CONFIG_NAME, "global_step*", "latest", "zero_to_fp32.py",
)  # fmt: skip


def copy_model_folder(checkpoint: str, output_dir: str) -> None:
    """Make output_dir the model of `checkpoint` (what the Hub receives during training), resume state left out."""
    shutil.copytree(checkpoint, output_dir, ignore=shutil.ignore_patterns(*RESUME_STATE), dirs_exist_ok=True)


def checkpoint_to_resume(training_args, settings: dict) -> str | None:
    """The checkpoint this run continues from: --resume_from_checkpoint (checked to be whole), else the newest
    complete checkpoint in output_dir if it has this run's settings (another run's is refused), else None.
    --overwrite_output_dir deletes the old checkpoints instead."""
    if training_args.resume_from_checkpoint is not None:
        check_resumable(training_args.resume_from_checkpoint)
        return training_args.resume_from_checkpoint
    output_dir = training_args.output_dir
    newest = last_complete_checkpoint(output_dir) if os.path.isdir(output_dir) else None
    if newest is None:
        return None
    if training_args.overwrite_output_dir:
        with training_args.main_process_first(desc="removing old checkpoints"):
            if training_args.should_save:
                remove_checkpoints(output_dir)
        logger.info("--overwrite_output_dir: removed the checkpoints in %s", output_dir)
        return None
    check_same_run(newest, settings)
    logger.info("Resuming from %s (pass another --output_dir to start afresh)", newest)
    return newest
