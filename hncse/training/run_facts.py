"""What the trainer knows of a run beyond its TrainingArguments: built once by the script, read by the model card
and written into every checkpoint (`run_config.json`) for a later run to compare before resuming."""

from __future__ import annotations

from dataclasses import dataclass, field

from hncse.losses import run_keys

# The settings that make a checkpoint belong to one run (changing anything else, e.g. max_steps, is fine), per
# argument group; the objectives' own come from the registry (`same_run`).
MODEL_RUN_KEYS = (
    "model_name_or_path", "pooler_type", "mlp_only_train", "bidirectional", "dropout", "lora_r", "lora_alpha",
    "lora_dropout", "lora_target_modules", "prompt", "prompt_in_pooling",
)  # fmt: skip
DATA_RUN_KEYS = (
    "train_file", "dataset_name", "dataset_config_name", "text_column", "anchor_column", "positive_column",
    "negative_columns", "skip_bad_rows", "max_seq_length", "max_train_samples", "streaming", "shuffle_buffer_size",
)  # fmt: skip
# What the optimizer and the learning-rate schedule are made of: their states in a checkpoint keep these.
OPTIMIZER_RUN_KEYS = (
    "learning_rate", "lr_scheduler_type", "warmup_steps", "weight_decay", "optim", "adam_beta1", "adam_beta2",
    "adam_epsilon",
)  # fmt: skip
TRAINING_RUN_KEYS = (*OPTIMIZER_RUN_KEYS, "per_device_train_batch_size", "gradient_accumulation_steps", "seed")
# What resuming restores from a checkpoint whatever the command says: a change to one of these cannot apply to a
# resumed run. The base model's name may change (a moved folder); its weights are checked when they load.
RESTORED_ON_RESUME = (*(key for key in MODEL_RUN_KEYS if key != "model_name_or_path"), *OPTIMIZER_RUN_KEYS)


def run_settings(model_args, data_args, training_args) -> dict:
    """The settings that identify a run, in a fixed order: model, data, objective, optimisation. An argument group
    given as None (a trainer built without the script's arguments) contributes nothing."""
    settings = {}
    for group, keys in (
        (model_args, MODEL_RUN_KEYS),
        (data_args, DATA_RUN_KEYS),
        (training_args, ("objective", *run_keys(), *TRAINING_RUN_KEYS)),
    ):
        if group is not None:
            settings.update({key: getattr(group, key) for key in keys})
    if not settings.get("streaming", True):  # the buffer shapes a streamed run's order only
        del settings["shuffle_buffer_size"]
    return settings


@dataclass
class RunFacts:
    """Facts of one run for its model card and its checkpoints.

    base_model: the model training started from (a Hub id or a folder).
    train_data: where the sentences came from (--train_file or --dataset_name).
    train_sentences: how many training rows (sentences, pairs or triplets) there were after filtering.
    shape: what a row is: `sentences` (unlabelled), `pairs`, `triplets` (`hncse.data.DataShape.kind`).
    settings: `run_settings(...)`, written as run_config.json in every checkpoint.
    senteval_results: the `--do_predict` evaluation, once it has run (the card's SentEval table).
    """

    base_model: str | None = None
    train_data: str | None = None
    train_sentences: int | None = None
    shape: str = "sentences"
    settings: dict = field(default_factory=dict)
    senteval_results: dict | None = None

    @classmethod
    def from_arguments(
        cls, model_args, data_args, training_args, train_sentences: int | None = None, shape: str = "sentences"
    ) -> RunFacts:
        return cls(
            base_model=model_args.model_name_or_path,
            train_data=data_args.train_file or data_args.dataset_name,
            train_sentences=train_sentences,
            shape=shape,
            settings=run_settings(model_args, data_args, training_args),
        )

    @property
    def max_seq_length(self) -> int | None:
        return self.settings.get("max_seq_length")
