"""The run's output folder, owned by one object: `RunFolder`.

It holds the lock (one run at a time, `output_lock`), the ledger of what hncse wrote there (`output_folder`), and
the checkpoint rules (`checkpoints`): which checkpoint to resume or why to refuse, when a checkpoint keeps the
state to resume, when it is complete (its manifest, written last), rotation, an earlier run cleared by
--overwrite_output_dir when this one first writes, a write refused by a full disk as one line, and the run marked
finished. The run (`hncse.training.run`) and the trainer call it at a few points; only the main process writes.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, HubStrategy, IntervalStrategy

from hncse.errors import DiskFullError
from hncse.training.checkpoints import (
    checkpoint_global_step,
    checkpoint_to_resume,
    last_complete_checkpoint,
    rotate_checkpoints,
    write_manifest,
)
from hncse.training.output_folder import TRAINER_RESULT_FILES, OutputFolder
from hncse.training.output_lock import OutputLock

logger = logging.getLogger(__name__)


class RunFolder:
    """`args.output_dir` for one run. `wait_for_everyone`: the processes' barrier (the trainer's accelerator), for
    the steps every process takes part in."""

    def __init__(self, args, wait_for_everyone=lambda: None):
        self.args = args
        self.path = args.output_dir
        self.ledger = OutputFolder(args.output_dir)
        self.wait_for_everyone = wait_for_everyone
        self.resume_state_step = 0  # the step of the last checkpoint written with the state to resume
        self.earlier_run_cleared = not args.overwrite_output_dir

    # ---- before training ------------------------------------------------------------------------------------------

    @staticmethod
    def lock(args) -> OutputLock:
        """One run at a time in output_dir: its main process holds the lock until the run ends."""
        return OutputLock(args.output_dir, active=args.should_save)

    @staticmethod
    def checkpoint_to_resume(args, settings: dict) -> str | None:
        """The checkpoint this run continues from, or None; refuses another run's folder, and raises `RunFinished`
        where output_dir holds this run, finished (`checkpoints.checkpoint_to_resume`)."""
        return checkpoint_to_resume(args, settings)

    def resumed_from(self, checkpoint: str) -> None:
        self.resume_state_step = checkpoint_global_step(checkpoint)

    def last_complete_checkpoint(self) -> str | None:
        return last_complete_checkpoint(self.path) if os.path.isdir(self.path) else None

    # ---- a checkpoint ---------------------------------------------------------------------------------------------

    def plan_checkpoint(self, state, should_stop: bool, always_resumable: bool) -> bool:
        """Whether the save at this step writes a checkpoint, and (`writes_resume_state`) whether it keeps what
        resuming needs (optimizer, scheduler, RNG: about 3× the weights): only every --resume_state_steps steps and
        at the end. A save in between keeps the model only, and only if it is a new best (or if no evaluation and
        metric pick one): model selection stays exact while most saves write nothing. `always_resumable`: every
        checkpoint keeps it (DeepSpeed, which reloads the best one through its engine state)."""
        args, step = self.args, state.global_step
        due = step - self.resume_state_step >= args.resume_state_steps or step >= state.max_steps or should_stop
        selects = args.metric_for_best_model is not None and args.eval_strategy != IntervalStrategy.NO
        if not due and selects and state.best_global_step != step:
            return False
        # With --hub_strategy checkpoint, last-checkpoint/ on the Hub is for resuming elsewhere.
        always = always_resumable or args.hub_strategy == HubStrategy.CHECKPOINT
        if (due or always) and not args.save_only_model:
            self.resume_state_step = step
        return True

    def writes_resume_state(self, step: int) -> bool:
        """Whether the checkpoint of `step` gets the state to resume (decided by `plan_checkpoint`)."""
        return self.resume_state_step == step

    def checkpoint_folder(self, step: int) -> str:
        return os.path.join(self.path, f"{PREFIX_CHECKPOINT_DIR}-{step}")

    def begin_checkpoint(self, folder: str) -> None:
        """Every process, before a checkpoint's first byte: the earlier run cleared, the folder recorded."""
        self.clear_earlier_run(every_process=True)
        if self.args.should_save:
            self.ledger.claim(os.path.basename(folder))

    def complete_checkpoint(self, folder: str, step: int) -> None:
        """Every process, once it has written its files: the manifest, written last, makes the checkpoint complete
        (resume and rotation pass over one without it)."""
        self.wait_for_everyone()
        if self.args.should_save and os.path.isdir(folder):
            write_manifest(folder, step, resumable=self.writes_resume_state(step))

    def end_checkpoint(self, best: str | None) -> None:
        """After a checkpoint and its push: every name present recorded, old checkpoints rotated."""
        if self.args.should_save:
            self.ledger.sweep()
            rotate_checkpoints(self.path, self.args.save_total_limit, best)

    @contextlib.contextmanager
    def saving(self, folder: str, step: int):
        """A full disk or the file-size limit while saving: one line that says what is complete (the folder cut
        short has no manifest, so resume and rotation pass it over)."""
        try:
            yield
        except (OSError, RuntimeError) as error:
            if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
                reason = os.strerror(error.errno).lower()
            elif isinstance(error, RuntimeError) and "inline_container" in str(error):
                # torch.save's zip writer reports a refused write (no space, the file-size limit) this way
                reason = "a write was refused (a full disk or the file-size limit)"
            else:
                raise
            raise DiskFullError(
                f"{reason} while saving {folder} at step {step}: it is incomplete and will be passed over. Last "
                f"complete checkpoint: {self.last_complete_checkpoint() or 'none'}; make room and run the same "
                "command again to resume from it"
            ) from None

    # ---- the run's other files ------------------------------------------------------------------------------------

    def clear_earlier_run(self, every_process: bool) -> None:
        """--overwrite_output_dir: what the earlier run wrote is deleted when this run first writes into output_dir,
        not before, so that a run that fails before then (a bad value found late, a crash) loses nothing; files no
        hncse run wrote are never deleted (the run's start refuses a folder that has them). `every_process`:
        called by all processes, which then wait until it is done (a checkpoint, where each writes its own files)."""
        if self.earlier_run_cleared:
            return
        self.earlier_run_cleared = True
        if self.args.should_save and os.path.isdir(self.path):
            removed = self.ledger.remove_written()
            logger.info("--overwrite_output_dir: removed what the earlier run wrote in %s: %s", self.path,
                        ", ".join(removed) or "nothing")  # fmt: skip
        if every_process:
            self.wait_for_everyone()

    def claim_results(self) -> None:
        """Before the Trainer writes its result files (`save_metrics`, `save_state`) at the top of output_dir."""
        if self.args.should_save:
            self.clear_earlier_run(every_process=False)
            self.ledger.claim(*TRAINER_RESULT_FILES)

    def claim_final(self, output_dir: str) -> None:
        """The main process, before it saves the final folder into output_dir."""
        if self.args.should_save and os.path.abspath(output_dir) == os.path.abspath(self.path):
            self.ledger.claim()  # until the run marks itself finished, whatever appears here is the run's

    def finish(self, step: int) -> None:
        """The run has written everything it writes (and pushed): output_dir is now a finished run."""
        if self.args.should_save:
            self.ledger.finish(step)
