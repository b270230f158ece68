"""One training run, top to bottom, as a package function: `run(model_args, data_args, training_args)`.

The checks before anything loads (`preflight`), the output folder's lock, the checkpoint to resume, the model, the
trainer, training, the final evaluation and test sets, saving and pushing. `hncse.train` (the `hncse-train`
command, `python -m hncse.train`, `run_hncse.py`) parses the arguments and calls it; so can your own code.
"""

from __future__ import annotations

import logging
import os
import signal

import torch
from transformers import set_seed
from transformers.integrations import is_deepspeed_zero3_enabled

from hncse.errors import ConfigError, StoppedBySignal, TrainingDivergedError
from hncse.evaluation import dev_table, dev_table_title, results_tables
from hncse.modeling import SentenceEncoder
from hncse.plots import CURVES_NAME
from hncse.training.checkpoints import RunFinished, finished_at, save_senteval_results
from hncse.training.hub import explain_push_failure
from hncse.training.preflight import Preflight, check_some_steps, run_preflight
from hncse.training.run_facts import RunFacts
from hncse.training.run_folder import RunFolder
from hncse.training.stop_on_signal import StartupInterrupts, StopOnSignal
from hncse.training.trainer import HNCSETrainer

logger = logging.getLogger("run_hncse")


def run(model_args, data_args, training_args) -> dict:
    """Train, evaluate and save one run; returns {"rows": the dev table's rows, "output_dir": …} (and
    "finished": True when output_dir already held this run, finished)."""
    # Everything that can be checked without loading a model or writing anything, in one documented order
    # (hncse.training.preflight). What it reads (the data, the objective, the sets) the run uses.
    startup = StartupInterrupts().install()  # Ctrl-C stops the start-up even where a library swallows it
    try:
        checked = run_preflight(model_args, data_args, training_args)
        # One run at a time in output_dir (its main process holds the lock until the end).
        with RunFolder.lock(training_args):
            return train_and_evaluate(model_args, data_args, training_args, checked, startup)
    finally:
        startup.restore()  # however the start-up ended


def train_and_evaluate(
    model_args, data_args, training_args, checked: Preflight, startup: StartupInterrupts | None = None
) -> dict:
    """The run under the lock: the checkpoint to resume, the model, training, evaluation, saving."""
    shape = checked.corpus.shape
    announce(training_args, shape)
    # Resume from the newest checkpoint in output_dir if it is of this run's configuration; refuse otherwise.
    run_facts = RunFacts.from_arguments(model_args, data_args, training_args, shape=shape.kind)
    try:
        resume_from = RunFolder.checkpoint_to_resume(training_args, run_facts.settings)
    except RunFinished as finished:
        if training_args.process_index == 0:
            logger.warning("%s", finished)
        return {"rows": [], "output_dir": training_args.output_dir, "finished": True}
    set_seed(training_args.seed)
    model = load_model(model_args, data_args)
    data = checked.corpus.prepare(model.tokenizer, data_args, training_args, prompt=model.prompt or "")
    if data.rows is not None:
        check_some_steps(data.rows, training_args)  # again: rows that tokenise to nothing were dropped
        run_facts.train_sentences = data.rows
    trainer = HNCSETrainer(
        model=model,
        args=training_args,
        train_dataset=data.dataset,
        eval_dataset=checked.eval_suite,
        processing_class=model.tokenizer,
        data_collator=data.collator,
        loss=checked.loss,
        run_facts=run_facts,
    )
    rows, result = train(trainer, resume_from, bool(checked.eval_suite), startup)
    save_after_training(trainer, result)
    if checked.eval_suite:
        rows.append(evaluate_at_end(trainer))
        print_dev_table(trainer, rows)
    if checked.predict_suite is not None:
        run_test_sets(trainer, checked.predict_suite)
    if training_args.push_to_hub:
        push_at_end(trainer)
    # Only now is output_dir a finished run: a stop before this line (a kill, a failed push) is finished by running
    # the same command again, from the last checkpoint.
    trainer.mark_finished()
    return {"rows": rows, "output_dir": training_args.output_dir}


