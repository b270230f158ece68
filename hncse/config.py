"""Configuration: model and data argument groups plus `HNCSEConfig`, a `TrainingArguments` with the paper's defaults.

`parse_args` accepts a YAML/JSON file as the first argument, with command-line overrides after it:
`run_hncse.py configs/quickstart.yaml --learning_rate 1e-5`.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from dataclasses import dataclass, field

import torch
import yaml
from transformers import HfArgumentParser, TrainingArguments

from hncse.eval_suite import EvalConfigError, produced_metrics, resolve_tasks
from hncse.losses import OBJECTIVES
from hncse.pooling import POOLER_TYPES


class ConfigError(ValueError):
    """An invalid argument or config file; the message names the argument (and file)."""


@dataclass
class ModelArguments:
    """Which encoder to train and how its token states become a sentence vector."""

    model_name_or_path: str = field(
        default="bert-base-uncased",
        metadata={"help": "Hub id or local folder of any transformers encoder (BERT, RoBERTa, MPNet, DistilBERT, …)."},
    )
    pooler_type: str = field(
        default="cls",
        metadata={"help": f"Sentence vector: one of {', '.join(POOLER_TYPES)} (SimCSE's poolers)."},
    )
    mlp_only_train: bool = field(
        default=True,
        metadata={"help": "With pooler `cls`: use the Linear+tanh head in training only (SimCSE unsupervised)."},
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where Hub downloads are cached."})

    def __post_init__(self):
        if self.pooler_type not in POOLER_TYPES:
            raise ConfigError(
                f"--pooler_type: unknown value {self.pooler_type!r}; choose one of {', '.join(POOLER_TYPES)}"
            )


@dataclass
class DataArguments:
    """Training corpus and evaluation data."""

    train_file: str | None = field(
        default=None,
        metadata={
            "help": "Local or http(s) file: .txt (one sentence per line), .csv/.tsv/.json/.jsonl with a text column."
        },
    )
    dataset_name: str | None = field(
        default=None, metadata={"help": "Hub dataset to train on instead of --train_file."}
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Configuration of --dataset_name."})
    dataset_split: str = field(default="train", metadata={"help": "Split of --dataset_name."})
    text_column: str | None = field(
        default=None, metadata={"help": "Column holding the sentences (default: `text`, else the first text column)."}
    )
    max_seq_length: int = field(default=32, metadata={"help": "Training sentences are truncated to this many tokens."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N sentences (quick runs)."}
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenisation."})
    senteval_dir: str | None = field(
        default=None,
        metadata={
            "help": "SentEval's `data/downstream` folder (STS/, SICK/, MR/, …); default $HNCSE_DATA_DIR, else STS "
            "sets come from the Hub (mteb/*)."
        },
    )
    eval_tasks: list[str] = field(
        default_factory=lambda: ["stsb", "sickr"],
        metadata={
            "help": "Dev sets evaluated during training: stsb, sickr (eval_<task>_spearman) and transfer tasks mr, "
            "cr, subj, mpqa, sst2, trec, mrpc (eval_<task>_accuracy, SentEval's fast protocol)."
        },
    )
    predict_task_set: str = field(
        default="full",
        metadata={
            "help": "With --do_predict: the test-set evaluation run after training (sts, transfer or full); its "
            "table goes into the model card and senteval_results.json."
        },
    )

    def __post_init__(self):
        if self.train_file is None and self.dataset_name is None:
            raise ConfigError("--train_file or --dataset_name is required")
        if self.train_file is not None and self.dataset_name is not None:
            raise ConfigError("give only one of --train_file and --dataset_name")
        if self.max_seq_length < 2:
            raise ConfigError(f"--max_seq_length must be at least 2, got {self.max_seq_length}")
        if self.max_train_samples is not None and self.max_train_samples < 2:
            raise ConfigError(f"--max_train_samples must be at least 2, got {self.max_train_samples}")


@dataclass
class HNCSEConfig(TrainingArguments):
    """`TrainingArguments` for contrastive sentence-embedding training.

    > Parameters that control the objective

    objective: `simcse` (InfoNCE with in-batch negatives), `pm` (positive mixing), `hnm` (hard-negative
        mixing), `hybrid` (PM then HNM, one loss) or `hybrid_sum` (L_PM + λ·L_HNM); METHOD.md §1-§4.
    temperature: τ of the similarity logits.
    pm_*: θ, case-A weights w1/w2, optional per-step search of w2/w1, detaching of the case-C coefficients.
    hnm_*: k hardest negatives, s synthetic negatives per anchor, α, detaching, sampler seed.
    hybrid_lambda: λ of `hybrid_sum`.
    mini_batch_size: cached contrastive step (GradCache) — encode this many rows at a time, objective on the
        whole batch; for batches larger than memory.
    gather_negatives: with several processes, score each anchor against the global batch (all processes'
        sentences, gathered with gradients) and mine PM/HNM negatives over it.

    > Changed defaults (SimCSE / HNCSE BERT-base setup, METHOD.md §6)

    learning_rate 3e-5, per_device_train_batch_size 64, num_train_epochs 1, evaluate and save every 125 steps,
    keep the best checkpoint by STS-B dev Spearman (load_best_model_at_end, metric_for_best_model
    stsb_spearman), drop the incomplete last batch, log every 10 steps, encode dev sets 128 sentences at a time,
    DDP without the unused-parameter search, `use_cpu` set on machines without an accelerator.
    """

    objective: str = field(default="simcse", metadata={"help": f"Contrastive objective: {', '.join(OBJECTIVES)}."})
    temperature: float = field(default=0.05, metadata={"help": "Temperature τ of the cosine-similarity logits."})
    pm_theta: float = field(
        default=0.1,
        metadata={"help": "PM: a positive with (p − n)/p ≤ θ over its hardest negative is mixed (case A)."},
    )
    pm_w1: float = field(default=1.0, metadata={"help": "PM: case-A weight of the positive."})
    pm_w2: float = field(default=0.5, metadata={"help": "PM: case-A weight of the hardest negative."})
    pm_ratio_grid_size: int = field(
        default=0,
        metadata={"help": "PM: if ≥ 2, pick w2/w1 each step among this many values in [0, 1] (batched, no grad)."},
    )
    pm_detach_coefficients: bool = field(
        default=True, metadata={"help": "PM: no gradient through the case-C coefficients (false: as the public code)."}
    )
    hnm_k: int = field(default=10, metadata={"help": "HNM: hardest in-batch negatives to mix from (≤ batch − 1)."})
    hnm_s: int = field(default=40, metadata={"help": "HNM: synthetic negatives per anchor."})
    hnm_alpha: float = field(default=0.5, metadata={"help": "HNM: mixing weight α of the two negatives."})
    hnm_detach_synthetic: bool = field(
        default=False, metadata={"help": "HNM: no gradient through synthetic negatives."}
    )
    hnm_seed: int | None = field(default=None, metadata={"help": "HNM: seed of the pair sampler (default: --seed)."})
    hybrid_lambda: float = field(default=1.0, metadata={"help": "hybrid_sum: weight λ of the HNM loss."})
    mini_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Cached contrastive step: encode the batch this many rows at a time (the batch is encoded twice, "
            "so 2 × per_device_train_batch_size rows) and replay each mini-batch's dropout in the backward pass; "
            "memory of a mini-batch, the objective on the full batch. Default: one pass over the whole batch."
        },
    )
    gather_negatives: bool = field(
        default=True,
        metadata={
            "help": "With several processes, use every process's sentences as negatives (all-gather with gradients) "
            "and mine PM/HNM hard negatives over the global batch; false: each process uses its own batch."
        },
    )

    output_dir: str | None = field(default="outputs/hncse", metadata={"help": "Where checkpoints and the model go."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Start afresh in an output_dir that holds another run's checkpoints (they are deleted). By "
            "default the newest checkpoint is resumed if it is of the same configuration, and the run refuses if not."
        },
    )
    learning_rate: float = field(default=3e-5, metadata={"help": "Peak learning rate (AdamW)."})
    per_device_train_batch_size: int = field(default=64, metadata={"help": "Sentences per device per step."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Passes over the corpus."})
    eval_strategy: str = field(
        default="steps", metadata={"help": "When to evaluate on the dev sets: no, steps, epoch."}
    )
    eval_steps: float | None = field(default=125, metadata={"help": "Evaluate every N steps."})
    save_steps: float = field(default=125, metadata={"help": "Save a checkpoint every N steps."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept (the best is always kept)."})
    load_best_model_at_end: bool = field(default=True, metadata={"help": "End with the best checkpoint's weights."})
    metric_for_best_model: str | None = field(
        default="stsb_spearman", metadata={"help": "Metric that picks the best."}
    )
    greater_is_better: bool | None = field(default=True, metadata={"help": "Higher metric is better."})
    dataloader_drop_last: bool = field(default=True, metadata={"help": "Drop the incomplete last batch."})
    logging_steps: float = field(default=10, metadata={"help": "Log every N steps."})
    ddp_find_unused_parameters: bool | None = field(
        default=False, metadata={"help": "Every trainable parameter gets a gradient each step, so DDP needn't search."}
    )
    per_device_eval_batch_size: int = field(
        default=128, metadata={"help": "Sentences per batch when encoding dev sets."}
    )

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"--objective: unknown value {self.objective!r}; choose one of {', '.join(OBJECTIVES)}")
        if not self.temperature > 0:
            raise ConfigError(f"--temperature must be > 0, got {self.temperature}")
        if self.objective in ("hnm", "hybrid", "hybrid_sum") and self.per_device_train_batch_size < 3:
            raise ConfigError(
                f"--objective {self.objective} needs --per_device_train_batch_size ≥ 3 (pairs of negatives)"
            )
        checks = [
            (self.pm_theta >= 0, f"--pm_theta must be ≥ 0, got {self.pm_theta}"),
            (self.pm_w1 > 0, f"--pm_w1 must be > 0, got {self.pm_w1}"),
            (self.pm_w2 >= 0, f"--pm_w2 must be ≥ 0, got {self.pm_w2}"),
            (self.pm_ratio_grid_size != 1 and self.pm_ratio_grid_size >= 0, "--pm_ratio_grid_size must be 0 or ≥ 2"),
            (self.hnm_k >= 2, f"--hnm_k must be ≥ 2, got {self.hnm_k}"),
            (self.hnm_s >= 1, f"--hnm_s must be ≥ 1, got {self.hnm_s}"),
            (0.0 <= self.hnm_alpha <= 1.0, f"--hnm_alpha must be in [0, 1], got {self.hnm_alpha}"),
            (self.hybrid_lambda >= 0, f"--hybrid_lambda must be ≥ 0, got {self.hybrid_lambda}"),
            (
                self.mini_batch_size is None or self.mini_batch_size >= 1,
                f"--mini_batch_size must be ≥ 1, got {self.mini_batch_size}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.per_device_train_batch_size < 2:
            raise ConfigError(
                "--per_device_train_batch_size must be at least 2 (in-batch negatives), "
                f"got {self.per_device_train_batch_size}"
            )
        if not self.use_cpu and not torch.accelerator.is_available():
            # Say "CPU" explicitly on a machine without accelerators: otherwise accelerate leaves processes started
            # by torchrun undistributed (each trains alone, all write one output_dir) and bf16 is refused.
            self.use_cpu = True
        try:
            super().__post_init__()
        except ValueError as error:
            raise ConfigError(str(error).strip().splitlines()[0]) from error


ARGUMENT_GROUPS = (ModelArguments, DataArguments, HNCSEConfig)


def make_parser() -> HfArgumentParser:
    return HfArgumentParser(ARGUMENT_GROUPS)


def config_file_to_argv(path: str) -> list[str]:
    """Turn a YAML/JSON mapping into command-line tokens, so that values are typed and checked like flags."""
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: no such config file")
    with open(path, encoding="utf-8") as f:
        try:
            config = json.load(f) if path.endswith(".json") else yaml.safe_load(f)
        except (json.JSONDecodeError, yaml.YAMLError) as error:
            raise ConfigError(
                f"{path}: not valid {'JSON' if path.endswith('.json') else 'YAML'}: {str(error).splitlines()[0]}"
            ) from None
    if config is None:
        return []
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of argument names to values")
    known = {f.name for group in ARGUMENT_GROUPS for f in dataclasses.fields(group) if f.init}
    argv: list[str] = []
    for key, value in config.items():
        if key not in known:
            raise ConfigError(f"{path}: unknown argument {key!r}")
        if value is None:
            continue
        argv.append(f"--{key}")
        if isinstance(value, list):
            argv.extend(str(v) for v in value)
        elif isinstance(value, dict):
            argv.append(json.dumps(value))
        elif isinstance(value, bool):
            argv.append("true" if value else "false")
        else:
            argv.append(str(value))
    return argv


def check_known_flags(argv: list[str]) -> None:
    """An unknown flag, named with the nearest known ones (HfArgumentParser would list the leftovers only)."""
    fields = [f for group in ARGUMENT_GROUPS for f in dataclasses.fields(group)]
    known = {f"--{f.name}" for f in fields} | {f"--no_{f.name}" for f in fields if f.default is True} | {"--help"}
    for arg in argv:
        flag = arg.split("=", 1)[0].replace("-", "_").replace("__", "--", 1)
        if flag.startswith("--") and flag not in known and not any(k.startswith(flag) for k in known):
            close = difflib.get_close_matches(flag, sorted(known), n=2, cutoff=0.8)
            hint = f"; did you mean {' or '.join(close)}?" if close else "; see python run_hncse.py --help"
            raise ConfigError(f"unknown argument {flag}{hint}")


def parse_args(argv: list[str]) -> tuple[ModelArguments, DataArguments, HNCSEConfig]:
    """Parse `[config.yaml|config.json] [--flag value ...]`; flags after the file override it."""
    if argv and argv[0].endswith((".yaml", ".yml", ".json")):
        argv = config_file_to_argv(argv[0]) + argv[1:]
    parser = make_parser()
    check_known_flags(argv)
    try:
        model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(str(error).strip().splitlines()[0]) from error
    check_best_metric(data_args, training_args)
    return model_args, data_args, training_args


def check_best_metric(data_args: DataArguments, training_args: HNCSEConfig) -> None:
    """The evaluation tasks must exist, and the metric that picks the best checkpoint must be one they produce."""
    if not data_args.eval_tasks and training_args.eval_strategy != "no":
        raise ConfigError("--eval_tasks is empty; name at least one dev task or set --eval_strategy no")
    try:
        tasks = resolve_tasks(None, data_args.eval_tasks, "dev", flag="--eval_tasks") if data_args.eval_tasks else []
        resolve_tasks(data_args.predict_task_set, None, "test")
    except EvalConfigError as error:
        raise ConfigError(str(error).replace("--task_set", "--predict_task_set")) from None
    if training_args.eval_strategy == "no" or not training_args.load_best_model_at_end:
        return
    produced = produced_metrics(tasks)
    metric = training_args.metric_for_best_model.removeprefix("eval_")
    if metric not in produced:
        raise ConfigError(
            f"--metric_for_best_model {training_args.metric_for_best_model!r} is not produced by "
            f"--eval_tasks {' '.join(data_args.eval_tasks) or '(none)'}; choose one of {', '.join(sorted(produced))} "
            "or set --load_best_model_at_end false"
        )
