"""The command line of a short run on the tiny test model, shared by the end-to-end tests of every folder."""

import contextlib

import torch

import hncse.training.trainer
import run_hncse

REPO = run_hncse.__file__.rsplit("/", 1)[0]


def base_argv(tiny_model_dir, corpus_file, senteval_dir, output_dir):
    return [
        "--model_name_or_path", str(tiny_model_dir),
        "--train_file", str(corpus_file),
        "--senteval_dir", str(senteval_dir),
        "--output_dir", str(output_dir),
        "--per_device_train_batch_size", "8",
        "--max_seq_length", "16",
        "--learning_rate", "1e-3",
        "--eval_steps", "1",
        "--save_steps", "1",
        "--logging_steps", "1",
        "--max_steps", "3",
        "--dataloader_pin_memory", "false",
        "--disable_tqdm", "true",
    ]  # fmt: skip


class NaNLossFrom(torch.nn.Module):
    """Wraps an objective: its loss is NaN at the `step`-th call (and every later one if `after`)."""

    def __init__(self, inner, step: int, after: bool = False):
        super().__init__()
        self.inner, self.step, self.after, self.calls = inner, step, after, 0

    def forward(self, z1, z2, exchange):
        self.calls += 1
        loss, stats = self.inner(z1, z2, exchange=exchange)
        bad = self.calls == self.step or (self.after and self.calls > self.step)
        return (loss * float("nan") if bad else loss), stats

    def get_config_dict(self):
        return self.inner.get_config_dict()


@contextlib.contextmanager
def crash_after_step(step: int):
    """Within it, training raises RuntimeError("simulated crash") once `step` steps are done (after their save)."""
    trainer = hncse.training.trainer.HNCSETrainer
    original = trainer.training_step

    def crash(self, *args, **kwargs):
        if self.state.global_step == step:
            raise RuntimeError("simulated crash")
        return original(self, *args, **kwargs)

    trainer.training_step = crash
    try:
        yield
    finally:
        trainer.training_step = original
