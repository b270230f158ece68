"""Every check that can run before a model is loaded or anything is written: one module, one order, called once by
the run (`hncse.training.run`) before it takes the output folder's lock.

Each argument's own values (types, ranges, an objective's hyper-parameters) are checked when the arguments are
parsed, by the dataclasses' `__post_init__`. What spans several arguments, the files and the machine is checked
here, in this order (`run_preflight` calls them one after the other; the first that fails stops the run with one
line):

1. output folder — `--output_dir` can be created and written, and holds no files but an hncse run's;
2. arguments — the evaluation tasks and STS files named exist, the metric that picks the best checkpoint is one
   the dev sets produce, a stream is counted in steps, the cached step is not asked of DeepSpeed;
3. optimizer — the optimizer and the learning-rate schedule take their values (`--lr_scheduler_kwargs` too);
4. launch — one process per GPU, no `accelerate launch --cpu` that would start fewer processes than asked, no
   --fp16 without a GPU;
5. data — the training data (file, encoding, columns, bad rows) is read, and its shape suits the objective, which
   is built here, once, and handed to the trainer;
6. steps — the data makes at least one training step;
7. model — from its config alone (no weights): a family hncse trains, `--dropout` and `--bidirectional` that hold
   for it (after reload too), a pooler that suits it, peft where LoRA is asked for, and two views that differ for
   an unsupervised objective;
8. evaluation sets — the dev and test sets' files are read.

What needs the output folder's earlier run (`run_config.json`) is checked next, under the lock; what needs the
model (`--max_seq_length` against its limit, the tokenizer) as soon as it loads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from transformers import Trainer, get_scheduler

from hncse.data import DataShape, TrainingCorpus, read_training_corpus
from hncse.data.sources import resolve_senteval_dir
from hncse.errors import ConfigError, EvalConfigError, first_line
from hncse.evaluation import (
    EvalSuite,
    STSFileSource,
    load_sts_files,
    load_suite,
    parse_sts_files,
    produced_metrics,
    resolve_tasks,
)
from hncse.evaluation.sts_files import check_columns
from hncse.losses import build_loss
from hncse.modeling.backbone import check_pooler, check_views_differ, load_config, prepare_config
from hncse.modeling.lora import check_target_modules, import_peft
from hncse.training.checkpoints import check_output_dir_writable
from hncse.training.output_folder import OutputFolder
from hncse.training.views import takes_negatives


@dataclass
class EvaluationSets:
    """The evaluation the arguments name, resolved (nothing read yet): SentEval's task names and the STS files."""

    dev_tasks: list[str] = field(default_factory=list)  # --eval_tasks
    test_tasks: list[str] = field(default_factory=list)  # --predict_task_set
    dev_sts_files: list[STSFileSource] = field(default_factory=list)  # --sts_files, named
    test_sts_files: list[STSFileSource] = field(default_factory=list)  # --predict_sts_files, named


@dataclass
class Preflight:
    """What the checks read, for the run to use rather than read again."""

    loss: torch.nn.Module | None = None
    corpus: TrainingCorpus | None = None
    eval_suite: EvalSuite | None = None
    predict_suite: EvalSuite | None = None


def run_preflight(model_args, data_args, training_args) -> Preflight:
    """The checks of the module's docstring, in its order; a refusal is a `ConfigError` / `DataError` /
    `EvalDataError` with one line."""
    found = Preflight()
    check_output_folder(training_args)
    evaluation = check_arguments(data_args, training_args)
    check_optimization_arguments(training_args)
    check_launch(training_args)
    found.corpus = read_training_corpus(data_args, training_args, model_args.cache_dir)
    found.loss = build_loss(training_args)
    check_objective_fits(found.corpus.shape, found.loss, training_args)
    if not found.corpus.streamed:
        check_some_steps(len(found.corpus.rows), training_args)
    check_model(model_args, unsupervised=not found.corpus.shape.labelled)
    found.eval_suite, found.predict_suite = load_evaluation_sets(evaluation, data_args, training_args)
    return found


def check_output_folder(training_args) -> None:
    check_output_dir_writable(training_args.output_dir)
    if training_args.should_save:
        OutputFolder(training_args.output_dir).check_owned()  # with --overwrite_output_dir too


def check_arguments(data_args, training_args) -> EvaluationSets:
    """The arguments that span groups; returns the evaluation they name."""
    evaluation = resolve_evaluation_sets(data_args)
    check_best_metric(evaluation, data_args, training_args)
    if data_args.streaming and training_args.max_steps <= 0:
        raise ConfigError("--streaming needs --max_steps: a stream has no length to count epochs by")
    check_cached_step_backend(training_args)
    return evaluation


