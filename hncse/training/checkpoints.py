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

logger = logging.getLogger(__name__)

TRAINING_ARGS_NAME = "training_args.bin"  # the TrainingArguments, pickled (as the Trainer saves them)
TRAINER_STATE_NAME = "trainer_state.json"  # the Trainer's step, log history and best checkpoint
LOSS_STATE_NAME = "loss_state.pt"  # the objective's own state (HNM's pair sampler)
RUN_CONFIG_NAME = "run_config.json"  # the settings a later run compares before resuming
MODEL_CARD_NAME = "README.md"
SENTEVAL_RESULTS_NAME = "senteval_results.json"  # --do_predict's nested results, in the output folder

# Written last by the Trainer: a checkpoint that has all of them was saved to the end.
CHECKPOINT_FILES = (WEIGHTS_NAME, "scheduler.pt", "rng_state*.pth", TRAINER_STATE_NAME)
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
    torch.save(without_secrets(training_args), os.path.join(folder, TRAINING_ARGS_NAME))
    if is_checkpoint_folder(folder) and resumable:
        save_loss_state(folder, loss, 0)  # e.g. HNM's sampler; the other processes' by `save_loss_state` too
    with open(os.path.join(folder, RUN_CONFIG_NAME), "w", encoding="utf-8") as f:
        json.dump(settings, f, indent=2)


def loss_state_path(folder: str, process_index: int) -> str:
    """Where process `process_index` keeps the objective's state in a checkpoint: the main process in
    loss_state.pt, process r in loss_state_rank<r>.pt."""
    name = LOSS_STATE_NAME if process_index == 0 else LOSS_STATE_NAME.replace(".pt", f"_rank{process_index}.pt")
    return os.path.join(folder, name)


def save_loss_state(folder: str, loss: torch.nn.Module, process_index: int) -> None:
    torch.save(loss.state_dict(), loss_state_path(folder, process_index))


def load_loss_state(folder: str, loss: torch.nn.Module, process_index: int = 0) -> None:
    """Restore this process's objective state from a checkpoint (the main process's if the checkpoint has none of
    this process's, e.g. written by an earlier version), if it has one."""
    for path in (loss_state_path(folder, process_index), loss_state_path(folder, 0)):
        if os.path.isfile(path):
            loss.load_state_dict(torch.load(path, weights_only=True))
            return


def save_senteval_results(output_dir: str, results: dict) -> None:
    with open(os.path.join(output_dir, SENTEVAL_RESULTS_NAME), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
        f.write("\n")


def check_same_run(folder: str, current: dict) -> None:
    """Refuse to continue in (or write over) a checkpoint or model folder written with other settings (ConfigError
    listing the differences)."""
    path = os.path.join(folder, RUN_CONFIG_NAME)
    if not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    changed = [f"{k}: {saved[k]!r} → {current.get(k)!r}" for k in saved if saved[k] != current.get(k)]
    if changed:
        what = f"{folder} of a different run" if is_checkpoint_folder(folder) else "the model of a different run"
        raise ConfigError(
            f"--output_dir holds {what} ({'; '.join(changed)}); nothing was changed. Pass --resume_from_checkpoint "
            "PATH to resume it anyway, --overwrite_output_dir true to start afresh (its checkpoints are deleted once "
            "the new run saves), or another --output_dir"
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
    (--resume_state_steps), or --save_only_model. Told apart from a save cut short by its trainer_state.json, which
    the Trainer writes after the optimizer, scheduler and RNG state."""
    if glob.glob(os.path.join(folder, "rng_state*.pth")) or os.path.isfile(os.path.join(folder, DEEPSPEED_LATEST)):
        return False
    return os.path.isfile(os.path.join(folder, WEIGHTS_NAME)) and read_trainer_state(folder) is not None


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


def missing_checkpoint_files(folder: str) -> list[str]:
    """What a checkpoint folder lacks to be resumed from ("no <file>", "<file> cut short"): a file that was not
    written to its end (`damaged_files`, or a trainer_state.json that is not whole JSON) counts too. A DeepSpeed
    checkpoint keeps the scheduler and optimizer in the folder its `latest` file names (with optimizer offload
    too), instead of scheduler.pt."""
    required = list(CHECKPOINT_FILES)
    latest = os.path.join(folder, DEEPSPEED_LATEST)
    if os.path.isfile(latest):
        with open(latest, encoding="utf-8") as f:
            tag = f.read().strip()
        required.remove("scheduler.pt")
        required += [os.path.join(tag, "mp_rank_*_model_states.pt"), os.path.join(tag, "*optim_states.pt")]
    missing = [f"no {name}" for name in required if not glob.glob(os.path.join(folder, name))]
    if os.path.isfile(os.path.join(folder, TRAINER_STATE_NAME)) and read_trainer_state(folder) is None:
        missing.append(f"{TRAINER_STATE_NAME} cut short")
    return missing + [f"{os.path.basename(path)} cut short" for path in damaged_files(folder)]


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


def remove_checkpoints(output_dir: str) -> None:
    """--overwrite_output_dir: delete every checkpoint folder of the old run."""
    for folder in glob.glob(os.path.join(output_dir, f"{PREFIX_CHECKPOINT_DIR}-*")):
        shutil.rmtree(folder)


def copy_model_folder(checkpoint: str, output_dir: str) -> None:
    """Make output_dir the model of `checkpoint` (what the Hub receives during training), resume state left out."""
    shutil.copytree(checkpoint, output_dir, ignore=shutil.ignore_patterns(*RESUME_STATE), dirs_exist_ok=True)


class RunFinished(Exception):
    """output_dir already holds this run, trained to its end: there is nothing to do."""


def checkpoint_to_resume(training_args, settings: dict) -> str | None:
    """The checkpoint this run continues from: --resume_from_checkpoint (checked to be whole), else the newest
    complete checkpoint in output_dir if it has this run's settings (another run's is refused), else None.

    Raises RunFinished if output_dir holds this run's finished model (its final folder written after training to
    the same step), and ConfigError if it holds another run's model or checkpoints. --overwrite_output_dir skips
    these checks: the trainer deletes the old checkpoints when it first saves (`HNCSETrainer`), so that a run
    failing before then loses nothing."""
    if training_args.resume_from_checkpoint is not None:
        check_resumable(training_args.resume_from_checkpoint)
        return training_args.resume_from_checkpoint
    output_dir = training_args.output_dir
    if training_args.overwrite_output_dir or not os.path.isdir(output_dir):
        return None
    newest = last_complete_checkpoint(output_dir)
    if os.path.isfile(os.path.join(output_dir, WEIGHTS_NAME)):  # a model folder, finished or not
        if not os.path.isfile(os.path.join(output_dir, RUN_CONFIG_NAME)):
            raise ConfigError(
                f"--output_dir {output_dir} holds a model that this run did not write (no {RUN_CONFIG_NAME}); "
                "nothing was changed. Pass another --output_dir, or --overwrite_output_dir true to replace it"
            )
        check_same_run(output_dir, settings)
        step = finished_at(output_dir, training_args)
        if step is not None and os.path.isfile(os.path.join(output_dir, "train_results.json")):
            raise RunFinished(
                f"{output_dir} holds this run, finished at step {step}: nothing to do (--overwrite_output_dir true "
                "trains it again; a larger --max_steps or --num_train_epochs continues it)"
            )
    if newest is None:
        return None
    check_same_run(newest, settings)
    logger.info("Resuming from %s (pass another --output_dir to start afresh)", newest)
    return newest
