"""Where this machine keeps its local copy of the evaluation data: the one place `HNCSE_DATA_DIR` is read."""

from __future__ import annotations

import os

DATA_DIR_ENV = "HNCSE_DATA_DIR"


def resolve_data_dir(data_dir: str | None) -> str | None:
    """The folder given by a flag, else `$HNCSE_DATA_DIR`, else None (STS sets then come from the Hub)."""
    return data_dir or os.environ.get(DATA_DIR_ENV) or None
