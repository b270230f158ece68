"""Every file of a checkpoint and of the output folder beyond the model itself, and which checkpoint a run may
resume from. The model's own files (weights, head, configs) are `hncse.modeling.folder`'s."""

from __future__ import annotations

import copy
import glob
import json
import logging
import os
import shutil
import struct
import zipfile

import torch
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from hncse.errors import ConfigError
from hncse.modeling import WEIGHTS_NAME
from hncse.training.output_folder import OutputFolder, write_json_atomically
from hncse.training.run_facts import RESTORED_ON_RESUME

logger = logging.getLogger(__name__)

TRAINING_ARGS_NAME = "training_args.bin"  # the TrainingArguments, pickled (as the Trainer saves them)
TRAINER_STATE_NAME = "trainer_state.json"  # the Trainer's step, log history and best checkpoint
LOSS_STATE_NAME = "loss_state.pt"  # the objective's own state (HNM's pair sampler)
RUN_CONFIG_NAME = "run_config.json"  # the settings a later run compares before resuming
# Written last, once every process has written its files: what the checkpoint holds (every file and its size) and
# whether it can be resumed. A checkpoint is complete when it has one and every file it lists, whole.
MANIFEST_NAME = "hncse_checkpoint.json"
MODEL_CARD_NAME = "README.md"
SENTEVAL_RESULTS_NAME = "senteval_results.json"  # --do_predict's nested results, in the output folder

# What every resumable checkpoint holds (beside the model): the Trainer's states, the objective's and the settings.
CHECKPOINT_FILES = (
    WEIGHTS_NAME, "optimizer.pt", "scheduler.pt", "rng_state*.pth", TRAINER_STATE_NAME, LOSS_STATE_NAME,
    RUN_CONFIG_NAME,
)  # fmt: skip
DEEPSPEED_LATEST = "latest"  # DeepSpeed's pointer to the folder of its engine state (global_step<N>/)
# What a checkpoint holds only to resume training; the rest of it is the model folder (weights, configs,
# tokenizer, sentence-transformers modules, card). DeepSpeed adds its own global_step*/, latest, zero_to_fp32.py.
RESUME_STATE = (
    "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth", TRAINER_STATE_NAME, TRAINING_ARGS_NAME,
    LOSS_STATE_NAME.replace(".pt", "*.pt"), RUN_CONFIG_NAME, "global_step*", "latest", "zero_to_fp32.py",
)  # fmt: skip