def resolve_evaluation_sets(data_args) -> EvaluationSets:
    """--eval_tasks, --predict_task_set, --sts_files, --predict_sts_files and --sts_columns, checked and named."""
    found = EvaluationSets()
    try:
        if data_args.eval_tasks and [t.lower() for t in data_args.eval_tasks] != ["none"]:
            found.dev_tasks = resolve_tasks(None, data_args.eval_tasks, "dev", flag="--eval_tasks")
        if data_args.predict_task_set.lower() != "none":
            found.test_tasks = resolve_tasks(
                data_args.predict_task_set, None, "test", task_set_flag="--predict_task_set"
            )
        found.dev_sts_files = parse_sts_files(data_args.sts_files, "--sts_files")
        found.test_sts_files = parse_sts_files(data_args.predict_sts_files, "--predict_sts_files")
        check_columns(data_args.sts_columns)
    except EvalConfigError as error:
        raise ConfigError(str(error)) from None
    return found


def check_launch(training_args) -> None:
    """One process per GPU, as many CPU processes as asked, --fp16 on a GPU only."""
    check_accelerate_cpu_launch()
    if training_args.fp16 and training_args.use_cpu:
        raise ConfigError("--fp16 needs a GPU: on CPU, use --bf16 true (CPU autocast) or neither")
    if not training_args.use_cpu:
        check_one_process_per_gpu(torch.cuda.device_count())


def check_model(model_args, unsupervised: bool) -> None:
    """The model from its config alone (no weights): see the module's docstring, step 7."""
    name = model_args.model_name_or_path
    config = load_config(name, cache_dir=model_args.cache_dir)
    prepare_config(config, name, bidirectional=model_args.bidirectional, dropout=model_args.dropout)
    if model_args.pooler_type is not None:
        check_pooler(config, model_args.pooler_type, name)
    lora_dropout = 0.0
    if model_args.lora_r is not None:
        import_peft()
        check_target_modules(config, model_args.lora_target_modules)
        lora_dropout = model_args.lora_dropout
    check_views_differ(config, name, unsupervised=unsupervised, extra_dropout=lora_dropout)


def load_evaluation_sets(
    evaluation: EvaluationSets, data_args, training_args
) -> tuple[EvalSuite | None, EvalSuite | None]:
    """(the dev suite, the test suite), their files read; None where the run evaluates nothing of the kind."""
    eval_suite = predict_suite = None
    if training_args.eval_strategy == "no" and not training_args.do_predict:
        return eval_suite, predict_suite
    senteval_dir = resolve_senteval_dir(data_args.senteval_dir)
    columns = data_args.sts_columns
    if training_args.eval_strategy != "no":
        files = load_sts_files(evaluation.dev_sts_files, columns, "dev", "--sts_files")
        eval_suite = load_suite(evaluation.dev_tasks, "dev", senteval_dir, extra=files)
    if training_args.do_predict:
        files = load_sts_files(evaluation.test_sts_files, columns, "test", "--predict_sts_files")
        # Alignment and uniformity are measured on STS-B's dev pairs: with SentEval's test sets only.
        predict_suite = load_suite(
            evaluation.test_tasks, "test", senteval_dir, alignment=bool(evaluation.test_tasks), extra=files
        )
        if not predict_suite.evaluators:
            raise ConfigError("--do_predict with --predict_task_set none and no --predict_sts_files: nothing to test")
    return eval_suite, predict_suite


# ---- the checks themselves ----------------------------------------------------------------------------------------


def check_best_metric(evaluation: EvaluationSets, data_args, training_args) -> None:
    """There must be dev tasks to evaluate, and the metric that picks the best checkpoint must be one they produce."""
    if not evaluation.dev_tasks and not evaluation.dev_sts_files and training_args.eval_strategy != "no":
        if data_args.eval_tasks:  # `none`
            raise ConfigError("--eval_tasks none and no --sts_files: no dev set; give one or set --eval_strategy no")
        raise ConfigError("--eval_tasks is empty; name at least one dev task or set --eval_strategy no")
    # The Trainer looks the metric up after every evaluation whenever it is set (to track the best checkpoint),
    # with or without --load_best_model_at_end: a metric no dev set produces fails there, after training started.
    if training_args.eval_strategy == "no" or training_args.metric_for_best_model is None:
        return
    produced = produced_metrics(evaluation.dev_tasks, evaluation.dev_sts_files)
    metric = training_args.metric_for_best_model.removeprefix("eval_")
    if metric not in produced:
        raise ConfigError(
            f"--metric_for_best_model {training_args.metric_for_best_model!r} is not produced by "
            f"--eval_tasks {' '.join(data_args.eval_tasks) or '(none)'}"
            + (f" and --sts_files {' '.join(data_args.sts_files)}" if data_args.sts_files else "")
            + f"; choose one of {', '.join(sorted(produced))}"
        )


