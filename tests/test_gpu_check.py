"""`python -m bench.gpu_check` runs its CPU form here (so that the GPU verification command never rots)."""

import os
import subprocess
import sys

from launch_output import launch_failure
from tiny_run import REPO


def test_gpu_check_cpu_form_writes_its_report(project_data, tmp_path):
    out = tmp_path / "gpu.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check", "--out", str(out), "--steps", "3"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "HNCSE_DATA_DIR": str(project_data)},  # its corpus: the generated wiki1m extract
    )  # fmt: skip
    assert proc.returncode == 0, launch_failure(proc)
    report = out.read_text()
    assert "No GPU here: this is the reduced CPU form" in report
    for section in ("## Environment", "## Host syncs", "## Training throughput", "## Objectives without",
                    "## Cached step", "## Input pipeline", "## Decoder + LoRA"):  # fmt: skip
        assert section in report
    decoder = report.split("## Decoder + LoRA")[1].split("##")[0]
    assert "| fp32 |" in decoder and "n/a (CPU)" in decoder and "→" in decoder, decoder
    audit = report.split("## Host syncs")[1].split("##")[0]
    assert all(f"| {objective} | none |" in audit for objective in ("simcse", "pm", "hnm", "hybrid", "hybrid_sum"))
    stability = report.split("## Objectives without")[1].split("##")[0]
    assert stability.count("| fp32 | 3 | 0 |") == 5
    # Across processes (2 gloo processes here): the global batch, every launcher's curve, and the resume.
    global_batch = report.split("## Global batch")[1].split("##")[0]
    for objective in ("simcse", "pm", "hnm", "hybrid", "hybrid_sum"):
        loss_gap, grad_gap = next(
            line.split("|")[2:4] for line in global_batch.splitlines() if line.startswith(f"| {objective} |")
        )
        assert float(loss_gap) < 1e-5 and float(grad_gap) < 1e-4, global_batch
    launchers = report.split("## Training through the launchers")[1].split("##")[0]
    rows = [line.split("|")[1:-1] for line in launchers.splitlines() if line.startswith("| DDP") or "ZeRO" in line]
    assert len(rows) == 4 and all("→" in row[2] for row in rows), launchers  # DDP, ZeRO-2, ZeRO-3, DDP resumed
    assert all(float(row[3]) < 1e-4 for row in rows[1:]), launchers
    assert float(rows[3][3]) == 0.0, launchers  # the resumed curve is the uninterrupted one
