"""One run at a time in an output folder: two runs started into the same folder would both write its checkpoints
and model. The run's main process holds `_hncse.lock` (named with `_` so that the Trainer's Hub pushes leave it
out) for as long as it runs; a second run is refused with one line naming the holder."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time

from hncse.errors import ConfigError

logger = logging.getLogger(__name__)

LOCK_NAME = "_hncse.lock"


class OutputLock:
    """Context manager: take the lock of `output_dir` (creating the folder if needed) on entry, give it back on
    exit, removing the folder again if the run left nothing else in it. `active` False: a process that does not
    write the folder (not the main one) takes nothing."""

    def __init__(self, output_dir: str, active: bool = True):
        self.output_dir = output_dir
        self.path = os.path.join(output_dir, LOCK_NAME)
        self.active = active
        self.created_folder = False

    def __enter__(self) -> OutputLock:
        if not self.active:
            return self
        self.created_folder = not os.path.isdir(self.output_dir)
        os.makedirs(self.output_dir, exist_ok=True)
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                other = self.holder()
                if not self.is_stale(other):
                    self.active = False  # not ours: leave it and the folder alone
                    who = (
                        f"pid {other.get('pid')} on {other.get('host')}, since {other.get('since')}"
                        if other
                        else "its lock file is empty or damaged, so the run is unknown"
                    )
                    raise ConfigError(
                        f"--output_dir {self.output_dir} is in use by another run ({who}); wait for it to end, use "
                        f"another --output_dir, or delete {self.path} if that run is gone"
                    ) from None
                logger.warning("%s: taking over the lock of a run that is gone (pid %s)", self.path, other.get("pid"))
                os.remove(self.path)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(holder, f)
            return self
        raise ConfigError(f"--output_dir {self.output_dir}: cannot take its lock {self.path}")

    def holder(self) -> dict:
        try:
            with open(self.path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}  # being written this instant, or damaged: count it as held

    @staticmethod
    def is_stale(holder: dict) -> bool:
        """Held by a process of this machine that no longer exists (a run killed with SIGKILL)."""
        if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
            return False
        try:
            os.kill(holder["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def __exit__(self, *exc) -> None:
        if not self.active:
            return
        try:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path)
            if self.created_folder and not os.listdir(self.output_dir):
                os.rmdir(self.output_dir)  # a run that failed before writing anything leaves no empty folder
        except OSError as error:
            # The folder became read-only or vanished mid-run: say so, but never in place of the error that ended
            # the run (it is the one that says what happened).
            logger.warning(
                "%s: the lock could not be given back (%s); delete it before the next run", self.path, error
            )
