"""The project's user-facing errors: one line each, naming the file, line or argument at fault.

Every one derives from `HNCSEError`, which the command-line tools catch and print as `<tool>: error: <message>`
(exit status 2) instead of a traceback. Each also keeps the built-in base it always had (ValueError, OSError, …),
so code that caught those still does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


class HNCSEError(Exception):
    """Bad input or an unrecoverable condition that the user can act on; the message says how."""


class ConfigError(HNCSEError, ValueError):
    """An invalid argument or config file; the message names the argument (and file)."""


class DataError(HNCSEError, ValueError):
    """Bad training data; the message is one line naming the file (and line)."""


class ModelNotFoundError(HNCSEError, OSError):
    """The model is neither a local folder nor reachable on the Hub, or a folder lacks a file it needs."""


class EvalConfigError(HNCSEError, ValueError):
    """An evaluation task or mode that does not exist; the message names the argument."""


class EvalDataError(HNCSEError, FileNotFoundError):
    """An evaluation file is missing or malformed; the message names it and the flag that sets the folder."""


class TrainingDivergedError(HNCSEError, RuntimeError):
    """The loss or the weights became NaN or infinite; training stopped with the checkpoints written so far intact."""


class DiskFullError(HNCSEError, OSError):
    """A save ran out of disk space or hit the file-size limit; the message says which checkpoint is complete."""


class HubError(HNCSEError, RuntimeError):
    """Creating or pushing to the Hub repository failed; what was saved locally stays."""


class StoppedBySignal(HNCSEError):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint to resume from; exits 128 + the signal."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.exit_code = 128 + signal_number


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (or its type when it has none), for one-line errors."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def user_message(error: HNCSEError) -> str:
    """An error's one line. One raised in a DataLoader worker (`--dataloader_num_workers` ≥ 1) comes back wrapped by
    torch ("Caught DataError in DataLoader worker process 0. Original Traceback …"): its own last line is kept."""
    text = str(error).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        return last.split(": ", 1)[1] if last.startswith(f"{type(error).__module__}.") else last
    return text


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE is set, so that an error can say why the Hub was not reached."""
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def run_cli(main: Callable[[], object], prog: str) -> None:
    """Run a command-line entry point: an `HNCSEError` is printed as `<prog>: error: <message>`, exit status 2; a
    stop on a signal as `<prog>: <message>`, exit status 128 + the signal."""
    try:
        main()
    except StoppedBySignal as stopped:
        print(f"{prog}: {stopped}", file=sys.stderr)
        sys.exit(stopped.exit_code)
    except HNCSEError as error:
        print(f"{prog}: error: {user_message(error)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # before training, or a second Ctrl-C during it: no checkpoint was made for it
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