def check_output_dir_writable(output_dir: str) -> None:
    """Fail at once, creating nothing, if --output_dir cannot be written (a file in its path, no permission, a
    read-only disk), rather than after the model has loaded or at the first save."""
    existing = os.path.abspath(output_dir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ConfigError(f"--output_dir {output_dir}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"--output_dir {output_dir}: {existing} cannot be written (no permission, or a read-only disk)"
        )


def is_checkpoint_folder(path: str) -> bool:
    return os.path.basename(os.path.normpath(path)).startswith(f"{PREFIX_CHECKPOINT_DIR}-")


def checkpoint_step(path: str) -> int:
    """The training step a checkpoint folder (`checkpoint-<step>`) was saved at."""
    return int(os.path.normpath(path).rsplit("-", 1)[-1])


def checkpoint_global_step(folder: str) -> int:
    """The optimizer steps a checkpoint had taken, from its trainer_state.json (the name may have been changed)."""
    return int(read_trainer_state(folder)["global_step"])


def read_trainer_state(folder: str) -> dict | None:
    """A folder's trainer_state.json, or None if it has none or one that a kill cut short (not whole JSON)."""
    try:
        with open(os.path.join(folder, TRAINER_STATE_NAME), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def without_secrets(training_args):
    """A copy of the arguments with every token left out (`--hub_token`, …): the saved folder is pushed to the Hub
    and shared, and a pickled token would go with it. The run itself keeps using the arguments it has."""
    kept = copy.copy(training_args)
    for name in vars(training_args):
        if name.endswith("_token") and getattr(kept, name) is not None:
            setattr(kept, name, None)
    return kept


def save_training_state(
    folder: str, training_args, loss: torch.nn.Module, settings: dict, resumable: bool = True
) -> None:
    """Beside the model: the training arguments and the run's settings (which a later run into the folder compares),
    and in a resumable checkpoint the objective's state."""
    save_atomically(without_secrets(training_args), os.path.join(folder, TRAINING_ARGS_NAME))
    if is_checkpoint_folder(folder) and resumable:
        save_loss_state(folder, loss, 0)  # e.g. HNM's sampler; the other processes' by `save_loss_state` too
    write_json_atomically(os.path.join(folder, RUN_CONFIG_NAME), settings)


def save_atomically(obj, path: str) -> None:
    """torch.save through a temporary file in the same folder: a reader finds the whole file or none."""
    torch.save(obj, f"{path}.tmp")
    os.replace(f"{path}.tmp", path)


def loss_state_path(folder: str, process_index: int) -> str:
    """Where process `process_index` keeps the objective's state in a checkpoint: the main process in
    loss_state.pt, process r in loss_state_rank<r>.pt."""
    name = LOSS_STATE_NAME if process_index == 0 else LOSS_STATE_NAME.replace(".pt", f"_rank{process_index}.pt")
    return os.path.join(folder, name)


def save_loss_state(folder: str, loss: torch.nn.Module, process_index: int) -> None:
    save_atomically(loss.state_dict(), loss_state_path(folder, process_index))


def load_loss_state(folder: str, loss: torch.nn.Module, process_index: int = 0) -> None:
    """Restore this process's objective state from a checkpoint (the main process's if the checkpoint has none of
    this process's, e.g. written by an earlier version), if it has one."""
    for path in (loss_state_path(folder, process_index), loss_state_path(folder, 0)):
        if os.path.isfile(path):
            loss.load_state_dict(torch.load(path, weights_only=True))
            return


def save_senteval_results(output_dir: str, results: dict) -> None:
    write_json_atomically(os.path.join(output_dir, SENTEVAL_RESULTS_NAME), results)


def settings_changed(folder: str, current: dict) -> dict[str, str] | None:
    """What differs between the settings a folder was written with (its run_config.json) and `current`: setting →
    "old → new"; None if the folder has no run_config.json."""
    path = os.path.join(folder, RUN_CONFIG_NAME)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    return {k: f"{saved[k]!r} → {current.get(k)!r}" for k in saved if saved[k] != current.get(k)}


def check_same_run(folder: str, current: dict) -> None:
    """Refuse to continue in (or write over) a checkpoint or model folder written with other settings (ConfigError
    listing the differences)."""
    changed = settings_changed(folder, current)
    if changed:
        what = f"{folder} of a different run" if is_checkpoint_folder(folder) else "the model of a different run"
        listed = "; ".join(f"{k}: {v}" for k, v in changed.items())
        restored = [k for k in changed if k in RESTORED_ON_RESUME]
        anyway = (
            f"Resuming cannot change {', '.join(restored)} (the checkpoint restores them): pass"
            if restored
            else "Pass --resume_from_checkpoint PATH to resume it with the new settings,"
        )
        raise ConfigError(
            f"--output_dir holds {what} ({listed}); nothing was changed. {anyway} --overwrite_output_dir true to "
            "start afresh (what the earlier run wrote is deleted once the new run saves), or another --output_dir"
        )


def check_resume_settings(checkpoint: str, current: dict) -> None:
    """--resume_from_checkpoint with other settings than the checkpoint's: what resuming restores (the model and
    its adapters, the optimizer and the learning-rate schedule) would silently stay the checkpoint's, so a change
    there is refused; any other change (data, objective, seed) applies from the resumed step on, and is said."""
    changed = settings_changed(checkpoint, current)
    if changed is None:
        raise ConfigError(
            f"--resume_from_checkpoint {checkpoint}: it has no {RUN_CONFIG_NAME}, so nothing tells the settings it "
            "was trained with; resume from a checkpoint saved by hncse"
        )
    restored = {k: v for k, v in changed.items() if k in RESTORED_ON_RESUME}
    if restored:
        listed = "; ".join(f"{k}: {v}" for k, v in restored.items())
        raise ConfigError(
            f"--resume_from_checkpoint {checkpoint}: resuming restores its {', '.join(restored)} ({listed}), so the "
            "new value would not apply; resume with the checkpoint's value, or start afresh in another --output_dir"
        )
    if changed:
        logger.warning(
            "Resuming %s with other settings, which apply from its step on: %s",
            checkpoint,
            "; ".join(f"{k}: {v}" for k, v in changed.items()),
        )


def finished_at(folder: str, training_args) -> int | None:
    """The step at which the run that wrote `folder` (a checkpoint or the output folder) ended, if it ended there
    and this run would end at the same step (same --max_steps, or same epochs without it); else None."""
    state = read_trainer_state(folder)
    if state is None:
        return None
    step, last = state.get("global_step", 0), state.get("max_steps", -1)
    if step < last or step == 0:
        return None
    if training_args.max_steps > 0:
        return step if training_args.max_steps == step else None
    return step if float(training_args.num_train_epochs) == float(state.get("num_train_epochs", -1)) else None


def checkpoint_folders(output_dir: str) -> list[str]:
    """The checkpoint folders in output_dir, oldest step first."""
    folders = glob.glob(os.path.join(output_dir, f"{PREFIX_CHECKPOINT_DIR}-*"))
    steps = sorted((int(f.rsplit("-", 1)[-1]), os.path.normpath(f)) for f in folders if f.rsplit("-", 1)[-1].isdigit())
    return [f for _, f in steps]


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest checkpoint that can be resumed from: a run killed while saving leaves a partial folder, which is
    skipped (with a warning), and a model-only checkpoint (`is_model_only`) is passed over."""
    for folder in reversed(checkpoint_folders(output_dir)):
        if is_model_only(folder):
            continue
        missing = missing_checkpoint_files(folder)
        if not missing:
            return folder
        logger.warning("%s is incomplete (%s): not resuming from it", folder, ", ".join(missing))
    return None


def is_model_only(folder: str) -> bool:
    """A checkpoint saved to the end without what resuming needs: a new best between two resumable saves
    (--resume_state_steps), or --save_only_model. Its manifest says so."""
    manifest = read_manifest(folder)
    return manifest is not None and not manifest.get("resumable", True) and not manifest_gaps(folder, manifest)


def best_recorded(folder: str) -> str | None:
    """The best checkpoint a checkpoint's trainer_state.json names: the one a run resumed from it loads at the end,
    unless it finds a better one."""
    return (read_trainer_state(folder) or {}).get("best_model_checkpoint")


def rotate_checkpoints(output_dir: str, limit: int | None, best: str | None) -> None:
    """Keep at most `limit` checkpoints (none deleted if it is None or ≤ 0). Never deleted: the newest, the best,
    the newest resumable one (model-only ones may be newer) and the best that one names (which a resume from it
    would load at the end if the resumed run finds nothing better). The newest is the last written, so that a
    resumed run's folders count as newer than those the interrupted run wrote beyond the resumed step."""
    if not limit or limit <= 0:
        return
    folders = sorted(checkpoint_folders(output_dir), key=lambda f: (written_at(f), checkpoint_step(f)))
    if len(folders) <= limit:
        return
    keep = {folders[-1]} | ({os.path.normpath(best)} if best else set())
    resumable = [f for f in folders if not missing_checkpoint_files(f)]
    if resumable:
        keep.add(resumable[-1])
        recorded = best_recorded(resumable[-1])
        keep |= {os.path.normpath(recorded)} if recorded else set()
    excess = len(folders) - max(limit, len(keep))
    for folder in folders:
        if excess <= 0:
            break
        if folder not in keep:
            shutil.rmtree(folder, ignore_errors=True)
            excess -= 1


def written_at(folder: str) -> float:
    """When a checkpoint was last written to the end: its trainer_state.json, written last (else the folder)."""
    state = os.path.join(folder, TRAINER_STATE_NAME)
    return os.path.getmtime(state if os.path.isfile(state) else folder)


def checkpoint_files(folder: str) -> dict[str, int]:
    """Every file under a checkpoint folder (relative path → size), its manifest and temporary files left out."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, folder)
            if relative != MANIFEST_NAME and not name.endswith(".tmp"):
                files[relative] = os.path.getsize(path)
    return dict(sorted(files.items()))


def write_manifest(folder: str, step: int, resumable: bool) -> None:
    """The end of a checkpoint's save, once every process has written its files: what it holds."""
    manifest = {"step": step, "resumable": resumable, "files": checkpoint_files(folder)}
    write_json_atomically(os.path.join(folder, MANIFEST_NAME), manifest)


def read_manifest(folder: str) -> dict | None:
    try:
        with open(os.path.join(folder, MANIFEST_NAME), encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("files"), dict) else None


def manifest_gaps(folder: str, manifest: dict) -> list[str]:
    """The files a checkpoint's manifest lists that are gone or no longer of the size written."""
    gaps = []
    for relative, size in manifest["files"].items():
        path = os.path.join(folder, relative)
        if not os.path.isfile(path):
            gaps.append(f"no {relative}")
        elif os.path.getsize(path) < size:
            gaps.append(f"{relative} cut short")
        elif os.path.getsize(path) > size:
            gaps.append(f"{relative} changed since it was saved")
    return gaps


def missing_checkpoint_files(folder: str) -> list[str]:
    """What a checkpoint folder lacks to be resumed from: one rule, used by resume, rotation and the final folder.
    Complete means: a manifest (written last, so a save cut short has none), every file it lists there at the size
    written, the files every resumable checkpoint has (`CHECKPOINT_FILES`; a DeepSpeed one keeps the scheduler and
    optimizer in the folder its `latest` file names), no file cut short (`damaged_files`) and a trainer state
    that says its step."""
    manifest = read_manifest(folder)
    if manifest is None:
        return [f"no {MANIFEST_NAME}: its save did not reach the end"]
    missing = manifest_gaps(folder, manifest)
    if not manifest.get("resumable", True):
        return missing + ["a model only, saved without the state to resume"]
    required = list(CHECKPOINT_FILES)
    latest = os.path.join(folder, DEEPSPEED_LATEST)
    if os.path.isfile(latest):
        with open(latest, encoding="utf-8") as f:
            tag = f.read().strip()
        required = [name for name in required if name not in ("scheduler.pt", "optimizer.pt")]
        required += [os.path.join(tag, "mp_rank_*_model_states.pt"), os.path.join(tag, "*optim_states.pt")]
    missing += [f"no {name}" for name in required if not glob.glob(os.path.join(folder, name))]
    state = read_trainer_state(folder)
    if os.path.isfile(os.path.join(folder, TRAINER_STATE_NAME)) and not isinstance(
        (state or {}).get("global_step"), int
    ):
        missing.append(f"{TRAINER_STATE_NAME} cut short or without global_step")
    missing += [f"{os.path.relpath(path, folder)} cut short" for path in damaged_files(folder)]
    return list(dict.fromkeys(missing))


def damaged_files(folder: str) -> list[str]:
    """The files of a checkpoint that were not written to their end (a full disk, a kill, a copy cut short): a
    safetensors file shorter than its header says, a torch file whose zip directory (written last) is missing.
    Checked from their headers and ends, without loading them."""
    damaged = []
    for path in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
        if not whole_safetensors(path):
            damaged.append(path)
    for pattern in ("*.pt", "*.pth", "*.bin"):
        for path in sorted(glob.glob(os.path.join(folder, pattern))):
            if not zipfile.is_zipfile(path):
                damaged.append(path)
    return damaged


def whole_safetensors(path: str) -> bool:
    """Whether a safetensors file holds every byte its header promises (8-byte length, JSON header, data)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > size - 8:
                return False
            header = json.loads(f.read(length))
    except (OSError, struct.error, ValueError, UnicodeDecodeError):
        return False
    ends = [entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"]
    return size == 8 + length + max(ends, default=0)


def check_resumable(path: str) -> None:
    """--resume_from_checkpoint PATH: fail before any loading if PATH is not a whole checkpoint."""
    if not os.path.isdir(path):
        raise ConfigError(f"--resume_from_checkpoint: no such folder: {path}")
    if is_model_only(path):
        newest = last_complete_checkpoint(os.path.dirname(os.path.normpath(path)))
        raise ConfigError(
            f"--resume_from_checkpoint: {path} holds a model only (a new best saved between resumable checkpoints, "
            f"without optimizer, scheduler or RNG state); resume from {newest or 'a checkpoint with them'}"
        )
    missing = missing_checkpoint_files(path)
    if missing:
        raise ConfigError(f"--resume_from_checkpoint: {path} is not a complete checkpoint ({', '.join(missing)})")


def copy_model_folder(checkpoint: str, output_dir: str) -> None:
    """Make output_dir the model of `checkpoint` (what the Hub receives during training), resume state left out."""
    shutil.copytree(checkpoint, output_dir, ignore=shutil.ignore_patterns(*RESUME_STATE), dirs_exist_ok=True)


class RunFinished(Exception):
    """output_dir already holds this run, trained to its end: there is nothing to do."""


def checkpoint_to_resume(training_args, settings: dict) -> str | None:
    """The checkpoint this run continues from: --resume_from_checkpoint (checked to be whole and of settings that
    resuming can keep), else the newest complete checkpoint in output_dir if it has this run's settings (another
    run's is refused), else None.

    A finished run (`OutputFolder.finished`) is never written over: the same command again raises RunFinished
    (nothing to do), any other ConfigError. --overwrite_output_dir skips these checks: the trainer deletes what the
    earlier run wrote when it first saves (`HNCSETrainer`), so that a run failing before then loses nothing."""
    output_dir = training_args.output_dir
    explicit = training_args.resume_from_checkpoint
    folder = OutputFolder(output_dir)
    finished = folder.finished if not training_args.overwrite_output_dir else None
    if finished is not None:
        newest = last_complete_checkpoint(output_dir)
        changed = settings_changed(output_dir, settings) or {}
        if not changed and explicit is None and finished_at(output_dir, training_args) == finished["step"]:
            raise RunFinished(
                f"{output_dir} holds this run, finished at step {finished['step']}: nothing to do "
                "(--overwrite_output_dir true trains it again)"
            )
        further = (
            f"To train it further, resume its last checkpoint into another folder (--resume_from_checkpoint {newest} "
            "--output_dir OTHER); "
            if newest
            else ""
        )
        listed = f" of other settings ({'; '.join(f'{k}: {v}' for k, v in changed.items())})" if changed else ""
        raise ConfigError(
            f"--output_dir {output_dir} holds a finished run (step {finished['step']}){listed}, which this command "
            f"would change; nothing was changed. {further}--overwrite_output_dir true trains afresh in it"
        )
    if explicit is not None:
        check_resumable(explicit)
        check_resume_settings(explicit, settings)
        return explicit
    if training_args.overwrite_output_dir or not os.path.isdir(output_dir):
        return None
    if os.path.isfile(os.path.join(output_dir, RUN_CONFIG_NAME)):  # a final folder saved, its run not finished
        check_same_run(output_dir, settings)
    newest = last_complete_checkpoint(output_dir)
    if newest is None:
        return None
    check_same_run(newest, settings)
    logger.info("Resuming from %s (pass another --output_dir to start afresh)", newest)
    return newest
