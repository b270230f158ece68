"""End-to-end runs of run_hncse.py on a tiny model: output folder, best checkpoint, accumulation, CLI errors."""

import json
import math
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from scipy.stats import spearmanr
from tiny_run import REPO, NaNLossFrom, base_argv

import hncse.train
import hncse.training.preflight
import hncse.training.trainer
import run_hncse
from hncse.evaluation.senteval_data import load_stsb
from hncse.modeling import SentenceEncoder
from hncse.training.trainer import HNCSETrainer


def test_three_step_run_writes_a_folder_that_loads_everywhere(
    tiny_model_dir, corpus_file, senteval_dir, tmp_path, capsys
):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer

    out = tmp_path / "run"
    result = hncse.train.main(base_argv(tiny_model_dir, corpus_file, senteval_dir, out))
    printed = capsys.readouterr().out
    assert "| before training |" in printed and "| after training (best checkpoint) |" in printed
    assert f"Saved to {out}; curves: {out / 'training_curves.png'}\n" in printed

    for name in (
        "training_curves.png",
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "training_args.bin",
        "README.md",
        "modules.json",
    ):
        assert (out / name).is_file(), name
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: sentence-transformers\npipeline_tag: sentence-similarity\n")
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 3 and state["best_model_checkpoint"].startswith(str(out))
    train_logs = [e for e in state["log_history"] if "loss" in e]
    assert len(train_logs) == 3 and all("sim_positive" in e and "sim_hardest_negative" in e for e in train_logs)

    # The same embeddings from sentence-transformers, plain transformers ([CLS], no head) and our encoder.
    pairs = load_stsb(str(senteval_dir), "dev")
    sentences = pairs.sentences1[:16]
    ours = SentenceEncoder.from_pretrained(str(out)).encode(sentences)
    st = SentenceTransformer(str(out), device="cpu")
    torch.testing.assert_close(st.encode(sentences, convert_to_tensor=True), ours, atol=1e-5, rtol=1e-4)
    tokenizer, plain = AutoTokenizer.from_pretrained(str(out)), AutoModel.from_pretrained(str(out)).eval()
    with torch.no_grad():
        cls_state = plain(**tokenizer(sentences, padding=True, return_tensors="pt")).last_hidden_state[:, 0]
    torch.testing.assert_close(cls_state, ours, atol=1e-5, rtol=1e-4)

    # The printed "after" figure is what sentence-transformers scores on the same pairs.
    a = st.encode(pairs.sentences1, convert_to_tensor=True)
    b = st.encode(pairs.sentences2, convert_to_tensor=True)
    st_score = spearmanr(torch.nn.functional.cosine_similarity(a, b).numpy(), pairs.scores).correlation * 100
    after = result["rows"][-1][1]["eval_stsb_spearman"]
    assert after == pytest.approx(st_score, abs=0.01)
    assert f"| {after:.2f} |" in printed


def test_evaluation_before_training_runs_on_the_prepared_model(
    tiny_model_dir, corpus_file, senteval_dir, tmp_path, monkeypatch
):
    """The "before training" row is evaluated inside train(), after accelerate (DDP, DeepSpeed) has prepared the
    model and built the optimizer, and is the step-0 evaluation of the log."""
    prepared = []
    original = hncse.training.trainer.HNCSETrainer.evaluate_suite

    def record(self, *args, **kwargs):
        prepared.append(self.optimizer is not None and self.state.global_step == 0)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(hncse.training.trainer.HNCSETrainer, "evaluate_suite", record)
    result = hncse.train.main(base_argv(tiny_model_dir, corpus_file, senteval_dir, tmp_path / "out"))
    assert prepared[0] is True
    name, before = result["rows"][0]
    assert name == "before training" and before["step"] == 0 and "eval_stsb_spearman" in before


def test_output_dir_holds_the_best_checkpoint_not_the_last(
    tiny_model_dir, corpus_file, senteval_dir, tmp_path, monkeypatch
):
    scripted = iter([10.0, 50.0, 90.0, 60.0])  # before training, then steps 1, 2, 3
    real = hncse.training.trainer.flat_metrics

    def scripted_metrics(results, suite):
        metrics, value = real(results, suite), next(scripted, None)
        return metrics if value is None else {**metrics, "stsb_spearman": value}

    monkeypatch.setattr(hncse.training.trainer, "flat_metrics", scripted_metrics)
    out = tmp_path / "run"
    hncse.train.main(base_argv(tiny_model_dir, corpus_file, senteval_dir, out) + ["--eval_tasks", "stsb"])

    state = json.loads((out / "trainer_state.json").read_text())
    assert state["best_model_checkpoint"] == str(out / "checkpoint-2") and state["best_metric"] == 90.0
    final = load_file(out / "model.safetensors")
    best = load_file(out / "checkpoint-2" / "model.safetensors")
    last = load_file(out / "checkpoint-3" / "model.safetensors")
    assert all(torch.equal(final[k], best[k]) for k in best)
    assert any(not torch.equal(final[k], last[k]) for k in last)
    head, best_head = load_file(out / "mlp_head.safetensors"), load_file(out / "checkpoint-2" / "mlp_head.safetensors")
    assert all(torch.equal(head[k], best_head[k]) for k in head)
    assert "this folder holds the weights of step 2" in (out / "README.md").read_text()
    card3 = (out / "checkpoint-3" / "README.md").read_text()
    assert "this folder holds the weights of step 3" in card3 and "| eval_stsb_spearman | 60.00 |" in card3


