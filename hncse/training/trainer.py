"""HNCSETrainer: a thin `Trainer` subclass that computes the contrastive loss and evaluates on STS dev sets."""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import math
import os
import shutil
from collections import defaultdict
from types import SimpleNamespace

import torch
from torch.utils.data import RandomSampler
from transformers import Trainer, TrainerCallback, TrainerState
from transformers.integrations import is_deepspeed_zero3_enabled
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, HubStrategy, IntervalStrategy, TrainOutput

from hncse.data import SentenceStream
from hncse.distributed import batch_exchange
from hncse.errors import ConfigError, DiskFullError, TrainingDivergedError, first_line
from hncse.evaluation import EvalSuite, flat_metrics, run_suite
from hncse.losses import build_loss
from hncse.plots import CURVES_NAME, draw_training_curves, plotting_unavailable
from hncse.training.cached_contrastive import average_gradients, cached_contrastive_loss
from hncse.training.checkpoints import (
    TRAINER_STATE_NAME,
    checkpoint_global_step,
    checkpoint_step,
    copy_model_folder,
    is_checkpoint_folder,
    last_complete_checkpoint,
    load_loss_state,
    rotate_checkpoints,
    save_loss_state,
    save_training_state,
    write_manifest,
)
from hncse.training.hub import explain_repo_failure
from hncse.training.model_card import write_model_card
from hncse.training.output_folder import TRAINER_RESULT_FILES, OutputFolder
from hncse.training.preflight import check_cached_step_backend
from hncse.training.run_facts import MODEL_RUN_KEYS, RunFacts, run_settings
from hncse.training.sampler import PermutationSampler
from hncse.training.views import objective_loss, split_views, stacked_features

logger = logging.getLogger(__name__)


