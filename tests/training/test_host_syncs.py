"""A training step never waits for the device: no value is read back to the host outside the steps that log,
evaluate or save. On CPU nothing waits, so the reads themselves (`.item()`, `.tolist()`, `bool(tensor)`) are
counted; on a GPU `python -m bench.gpu_check` runs the same step under torch.cuda.set_sync_debug_mode("error")."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from tiny_run import base_argv
from transformers import TrainerCallback

import hncse.training.trainer
import run_hncse
from hncse.errors import TrainingDivergedError


class HostReads:
    """Counts `.item()`, `.tolist()` and `bool()` on tensors while `active`, with where each came from."""

    def __init__(self, monkeypatch):
        self.active = False
        self.calls: list[str] = []
        for name in ("item", "tolist", "__bool__"):
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self.counting(name, original))

    def counting(self, name, original):
        def read(tensor, *args, **kwargs):
            if self.active:
                import traceback

                frame = traceback.extract_stack(limit=2)[0]
                self.calls.append(f"{name} at {frame.filename}:{frame.lineno}")
            return original(tensor, *args, **kwargs)

        return read


class CountQuietSteps(TrainerCallback):
    """Counts from the start of step 3 to the end of step 5, steps that neither log, evaluate nor save."""

    def __init__(self, reads: HostReads):
        self.reads = reads

    def on_step_begin(self, args, state, control, **kwargs):
        self.reads.active = 2 <= state.global_step < 5

    def on_step_end(self, args, state, control, **kwargs):
        self.reads.active = False


@pytest.mark.parametrize("objective", ["simcse", "hybrid", "hybrid_sum"])
def test_quiet_steps_read_nothing_back(tiny_model_dir, corpus_file, tmp_path, monkeypatch, objective):
    reads = HostReads(monkeypatch)
    original_init = hncse.training.trainer.HNCSETrainer.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.add_callback(CountQuietSteps(reads))

    monkeypatch.setattr(hncse.training.trainer.HNCSETrainer, "__init__", init)
    argv = base_argv(tiny_model_dir, corpus_file, tmp_path, tmp_path / "out") + [
        "--objective", objective, "--hnm_k", "4", "--hnm_s", "4", "--pm_ratio_grid_size", "3",
        "--eval_strategy", "no", "--load_best_model_at_end", "false", "--max_steps", "6",
        "--logging_steps", "6", "--save_steps", "6",
    ]  # fmt: skip
    run_hncse.main(argv)
    assert reads.calls == [], "\n".join(reads.calls)


def test_a_nan_loss_between_logging_steps_applies_no_update(tiny_model_dir, corpus_file, tmp_path, monkeypatch):
    """The loss is NaN at step 3; the host looks at step 4 (a save): the weights are still those of step 2."""
    real_build_loss = hncse.training.trainer.build_loss

    class NaNFromThirdStep(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.calls = inner, 0

        def forward(self, z1, z2, exchange):
            self.calls += 1
            loss, stats = self.inner(z1, z2, exchange=exchange)
            return (loss * float("nan") if self.calls >= 3 else loss), stats

        def get_config_dict(self):
            return self.inner.get_config_dict()

    monkeypatch.setattr(hncse.training.trainer, "build_loss", lambda args: NaNFromThirdStep(real_build_loss(args)))
    weights_when_stopped = {}
    original_raise = hncse.training.trainer.HNCSETrainer._raise_diverged

    def record(self, step, loss):
        assert self._optimizer_that_skips() is not None  # the path without a per-step host read
        weights_when_stopped.update({k: v.clone() for k, v in self.model.encoder.state_dict().items()})
        original_raise(self, step, loss)

    monkeypatch.setattr(hncse.training.trainer.HNCSETrainer, "_raise_diverged", record)
    out = tmp_path / "out"
    argv = base_argv(tiny_model_dir, corpus_file, tmp_path, out) + [
        "--eval_strategy", "no", "--load_best_model_at_end", "false", "--max_steps", "6",
        "--logging_steps", "100", "--save_steps", "2",
    ]  # fmt: skip
    with pytest.raises(TrainingDivergedError, match=r"loss became nan at step 3; no update was applied from that"):
        run_hncse.main(argv)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]
    saved = load_file(out / "checkpoint-2" / "model.safetensors")
    assert weights_when_stopped.keys() >= saved.keys()
    for name, value in saved.items():
        assert torch.equal(weights_when_stopped[name], value), name