def test_gradient_accumulation_averages_micro_batches(tiny_model_dir, corpus_file, tmp_path):
    """With accumulation over 2 micro-batches, the summed gradient is the mean of the two batch gradients."""
    from transformers import DataCollatorWithPadding

    from hncse.data import load_sentences, tokenize_sentences
    from hncse.parser import parse_args

    _, _, args = parse_args(
        ["--train_file", str(corpus_file), "--output_dir", str(tmp_path), "--eval_strategy", "no",
         "--load_best_model_at_end", "false", "--gradient_accumulation_steps", "2"]
    )  # fmt: skip
    model = SentenceEncoder.from_pretrained(
        str(tiny_model_dir), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    data = tokenize_sentences(load_sentences(train_file=str(corpus_file)), model.tokenizer, 16)
    collate = DataCollatorWithPadding(model.tokenizer)
    batches = [collate([data[i] for i in range(s, s + 6)]) for s in (0, 6)]
    trainer = HNCSETrainer(model=model, args=args, train_dataset=data, data_collator=collate)
    trainer.current_gradient_accumulation_steps = 2
    model.train()
    for batch in batches:
        trainer.training_step(model, dict(batch))
    got = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model.zero_grad()
    expected = {}
    for batch in batches:
        model.zero_grad()
        trainer.compute_loss(model, dict(batch)).backward()
        for n, p in model.named_parameters():
            if p.grad is not None:
                expected[n] = expected.get(n, 0) + p.grad / 2
    assert got.keys() == expected.keys() and len(got) > 10
    for name in got:
        torch.testing.assert_close(got[name], expected[name], atol=1e-6, rtol=1e-5)


def test_a_trainer_built_outside_the_script_still_writes_run_config(tiny_model_dir, corpus_file, tmp_path):
    """Without the script's RunFacts, every checkpoint still says which run it belongs to (from the model and the
    training arguments), so that a later run can refuse to resume another run's checkpoint."""
    from transformers import DataCollatorWithPadding

    from hncse.data import load_sentences, tokenize_sentences
    from hncse.parser import parse_args

    _, _, args = parse_args(
        ["--train_file", str(corpus_file), "--output_dir", str(tmp_path), "--eval_strategy", "no",
         "--load_best_model_at_end", "false", "--per_device_train_batch_size", "8", "--max_steps", "1",
         "--save_steps", "1", "--objective", "hnm", "--hnm_k", "4", "--disable_tqdm", "true"]
    )  # fmt: skip
    model = SentenceEncoder.from_pretrained(str(tiny_model_dir), pooler_type="avg")
    data = tokenize_sentences(load_sentences(train_file=str(corpus_file)), model.tokenizer, 16)
    data = data.remove_columns("num_tokens")
    trainer = HNCSETrainer(
        model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(model.tokenizer)
    )
    trainer.train()
    settings = json.loads((tmp_path / "checkpoint-1" / "run_config.json").read_text())
    assert settings["model_name_or_path"] == str(tiny_model_dir) and settings["pooler_type"] == "avg"
    assert settings["objective"] == "hnm" and settings["hnm_k"] == 4 and settings["seed"] == 42
    assert "train_file" not in settings  # the trainer does not know where its dataset came from
    card = (tmp_path / "checkpoint-1" / "README.md").read_text()
    assert f"starting from `{tiny_model_dir}`" in card and f"{len(data):,} sentences" in card


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "run_hncse.py", *args], cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip


@pytest.mark.parametrize("case", ["missing", "empty", "latin1"])
def test_cli_bad_train_file_is_one_line_error(tmp_path, case):
    path = tmp_path / f"{case}.txt"
    if case == "empty":
        path.write_text("")
    elif case == "latin1":
        path.write_bytes("ok\ncaf\xe9\n".encode("latin-1"))
    proc = run_cli("--train_file", str(path), "--output_dir", str(tmp_path / "out"))
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"run_hncse.py: error: {path}")
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()
    if case == "latin1":
        assert f"{path}:2: not valid UTF-8" in lines[0]


