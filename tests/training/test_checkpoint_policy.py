"""Which saves write what: the state to resume every --resume_state_steps steps and at the end, a model-only
checkpoint for each new best in between, nothing otherwise; rotation never loses what a resume needs."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_run import base_argv, crash_after_step

import hncse.train
import hncse.training.trainer
from hncse.errors import ConfigError, TrainingDivergedError
from hncse.training.checkpoints import (
    check_resumable,
    is_model_only,
    last_complete_checkpoint,
    missing_checkpoint_files,
    rotate_checkpoints,
    write_manifest,
)


@pytest.fixture
def scripted_dev_metric(monkeypatch):
    """The dev metric at each step is what the test scripts (by global step, so that a resumed run sees the same)."""
    script: dict[int, float] = {}
    original = hncse.training.trainer.HNCSETrainer.evaluate_suite

    def evaluate_suite(self, *args, **kwargs):
        metrics, results = original(self, *args, **kwargs)
        if self.state.global_step in script:
            metrics["eval_stsb_spearman"] = script[self.state.global_step]
        return metrics, results

    monkeypatch.setattr(hncse.training.trainer.HNCSETrainer, "evaluate_suite", evaluate_suite)
    return script


def folders(out) -> dict[int, str]:
    """step → "resume" (optimizer, scheduler, RNG saved) or "model" (model only) for each checkpoint in `out`."""
    kinds = {}
    for path in out.glob("checkpoint-*"):
        kind = "model" if is_model_only(str(path)) else "resume" if not missing_checkpoint_files(str(path)) else "?"
        kinds[int(path.name.split("-")[1])] = kind
    return dict(sorted(kinds.items()))


def argv(tiny_model_dir, corpus_file, senteval_dir, out, *extra):
    return base_argv(tiny_model_dir, corpus_file, senteval_dir, out) + [
        "--eval_tasks", "stsb", "--max_steps", "6", "--resume_state_steps", "3", *extra,
    ]  # fmt: skip


def test_between_resumable_saves_only_new_bests_are_written_and_model_only(
    tiny_model_dir, corpus_file, senteval_dir, tmp_path, scripted_dev_metric
):
    scripted_dev_metric.update({1: 50.0, 2: 40.0, 3: 30.0, 4: 60.0, 5: 55.0, 6: 20.0})
    out = tmp_path / "run"
    hncse.train.main(argv(tiny_model_dir, corpus_file, senteval_dir, out, "--save_total_limit", "0"))

    # Steps 1 and 4 improved the metric; 3 and 6 (the end) are due for the state to resume; 2 and 5 write nothing.
    assert folders(out) == {1: "model", 3: "resume", 4: "model", 6: "resume"}
    for step in (1, 4):
        names = {p.name for p in (out / f"checkpoint-{step}").iterdir()}
        assert {"model.safetensors", "config.json", "trainer_state.json", "README.md", "run_config.json"} <= names
        assert not names & {"optimizer.pt", "scheduler.pt", "rng_state.pth", "loss_state.pt"}
    assert (out / "checkpoint-3" / "optimizer.pt").is_file() and (out / "checkpoint-3" / "loss_state.pt").is_file()

    state = json.loads((out / "trainer_state.json").read_text())
    assert state["best_model_checkpoint"] == str(out / "checkpoint-4") and state["best_metric"] == 60.0
    final, best = load_file(out / "model.safetensors"), load_file(out / "checkpoint-4" / "model.safetensors")
    assert all(torch.equal(final[k], best[k]) for k in best)
    assert last_complete_checkpoint(str(out)) == str(out / "checkpoint-6")


def test_without_evaluation_every_save_keeps_a_model(tiny_model_dir, corpus_file, senteval_dir, tmp_path):
    out = tmp_path / "run"
    hncse.train.main(
        argv(tiny_model_dir, corpus_file, senteval_dir, out, "--eval_strategy", "no", "--load_best_model_at_end",
             "false", "--save_total_limit", "0")
    )  # fmt: skip
    assert folders(out) == {1: "model", 2: "model", 3: "resume", 4: "model", 5: "model", 6: "resume"}


def test_a_crash_between_resumable_saves_resumes_the_last_one_and_keeps_its_best(
    tiny_model_dir, corpus_file, senteval_dir, tmp_path, scripted_dev_metric
):
    scripted_dev_metric.update({1: 50.0, 2: 60.0, 3: 40.0, 4: 70.0, 5: 65.0, 6: 30.0})
    hncse.train.main(argv(tiny_model_dir, corpus_file, senteval_dir, tmp_path / "uninterrupted"))
    expected = json.loads((tmp_path / "uninterrupted" / "trainer_state.json").read_text())["log_history"]

    out = tmp_path / "resumed"
    with crash_after_step(5), pytest.raises(RuntimeError, match="simulated crash"):
        hncse.train.main(argv(tiny_model_dir, corpus_file, senteval_dir, out))
    # save_total_limit 2: the newest (4, also the best) and the newest resumable one (3) are kept, and so is the
    # best that checkpoint-3 names (2), which a run resumed from it would end with if it found nothing better.
    assert folders(out) == {2: "model", 3: "resume", 4: "model"}
    with pytest.raises(ConfigError, match=r"checkpoint-4 holds a model only .* resume from .*checkpoint-3$"):
        check_resumable(str(out / "checkpoint-4"))

    hncse.train.main(argv(tiny_model_dir, corpus_file, senteval_dir, out))  # the same command: resumes from 3
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    losses = [(e["step"], e["loss"]) for e in history if "loss" in e]
    assert losses == [(e["step"], e["loss"]) for e in expected if "loss" in e]
    assert folders(out) == {4: "model", 6: "resume"}
    final = load_file(out / "model.safetensors")
    uninterrupted = load_file(tmp_path / "uninterrupted" / "model.safetensors")
    assert all(torch.equal(final[k], uninterrupted[k]) for k in final)


def fake_checkpoint(out, step: int, resumable: bool, best: int | None, written: int) -> str:
    folder = out / f"checkpoint-{step}"
    folder.mkdir()
    save_file({"w": torch.zeros(2)}, folder / "model.safetensors")
    for name in ["scheduler.pt", "rng_state.pth", "optimizer.pt", "loss_state.pt"] if resumable else []:
        torch.save({}, folder / name)
    if resumable:
        (folder / "run_config.json").write_text("{}")
    state = {"global_step": step, "best_model_checkpoint": str(out / f"checkpoint-{best}") if best else None}
    (folder / "trainer_state.json").write_text(json.dumps(state))
    os.utime(folder / "trainer_state.json", (written, written))
    write_manifest(str(folder), step, resumable)  # as a save ends
    return str(folder)


def test_rotation_never_deletes_the_newest_resumable_checkpoint_nor_the_best_it_names(tmp_path):
    fake_checkpoint(tmp_path, 1, False, None, 100)
    fake_checkpoint(tmp_path, 2, False, 1, 200)
    fake_checkpoint(tmp_path, 3, True, 1, 300)  # the newest resumable one; it names checkpoint-1 as its best
    fake_checkpoint(tmp_path, 4, False, 1, 400)
    fake_checkpoint(tmp_path, 5, False, 5, 500)
    rotate_checkpoints(str(tmp_path), 2, str(tmp_path / "checkpoint-5"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-1", "checkpoint-3", "checkpoint-5"]


def test_rotation_counts_the_last_written_as_newest(tmp_path):
    """A resumed run's new checkpoint is newer than one the interrupted run wrote at a later step."""
    fake_checkpoint(tmp_path, 3, True, None, 300)
    fake_checkpoint(tmp_path, 5, False, None, 400)  # written by the interrupted run
    fake_checkpoint(tmp_path, 4, True, None, 500)  # written after resuming from checkpoint-3
    rotate_checkpoints(str(tmp_path), 1, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4"]


def test_a_nan_selection_metric_stops_instead_of_choosing_no_checkpoint(
    tiny_model_dir, corpus_file, senteval_dir, tmp_path, monkeypatch
):
    """The Trainer would take a first NaN as the best and never replace it (nothing compares greater than NaN),
    while the table said "best checkpoint" and the card published `.nan`: the run stops with one line instead."""
    original = hncse.training.trainer.flat_metrics
    calls = []

    def nan_at_the_second_evaluation(results, suite):
        calls.append(1)
        metrics = original(results, suite)
        return {**metrics, "stsb_spearman": float("nan")} if len(calls) == 3 else metrics

    monkeypatch.setattr(hncse.training.trainer, "flat_metrics", nan_at_the_second_evaluation)
    out = tmp_path / "run"
    with pytest.raises(TrainingDivergedError, match="eval_stsb_spearman is nan at step 2") as stopped:
        hncse.train.main(argv(tiny_model_dir, corpus_file, senteval_dir, out, "--resume_state_steps", "1"))
    assert "\n" not in str(stopped.value) and f"Last checkpoint: {out / 'checkpoint-1'}" in str(stopped.value)
    assert not (out / "model.safetensors").exists() and not missing_checkpoint_files(str(out / "checkpoint-1"))


def test_the_card_leaves_out_a_score_that_is_not_finite():
    from hncse.training.model_card import model_index

    finite = model_index("m", {"eval_stsb_spearman": 80.0}, None)
    assert finite and finite[0]["results"]
    assert model_index("m", {"eval_stsb_spearman": float("nan")}, None) == []
