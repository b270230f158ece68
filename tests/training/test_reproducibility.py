"""Reproducibility: a resumed run repeats the uninterrupted loss curve; same seed and data, same weights."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from tiny_run import crash_after_step

import hncse.train
import hncse.training.trainer
import run_hncse
from hncse.training.checkpoints import is_model_only, last_complete_checkpoint, missing_checkpoint_files
from hncse.training.output_folder import OutputFolder

REPO = os.path.dirname(os.path.abspath(run_hncse.__file__))


def losses(output_dir) -> dict[int, float]:
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    return {e["step"]: e["loss"] for e in history if "loss" in e}


def test_resumed_run_repeats_the_uninterrupted_loss_curve(tiny_model_dir, corpus_file, tmp_path, monkeypatch):
    def argv(out):
        return [
            "--model_name_or_path", str(tiny_model_dir), "--train_file", str(corpus_file), "--output_dir", str(out),
            "--per_device_train_batch_size", "8", "--max_steps", "6", "--save_steps", "3", "--resume_state_steps",
            "3", "--logging_steps", "1", "--eval_strategy", "no", "--load_best_model_at_end", "false", "--objective",
            "hybrid", "--hnm_k", "4", "--learning_rate", "1e-3", "--dataloader_pin_memory", "false", "--disable_tqdm",
            "true",
        ]  # fmt: skip

    hncse.train.main(argv(tmp_path / "uninterrupted"))
    expected = losses(tmp_path / "uninterrupted")
    assert sorted(expected) == [1, 2, 3, 4, 5, 6]

    with crash_after_step(3), pytest.raises(RuntimeError, match="simulated crash"):
        hncse.train.main(argv(tmp_path / "resumed"))
    assert (tmp_path / "resumed" / "checkpoint-3" / "loss_state.pt").is_file()

    hncse.train.main(argv(tmp_path / "resumed"))  # same command again: resumes from checkpoint-3
    assert losses(tmp_path / "resumed") == expected


@pytest.mark.parametrize("full_determinism", ["false", "true"])
def test_same_seed_and_data_give_the_same_weights(tiny_model_dir, corpus_file, tmp_path, full_determinism):
    from safetensors.torch import load_file

    def run(out):
        hncse.train.main([
            "--model_name_or_path", str(tiny_model_dir), "--train_file", str(corpus_file), "--output_dir", str(out),
            "--per_device_train_batch_size", "8", "--max_steps", "3", "--save_strategy", "no", "--eval_strategy",
            "no", "--load_best_model_at_end", "false", "--objective", "hybrid", "--hnm_k", "4", "--learning_rate",
            "1e-3", "--seed", "5", "--full_determinism", full_determinism, "--dataloader_pin_memory", "false",
            "--disable_tqdm", "true",
        ])  # fmt: skip
        return load_file(out / "model.safetensors")

    first, second = run(tmp_path / "a"), run(tmp_path / "b")
    start = load_file(tiny_model_dir / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)  # bit for bit
    assert any(not torch.equal(first[k], start[k]) for k in start if k in first)  # and training did change them


def test_output_dir_of_another_configuration_is_refused_untouched(tiny_model_dir, corpus_file, tmp_path):
    from hncse.errors import ConfigError

    out = tmp_path / "run"

    def argv(*extra):
        return [
            "--model_name_or_path", str(tiny_model_dir), "--train_file", str(corpus_file), "--output_dir", str(out),
            "--per_device_train_batch_size", "8", "--max_steps", "2", "--save_steps", "1", "--eval_strategy", "no",
            "--load_best_model_at_end", "false", "--dataloader_pin_memory", "false", "--disable_tqdm", "true", *extra,
        ]  # fmt: skip

    with crash_after_step(2), pytest.raises(RuntimeError, match="simulated crash"):  # stopped after step 2's save
        hncse.train.main(argv("--objective", "simcse", "--max_steps", "3", "--resume_state_steps", "1"))
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    for other, listed in (
        (["--objective", "hnm", "--learning_rate", "1e-4"], "learning_rate: 3e-05 → 0.0001"),
        (["--objective", "hnm"], "Pass --resume_from_checkpoint PATH to resume it with the new settings"),
    ):
        with pytest.raises(ConfigError) as error:
            hncse.train.main(argv(*other, "--max_steps", "3", "--resume_state_steps", "1"))
        message = str(error.value)
        assert "objective: 'simcse' → 'hnm'" in message and listed in message and "\n" not in message
        assert "--overwrite_output_dir" in message
        assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before  # nothing written over

    hncse.train.main(argv("--objective", "simcse", "--max_steps", "3", "--resume_state_steps", "1"))  # resumes step 2
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]  # 2 kept
    kept = out / "checkpoint-2" / "model.safetensors"
    assert kept.stat().st_mtime_ns == before[kept]  # resumed from it, not retrained
    with pytest.raises(ConfigError, match="holds a finished run \\(step 3\\) of other settings \\(objective"):
        hncse.train.main(argv("--objective", "hnm", "--max_steps", "3"))

    hncse.train.main(argv("--objective", "hnm", "--hnm_k", "4", "--overwrite_output_dir", "true"))
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    saved = json.loads((out / "checkpoint-2" / "run_config.json").read_text())
    assert saved["objective"] == "hnm"


def kill_once_saved(python_args: list[str], checkpoint) -> None:
    """Start a training process and SIGKILL it as soon as `checkpoint` is written whole (or after 240 s); the
    kill may land in the middle of writing a later one."""
    proc = subprocess.Popen(
        [sys.executable, *python_args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.time() + 240
    while missing_checkpoint_files(checkpoint) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_sigkill_mid_training_loses_only_the_steps_since_the_last_checkpoint(tiny_model_dir, corpus_file, tmp_path):
    out = tmp_path / "killed"

    def argv(max_steps: int) -> list[str]:
        return [
            "--model_name_or_path", str(tiny_model_dir), "--train_file", str(corpus_file), "--output_dir", str(out),
            "--per_device_train_batch_size", "8", "--max_steps", str(max_steps), "--save_steps", "2",
            "--eval_strategy", "no", "--load_best_model_at_end", "false", "--save_total_limit", "3",
            "--resume_state_steps", "4", "--dataloader_pin_memory", "false", "--disable_tqdm", "true",
        ]  # fmt: skip

    # Saves every 2 steps: the state to resume at steps 4, 8, …, the model only at 2, 6, … (no evaluation).
    kill_once_saved(["run_hncse.py", *argv(400)], out / "checkpoint-8")
    assert (out / "checkpoint-8" / "trainer_state.json").is_file(), "the run did not reach step 8"
    # A folder cut short while being written (the kill may land mid-save) is skipped, not resumed from. The run
    # names a checkpoint folder in the output folder's ledger before writing it, as for these two.
    OutputFolder(str(out)).claim("checkpoint-100000", "checkpoint-100001")
    (out / "checkpoint-100000").mkdir()
    (out / "checkpoint-100000" / "model.safetensors").write_bytes(b"")
    # ... and one killed while writing its last file: every file there, trainer_state.json empty.
    shutil.copytree(out / "checkpoint-8", out / "checkpoint-100001")
    (out / "checkpoint-100001" / "trainer_state.json").write_text("")

    newest = last_complete_checkpoint(str(out))
    step = int(newest.rsplit("-", 1)[-1])
    assert step >= 8 and step % 4 == 0  # the model-only ones are passed over
    hncse.train.main(argv(step + 2))
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == step + 2  # continued from the newest complete checkpoint: 2 more steps


SCRIPTED_RUN = """
import sys
import hncse.training.trainer, run_hncse
real, calls = hncse.training.trainer.flat_metrics, iter(range(10**6))
def scripted(results, suite):  # before training, then every eval: step 2 is the best by far
    call = next(calls)
    return {**real(results, suite), "stsb_spearman": 90.0 if call == 1 else 10.0 + call}