def test_bf16_cpu_run_has_finite_losses(tiny_model_dir, corpus_file, senteval_dir, tmp_path):
    out = tmp_path / "bf16"
    argv = base_argv(tiny_model_dir, corpus_file, senteval_dir, out) + ["--bf16", "true", "--eval_tasks", "stsb"]
    hncse.train.main(argv)
    losses = [e["loss"] for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))


@pytest.mark.parametrize("objective", ["pm", "hnm", "hybrid", "hybrid_sum"])
def test_each_objective_trains_and_logs_its_statistics(tiny_model_dir, corpus_file, senteval_dir, tmp_path, objective):
    out = tmp_path / objective
    extra = [
        "--objective",
        objective,
        "--eval_tasks",
        "stsb",
        "--hnm_k",
        "4",
        "--hnm_s",
        "6",
        "--pm_ratio_grid_size",
        "3",
    ]
    hncse.train.main(base_argv(tiny_model_dir, corpus_file, senteval_dir, out) + extra)
    logs = [e for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    expected = {"pm": {"pm_case_a", "pm_case_c"}, "hnm": {"sim_synthetic"}}
    expected["hybrid"] = expected["hybrid_sum"] = expected["pm"] | expected["hnm"]
    assert len(logs) == 3 and all(expected[objective] <= e.keys() and math.isfinite(e["loss"]) for e in logs)
    assert f"| objective | {objective} |" in (out / "README.md").read_text()


def test_do_predict_adds_the_senteval_table_to_card_and_json(
    tiny_model_dir, corpus_file, senteval_small, tmp_path, capsys
):
    out = tmp_path / "run"
    argv = base_argv(tiny_model_dir, corpus_file, senteval_small, out) + [
        "--eval_tasks", "stsb", "mr", "--metric_for_best_model", "mr_accuracy",
        "--do_predict", "true", "--predict_task_set", "full",
    ]  # fmt: skip
    hncse.train.main(argv)
    printed = capsys.readouterr().out
    state = json.loads((out / "trainer_state.json").read_text())
    evals = [e for e in state["log_history"] if "eval_mr_accuracy" in e]
    assert [e["step"] for e in evals] == [0, 1, 2, 3]  # step 0: the evaluation before training
    assert state["best_metric"] == max(e["eval_mr_accuracy"] for e in evals[1:])

    results = json.loads((out / "senteval_results.json").read_text())
    assert results["mode"] == "test" and len(results["sts"]) == 7 and len(results["transfer"]) == 7
    predict = json.loads((out / "predict_results.json").read_text())
    assert predict["predict_sts12_spearman"] == pytest.approx(results["sts"]["STS12"]["all"])
    card = (out / "README.md").read_text()
    assert "## SentEval test results" in card and f"| all | {results['sts']['STS12']['all']:.2f} |" in card
    assert "| transfer | MR | CR | SUBJ | MPQA | SST-2 | TREC | MRPC | Avg. |" in printed


def test_unknown_eval_task_is_a_one_line_config_error(tiny_model_dir, corpus_file, senteval_dir, tmp_path):
    from hncse.errors import ConfigError

    with pytest.raises(ConfigError, match="--eval_tasks: unknown task 'sts99'"):
        hncse.train.main(base_argv(tiny_model_dir, corpus_file, senteval_dir, tmp_path) + ["--eval_tasks", "sts99"])
    with pytest.raises(ConfigError, match="--predict_task_set: unknown value 'all'"):
        hncse.train.main(
            base_argv(tiny_model_dir, corpus_file, senteval_dir, tmp_path) + ["--predict_task_set", "all"]
        )


def test_nan_loss_stops_with_one_line_and_keeps_earlier_checkpoints(
    tiny_model_dir, corpus_file, tmp_path, monkeypatch, capsys
):
    real_build_loss = hncse.training.preflight.build_loss

    monkeypatch.setattr(hncse.training.preflight, "build_loss", lambda args: NaNLossFrom(real_build_loss(args), 3))
    out = tmp_path / "nan"
    argv = base_argv(tiny_model_dir, corpus_file, tmp_path, out) + [
        "--eval_strategy", "no", "--load_best_model_at_end", "false", "--max_steps", "5", "--resume_state_steps", "1"
    ]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["run_hncse.py", *argv])
    with pytest.raises(SystemExit) as exit_info:
        run_hncse.cli()
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("run_hncse.py: error: the loss became nan at step 3")
    assert str(out / "checkpoint-2") in message
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    weights = load_file(out / "checkpoint-2" / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())
