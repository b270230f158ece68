"""Config files with command-line overrides, the paper's defaults, and errors that name the argument."""

import json
import re
from pathlib import Path

import pytest

from hncse.errors import ConfigError
from hncse.parser import parse_args
from hncse.training.preflight import check_arguments


def test_defaults_follow_the_paper(corpus_file):
    model_args, data_args, args = parse_args(["--train_file", str(corpus_file)])
    assert (model_args.pooler_type, model_args.mlp_only_train) == (None, True)  # the folder's own, else cls
    assert data_args.max_seq_length == 32
    assert (args.learning_rate, args.per_device_train_batch_size, args.num_train_epochs) == (3e-5, 64, 1.0)
    assert (args.temperature, args.objective, args.seed) == (0.05, "simcse", 42)
    assert args.eval_steps == 125 and args.load_best_model_at_end and args.metric_for_best_model == "stsb_spearman"
    assert args.dataloader_drop_last and args.greater_is_better


def test_yaml_with_overrides(tmp_path, corpus_file):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"train_file: {corpus_file}\nlearning_rate: 1e-5\npooler_type: avg\neval_tasks: [stsb]\nbf16: false\n",
        encoding="utf-8",
    )
    model_args, data_args, args = parse_args(
        [str(cfg), "--learning_rate", "2e-5", "--output_dir", str(tmp_path / "o")]
    )
    assert args.learning_rate == 2e-5  # the flag wins over the file
    assert model_args.pooler_type == "avg" and data_args.eval_tasks == ["stsb"]
    assert args.output_dir == str(tmp_path / "o")


def test_json_config(tmp_path, corpus_file):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"train_file": str(corpus_file), "temperature": 0.1, "mlp_only_train": False}))
    model_args, _, args = parse_args([str(cfg)])
    assert args.temperature == 0.1 and model_args.mlp_only_train is False


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--pooler_type", "max"], "--pooler_type: unknown value 'max'"),
        (["--objective", "nope"], "--objective: unknown value 'nope'"),
        (["--temperature", "0"], "--temperature must be > 0"),
        (["--per_device_train_batch_size", "1"], "--per_device_train_batch_size must be at least 2"),
        (["--max_seq_length", "1"], "--max_seq_length must be at least 2"),
        (
            ["--objective", "hnm", "--per_device_train_batch_size", "2"],
            "--objective hnm needs --per_device_train_batch_size ≥ 3",
        ),
        (["--hnm_k", "1"], "--hnm_k must be ≥ 2"),
        (["--hnm_alpha", "1.5"], "--hnm_alpha must be in [0, 1]"),
        (["--pm_ratio_grid_size", "1"], "--pm_ratio_grid_size must be 0 or ≥ 2"),
        (["--pm_w1", "0"], "--pm_w1 must be > 0"),
        (["--resume_state_steps", "0"], "--resume_state_steps must be ≥ 1 (1: at every save), got 0"),
    ],
)
def test_invalid_values_name_the_argument(corpus_file, argv, message):
    with pytest.raises(ConfigError) as info:
        parse_args(["--train_file", str(corpus_file), *argv])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        parse_args([str(tmp_path / "missing.yaml")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rat: 1e-5\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown argument 'learning_rat'"):
        parse_args([str(bad)])


def test_training_file_required():
    with pytest.raises(ConfigError, match="--train_file or --dataset_name"):
        parse_args([])


def test_best_metric_must_come_from_an_evaluated_task(corpus_file):
    message = "--metric_for_best_model 'stsb_spearman' is not produced by --eval_tasks sickr"
    with pytest.raises(ConfigError, match=message):
        check_arguments(*parse_args(["--train_file", str(corpus_file), "--eval_tasks", "sickr"])[1:])
    _, data_args, args = parse_args(
        ["--train_file", str(corpus_file), "--eval_tasks", "sickr", "--metric_for_best_model", "sickr_spearman"]
    )
    check_arguments(data_args, args)
    assert args.metric_for_best_model == "sickr_spearman"
    # Without --load_best_model_at_end the Trainer still looks the metric up after each evaluation (a KeyError
    # once training has started): refused the same way.
    no_best = ["--train_file", str(corpus_file), "--eval_tasks", "sickr", "--load_best_model_at_end", "false"]
    with pytest.raises(ConfigError, match=message):
        check_arguments(*parse_args(no_best)[1:])


def test_an_empty_output_dir_is_one_line(corpus_file):
    with pytest.raises(ConfigError, match=r"--output_dir must name a folder, got ''"):
        parse_args(["--train_file", str(corpus_file), "--output_dir", ""])


def test_unknown_flag_is_named_with_the_nearest_known_one(corpus_file):
    with pytest.raises(ConfigError, match=r"^unknown argument --lerning_rate; did you mean --learning_rate\?$"):
        parse_args(["--train_file", str(corpus_file), "--lerning_rate", "1e-5"])
    with pytest.raises(ConfigError, match=r"^unknown argument --zzz; see python run_hncse.py --help$"):
        parse_args(["--train_file", str(corpus_file), "--zzz=1"])
    # Spellings argparse accepts stay accepted: dashes, --flag=value, --no_<flag>, unambiguous prefixes.
    model_args, _, args = parse_args(
        ["--train_file", str(corpus_file), "--learning-rate=2e-5", "--no_mlp_only_train", "--temperat", "0.1"]
    )
    assert (args.learning_rate, model_args.mlp_only_train, args.temperature) == (2e-5, False, 0.1)


PAPER_CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "paper").glob("*.yaml"))


