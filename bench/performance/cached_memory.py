"""Peak memory and time of one training step: batch 512 cached (--mini_batch_size 64) vs plain batch 64 and 512.

    python -m bench.performance.cached_memory [--out docs/benchmarks/cached_memory.json] [--render_only]

Model: the bundled all-MiniLM-L6-v2, `cls` pooler + MLP, `hybrid` objective, sentences padded to 32 tokens,
AdamW, CPU, float32. Each configuration runs in its own fresh process (so peaks do not mix): load, one warm-up
step, one timed step. "step memory" is the process's peak resident memory (ru_maxrss) minus its resident memory
after loading the model and before the first step; "peak" is the whole process's peak.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import torch

from bench.report import markdown_table, measure_or_render
from hncse.data.sources import resolve_train_file

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
CORPUS = (
    "wiki1m"  # a corpus name: $HNCSE_DATA_DIR's copy (here the 10k-sentence extract), the Hub cache, or a download
)
CONFIGS = {
    "plain, batch 64": (64, None),
    "plain, batch 512": (512, None),
    "cached, batch 512, mini-batch 64": (512, 64),
}


def resident_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(name: str) -> dict:
    from hncse.distributed import LocalBatch
    from hncse.losses import HardNegativeMixingLoss, HybridLoss, PositiveMixingLoss
    from hncse.modeling import SentenceEncoder
    from hncse.training.cached_contrastive import cached_contrastive_loss

    batch, mini = CONFIGS[name]
    torch.manual_seed(0)
    encoder = SentenceEncoder.from_pretrained(MODEL, pooler_type="cls").train()
    loss_fn = HybridLoss(PositiveMixingLoss(), HardNegativeMixingLoss(seed=0))
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=3e-5)
    with open(resolve_train_file(CORPUS), encoding="utf-8") as f:
        sentences = [next(f).strip() for _ in range(2 * batch)]

    def step(lines: list[str]) -> None:
        tokens = encoder.tokenizer(lines, padding="max_length", truncation=True, max_length=32, return_tensors="pt")
        features = {k: torch.cat([v, v]) for k, v in tokens.items()}
        if mini is None:
            z1, z2 = encoder(**features).chunk(2)
            loss, _ = loss_fn(z1, z2)
        else:
            loss, _ = cached_contrastive_loss(encoder, features, loss_fn, mini, LocalBatch())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    before = resident_mib()
    step(sentences[:batch])  # warm-up (also allocates AdamW's state)
    start = time.perf_counter()
    step(sentences[batch:])
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"before_mib": before, "peak_mib": peak, "step_mib": peak - before, "seconds": seconds}


def measure() -> dict:
    results = {}
    for name in CONFIGS:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.performance.cached_memory", "--child", name],
            capture_output=True,
            text=True,
            check=True,
        )
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(name, results[name], flush=True)
    cpu = platform.processor() or platform.machine()
    return {
        "model": MODEL,
        "configs": results,
        "machine": f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "command": "python -m bench.performance.cached_memory",
    }


def render(result: dict) -> str:
    configs = result["configs"]
    small, large, cached = (configs[name] for name in CONFIGS)
    rows = [
        [name, f"{r['step_mib']:.0f}", f"{r['peak_mib']:.0f}", f"{r['seconds']:.1f}"] for name, r in configs.items()
    ]
    return "\n".join(
        [
            f"`{result['command']}` — {result['model']}, `cls` + MLP, `hybrid`, length 32, AdamW, CPU float32: "
            f"{result['machine']}. One fresh process per row.",
            "",
            markdown_table(["step", "step memory MiB", "process peak MiB", "step s"], rows),
            "",
            f"Cached batch 512 vs plain batch 64: step memory {cached['step_mib'] / small['step_mib']:.2f}×, process "
            f"peak {cached['peak_mib'] / small['peak_mib']:.2f}×. Vs plain batch 512: step memory "
            f"{cached['step_mib'] / large['step_mib']:.2f}×, time {cached['seconds'] / large['seconds']:.2f}×. "
            "`--mini_batch_size` counts rows of the doubled batch (2 views per sentence): a plain batch-64 step "
            "encodes 128 rows at once, a mini-batch 64.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", choices=list(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--out", default="docs/benchmarks/cached_memory.json")
    parser.add_argument("--render_only", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    measure_or_render(args.out, args.render_only, measure, render, "cached_memory")


if __name__ == "__main__":
    main()
