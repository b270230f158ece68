"""The output folder is the run's own: a ledger of every name an hncse run wrote at its top level, so that a run
writes into, and `--overwrite_output_dir` deletes from, only what hncse wrote, a folder of someone else's files is
refused, and a finished run is known as finished.

The ledger (`_hncse_files.json`, named with `_` so that Hub pushes leave it out, like the lock) is written
atomically by the main process. A name is recorded before its first byte is written where the run knows it (a
checkpoint folder, the Trainer's result files), and otherwise by a sweep once a save has ended; while the run
writes, the ledger says so (`writing`), so that after a kill mid-save whatever that save left counts as the run's.
`finished` is set when the run has written its last file (and pushed, with --push_to_hub): only then is the
folder a finished run, which no later command changes without --overwrite_output_dir.
"""

from __future__ import annotations

import json
import logging
import os
import shutil

from hncse.errors import ConfigError
from hncse.training.output_lock import LOCK_NAME

logger = logging.getLogger(__name__)

LEDGER_NAME = "_hncse_files.json"  # "_": the Trainer never pushes such a name, so it stays on this machine
# What the Trainer writes at the top of output_dir outside the model save (`save_metrics`, `save_state`), recorded
# before the run's first save so that a kill while one is written leaves nothing unknown.
TRAINER_RESULT_FILES = (
    "train_results.json", "eval_results.json", "predict_results.json", "test_results.json", "all_results.json",
    "trainer_state.json",
)  # fmt: skip
NOT_OWNED = (LOCK_NAME, LEDGER_NAME, LEDGER_NAME + ".tmp")  # the folder's own bookkeeping


def write_json_atomically(path: str, obj) -> None:
    """Write JSON so that a reader sees the old file or the new one, never a part (same-folder rename)."""
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


class OutputFolder:
    """The ledger of `output_dir`. Only the process that saves (the main one) writes it."""

    def __init__(self, output_dir: str):
        self.output_dir = output_dir
        self.path = os.path.join(output_dir, LEDGER_NAME)
        self._ledger = self._read()

    def _read(self) -> dict:
        try:
            with open(self.path, encoding="utf-8") as f:
                ledger = json.load(f)
        except FileNotFoundError:
            return {"written": [], "writing": False, "finished": None}
        except (OSError, ValueError, UnicodeDecodeError) as error:
            raise ConfigError(
                f"--output_dir {self.output_dir}: {self.path} is damaged ({error}); it records which files hncse "
                "wrote there. Use another --output_dir, or delete that folder's files yourself"
            ) from None
        if not isinstance(ledger, dict) or not isinstance(ledger.get("written"), list):
            raise ConfigError(f"--output_dir {self.output_dir}: {self.path} is not an hncse ledger")
        return {"writing": False, "finished": None, **ledger}

    def _write(self) -> None:
        os.makedirs(self.output_dir, exist_ok=True)
        write_json_atomically(self.path, self._ledger)

    @property
    def written(self) -> set[str]:
        return set(self._ledger["written"])

    @property
    def finished(self) -> dict | None:
        """{"step": N} once a run has written everything it writes; None before (or while it runs)."""
        return self._ledger.get("finished")

    def present(self) -> list[str]:
        if not os.path.isdir(self.output_dir):
            return []
        return sorted(name for name in os.listdir(self.output_dir) if name not in NOT_OWNED)

    def foreign(self) -> list[str]:
        """The names at the top of the folder that no hncse run wrote. After a run killed while it wrote
        (`writing`), everything present counts as that run's."""
        if self._ledger.get("writing"):
            return []
        return [name for name in self.present() if name not in self.written]

    def check_owned(self) -> None:
        """Refuse a folder that holds files hncse did not write: the run would write over them (a config.json, a
        README.md) or mix its model with another."""
        foreign = self.foreign()
        if foreign:
            shown = ", ".join(foreign[:4]) + (f" and {len(foreign) - 4} more" if len(foreign) > 4 else "")
            raise ConfigError(
                f"--output_dir {self.output_dir} holds files that no hncse run wrote there ({shown}); nothing was "
                "changed. Use another --output_dir (an empty or new folder), or move those files away"
            )

    def claim(self, *names: str) -> None:
        """Record names before they are written (the folder is taken over: `writing` until `sweep` or `finish`)."""
        new = [name for name in names if name not in self.written]
        if new or not self._ledger.get("writing") or self.finished:
            self._ledger["written"] = sorted(self.written | set(new))
            self._ledger["writing"], self._ledger["finished"] = True, None
            self._write()

    def sweep(self) -> None:
        """After a save has ended: every name present is this run's (its start refused anyone else's)."""
        self._ledger["written"] = sorted(self.written | set(self.present()))
        self._ledger["writing"] = False
        self._write()

    def finish(self, step: int) -> None:
        """The run has written its last file: from now on the folder is a finished run."""
        self._ledger["written"] = sorted(self.written | set(self.present()))
        self._ledger["writing"], self._ledger["finished"] = False, {"step": step}
        self._write()

    def remove_written(self) -> list[str]:
        """--overwrite_output_dir: delete what hncse runs wrote here (files, links, folders), nothing else."""
        removed = []
        for name in sorted(self.written):
            path = os.path.join(self.output_dir, name)
            if os.path.islink(path) or os.path.isfile(path):
                os.remove(path)
            elif os.path.isdir(path):
                shutil.rmtree(path)
            else:
                continue
            removed.append(name)
        self._ledger = {"written": [], "writing": True, "finished": None}
        self._write()
        return removed
