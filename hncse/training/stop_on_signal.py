"""Ctrl-C and SIGTERM (a scheduler's time limit, `kill`): the first signal finishes the step, saves a resumable
checkpoint and stops; a second one stops at once. Before training, Ctrl-C stops the start-up, even where a library
swallows the KeyboardInterrupt (`StartupInterrupts`)."""

from __future__ import annotations

import logging
import signal
import threading

import torch
from transformers import TrainerCallback

logger = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal(TrainerCallback):
    """Within training, SIGINT/SIGTERM ask for a stop: at the end of the step (with several processes, at the next
    step that logs, evaluates or saves, where the processes agree on it without an extra wait for the device),
    training saves a checkpoint with the state to resume and ends. `signal_number` is then the signal, and
    `stopped_at` the step saved."""

    def __init__(self):
        self.signal_number: int | None = None
        self.stopped_at: int | None = None
        self.previous = {}

    def on_train_begin(self, args, state, control, **kwargs):
        if threading.current_thread() is threading.main_thread():  # where Python runs signal handlers
            self.previous = {sig: signal.signal(sig, self.request) for sig in SIGNALS}

    def on_train_end(self, args, state, control, **kwargs):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    def request(self, signal_number, frame) -> None:
        if self.signal_number is not None:  # the second: stop now, as the signal would have without us
            self.on_train_end(None, None, None)
            signal.raise_signal(signal_number)
            return
        self.signal_number = signal_number
        logger.warning(
            "%s: finishing this step, saving a checkpoint to resume from, then stopping (again to stop at once)",
            signal.Signals(signal_number).name,
        )

    def on_step_end(self, args, state, control, **kwargs):
        stop = self.signal_number is not None
        if args.world_size > 1:
            if not (control.should_log or control.should_evaluate or control.should_save):
                return
            flag = torch.tensor([float(stop)], device=args.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            stop = bool(flag.item())
            if stop and self.signal_number is None:
                self.signal_number = signal.SIGTERM  # another process was asked
        if stop and self.stopped_at is None:
            self.stopped_at = state.global_step
            control.should_save = True
            control.should_training_stop = True


class StartupInterrupts:
    """Ctrl-C during start-up (reading and tokenising the data, loading the model) stops the run, even where a
    library catches the KeyboardInterrupt: datasets hashes the tokenising function inside a bare `except:` and would
    carry on, and the run would train to the end. The signal is remembered as it raises, and `release()` (called
    just before training, where `StopOnSignal` takes over) raises it again if it was swallowed."""

    def __init__(self):
        self.seen = False
        self.previous = None

    def install(self) -> StartupInterrupts:
        # Not where Ctrl-C is ignored (a run started with nohup or in the background): it stays ignored.
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
            self.previous = signal.signal(signal.SIGINT, self._interrupt)
        return self

    def _interrupt(self, signal_number, frame) -> None:
        self.seen = True
        raise KeyboardInterrupt

    def restore(self) -> None:
        """The usual Ctrl-C back."""
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None

    def release(self) -> None:
        """The usual Ctrl-C back; a KeyboardInterrupt if one came and was swallowed."""
        self.restore()
        if self.seen:
            self.seen = False
            raise KeyboardInterrupt