def announce(training_args, shape) -> None:
    logger.info(
        "process %d/%d, device %s, bf16 %s, fp16 %s",
        training_args.process_index,
        training_args.world_size,
        training_args.device,
        training_args.bf16,
        training_args.fp16,
    )
    if training_args.process_index == 0:
        print(f"training data: {shape.describe()}", flush=True)
        print(launch_summary(training_args, shape.kind), flush=True)


def launch_summary(training_args, rows: str = "sentences") -> str:
    """The global batch (what the learning rate goes with) in `rows` (sentences, pairs, triplets), and GPUs of this
    machine left idle by the launch."""
    processes = training_args.world_size
    per_device = training_args.per_device_train_batch_size
    accumulation = training_args.gradient_accumulation_steps
    line = (
        f"global batch {processes * per_device * accumulation} {rows} per step = {processes} process(es) × "
        f"{per_device} per device × {accumulation} accumulation step(s)"
    )
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", processes))
    gpus = 0 if training_args.use_cpu else torch.cuda.device_count()
    if local_processes < gpus:
        line += (
            f"; {gpus - local_processes} of this machine's {gpus} GPUs are idle (accelerate launch --num_processes "
            f"{gpus} uses them all)"
        )
    return line


def load_model(model_args, data_args) -> SentenceEncoder:
    """The encoder to train: its pooler, dropout, prompt and attention as the arguments say, LoRA adapters if
    asked; refused where the model cannot take --max_seq_length tokens."""
    if is_deepspeed_zero3_enabled() and torch.distributed.is_initialized():
        # ZeRO-3 partitions the weights while they load: DeepSpeed's communication must exist first (accelerate
        # sets it up on GPUs; on CPU-only machines, with gloo, it does not).
        import deepspeed

        deepspeed.init_distributed(dist_backend=torch.distributed.get_backend())
    model = SentenceEncoder.from_pretrained(
        model_args.model_name_or_path,
        pooler_type=model_args.pooler_type,
        mlp_only_train=model_args.mlp_only_train,
        bidirectional=model_args.bidirectional,
        dropout=model_args.dropout,
        prompt=model_args.prompt,
        prompt_in_pooling=model_args.prompt_in_pooling,
        cache_dir=model_args.cache_dir,
    )
    if model_args.prompt_in_pooling is False and not model.prompt:  # the folder's prompt is known once it loads
        raise ConfigError(
            "--prompt_in_pooling false: there is no prompt to leave out of the pooling; give --prompt TEXT (or a "
            "model folder saved with one)"
        )
    if model_args.lora_r is not None:
        model.add_lora(
            model_args.lora_r,
            model_args.lora_alpha,
            model_args.lora_dropout,
            model_args.lora_target_modules,
            save_adapter=model_args.save_adapter,
        )
    refused = model.length_refused(data_args.max_seq_length, model_args.model_name_or_path)
    if refused:
        raise ConfigError(refused)
    return model