def check_cached_step_backend(args) -> None:
    """The cached step (`--mini_batch_size`) runs under DDP and DeepSpeed ZeRO-0/1/2, not ZeRO-3: ZeRO-3 holds each
    layer's weights whole only inside the engine's forward and backward hooks, which the cached step's replay of
    each mini-batch (outside the engine, gradients summed aside) does not pass through in the order they expect."""
    plugin = getattr(args, "deepspeed_plugin", None)
    if args.mini_batch_size and plugin is not None and plugin.zero_stage == 3:
        raise ConfigError(
            "--mini_batch_size is not supported with DeepSpeed ZeRO-3 (its weights exist whole only inside the "
            "engine's own passes); use ZeRO-2 (ds_configs/zero2.json) or DDP"
        )


def check_optimization_arguments(args) -> None:
    """Build the optimizer and learning-rate schedule the Trainer would, on a stand-in parameter: a value they refuse
    (a negative learning rate, a beta outside [0, 1), a schedule argument the schedule does not take) stops the run
    with one line before anything is loaded or written, rather than in the middle of `train`."""
    optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args)
    try:
        optimizer = optimizer_cls([torch.nn.Parameter(torch.zeros(1))], **optimizer_kwargs)
        get_scheduler(
            args.lr_scheduler_type, optimizer, num_warmup_steps=args.get_warmup_steps(100), num_training_steps=100,
            scheduler_specific_kwargs=args.lr_scheduler_kwargs,
        )  # fmt: skip
    except (ValueError, TypeError) as error:
        raise ConfigError(
            f"--optim {getattr(args.optim, 'value', args.optim)} / --lr_scheduler_type "
            f"{getattr(args.lr_scheduler_type, 'value', args.lr_scheduler_type)}: {first_line(error)} (see "
            "--learning_rate, --adam_beta1, --adam_beta2, --adam_epsilon, --optim_args, --lr_scheduler_kwargs)"
        ) from None


def check_objective_fits(shape: DataShape, loss, training_args) -> None:
    """The objective can train on the data's shape: a plug-in objective without `negatives=` cannot take triplets,
    and a weight on given hard negatives needs data that has them."""
    if shape.negatives and not takes_negatives(loss):
        raise ConfigError(
            f"--objective {training_args.objective} takes no given hard negatives (its forward has no `negatives` "
            f"argument), but the data is {shape.describe()}; name only --anchor_column and --positive_column to "
            "train on the pairs"
        )
    if training_args.hard_negative_weight and not shape.negatives:
        raise ConfigError(
            f"--hard_negative_weight {training_args.hard_negative_weight} weighs given hard negatives, and the data "
            f"has none: {shape.describe()}"
        )


def check_some_steps(rows: int, training_args) -> None:
    """A corpus smaller than one global batch, whose incomplete batch is dropped, makes no step, whether the run is
    counted in epochs or in --max_steps: the model it started from would be saved as trained. Refuse it. (With
    at least one batch there is a step: an epoch of fewer batches than --gradient_accumulation_steps still makes
    one update.) Run on the rows read, and again (`hncse.training.run`) on those left after tokenising."""
    per_step = training_args.per_device_train_batch_size * training_args.world_size
    batches = rows // per_step if training_args.dataloader_drop_last else -(-rows // per_step)
    if batches == 0:
        raise ConfigError(
            f"{rows} training sentences make no full batch of {per_step} sentences (the incomplete batch is dropped: "
            "--dataloader_drop_last true): nothing would be trained. Use more sentences, a smaller "
            "--per_device_train_batch_size, or --dataloader_drop_last false"
        )


def check_one_process_per_gpu(visible_gpus: int) -> None:
    """One process that sees several GPUs would train them with `nn.DataParallel` (each step's batch split over
    the GPUs, negatives not gathered, mixed precision not in every replica): refuse it, naming the launchers."""
    launched = any(name in os.environ for name in ("LOCAL_RANK", "WORLD_SIZE"))  # torchrun, accelerate, deepspeed
    if visible_gpus > 1 and not launched:
        raise ConfigError(
            f"one process sees {visible_gpus} GPUs and would drive them with nn.DataParallel; start one process per "
            f"GPU with `accelerate launch --config_file configs/accelerate/multi_gpu.yaml --num_processes "
            f"{visible_gpus} run_hncse.py …`, or train on one with CUDA_VISIBLE_DEVICES=0"
        )


def launcher_command_line() -> list[str]:
    """The command line of the process that started this one (Linux; empty elsewhere)."""
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            return f.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def check_accelerate_cpu_launch() -> None:
    """`accelerate launch --cpu --num_processes N` starts one process, not N (accelerate has no launch of several
    CPU processes): refuse it rather than train one process with a global batch N times smaller than asked."""
    if "ACCELERATE_USE_CPU" not in os.environ or "WORLD_SIZE" in os.environ:
        return
    command = launcher_command_line()
    for i, arg in enumerate(command[:-1]):
        if arg in ("--num_processes", "--num-processes") and command[i + 1].isdigit() and int(command[i + 1]) > 1:
            raise ConfigError(
                f"accelerate launch --cpu --num_processes {command[i + 1]} starts a single process; start "
                f"{command[i + 1]} CPU processes with `torchrun --nproc_per_node {command[i + 1]} run_hncse.py …`"
            )
