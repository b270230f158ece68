"""The training configuration, as static dataclasses: `ModelArguments`, `DataArguments`, `ObjectiveArguments` (the
built-in objectives' hyper-parameters, declared beside each objective in `hncse/losses/`) and `HNCSEConfig`, a
`TrainingArguments` with the paper's defaults and the objective's fields.

Each dataclass checks its own fields' values; what spans arguments, files or the machine is checked by the
preflight (`hncse.training.preflight`). `hncse.parser` reads these classes from YAML/JSON files and flags.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments
from transformers.integrations import get_reporting_integration_callbacks

from hncse.errors import ConfigError
from hncse.losses import OBJECTIVES, HybridSumParams, get_objective
from hncse.modeling import POOLERS


@dataclass
class ModelArguments:
    """Which encoder to train and how its token states become a sentence vector."""

    model_name_or_path: str = field(
        default="bert-base-uncased",
        metadata={
            "help": "Hub id or local folder of a transformers encoder (BERT, RoBERTa, MPNet, DistilBERT, …) or "
            "decoder (Llama, Qwen, Mistral, …; docs/configuration.md)."
        },
    )
    pooler_type: str | None = field(
        default=None,
        metadata={
            "help": f"Sentence vector: one of {', '.join(POOLERS)} (SimCSE's poolers). Default: the model "
            "folder's own (a sentence-transformers folder's pooling and modules, or what hncse saved), else cls."
        },
    )
    mlp_only_train: bool = field(
        default=True,
        metadata={"help": "With pooler `cls`: use the Linear+tanh head in training only (SimCSE unsupervised)."},
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where Hub downloads are cached."})
    bidirectional: bool | None = field(
        default=None,
        metadata={
            "help": "A decoder model (Llama, Qwen, Mistral, …) attends both ways in training and in the saved folder "
            "(config.json's is_causal: false); false: causally. Default: as the model's config says (causal for a "
            "released decoder). Encoders always attend both ways."
        },
    )
    dropout: float | None = field(
        default=None,
        metadata={
            "help": "Set every dropout probability of the encoder's config (BERT-style: hidden and attention "
            "dropout; Llama-style: attention dropout), e.g. 0.1; unsupervised training needs some dropout. "
            "Default: the config's own."
        },
    )

    prompt: str | None = field(
        default=None,
        metadata={
            "help": "Text put before every training and evaluation sentence (e.g. 'query: ' or an instruction), "
            "saved as the sentence-transformers model's default prompt so that encode() applies it."
        },
    )
    prompt_in_pooling: bool | None = field(
        default=None,
        metadata={
            "help": "false: leave the prompt's tokens out of mean pooling (sentence-transformers' include_prompt). "
            "Default: as the model folder says, else true."
        },
    )
    lora_r: int | None = field(
        default=None,
        metadata={
            "help": "Train LoRA adapters of this rank instead of the encoder's weights (peft: pip install "
            "'hncse[peft]'); the saved folder holds the merged weights. Default: no LoRA, full fine-tuning."
        },
    )
    lora_alpha: float | None = field(default=None, metadata={"help": "LoRA's alpha (scaling alpha/r). Default: 2r."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA adapters' inputs."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": "Module names to adapt (e.g. q_proj v_proj). Default: every linear layer of the attention and "
            "MLP blocks (peft's all-linear)."
        },
    )
    save_adapter: bool = field(
        default=False, metadata={"help": "With LoRA: write peft's adapter files beside the merged weights too."}
    )

    def __post_init__(self):
        if self.lora_r is None:
            given = [f"--{k}" for k in ("lora_alpha", "lora_target_modules") if getattr(self, k) is not None]
            if given or self.save_adapter:
                raise ConfigError(f"{' '.join(given) or '--save_adapter'} applies to LoRA: add --lora_r, e.g. 16")
        elif self.lora_r < 1:
            raise ConfigError(f"--lora_r must be at least 1, got {self.lora_r}")
        elif self.lora_alpha is None:
            self.lora_alpha = 2.0 * self.lora_r
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"--lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.pooler_type is not None and self.pooler_type not in POOLERS:
            raise ConfigError(f"--pooler_type: unknown value {self.pooler_type!r}; choose one of {', '.join(POOLERS)}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ConfigError(f"--dropout must be in [0, 1), got {self.dropout}")


@dataclass
class DataArguments:
    """Training corpus and evaluation data."""

    train_file: str | None = field(
        default=None,
        metadata={
            "help": "`wiki1m` or `nli` (princeton-nlp/datasets-for-simcse: local copy in $HNCSE_DATA_DIR, cache or "
            "download), or a local or http(s) file: .txt (one sentence per line), .csv/.tsv/.json/.jsonl/.parquet "
            "with a text column."
        },
    )
    dataset_name: str | None = field(
        default=None, metadata={"help": "Hub dataset to train on instead of --train_file."}
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Configuration of --dataset_name."})
    dataset_split: str = field(default="train", metadata={"help": "Split of --dataset_name."})
    text_column: str | None = field(
        default=None,
        metadata={
            "help": "Train on one sentence per row from this column (default: `text`, else the only text column, "
            "unless the columns make pairs or triplets)."
        },
    )
    anchor_column: str | None = field(
        default=None,
        metadata={
            "help": "Pairs/triplets: the anchor's column (default: sent0, or anchor, when the data has it; "
            "docs/data.md 'Training data shapes')."
        },
    )
    positive_column: str | None = field(
        default=None, metadata={"help": "Pairs/triplets: the positive's column (default: sent1, or positive)."}
    )
    negative_columns: list[str] | None = field(
        default=None,
        metadata={
            "help": "Triplets: the given hard negatives' column(s). Default: hard_neg, or negative / negative_1, "
            "negative_2, … when the data has them, unless --anchor_column and --positive_column are both given (then "
            "only the columns named are used: pairs, from a triplet file too)."
        },
    )
    skip_bad_rows: bool = field(
        default=False,
        metadata={
            "help": "Pairs/triplets: drop the rows with an empty or missing field (counted in the log) instead of "
            "stopping at the first."
        },
    )
    max_seq_length: int = field(default=32, metadata={"help": "Training sentences are truncated to this many tokens."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N sentences (quick runs)."}
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenisation."})
    streaming: bool = field(
        default=False,
        metadata={
            "help": "Read the corpus as training goes (any size, nothing prepared, memory flat): tokenised batch by "
            "batch (in --dataloader_num_workers workers if set), shuffled through a buffer; needs --max_steps."
        },
    )
    shuffle_buffer_size: int = field(
        default=10_000,
        metadata={"help": "With --streaming: sentences held to shuffle the stream (0: the corpus order)."},
    )
    senteval_dir: str | None = field(
        default=None,
        metadata={
            "help": "SentEval's `data/downstream` folder (STS/, SICK/, MR/, …), or `senteval` (the Hub's "
            "senteval.tar: local copy, cache or download). Default: the copy in $HNCSE_DATA_DIR, else one downloaded "
            "earlier, else STS sets come from the Hub (mteb/*)."
        },
    )
    eval_tasks: list[str] = field(
        default_factory=lambda: ["stsb", "sickr"],
        metadata={
            "help": "Dev sets evaluated during training: stsb, sickr (eval_<task>_spearman) and transfer tasks mr, "
            "cr, subj, mpqa, sst2, trec, mrpc (eval_<task>_accuracy, SentEval's fast protocol); `none`: only the "
            "--sts_files."
        },
    )
    sts_files: list[str] | None = field(
        default=None,
        metadata={
            "help": "Your own STS dev sets, evaluated with the --eval_tasks: CSV, TSV, JSON Lines or parquet files, "
            "or Hub datasets as name[:config][@split] (default split: validation), with the columns sentence1, "
            "sentence2, score (any scale; --sts_columns to name others). Logged as eval_<name>_spearman (name: the "
            "file's stem, or the dataset's last path part; made unique), which --metric_for_best_model may name."
        },
    )
    sts_columns: list[str] | None = field(
        default=None,
        metadata={"help": "The columns of --sts_files and --predict_sts_files: SENTENCE1 SENTENCE2 SCORE."},
    )
    predict_task_set: str = field(
        default="full",
        metadata={
            "help": "With --do_predict: the test-set evaluation run after training (sts, transfer, full or none); "
            "its table goes into the model card and senteval_results.json."
        },
    )
    predict_sts_files: list[str] | None = field(
        default=None,
        metadata={
            "help": "With --do_predict: your own STS test sets, as --sts_files (default Hub split: test); their rows "
            "go into senteval_results.json and the card's model-index."
        },
    )

    def __post_init__(self):
        if self.train_file is None and self.dataset_name is None:
            raise ConfigError("--train_file or --dataset_name is required")
        if self.train_file is not None and self.dataset_name is not None:
            raise ConfigError("give only one of --train_file and --dataset_name")
        if self.max_seq_length < 2:
            raise ConfigError(f"--max_seq_length must be at least 2, got {self.max_seq_length}")
        if self.shuffle_buffer_size < 0:
            raise ConfigError(f"--shuffle_buffer_size must be ≥ 0, got {self.shuffle_buffer_size}")
        if self.streaming and (self.anchor_column or self.positive_column or self.negative_columns):
            raise ConfigError(
                "--streaming reads one sentence per row; pairs and triplets (--anchor_column, --positive_column, "
                "--negative_columns) are prepared: drop --streaming"
            )
        if self.max_train_samples is not None and self.max_train_samples < 2:
            raise ConfigError(f"--max_train_samples must be at least 2, got {self.max_train_samples}")


# transformers 5.23 renamed gradient_checkpointing to activation_checkpointing (keeping the old name as a deprecated
# alias); on older releases the config adds the new name and passes it on as the old one.
NAMES_ACTIVATION_CHECKPOINTING = "activation_checkpointing" in {f.name for f in dataclasses.fields(TrainingArguments)}


@dataclass
class ObjectiveArguments(HybridSumParams):
    """The objective and its hyper-parameters. The built-in objectives' fields are declared beside each objective
    (`temperature`, `hard_negative_weight`: `hncse/losses/common.py`; `pm_*`: `positive_mixing.py`; `hnm_*`:
    `hard_negative_mixing.py`; `hybrid_lambda`: `hybrid_sum.py`), whose params `HybridSumParams` inherits all of
    (`tests/test_config.py` checks that). An objective registered outside the package brings its own flags
    (`hncse.parser`)."""

    objective: str = field(
        default="simcse",
        metadata={"help": "Contrastive objective: simcse, pm, hnm, hybrid, hybrid_sum (docs/method.md)."},
    )


@dataclass
class HNCSEConfig(ObjectiveArguments, TrainingArguments):
    """`TrainingArguments` for contrastive sentence-embedding training: the objective (`ObjectiveArguments`), the
    cached step, the batch exchange across processes, and the SimCSE / HNCSE BERT-base defaults (docs/method.md
    §6): learning_rate 3e-5, per_device_train_batch_size 64, num_train_epochs 1, evaluate and save every 125
    steps, keep the best checkpoint by STS-B dev Spearman, the state to resume every 1000 steps
    (resume_state_steps) and model-only saves of new bests between, drop the incomplete last batch, log every 10
    steps, encode dev sets 128 sentences at a time, DDP without the unused-parameter search, `use_cpu` set on
    machines without an accelerator."""

    if not NAMES_ACTIVATION_CHECKPOINTING:
        activation_checkpointing: bool = field(
            default=False,
            metadata={"help": "Recompute each layer's activations in the backward pass (gradient_checkpointing)."},
        )

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
    resume_state_steps: int = field(
        default=1000,
        metadata={
            "help": "Write what resuming needs (optimizer, scheduler, RNG: about 3× the weights) at a save only once "
            "this many steps have passed since the last such save, and at the end. The saves in between keep a model "
            "only when it is a new best by metric_for_best_model (every one without evaluation or metric), so model "
            "selection stays exact. Under DeepSpeed or with --hub_strategy checkpoint every checkpoint written is "
            "resumable. 1: every save."
        },
    )
    save_total_limit: int | None = field(
        default=2,
        metadata={"help": "Checkpoints kept (the newest, the best and the newest resumable one are always kept)."},
    )
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
    logging_nan_inf_filter: bool = field(
        default=False,
        metadata={
            "help": "Leave NaN/inf losses out of the logged average. Off: a non-finite loss stops training anyway, "
            "and the filter reads every step's loss back to the host."
        },
    )

    def __post_init__(self):
        if not (self.output_dir or "").strip():
            raise ConfigError(f"--output_dir must name a folder, got {self.output_dir!r}")
        self.check_objectives()
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            raise ConfigError(f"--num_train_epochs {self.num_train_epochs} trains nothing; give a positive number")
        if self.resume_state_steps < 1:
            raise ConfigError(f"--resume_state_steps must be ≥ 1 (1: at every save), got {self.resume_state_steps}")
        if self.mini_batch_size is not None and self.mini_batch_size < 1:
            raise ConfigError(f"--mini_batch_size must be ≥ 1, got {self.mini_batch_size}")
        if self.mini_batch_size is not None and self.torch_compile:
            # The cached step encodes through the unwrapped encoder (it replays each mini-batch's random state),
            # so the compiled model would never run.
            raise ConfigError("--torch_compile does not apply to the cached step (--mini_batch_size); use one of them")
        if self.per_device_train_batch_size < 2:
            raise ConfigError(
                "--per_device_train_batch_size must be at least 2 (in-batch negatives), "
                f"got {self.per_device_train_batch_size}"
            )
        if not self.use_cpu and not torch.accelerator.is_available():
            # Not a check but a default: say "CPU" explicitly on a machine without accelerators, before the
            # Trainer's own set-up; otherwise accelerate leaves processes started by torchrun undistributed (each
            # trains alone, all write one output_dir) and bf16 is refused. The launch is checked by the preflight.
            self.use_cpu = True
        if not NAMES_ACTIVATION_CHECKPOINTING and self.activation_checkpointing:
            self.gradient_checkpointing = True
        check_deepspeed_file(self.deepspeed)
        try:
            TrainingArguments.__post_init__(self)  # not super(): the objective params come first in the MRO
        except ValueError as error:
            raise ConfigError(str(error).strip().splitlines()[0]) from error
        check_training_values(self)

    def check_objectives(self) -> None:
        """The objective exists and suits the batch, and every registered objective's hyper-parameters hold (each
        flag exists whatever the objective). A plug-in objective's values are checked once `hncse.parser` has set
        them on the config: until then its fields are missing and it is skipped."""
        objective = get_objective(self.objective)
        if self.per_device_train_batch_size < objective.min_batch_size and objective.min_batch_size > 2:
            raise ConfigError(
                f"--objective {self.objective} needs --per_device_train_batch_size ≥ {objective.min_batch_size} "
                "(pairs of negatives)"
            )
        for registered in OBJECTIVES.values():
            if all(hasattr(self, f.name) for f in dataclasses.fields(registered.params)):
                registered.params_from(self)


def check_deepspeed_file(deepspeed) -> None:
    """--deepspeed FILE: a missing file or JSON that does not parse, named with its line (transformers' own error
    names neither)."""
    if not isinstance(deepspeed, str) or deepspeed.lstrip().startswith("{"):
        return  # a dict given in code, or inline JSON
    if not os.path.isfile(deepspeed):
        raise ConfigError(f"--deepspeed {deepspeed}: no such file (ds_configs/ holds the bundled configs)")
    try:
        with open(deepspeed, encoding="utf-8") as f:
            json.load(f)
    except UnicodeDecodeError:
        raise ConfigError(f"--deepspeed {deepspeed}: not a UTF-8 text file") from None
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"--deepspeed {deepspeed}:{error.lineno}: not valid JSON ({error.msg} at column {error.colno})"
        ) from None


def check_training_values(args: TrainingArguments) -> None:
    """Values `TrainingArguments` accepts but training then fails on (a division by zero, a seed numpy refuses, a
    DataLoader error), or trains nothing with (a learning rate that is 0, inf or nan): one line, before anything."""
    a = args
    for ok, flag, value, rule in [
        (a.gradient_accumulation_steps >= 1, "gradient_accumulation_steps", a.gradient_accumulation_steps, "≥ 1"),
        (a.per_device_eval_batch_size >= 1, "per_device_eval_batch_size", a.per_device_eval_batch_size, "≥ 1"),
        (a.dataloader_num_workers >= 0, "dataloader_num_workers", a.dataloader_num_workers, "≥ 0"),
        (0 <= a.seed < 2**32, "seed", a.seed, "in [0, 2^32)"),
        (a.data_seed is None or 0 <= a.data_seed < 2**32, "data_seed", a.data_seed, "in [0, 2^32)"),
        (math.isfinite(a.learning_rate) and a.learning_rate > 0, "learning_rate", a.learning_rate, "finite and > 0"),
        (math.isfinite(a.weight_decay), "weight_decay", a.weight_decay, "a finite number"),
        (math.isfinite(a.max_grad_norm), "max_grad_norm", a.max_grad_norm, "a finite number"),
        (a.logging_strategy != "steps" or a.logging_steps > 0, "logging_steps", a.logging_steps, "> 0"),
        (a.save_strategy != "steps" or a.save_steps > 0, "save_steps", a.save_steps, "> 0"),
        (a.eval_strategy != "steps" or (a.eval_steps or 0) > 0, "eval_steps", a.eval_steps, "> 0"),
    ]:
        if not ok:
            raise ConfigError(f"--{flag} must be {rule}, got {value}")
    try:
        get_reporting_integration_callbacks(args.report_to)
    except ValueError as error:
        raise ConfigError(f"--report_to: {str(error).strip().splitlines()[0]}") from None