def train(trainer: HNCSETrainer, resume_from: str | None, evaluates: bool, startup: StartupInterrupts | None):
    """(the dev table's "before training" row, if any, in a list; the TrainOutput). A signal stops training with a
    checkpoint and `StoppedBySignal`."""
    args = trainer.args
    # The "before training" evaluation runs inside train(), once DDP or DeepSpeed have placed the model. Under ZeRO-3
    # the weights are placed (partitioned) as they load, and an evaluation inside the engine before its first
    # training step would set the order in which it prefetches weights: there it runs before train().
    rows = []
    if evaluates and resume_from is None and trainer.zero3:
        rows.append(("before training", trainer.evaluate(metric_key_prefix="eval")))
    args.eval_on_start = evaluates and resume_from is None and not trainer.zero3
    if startup is not None:
        startup.release()  # a Ctrl-C swallowed during start-up stops the run here, before any step
    stop_on_signal = StopOnSignal()
    trainer.add_callback(stop_on_signal)
    finished = resume_from is not None and not trainer.is_deepspeed_enabled and finished_at(resume_from, args)
    try:
        if finished:  # stopped after its last step, before what follows: no step beyond max_steps (at lr 0)
            logger.warning("%s is the run's last step: finishing the run from it without training", resume_from)
            result = trainer.finish_from(resume_from)
        else:
            result = trainer.train(resume_from_checkpoint=resume_from)
    finally:
        stop_on_signal.on_train_end(args, None, None)  # the usual handlers back, however training ended
    if stop_on_signal.stopped_at is not None:
        name = signal.Signals(stop_on_signal.signal_number).name
        raise StoppedBySignal(
            f"stopped by {name} after step {stop_on_signal.stopped_at}, saved in "
            f"{trainer.run_folder.last_complete_checkpoint()}: run the same command again to resume from it",
            stop_on_signal.signal_number,
        )
    if args.eval_on_start:
        rows.append(("before training", next(e for e in trainer.state.log_history if "eval_runtime" in e)))
    return rows, result


def save_after_training(trainer: HNCSETrainer, result) -> None:
    """The final folder holds the best checkpoint's weights when load_best_model_at_end, else the last step's. With
    --push_to_hub it is saved and pushed once, at the end, so that its card has every result."""
    if not trainer.args.push_to_hub:
        trainer.save_model()
    metrics = dict(result.metrics)
    if trainer.run_facts.train_sentences is not None:
        metrics["train_samples"] = trainer.run_facts.train_sentences
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()


def evaluate_at_end(trainer: HNCSETrainer) -> tuple[str, dict]:
    """The dev sets on the final weights: the table's "after training" row."""
    args = trainer.args
    final = trainer.evaluate()
    trainer.save_metrics("eval", final)
    which = "best checkpoint" if args.load_best_model_at_end else "last step (load_best_model_at_end is off)"
    if not args.load_best_model_at_end:
        logger.warning(
            "%s holds the last step's weights, not the best; best was %s",
            args.output_dir,
            trainer.state.best_model_checkpoint,
        )
    return f"after training ({which})", final


def print_dev_table(trainer: HNCSETrainer, rows: list) -> None:
    if trainer.is_world_process_zero():
        output_dir = trainer.args.output_dir
        curves = os.path.join(output_dir, CURVES_NAME)
        saved = f"Saved to {output_dir}" + (f"; curves: {curves}" if os.path.isfile(curves) else "")
        print(f"\n{dev_table_title(rows)}\n{dev_table(rows)}\n\n{saved}\n")


def run_test_sets(trainer: HNCSETrainer, predict_suite) -> None:
    """The test sets (SentEval's, --predict_sts_files) on the saved weights; the table goes into the model card and
    a JSON file."""
    metrics, results = trainer.evaluate_suite(predict_suite, metric_key_prefix="predict", main_process_only=True)
    trainer.save_metrics("predict", metrics)
    if trainer.is_world_process_zero():
        save_senteval_results(trainer.args.output_dir, results)
        trainer.run_facts.senteval_results = results
        if not trainer.args.push_to_hub:
            trainer.create_model_card()
        title = "SentEval test sets" if not results.get("sts_files") else "Test sets"
        print(f"\n{title}\n" + results_tables(results) + "\n")


def push_at_end(trainer: HNCSETrainer) -> None:
    try:
        trainer.push_to_hub(commit_message="End of training")  # saves output_dir first, then uploads it
    except TrainingDivergedError:  # the save refused non-finite weights: nothing was pushed or saved
        raise
    except Exception as error:  # the network or the Hub; the folder is saved by then
        raise explain_push_failure(trainer.hub_model_id, trainer.args.output_dir, error) from error
