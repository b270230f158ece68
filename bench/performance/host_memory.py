"""The quickstart's peak host memory against the number of steps, with the freed pages handed back after each step
(`hncse.training.host_memory`, the default) and without.

    python -m bench.performance.host_memory [--out docs/benchmarks/host_memory.json] [--render_only]

Each row runs `configs/quickstart.yaml` (evaluation and checkpoints every 25 steps, as the quickstart does) for its
number of steps in a fresh process and reports the process's peak resident memory (ru_maxrss) and wall time.
"kept by the allocator": `malloc_trim` disabled (what training did before); "mmap threshold 64 KiB": disabled too,
with `mallopt(M_MMAP_THRESHOLD, 65536)` instead (every block of 64 KiB or more mapped and unmapped on its own).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import torch

from bench.report import markdown_table, measure_or_render

VARIANTS = {
    "released after each step": "release",
    "kept by the allocator": "keep",
    "mmap threshold 64 KiB": "mmap",
}
RELEASED, KEPT, MAPPED = VARIANTS
ROWS = [(KEPT, 5), (KEPT, 40), (RELEASED, 5), (RELEASED, 40), (RELEASED, 100), (MAPPED, 40)]


def child(variant: str, steps: int) -> dict:
    import hncse.train
    import hncse.training.host_memory

    if variant != "release":
        hncse.training.host_memory.MALLOC_TRIM = None
    if variant == "mmap":
        ctypes.CDLL("libc.so.6").mallopt(-3, 65536)  # M_MMAP_THRESHOLD
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        hncse.train.main(
            ["configs/quickstart.yaml", "--max_steps", str(steps), "--output_dir", out, "--disable_tqdm", "true"]
        )
        seconds = time.perf_counter() - start
    return {"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "seconds": seconds}


def measure() -> dict:
    rows = []
    for name, steps in ROWS:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.performance.host_memory", "--child", VARIANTS[name], str(steps)],
            capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode != 0:
            raise SystemExit(f"host_memory: the {name} run of {steps} steps failed: {proc.stderr.strip()[-500:]}")
        row = {"variant": name, "steps": steps, **json.loads(proc.stdout.strip().splitlines()[-1])}
        rows.append(row)
        print(row, flush=True)
    cpu = platform.processor() or platform.machine()
    return {
        "rows": rows,
        "machine": f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "command": "python -m bench.performance.host_memory",
    }


def render(result: dict) -> str:
    rows = result["rows"]
    peak = {(r["variant"], r["steps"]): r["peak_mib"] for r in rows}
    seconds = {(r["variant"], r["steps"]): r["seconds"] for r in rows}
    table = [[r["variant"], str(r["steps"]), f"{r['peak_mib']:.0f}", f"{r['seconds']:.0f}"] for r in rows]
    kept, released, mapped = KEPT, RELEASED, MAPPED
    return "\n".join(
        [
            f"`{result['command']}` — `configs/quickstart.yaml` (all-MiniLM-L6-v2, `hybrid_sum`, batch 64, evaluation "
            f"and checkpoints every 25 steps) for N steps, one fresh process per row: {result['machine']}.",
            "",
            markdown_table(["freed memory", "steps", "peak MiB", "wall s"], table),
            "",
            f"Peak at 40 steps over peak at 5: {peak[(released, 40)] / peak[(released, 5)]:.2f}× with the pages "
            f"released (the default), {peak[(kept, 40)] / peak[(kept, 5)]:.2f}× kept by the allocator. The quickstart "
            f"(100 steps) peaks at {peak[(released, 100)]:.0f} MiB. A 64 KiB mmap threshold instead: "
            f"{peak[(mapped, 40)]:.0f} MiB at 40 steps, in {seconds[(mapped, 40)] / seconds[(released, 40)]:.2f}× the "
            "time of the release.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "STEPS"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default="docs/benchmarks/host_memory.json")
    parser.add_argument("--render_only", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return
    measure_or_render(args.out, args.render_only, measure, render, "host_memory")


if __name__ == "__main__":
    main()