@pytest.mark.parametrize("config", PAPER_CONFIGS, ids=[p.stem for p in PAPER_CONFIGS])
def test_paper_configs_take_bf16_on_the_command_line(config, tmp_path):
    """fp16 in the files (any CUDA card); `--bf16 true --fp16 false` for Ampere and newer, as
    docs/training-on-gpus.md says."""
    _, data_args, args = parse_args([str(config), "--bf16", "true", "--fp16", "false", "--output_dir", str(tmp_path)])
    assert args.bf16 and not args.fp16
    assert data_args.max_seq_length == 32 and args.learning_rate in (3e-5, 1e-5, 5e-5)
    assert "fp16: true" in config.read_text() and "--bf16 true --fp16 false" in config.read_text()


def test_the_supervised_config_is_simcses_supervised_setup(tmp_path):
    model_args, data_args, args = parse_args([str(PAPER_CONFIGS[0].parent / "bert-base-sup-simcse.yaml")])
    assert (model_args.pooler_type, model_args.mlp_only_train) == ("cls", False)  # the head kept at inference
    assert (args.per_device_train_batch_size, args.learning_rate, args.num_train_epochs) == (512, 5e-5, 3)
    assert (args.objective, args.temperature, args.hard_negative_weight) == ("simcse", 0.05, 0.0)
    assert data_args.train_file.endswith("princeton-nlp/datasets-for-simcse/resolve/main/nli_for_simcse.csv")
    assert data_args.text_column is None and data_args.anchor_column is None  # read as triplets (sent0, sent1, …)


def test_torch_compile_with_the_cached_step_is_refused(corpus_file):
    with pytest.raises(ConfigError, match="--torch_compile does not apply to the cached step"):
        parse_args(["--train_file", str(corpus_file), "--mini_batch_size", "4", "--torch_compile", "true"])


def test_yaml_words_stay_words_and_the_file_may_come_anywhere(tmp_path, corpus_file):
    """YAML 1.1 would read no/on/off as booleans (`eval_strategy: no` → false); only true/false are booleans here.
    Flags override the file whether they come before or after it, and `--flag none` clears a value it sets."""
    config = tmp_path / "c.yaml"
    config.write_text(
        f"train_file: {corpus_file}\neval_strategy: no\nload_best_model_at_end: false\nmax_train_samples: 50\n"
        "save_total_limit: 3\n",
        encoding="utf-8",
    )
    _, data_args, args = parse_args(["--learning_rate", "1e-4", str(config), "--max_train_samples", "none"])
    assert args.eval_strategy == "no" and args.load_best_model_at_end is False
    assert args.learning_rate == 1e-4 and data_args.max_train_samples is None and args.save_total_limit == 3
    _, _, args = parse_args([str(config), "--save_total_limit", "null", "--deepspeed", "ds_configs/zero2.json"])
    assert args.save_total_limit is None and args.deepspeed == "ds_configs/zero2.json"
    with pytest.raises(ConfigError, match="one config file at most"):
        parse_args([str(config), str(config)])


def test_a_bad_value_is_one_line_without_the_usage(corpus_file):
    with pytest.raises(ConfigError) as info:
        parse_args(["--train_file", str(corpus_file), "--learning_rate", "fast"])
    assert str(info.value) == "argument --learning_rate/--learning-rate: invalid float value: 'fast'"


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--temperature", "inf"], "--temperature must be a finite number, got inf"),
        (["--hnm_alpha", "nan"], "--hnm_alpha must be a finite number, got nan"),
        (["--num_train_epochs", "0"], "--num_train_epochs 0.0 trains nothing"),
        (["--learning_rate", "nan"], "--learning_rate must be finite and > 0, got nan"),
        (["--learning_rate", "0"], "--learning_rate must be finite and > 0, got 0.0"),
        (["--seed", "-1"], "--seed must be in [0, 2^32), got -1"),
        (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be ≥ 1, got 0"),
        (["--save_steps", "0"], "--save_steps must be > 0, got 0.0"),
        (["--logging_steps", "-1"], "--logging_steps must be > 0, got -1.0"),
        (["--dataloader_num_workers", "-1"], "--dataloader_num_workers must be ≥ 0, got -1"),
        (["--max_grad_norm", "nan"], "--max_grad_norm must be a finite number, got nan"),
        (["--report_to", "foo"], "--report_to: foo is not supported"),
    ],
)
def test_values_that_train_nothing_are_refused(corpus_file, argv, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_args(["--train_file", str(corpus_file), *argv])


def test_a_bad_value_in_the_file_names_the_file_and_a_flag_overrides_it(tmp_path, corpus_file):
    config = tmp_path / "c.yaml"
    config.write_text(f"train_file: {corpus_file}\nlearning_rate: fast\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(config))}: learning_rate: argument --learning_rate"):
        parse_args([str(config)])
    assert parse_args([str(config), "--learning_rate", "1e-3"])[2].learning_rate == 1e-3


def test_the_config_has_a_written_out_field_for_every_builtin_hyperparameter():
    """ObjectiveArguments inherits the built-in objectives' params (each field declared once, beside its objective),
    so every built-in flag is a field of HNCSEConfig that `grep` finds in the source."""
    import dataclasses

    import hncse.config
    from hncse.config import HNCSEConfig, ObjectiveArguments
    from hncse.losses import OBJECTIVES

    builtins = ("simcse", "pm", "hnm", "hybrid", "hybrid_sum")
    assert list(OBJECTIVES)[:5] == list(builtins)
    fields = {f.name for f in dataclasses.fields(ObjectiveArguments)}
    for name in builtins:
        assert {f.name for f in dataclasses.fields(OBJECTIVES[name].params)} <= fields, name
    assert fields <= {f.name for f in dataclasses.fields(HNCSEConfig)}
    assert not hasattr(hncse.config, "config_class")  # no class made at import time
