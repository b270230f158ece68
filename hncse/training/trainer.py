"""HNCSETrainer: a thin `Trainer` subclass that computes the contrastive loss and evaluates on STS dev sets."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections import defaultdict
from types import SimpleNamespace

import torch
from torch.utils.data import RandomSampler
from transformers import Trainer, TrainerState
from transformers.integrations import is_deepspeed_zero3_enabled
from transformers.trainer_utils import TrainOutput

from hncse.data import SentenceStream
from hncse.distributed import batch_exchange
from hncse.errors import ConfigError, first_line
from hncse.evaluation import EvalSuite, flat_metrics, run_suite
from hncse.losses import build_loss
from hncse.training.cached_contrastive import average_gradients, cached_contrastive_loss
from hncse.training.checkpoints import (
    TRAINER_STATE_NAME,
    checkpoint_global_step,
    copy_model_folder,
    is_checkpoint_folder,
    load_loss_state,
    save_loss_state,
    save_training_state,
)
from hncse.training.divergence import DivergenceGuard
from hncse.training.folder_report import FolderReport
from hncse.training.host_memory import ReleaseFreedMemory
from hncse.training.hub import explain_repo_failure
from hncse.training.preflight import check_cached_step_backend
from hncse.training.run_facts import MODEL_RUN_KEYS, RunFacts, run_settings
from hncse.training.run_folder import RunFolder
from hncse.training.sampler import PermutationSampler
from hncse.training.views import objective_loss, split_views, stacked_features

logger = logging.getLogger(__name__)


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
    loadable), so the hooks that save and load them are overridden; what is written where, and when, is the
    output folder's owner's (`RunFolder`); non-finite losses, weights and metrics are the `DivergenceGuard`'s;
    each saved folder's curves and card are the `FolderReport`'s.

    Args:
        loss: the objective module; default built from `args.objective` by the objective registry.
        run_facts: facts of the run for the model card and `run_config.json` (`RunFacts.from_arguments`, built
            by `hncse.training.run`); default: what the model, the arguments and the training data tell.
    """

    _tag_names = ["hncse", "sentence-transformers", "sentence-similarity"]
    # The objective returns a per-batch mean: let the Trainer divide it by the gradient-accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(self, *args, loss: torch.nn.Module | None = None, run_facts: RunFacts | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        check_cached_step_backend(self.args)  # the run's preflight did; a trainer built in code is checked too
        self.loss_fn = loss if loss is not None else build_loss(self.args)
        self.run_facts = run_facts if run_facts is not None else self._facts_from_model()
        self._metrics: dict[str, list[torch.Tensor]] = defaultdict(list)
        self._batch_exchange = None
        self.training_log_length: int | None = None  # log_history entries logged by training, once it has ended
        self._checkpoint_to_push: str | None = None  # pushed once every process has written its part
        self.run_folder = RunFolder(self.args, self.accelerator.wait_for_everyone)  # the output folder's one owner
        self.report = FolderReport(self)  # the curves and the card of every saved folder
        self.divergence = DivergenceGuard(self)  # non-finite losses, weights and selection metrics
        self.add_callback(self.divergence)
        self.add_callback(ReleaseFreedMemory())  # host memory flat over the steps (`host_memory`)

    def _facts_from_model(self) -> RunFacts:
        """Run facts for a trainer built without the script's arguments (e.g. bench/results/ablation.py)."""
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
            resume_from_checkpoint = self.run_folder.last_complete_checkpoint() or True  # True: none, says Trainer
        if isinstance(resume_from_checkpoint, str):
            # Every process restores its own objective state (HNM's sampler), whatever the backend.
            load_loss_state(resume_from_checkpoint, self.loss_fn, self.args.process_index)
            self.run_folder.resumed_from(resume_from_checkpoint)
        if isinstance(self.train_dataset, SentenceStream) and not self.args.ignore_data_skip:
            # The Trainer resumes by replaying the batches the checkpoint's steps took: the stream gives those as
            # placeholders, so that their sentences are read but not tokenised.
            step = checkpoint_global_step(resume_from_checkpoint) if isinstance(resume_from_checkpoint, str) else 0
            per_step = self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps
            self.train_dataset.skip(step * per_step * self.args.world_size)
        self.training_log_length = None
        output = super().train(resume_from_checkpoint, *args, **kwargs)
        self.training_log_length = len(self.state.log_history)
        return output

    def finish_from(self, checkpoint: str) -> TrainOutput:
        """The end of `train` for a run whose last step is `checkpoint` (it stopped before saving its final folder):
        its state, and its weights or, with load_best_model_at_end, the best checkpoint's; no training step."""
        self.state = TrainerState.load_from_json(os.path.join(checkpoint, TRAINER_STATE_NAME))
        self._load_from_checkpoint(checkpoint)
        if self.args.load_best_model_at_end and self.state.best_model_checkpoint:
            self._load_best_model()
        self.training_log_length = len(self.state.log_history)
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
            self.divergence.observe(loss)  # no NaN/inf loss reaches the weights
            for name, value in stats.items():
                self._metrics[name].append(value.detach())
        if return_outputs:
            z1, z2, _ = split_views(embeddings, columns)
            return loss, {"z1": z1, "z2": z2}
        return loss

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
            self.divergence.refuse_nan_selection_metric(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics, results

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
            self.report.write_card(self.args.output_dir)

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

    # ---- checkpoints: the encoder's own folder layout, written through the run's folder -----------------------

    def _save_checkpoint(self, model, trial) -> None:
        """A checkpoint when `RunFolder.plan_checkpoint` says so (the state to resume every --resume_state_steps,
        new bests in between), complete once every process has written its part (the manifest), then pushed and
        rotated. Every checkpoint keeps the state to resume under DeepSpeed, which reloads the best one through its
        engine state."""
        step = self.state.global_step
        stopping = self.control.should_training_stop
        if not self.run_folder.plan_checkpoint(self.state, stopping, always_resumable=self.is_deepspeed_enabled):
            return
        folder = self.run_folder.checkpoint_folder(step)
        self.run_folder.begin_checkpoint(folder)
        resumable = self.run_folder.writes_resume_state(step)
        with (
            self.run_folder.saving(folder, step),
            arguments_set(self.args, save_only_model=not resumable, save_total_limit=None),
        ):
            super()._save_checkpoint(model, trial)
            if self.args.process_index > 0 and resumable and os.path.isdir(folder):
                save_loss_state(folder, self.loss_fn, self.args.process_index)  # the main process's: in `_save`
        self.run_folder.complete_checkpoint(folder, step)
        with self.run_folder.saving(folder, step):  # the copy into output_dir can meet a full disk too
            self._push_complete()  # the checkpoint whole, its manifest included
        self.run_folder.end_checkpoint(self.state.best_model_checkpoint)

    def save_metrics(self, split, metrics, combined=True) -> None:
        self.run_folder.claim_results()
        super().save_metrics(split, metrics, combined)

    def save_state(self) -> None:
        self.run_folder.claim_results()
        super().save_state()

    def mark_finished(self) -> None:
        """The run has written everything it writes: output_dir is now a finished run."""
        self.run_folder.finish(self.state.global_step)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        final = not is_checkpoint_folder(output_dir)
        if final:
            self.run_folder.clear_earlier_run(every_process=False)  # the final folder: the main process alone saves it
        if not self.args.should_save:
            return
        encoder = self.accelerator.unwrap_model(self.model)
        self.divergence.refuse_non_finite_weights(
            state_dict if state_dict is not None else encoder.state_dict(), output_dir
        )
        if final:
            self.run_folder.claim_final(output_dir)
        with self.run_folder.saving(output_dir, self.state.global_step):
            # A checkpoint keeps a LoRA adapter (resuming loads it); the final folder only with --save_adapter.
            encoder.save_pretrained(output_dir, state_dict=state_dict, adapter=None if final else True)
            resumable = self.run_folder.writes_resume_state(self.state.global_step) or final
            save_training_state(output_dir, self.args, self.loss_fn, self.run_facts.settings, resumable)
            self.report.write(output_dir)

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