hncse.training.trainer.flat_metrics = scripted
hncse.train.main(sys.argv[1:])
"""


def test_sigkill_with_evaluation_never_loses_the_best_checkpoint(
    tiny_model_dir, corpus_file, senteval_dir, tmp_path, monkeypatch
):
    out = tmp_path / "killed"

    def argv(max_steps: int) -> list[str]:
        return [
            "--model_name_or_path", str(tiny_model_dir), "--train_file", str(corpus_file), "--output_dir", str(out),
            "--senteval_dir", str(senteval_dir), "--eval_tasks", "stsb", "--per_device_train_batch_size", "8",
            "--max_steps", str(max_steps), "--save_steps", "2", "--eval_steps", "2", "--save_total_limit", "1",
            "--resume_state_steps", "4", "--dataloader_pin_memory", "false", "--disable_tqdm", "true",
        ]  # fmt: skip

    kill_once_saved(["-c", SCRIPTED_RUN, *argv(400)], out / "checkpoint-12")
    newest = last_complete_checkpoint(str(out))
    assert newest is not None and int(newest.rsplit("-", 1)[-1]) >= 12, "the run did not reach step 12"
    # Only new bests (step 2) and every 4th step were saved; save_total_limit 1 rotated the others away, but not
    # the best one, which is whole: a model-only checkpoint (no optimizer state), written to the end.
    best = json.loads((out / os.path.basename(newest) / "trainer_state.json").read_text())["best_model_checkpoint"]
    assert best == str(out / "checkpoint-2")
    assert is_model_only(best)

    # The rerun resumes, still knows its best, and ends with the best checkpoint's weights.
    monkeypatch.setattr(
        hncse.training.trainer,
        "flat_metrics",
        lambda results, suite, real=hncse.training.trainer.flat_metrics: {
            **real(results, suite),
            "stsb_spearman": 20.0,
        },
    )
    step = int(newest.rsplit("-", 1)[-1])
    hncse.train.main(argv(step + 2))
    final = load_file(out / "model.safetensors")
    kept = load_file(out / "checkpoint-2" / "model.safetensors")
    assert all(torch.equal(final[k], kept[k]) for k in kept)
