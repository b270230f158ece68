"""What a failed launch of several processes printed, cut to the part that says why."""

from __future__ import annotations

import re
import subprocess


def launch_failure(proc: subprocess.CompletedProcess, limit: int = 3000) -> str:
    """The failed rank's own traceback, then the end of stderr. torchrun's tail is the other ranks' broken
    connections and its own summary, so the first failed rank's lines (`[rankN]: ...`), printed above them, are
    picked out by the rank torchrun names as the root cause."""
    stderr = proc.stderr or ""
    root = re.search(r"Root Cause \(first observed failure\):.*?rank\s*:\s*(\d+)", stderr, re.S)
    rank = root.group(1) if root else "0"
    own = "\n".join(line for line in stderr.splitlines() if line.startswith(f"[rank{rank}]:"))
    tail = stderr[-limit:]
    return f"exit status {proc.returncode}\n--- rank {rank}:\n{own[-limit:]}\n--- the end of stderr:\n{tail}"
