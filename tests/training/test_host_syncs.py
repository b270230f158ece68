"""A training step never waits for the device: no value is read back to the host outside the steps that log,
evaluate or save. On CPU nothing waits, so the reads themselves (`.item()`, `.tolist()`, `bool(tensor)`) are
counted in steps 3-5 of 6; on a GPU `python -m bench.gpu_check` runs those steps under
torch.cuda.set_sync_debug_mode("error")."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from tiny_run import NaNLossFrom, base_argv

import hncse.train
import hncse.training.preflight
import hncse.training.trainer
from bench.gpu_check.check import HostReads, QuietStepAudit
from hncse.errors import TrainingDivergedError
from hncse.training.divergence import DivergenceGuard


@pytest.mark.parametrize(
    "objective,data", [("simcse", "sentences"), ("hybrid", "sentences"), ("hybrid_sum", "sentences"),
                       ("simcse", "triplets"), ("hybrid", "triplets")]
)  # fmt: skip
def test_quiet_steps_read_nothing_back(
    tiny_model_dir, corpus_file, triplet_file, tmp_path, monkeypatch, objective, data
):
    reads = HostReads()  # the counter and the step window of `python -m bench.gpu_check`'s CPU form
    original_init = hncse.training.trainer.HNCSETrainer.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.add_callback(QuietStepAudit(reads))

    monkeypatch.setattr(hncse.training.trainer.HNCSETrainer, "__init__", init)
    train_file = corpus_file if data == "sentences" else triplet_file
    argv = base_argv(tiny_model_dir, train_file, tmp_path, tmp_path / "out") + [
        "--objective", objective, "--hnm_k", "4", "--hnm_s", "4", "--pm_ratio_grid_size", "3",
        "--eval_strategy", "no", "--load_best_model_at_end", "false", "--max_steps", "6",
        "--logging_steps", "6", "--save_steps", "6",
    ]  # fmt: skip
    if data == "triplets":
        argv += ["--hard_negative_weight", "0.5"]
    with reads:
        hncse.train.main(argv)
    assert reads.calls == [], "\n".join(reads.calls)


def test_a_nan_loss_between_logging_steps_applies_no_update(tiny_model_dir, corpus_file, tmp_path, monkeypatch):
    """The loss is NaN at step 3; the host looks at step 4 (a save): the weights are still those of step 2."""
    real_build_loss = hncse.training.preflight.build_loss

    monkeypatch.setattr(
        hncse.training.preflight, "build_loss", lambda args: NaNLossFrom(real_build_loss(args), 3, after=True)
    )
    weights_when_stopped = {}
    original_raise = DivergenceGuard.raise_diverged

    def record(self, step, loss):
        assert self.optimizer_that_skips() is not None  # the path without a per-step host read
        weights_when_stopped.update({k: v.clone() for k, v in self.trainer.model.encoder.state_dict().items()})
        original_raise(self, step, loss)

    monkeypatch.setattr(DivergenceGuard, "raise_diverged", record)
    out = tmp_path / "out"
    argv = base_argv(tiny_model_dir, corpus_file, tmp_path, out) + [
        "--eval_strategy", "no", "--load_best_model_at_end", "false", "--max_steps", "6",
        "--logging_steps", "100", "--save_steps", "2",
    ]  # fmt: skip
    with pytest.raises(TrainingDivergedError, match=r"loss became nan at step 3; no update was applied from that"):
        hncse.train.main(argv)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]
    saved = load_file(out / "checkpoint-2" / "model.safetensors")
    assert weights_when_stopped.keys() >= saved.keys()
    for name, value in saved.items():
        assert torch.equal(weights_when_stopped[name], value), name