class DivergenceCheck(TrainerCallback):
    """At the end of every step that logs, evaluates or saves — on every process, before any of them does it — stop
    if a loss was non-finite (`HNCSETrainer._stop_if_diverged`)."""

    def __init__(self, trainer: HNCSETrainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_log or control.should_evaluate or control.should_save or control.should_training_stop:
            self.trainer._check_diverged()


@contextlib.contextmanager
def arguments_set(args, **values):
    """`args` with some attributes set for the duration of the block."""
    saved = {name: getattr(args, name) for name in values}
    for name, value in values.items():
        setattr(args, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(args, name, value)


class HNCSETrainer(Trainer):
    """Contrastive sentence-embedding training on a `SentenceEncoder`.

    Each step encodes every sentence of the batch twice in one forward pass (two dropout masks → a positive
    pair) and applies the objective. Evaluation runs an `EvalSuite` (`eval_dataset`; SentEval's STS-B/SICK-R dev
    sets and, if asked, transfer tasks), reported as `eval_<task>_spearman` / `eval_<task>_accuracy`.
    Checkpoints and the final folder are the encoder's own format (transformers + sentence-transformers
    loadable), so the three checkpoint hooks are overridden.

    Args:
        loss: the objective module; default built from `args.objective` by the objective registry.
        run_facts: facts of the run for the model card and `run_config.json` (`RunFacts.from_arguments`, built
            by run_hncse.py); default: what the model, the arguments and the training data tell.
    """

    _tag_names = ["hncse", "sentence-transformers", "sentence-similarity"]
    # The objective returns a per-batch mean: let the Trainer divide it by the gradient-accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(self, *args, loss: torch.nn.Module | None = None, run_facts: RunFacts | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        check_cached_step_backend(self.args)  # run_hncse's preflight did; a trainer built in code is checked too
        self.loss_fn = loss if loss is not None else build_loss(self.args)
        self.run_facts = run_facts if run_facts is not None else self._facts_from_model()
        self._metrics: dict[str, list[torch.Tensor]] = defaultdict(list)
        self._batch_exchange = None
        self._first_bad: tuple[torch.Tensor, torch.Tensor] | None = None  # (step, loss) of the first non-finite loss
        self._resume_state_step = 0  # the step of the last checkpoint written with the state to resume
        self._earlier_run_cleared = not self.args.overwrite_output_dir
        self._training_log_length: int | None = None  # log_history entries logged by training, once it has ended
        self._said_why_no_curves = False
        self._checkpoint_to_push: str | None = None  # pushed once every process has written its part
        self.output_folder = OutputFolder(self.args.output_dir)  # what hncse wrote there; the main process's to write
        self.add_callback(DivergenceCheck(self))

    def _facts_from_model(self) -> RunFacts:
        """Run facts for a trainer built without the script's arguments (e.g. bench/ablation.py)."""
        encoder = self.accelerator.unwrap_model(self.model)
        model_args = None
        if hasattr(encoder, "pooler_type"):
            known = {
                "model_name_or_path": encoder.config.name_or_path,
                "pooler_type": encoder.pooler_type,
                "mlp_only_train": encoder.mlp_only_train,
                "prompt": getattr(encoder, "prompt", None),
            }
            model_args = SimpleNamespace(**{**dict.fromkeys(MODEL_RUN_KEYS), **known})  # the rest: unknown
        return RunFacts(
            base_model=model_args.model_name_or_path if model_args else None,
            train_sentences=len(self.train_dataset) if self.train_dataset is not None else None,
            settings=run_settings(model_args, None, self.args),
        )

    def _get_train_sampler(self, train_dataset=None):
        """The Trainer's shuffle (which accelerate makes seedable) in the same order, without a Python list of every
        index held for the epoch (`hncse.training.sampler`)."""
        sampler = super()._get_train_sampler(train_dataset)
        seedable = self.accelerator.dataloader_config.use_seedable_sampler
        if type(sampler) is RandomSampler and seedable and not sampler.replacement:
            return PermutationSampler(len(sampler.data_source), self.accelerator.dataloader_config.data_seed)
        return sampler

    def train(self, resume_from_checkpoint: str | bool | None = None, *args, **kwargs):
        if resume_from_checkpoint is True:
            resume_from_checkpoint = last_complete_checkpoint(self.args.output_dir) or True  # True: none, says Trainer
        if isinstance(resume_from_checkpoint, str):
            # Every process restores its own objective state (HNM's sampler), whatever the backend.
            load_loss_state(resume_from_checkpoint, self.loss_fn, self.args.process_index)
            self._resume_state_step = checkpoint_global_step(resume_from_checkpoint)
        if isinstance(self.train_dataset, SentenceStream) and not self.args.ignore_data_skip:
            # The Trainer resumes by replaying the batches the checkpoint's steps took: the stream gives those as
            # placeholders, so that their sentences are read but not tokenised.
            step = checkpoint_global_step(resume_from_checkpoint) if isinstance(resume_from_checkpoint, str) else 0
            per_step = self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps
            self.train_dataset.skip(step * per_step * self.args.world_size)
        self._training_log_length = None
        output = super().train(resume_from_checkpoint, *args, **kwargs)
        self._training_log_length = len(self.state.log_history)
        return output

    def finish_from(self, checkpoint: str) -> TrainOutput:
        """The end of `train` for a run whose last step is `checkpoint` (it stopped before saving its final folder):
        its state, and its weights or, with load_best_model_at_end, the best checkpoint's; no training step."""
        self.state = TrainerState.load_from_json(os.path.join(checkpoint, TRAINER_STATE_NAME))
        self._load_from_checkpoint(checkpoint)
        if self.args.load_best_model_at_end and self.state.best_model_checkpoint:
            self._load_best_model()
        self._training_log_length = len(self.state.log_history)
        return TrainOutput(self.state.global_step, float("nan"), {})

    @property
    def batch_exchange(self):
        """Global batch across processes (`--gather_negatives`, the default) or this process's batch."""
        if self._batch_exchange is None:  # decided on first use, once the process group exists
            # With the incomplete last batch dropped every process's batch is full: no size exchange per step.
            self._batch_exchange = batch_exchange(self.args.gather_negatives, self.args.dataloader_drop_last)
            if self._batch_exchange.world_size > 1:
                logger.info("Contrastive negatives from the global batch of %d processes", self.args.world_size)
        return self._batch_exchange

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        features, columns = stacked_features(inputs)
        if self.args.mini_batch_size and model.training and torch.is_grad_enabled() and not return_outputs:
            loss, stats = self._cached_loss(model, features, columns)
        else:
            # (C·N, d): two dropout views of each sentence, or the anchors, positives and given negatives of the rows
            embeddings = model(**features)
            loss, stats = objective_loss(self.loss_fn, embeddings, columns, self.batch_exchange)
        if model.training:
            self._stop_if_diverged(loss)
            for name, value in stats.items():
                self._metrics[name].append(value.detach())
        if return_outputs:
            z1, z2, _ = split_views(embeddings, columns)
            return loss, {"z1": z1, "z2": z2}
        return loss

    def _stop_if_diverged(self, loss: torch.Tensor) -> None:
        """No NaN/inf loss reaches the weights; training stops with one line, earlier checkpoints kept.

        With a fused optimizer (the Trainer's default AdamW) and no fp16 loss scaler, this costs no host
        synchronisation: the first bad step is recorded on the device, and the optimizer skips every update from it
        on (the `found_inf` input that fused optimizers take from a GradScaler); every process looks at it at the
        steps that log, evaluate or save (`DivergenceCheck`). Otherwise every process agrees on it at each step."""
        bad = self.accelerator.reduce((~torch.isfinite(loss.detach())).float().reshape(()), reduction="sum") > 0
        optimizer = self._optimizer_that_skips()
        if optimizer is None:
            if bad.item():
                self._raise_diverged(self.state.global_step + 1, loss.detach().float())
            return
        if self._first_bad is None:
            self._first_bad = (torch.zeros((), device=loss.device), torch.zeros((), device=loss.device))
        step, value = self._first_bad
        first = bad & (step == 0)
        self._first_bad = (
            torch.where(first, self.state.global_step + 1, step),
            torch.where(first, loss.float(), value),
        )
        optimizer.found_inf = (self._first_bad[0] > 0).float()

    def _optimizer_that_skips(self):
        """The optimizer when it can skip an update on the device (fused, and not stepped by a GradScaler)."""
        if self.optimizer is None or self.is_deepspeed_enabled or self.accelerator.scaler is not None:
            return None
        optimizer = getattr(self.optimizer, "optimizer", self.optimizer)  # accelerate's wrapper
        return optimizer if optimizer.defaults.get("fused") is True else None

    def _check_diverged(self) -> None:
        if self._first_bad is not None and self._first_bad[0].item() > 0:
            step, value = self._first_bad
            self._raise_diverged(int(step.item()), value)

    def _raise_diverged(self, step: int, loss: torch.Tensor) -> None:
        last = last_complete_checkpoint(self.args.output_dir) if os.path.isdir(self.args.output_dir) else None
        stopped = (
            "training stopped before that step's update"
            if step > self.state.global_step
            else f"no update was applied from that step on, and training stopped at step {self.state.global_step}"
        )
        raise TrainingDivergedError(
            f"the loss became {loss.item()} at step {step}; {stopped}. Last checkpoint: {last or 'none'} (lower "
            "--learning_rate, or try --bf16 false)"
        )

    def _refuse_non_finite(self, state_dict: dict, output_dir: str) -> None:
        """A finite loss can still be followed by an update that overflows the weights: never write those, so that
        every checkpoint on disk (and the one rotation keeps) is usable."""
        checks = [torch.isfinite(t).all() for t in state_dict.values() if t.is_floating_point() and t.numel()]
        if checks and not bool(torch.stack(checks).all()):
            last = last_complete_checkpoint(self.args.output_dir) if os.path.isdir(self.args.output_dir) else None
            raise TrainingDivergedError(
                f"the weights became inf or nan in step {self.state.global_step}'s update, so {output_dir} was not "
                f"written. Last checkpoint: {last or 'none'} (lower --learning_rate, or try --bf16 false)"
            )

    def _cached_loss(self, model, features, columns):
        """`--mini_batch_size`: GradCache. The mini-batch passes bypass DDP's reducer, so gradients are averaged
        over processes explicitly after the backward pass; under DeepSpeed ZeRO-2 its own gradient hooks reduce
        them, once per step."""
        encoder = self.accelerator.unwrap_model(model)
        average = None
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            average = functools.partial(average_gradients, encoder)
        return cached_contrastive_loss(
            encoder, features, self.loss_fn, self.args.mini_batch_size, self.batch_exchange, average, columns,
            deposit_once=self.is_deepspeed_enabled,  # ZeRO-2 reduces each gradient from its accumulation hook
        )  # fmt: skip

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._metrics:
            for name, values in self._metrics.items():
                logs[name] = round(torch.stack(values).float().mean().item(), 4)
            self._metrics.clear()
        super().log(logs, start_time)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        metrics, _ = self.evaluate_suite(eval_dataset, metric_key_prefix)
        return metrics

    def evaluate_suite(
        self, suite: EvalSuite | None = None, metric_key_prefix: str = "eval", main_process_only: bool = False
    ) -> tuple[dict, dict]:
        """Score the model on an `EvalSuite` (default: `eval_dataset`); log and return the flat metrics
        (`eval_stsb_spearman`, …) and the nested results (per-subset scores, aggregates).

        main_process_only: only the main process scores, the others return empty results (for an evaluation whose
        results only the main process writes); not under ZeRO-3, where every process gathers the weights."""
        suite = suite if suite is not None else self.eval_dataset
        if main_process_only and not self.zero3 and not self.is_world_process_zero():
            return {}, {}
        encoder = self.accelerator.unwrap_model(self.model)
        with self._full_weights(encoder):
            results = run_suite(encoder, suite, self.args.per_device_eval_batch_size, bf16=self.args.bf16)
        metrics = {f"{metric_key_prefix}_{name}": value for name, value in flat_metrics(results, suite).items()}
        metrics[f"{metric_key_prefix}_runtime"] = round(results["seconds"], 3)
        self.log(metrics)
        if metric_key_prefix == "eval":
            self._refuse_nan_selection_metric(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics, results

    def _refuse_nan_selection_metric(self, metrics: dict[str, float]) -> None:
        """A NaN metric picks no checkpoint, yet the Trainer would take the first NaN as the best and never replace
        it (nothing compares greater than NaN): stop with one line instead, the checkpoints so far kept. It means
        every pair got the same similarity (constant or non-finite embeddings); constant gold scores are refused
        before training (`hncse.evaluation.sts_files`)."""
        name = self.args.metric_for_best_model
        if name is None or self.args.eval_strategy == IntervalStrategy.NO:
            return
        name = name if name.startswith("eval_") else f"eval_{name}"
        value = metrics.get(name)
        if value is not None and not math.isfinite(value):
            last = last_complete_checkpoint(self.args.output_dir) if os.path.isdir(self.args.output_dir) else None
            raise TrainingDivergedError(
                f"--metric_for_best_model {name} is {value} at step {self.state.global_step}: the dev set cannot rank "
                "these embeddings (every pair gets the same similarity), so no checkpoint can be chosen by it. Last "
                f"checkpoint: {last or 'none'} (check the model's output, or choose another metric)"
            )

    @property
    def zero3(self) -> bool:
        return self.is_deepspeed_enabled and is_deepspeed_zero3_enabled()

    def _full_weights(self, encoder):
        """Under ZeRO-3 each process holds a slice of every weight: gather them for evaluation (every process
        runs it, as the gathering is collective). Otherwise nothing to do."""
        if self.zero3:
            import deepspeed

            return deepspeed.zero.GatheredParameters(list(encoder.parameters()), modifier_rank=None)
        return contextlib.nullcontext()

    def create_model_card(self, *args, **kwargs) -> None:
        """Our card (YAML metadata for sentence-transformers, dev results) instead of the generic Trainer one."""
        if self.is_world_process_zero():
            self._write_card(self.args.output_dir)

    def _write_card(self, output_dir: str) -> None:
        if is_checkpoint_folder(output_dir):
            step, which = checkpoint_step(output_dir), "a checkpoint"
        elif self.args.load_best_model_at_end and self.state.best_model_checkpoint:
            step = checkpoint_step(self.state.best_model_checkpoint)
            which = f"the best checkpoint by {self.args.metric_for_best_model}"
        else:
            step, which = self.state.global_step, "the last step"
        # The name users load it by: the Hub repository once it exists, else the folder itself.
        repo_id = getattr(self, "hub_model_id", None) or self.args.hub_model_id or output_dir
        encoder = self.accelerator.unwrap_model(self.model)
        write_model_card(
            output_dir, encoder, self.args, self.state, self.loss_fn, self.run_facts, self._tag_names,
            weights=(step, which), repo_id=repo_id,
        )  # fmt: skip

    # ---- Hub: the pushed folder is the whole model folder, created with a clear error if it cannot be --------

    def init_hf_repo(self, token: str | None = None, private: bool | None = None) -> None:
        try:  # `private` is new in transformers 5.23; older releases take the args' hub_private_repo
            super().init_hf_repo(token=token, **({} if private is None else {"private": private}))
        except Exception as error:  # offline, no token, no permission: huggingface_hub raises several types
            repo_id = self.args.hub_model_id or os.path.basename(os.path.abspath(self.args.output_dir))
            raise explain_repo_failure(repo_id, error) from error

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        """The Trainer asks for the push while the other processes may still be writing their part of the checkpoint
        (their objective state): copying or uploading it then would take a half-written file. `_push_complete`
        pushes it once every process is done."""
        self._checkpoint_to_push = checkpoint_folder

    def _push_complete(self) -> None:
        """The Trainer copies only config and weights from the checkpoint into output_dir before pushing it; copy
        the whole model folder (sentence-transformers modules, head, card) so each push loads like the final one."""
        folder, self._checkpoint_to_push = self._checkpoint_to_push, None
        if folder is None:
            return
        if self.is_world_process_zero() and self.args.hub_strategy != "end":
            copy_model_folder(folder, self.args.output_dir)
        super()._push_from_checkpoint(folder)

    # ---- checkpoints: the encoder's own folder layout instead of a raw state dict -----------------------

    def _save_checkpoint(self, model, trial) -> None:
        """What resuming needs (optimizer, scheduler, RNG: about 3× the weights) only every --resume_state_steps
        steps and at the end. A save in between keeps the model only, and only if it is a new best (or if no
        evaluation and metric pick one): model selection stays exact while most saves write nothing. Rotation never
        deletes the newest resumable checkpoint nor the best it names (`rotate_checkpoints`)."""
        step = self.state.global_step
        resume_state_due = (
            step - self._resume_state_step >= self.args.resume_state_steps
            or step >= self.state.max_steps
            or self.control.should_training_stop
        )
        selects = self.args.metric_for_best_model is not None and self.args.eval_strategy != IntervalStrategy.NO
        if not resume_state_due and selects and self.state.best_global_step != step:
            return
        self._clear_earlier_run(every_process=True)
        # Every checkpoint gets it under DeepSpeed, which reloads the best one through its engine state, and with
        # --hub_strategy checkpoint, whose last-checkpoint/ on the Hub is for resuming elsewhere.
        always = self.is_deepspeed_enabled or self.args.hub_strategy == HubStrategy.CHECKPOINT
        if (resume_state_due or always) and not self.args.save_only_model:
            self._resume_state_step = step
        folder = os.path.join(self.args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{step}")
        if self.args.should_save:
            self.output_folder.claim(os.path.basename(folder))  # before its first byte
        with (
            self._saving(folder),
            arguments_set(self.args, save_only_model=not self.writes_resume_state, save_total_limit=None),
        ):
            super()._save_checkpoint(model, trial)
            if self.args.process_index > 0 and self.writes_resume_state and os.path.isdir(folder):
                save_loss_state(folder, self.loss_fn, self.args.process_index)  # the main process's: in `_save`
        # The manifest is written last, once every process has written its files: then the checkpoint is complete.
        self.accelerator.wait_for_everyone()
        if self.args.should_save and os.path.isdir(folder):
            write_manifest(folder, step, resumable=self.writes_resume_state)
        with self._saving(folder):  # the copy into output_dir can meet a full disk too, as it did inside the save
            self._push_complete()  # the checkpoint whole, its manifest included
        if self.args.should_save:
            self.output_folder.sweep()
            rotate_checkpoints(self.args.output_dir, self.args.save_total_limit, self.state.best_model_checkpoint)

    @contextlib.contextmanager
    def _saving(self, folder: str):
        """A full disk or the file-size limit while saving: one line that says what is complete (the folder cut
        short has no manifest, so resume and rotation pass it over)."""
        try:
            yield
        except (OSError, RuntimeError) as error:
            if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
                reason = os.strerror(error.errno).lower()
            elif isinstance(error, RuntimeError) and "inline_container" in str(error):
                # torch.save's zip writer reports a refused write (no space, the file-size limit) this way
                reason = "a write was refused (a full disk or the file-size limit)"
            else:
                raise
            last = last_complete_checkpoint(self.args.output_dir) if os.path.isdir(self.args.output_dir) else None
            raise DiskFullError(
                f"{reason} while saving {folder} at step {self.state.global_step}: it is "
                f"incomplete and will be passed over. Last complete checkpoint: {last or 'none'}; make room and run "
                "the same command again to resume from it"
            ) from None

    @property
    def writes_resume_state(self) -> bool:
        """Whether the checkpoint of this step gets the state to resume (decided in `_save_checkpoint`)."""
        return self._resume_state_step == self.state.global_step

    def _clear_earlier_run(self, every_process: bool) -> None:
        """--overwrite_output_dir: what the earlier run wrote is deleted when this run first writes into output_dir,
        not before, so that a run that fails before then (a bad value found late, a crash) loses nothing; files no
        hncse run wrote are never deleted (the run's start refuses a folder that has them). `every_process`:
        called by all processes, which then wait until it is done (a checkpoint, where each writes its own files)."""
        if self._earlier_run_cleared:
            return
        self._earlier_run_cleared = True
        if self.args.should_save and os.path.isdir(self.args.output_dir):
            removed = self.output_folder.remove_written()
            logger.info("--overwrite_output_dir: removed what the earlier run wrote in %s: %s", self.args.output_dir,
                        ", ".join(removed) or "nothing")  # fmt: skip
        if every_process:
            self.accelerator.wait_for_everyone()

    def save_metrics(self, split, metrics, combined=True) -> None:
        if self.args.should_save:
            self._clear_earlier_run(every_process=False)
            self.output_folder.claim(*TRAINER_RESULT_FILES)
        super().save_metrics(split, metrics, combined)

    def save_state(self) -> None:
        if self.args.should_save:
            self._clear_earlier_run(every_process=False)
            self.output_folder.claim(*TRAINER_RESULT_FILES)
        super().save_state()

    def mark_finished(self) -> None:
        """The run has written everything it writes: output_dir is now a finished run (`OutputFolder.finish`)."""
        if self.args.should_save:
            self.output_folder.finish(self.state.global_step)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        final = not is_checkpoint_folder(output_dir)
        if final:
            self._clear_earlier_run(every_process=False)  # the final folder: the main process alone saves it
        if not self.args.should_save:
            return
        encoder = self.accelerator.unwrap_model(self.model)
        self._refuse_non_finite(state_dict if state_dict is not None else encoder.state_dict(), output_dir)
        if final and os.path.abspath(output_dir) == os.path.abspath(self.args.output_dir):
            self.output_folder.claim()  # until the run marks itself finished, whatever appears here is the run's
        with self._saving(output_dir):
            # A checkpoint keeps a LoRA adapter (resuming loads it); the final folder only with --save_adapter.
            encoder.save_pretrained(output_dir, state_dict=state_dict, adapter=None if final else True)
            resumable = self.writes_resume_state or final
            save_training_state(output_dir, self.args, self.loss_fn, self.run_facts.settings, resumable)
            self._draw_curves(output_dir)
            self._write_card(output_dir)

    def _draw_curves(self, folder: str) -> None:
        """training_curves.png in the saved folder (its card embeds it) and, from a checkpoint, in output_dir too,
        where it shows the run so far. Without matplotlib the run says once why there is none; a picture that
        fails is a warning, never a lost checkpoint. Either way an earlier run's picture in the folder is removed,
        so that the card never shows another run."""
        path = os.path.join(folder, CURVES_NAME)
        reason = plotting_unavailable()
        if reason:
            if not self._said_why_no_curves:
                logger.warning("no %s is drawn: %s", CURVES_NAME, reason)
                self._said_why_no_curves = True
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            return
        evaluates = self.args.eval_strategy != IntervalStrategy.NO
        run = os.path.basename(os.path.abspath(self.args.output_dir))
        try:
            draw_training_curves(
                self.state.log_history[: self._training_log_length],
                path,
                best_metric=self.args.metric_for_best_model if evaluates else None,
                greater_is_better=self.args.greater_is_better is not False,
                best_step=self.state.best_global_step,
                title=f"{run} ({self.args.objective})",
            )
            if is_checkpoint_folder(folder):
                shutil.copyfile(path, os.path.join(self.args.output_dir, CURVES_NAME))
        except Exception as error:  # noqa: BLE001 - matplotlib's own errors (fonts, backends) have many types
            logger.warning("%s was not drawn: %s", path, first_line(error))
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            super()._load_from_checkpoint(resume_from_checkpoint, model)
        else:
            encoder = self.accelerator.unwrap_model(model if model is not None else self.model)
            try:
                encoder.load_weights(resume_from_checkpoint)
            except RuntimeError as error:  # torch's size mismatch, or weights of other names
                raise ConfigError(
                    f"--resume_from_checkpoint {resume_from_checkpoint}: its weights are not this model's "
                    f"({first_line(error)[:300]}); resume with the --model_name_or_path it was trained from"
                ) from None

    def _load_best_model(self) -> None:
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            return super()._load_best_model()
        self.accelerator.unwrap_model(self.model).load_weights(self.state.best_model_checkpoint)
