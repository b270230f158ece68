"""Host memory that does not grow with the steps.

glibc's allocator keeps the blocks a training step frees in its heaps for later requests; the step's tensors
change size from batch to batch (the sentences' lengths), so the kept blocks fragment and the process grows with
every step (the quickstart's peak: 1.8× larger after 40 steps than after 5). Handing the free pages back to the
system after each step and each evaluation (`malloc_trim`) keeps it flat at the cost of a few milliseconds; a low
mmap threshold instead (`MALLOC_MMAP_THRESHOLD_`) also keeps it flat, but made the run half again as long, as
every large tensor is then mapped and zeroed afresh. `python -m bench.performance.host_memory` measures the three
(docs/benchmarks.md). Elsewhere than glibc (macOS, musl) there is nothing to do.
"""

from __future__ import annotations

import ctypes
import sys

from transformers import TrainerCallback


def find_malloc_trim():
    """glibc's `malloc_trim`, or None where the C library has none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL("libc.so.6"), "malloc_trim", None)
    except OSError:  # no glibc (musl)
        return None


MALLOC_TRIM = find_malloc_trim()


def release_freed_memory() -> None:
    """Give the pages the C allocator holds free back to the system."""
    if MALLOC_TRIM is not None:
        MALLOC_TRIM(0)


class ReleaseFreedMemory(TrainerCallback):
    """`release_freed_memory` after every optimizer step of a run on the CPU (on a GPU the step's tensors are not in
    the host's heap: nothing to trim on the hot path) and after every evaluation (its embeddings are)."""

    def on_step_end(self, args, state, control, **kwargs):
        if args.device.type == "cpu":
            release_freed_memory()

    def on_evaluate(self, args, state, control, **kwargs):
        release_freed_memory()
