"""The divergence guard: no non-finite loss reaches the weights, no non-finite weights are saved, and no NaN metric
picks the best checkpoint; each stops training with one line that names the last complete checkpoint."""

from __future__ import annotations

import math

import torch
from transformers import TrainerCallback
from transformers.trainer_utils import IntervalStrategy

from hncse.errors import TrainingDivergedError


class DivergenceGuard(TrainerCallback):
    """Watches one trainer. `observe(loss)` at every training step; as a callback, at the end of every step that
    logs, evaluates or saves — on every process, before any of them does it — it stops the run if a loss was
    non-finite.

    With a fused optimizer (the Trainer's default AdamW) and no fp16 loss scaler this costs no host
    synchronisation: the first bad step is recorded on the device, and the optimizer skips every update from it on
    (the `found_inf` input that fused optimizers take from a GradScaler). Otherwise every process agrees on it at
    each step."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.first_bad: tuple[torch.Tensor, torch.Tensor] | None = None  # (step, loss) of the first non-finite loss

    def observe(self, loss: torch.Tensor) -> None:
        trainer = self.trainer
        bad = trainer.accelerator.reduce((~torch.isfinite(loss.detach())).float().reshape(()), reduction="sum") > 0
        optimizer = self.optimizer_that_skips()
        if optimizer is None:
            if bad.item():
                self.raise_diverged(trainer.state.global_step + 1, loss.detach().float())
            return
        if self.first_bad is None:
            self.first_bad = (torch.zeros((), device=loss.device), torch.zeros((), device=loss.device))
        step, value = self.first_bad
        first = bad & (step == 0)
        self.first_bad = (
            torch.where(first, trainer.state.global_step + 1, step),
            torch.where(first, loss.float(), value),
        )
        optimizer.found_inf = (self.first_bad[0] > 0).float()

    def optimizer_that_skips(self):
        """The optimizer when it can skip an update on the device (fused, and not stepped by a GradScaler)."""
        trainer = self.trainer
        if trainer.optimizer is None or trainer.is_deepspeed_enabled or trainer.accelerator.scaler is not None:
            return None
        optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate's wrapper
        return optimizer if optimizer.defaults.get("fused") is True else None

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_log or control.should_evaluate or control.should_save or control.should_training_stop:
            if self.first_bad is not None and self.first_bad[0].item() > 0:
                step, value = self.first_bad
                self.raise_diverged(int(step.item()), value)

    def raise_diverged(self, step: int, loss: torch.Tensor) -> None:
        done = self.trainer.state.global_step
        stopped = (
            "training stopped before that step's update"
            if step > done
            else f"no update was applied from that step on, and training stopped at step {done}"
        )
        raise TrainingDivergedError(
            f"the loss became {loss.item()} at step {step}; {stopped}. Last checkpoint: {self.last_checkpoint()} "
            "(lower --learning_rate, or try --bf16 false)"
        )

    def refuse_non_finite_weights(self, state_dict: dict, output_dir: str) -> None:
        """A finite loss can still be followed by an update that overflows the weights: never write those, so that
        every checkpoint on disk (and the one rotation keeps) is usable."""
        checks = [torch.isfinite(t).all() for t in state_dict.values() if t.is_floating_point() and t.numel()]
        if checks and not bool(torch.stack(checks).all()):
            raise TrainingDivergedError(
                f"the weights became inf or nan in step {self.trainer.state.global_step}'s update, so {output_dir} "
                f"was not written. Last checkpoint: {self.last_checkpoint()} (lower --learning_rate, or try --bf16 "
                "false)"
            )

    def refuse_nan_selection_metric(self, metrics: dict[str, float]) -> None:
        """A NaN metric picks no checkpoint, yet the Trainer would take the first NaN as the best and never replace
        it (nothing compares greater than NaN): stop with one line instead, the checkpoints so far kept. It means
        every pair got the same similarity (constant or non-finite embeddings); constant gold scores are refused
        before training (`hncse.evaluation.sts_files`)."""
        args = self.trainer.args
        name = args.metric_for_best_model
        if name is None or args.eval_strategy == IntervalStrategy.NO:
            return
        name = name if name.startswith("eval_") else f"eval_{name}"
        value = metrics.get(name)
        if value is not None and not math.isfinite(value):
            raise TrainingDivergedError(
                f"--metric_for_best_model {name} is {value} at step {self.trainer.state.global_step}: the dev set "
                "cannot rank these embeddings (every pair gets the same similarity), so no checkpoint can be chosen "
                f"by it. Last checkpoint: {self.last_checkpoint()} (check the model's output, or choose another "
                "metric)"
            )

    def last_checkpoint(self) -> str:
        return self.trainer.run_folder.last_complete_checkpoint() or "none"
