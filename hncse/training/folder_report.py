"""What a saved folder says about its run: `training_curves.png` and the model card (`README.md`), written by one
call for every checkpoint and the final folder."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil

from transformers.trainer_utils import IntervalStrategy

from hncse.errors import first_line
from hncse.plots import CURVES_NAME, draw_training_curves, plotting_unavailable
from hncse.training.checkpoints import checkpoint_step, is_checkpoint_folder
from hncse.training.model_card import write_model_card

logger = logging.getLogger(__name__)


class FolderReport:
    """The curves and the card of one trainer's folders (`write`); the card alone (`write_card`)."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.said_why_no_curves = False

    def write(self, folder: str) -> None:
        self.draw_curves(folder)
        self.write_card(folder)

    def write_card(self, output_dir: str) -> None:
        trainer = self.trainer
        args, state = trainer.args, trainer.state
        if is_checkpoint_folder(output_dir):
            step, which = checkpoint_step(output_dir), "a checkpoint"
        elif args.load_best_model_at_end and state.best_model_checkpoint:
            step = checkpoint_step(state.best_model_checkpoint)
            which = f"the best checkpoint by {args.metric_for_best_model}"
        else:
            step, which = state.global_step, "the last step"
        # The name users load it by: the Hub repository once it exists, else the folder itself.
        repo_id = getattr(trainer, "hub_model_id", None) or args.hub_model_id or output_dir
        encoder = trainer.accelerator.unwrap_model(trainer.model)
        write_model_card(
            output_dir, encoder, args, state, trainer.loss_fn, trainer.run_facts, trainer._tag_names,
            weights=(step, which), repo_id=repo_id,
        )  # fmt: skip

    def draw_curves(self, folder: str) -> None:
        """training_curves.png in the saved folder (its card embeds it) and, from a checkpoint, in output_dir too,
        where it shows the run so far. Without matplotlib the run says once why there is none; a picture that
        fails is a warning, never a lost checkpoint. Either way an earlier run's picture in the folder is removed,
        so that the card never shows another run."""
        args, state = self.trainer.args, self.trainer.state
        path = os.path.join(folder, CURVES_NAME)
        reason = plotting_unavailable()
        if reason:
            if not self.said_why_no_curves:
                logger.warning("no %s is drawn: %s", CURVES_NAME, reason)
                self.said_why_no_curves = True
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            return
        evaluates = args.eval_strategy != IntervalStrategy.NO
        run = os.path.basename(os.path.abspath(args.output_dir))
        try:
            draw_training_curves(
                state.log_history[: self.trainer.training_log_length],
                path,
                best_metric=args.metric_for_best_model if evaluates else None,
                greater_is_better=args.greater_is_better is not False,
                best_step=state.best_global_step,
                title=f"{run} ({args.objective})",
            )
            if is_checkpoint_folder(folder):
                shutil.copyfile(path, os.path.join(args.output_dir, CURVES_NAME))
        except Exception as error:  # noqa: BLE001 - matplotlib's own errors (fonts, backends) have many types
            logger.warning("%s was not drawn: %s", path, first_line(error))
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
