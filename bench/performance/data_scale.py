"""Start-up cost of a training run against corpus size: time to the first training step and memory.

    python -m bench.performance.data_scale [--lines 100000 1000000 5000000] [--streaming_lines 1000000 100000000]
                               [--baseline_rev REV] [--out FILE.json]

For each size, a corpus of that many distinct lines of realistic length is generated (the Wikipedia sentences of
the quickstart's corpus, each made distinct by a number) and `run_hncse.py` trains the bundled all-MiniLM-L6-v2
on it (batch 64, length 32, no evaluation) in a child process: first with an empty datasets cache (cold), then
again with the cache the first run left (warm). At the start of its first training step the child records the
seconds since it was started, its resident memory split into anonymous pages (not reclaimable) and file-backed
pages (memory-mapped Arrow files, which the kernel can drop), and exits. The on-disk size of the datasets cache is
measured after the cold run. `--baseline_rev` also runs another commit (a git worktree) on the same corpora,
alternating with the current code, so the two are compared side by side on this noisy machine. For the sizes in
`--streaming_lines` the same run with `--streaming true` is measured once (it prepares nothing, so it has no cold
and warm).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time

from bench.report import markdown_table, replace_section
from hncse.data.sources import resolve_train_file

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# Runs in the child, from the checkout under test: stop at the first training step and report.
CHILD = """
import json, os, sys, time
try:
    from hncse.training.trainer import HNCSETrainer
except ImportError:  # commits before the package was laid out by subsystem
    from hncse.trainer import HNCSETrainer
import hncse.train

def status_kb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

def first_step(self, *args, **kwargs):
    with open(os.environ["DATA_SCALE_REPORT"], "w") as f:
        json.dump({"time": time.time(), "rss_anon_kb": status_kb("RssAnon"), "rss_file_kb": status_kb("RssFile")}, f)
    os._exit(0)

HNCSETrainer.training_step = first_step
hncse.train.main(sys.argv[1:])
"""


def make_corpus(path: str, lines: int, sentences: list[str], seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, lines, 100_000):
            block = range(start, min(start + 100_000, lines))
            f.write("".join(f"{sentences[rng.randrange(len(sentences))]} ({i})\n" for i in block))


def folder_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def run_child(checkout: str, corpus: str, cache: str, scratch: str, *extra: str) -> dict:
    report = os.path.join(scratch, "report.json")
    if os.path.exists(report):
        os.remove(report)
    argv = [
        "--model_name_or_path", MODEL, "--train_file", corpus, "--output_dir", os.path.join(scratch, "out"),
        "--max_seq_length", "32", "--per_device_train_batch_size", "64", "--max_steps", "2",
        "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false",
        "--disable_tqdm", "true", "--dataloader_pin_memory", "false", *extra,
    ]  # fmt: skip
    env = {
        **os.environ,
        "HF_DATASETS_CACHE": cache,
        "DATA_SCALE_REPORT": report,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": checkout,
    }
    start = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *argv], cwd=checkout, env=env, capture_output=True, text=True, timeout=6 * 3600
    )
    if not os.path.exists(report):
        raise RuntimeError(f"the child did not reach a training step (exit {proc.returncode}): {proc.stderr[-2000:]}")
    with open(report, encoding="utf-8") as f:
        measured = json.load(f)
    return {
        "seconds_to_first_step": round(measured["time"] - start, 1),
        "rss_anon_mb": round(measured["rss_anon_kb"] / 1024, 1),
        "rss_file_mb": round(measured["rss_file_kb"] / 1024, 1),
    }


def measure(label: str, checkout: str, corpus: str, lines: int, scratch: str) -> dict:
    cache = os.path.join(scratch, f"cache-{label}-{lines}")
    shutil.rmtree(cache, ignore_errors=True)
    cold = run_child(checkout, corpus, cache, scratch)
    cache_mb = round(folder_size(cache) / 2**20, 1)
    warm = run_child(checkout, corpus, cache, scratch)
    shutil.rmtree(cache, ignore_errors=True)
    result = {"code": label, "lines": lines, "cold": cold, "warm": warm, "cache_mb": cache_mb}
    print(json.dumps(result), flush=True)
    return result


def measure_streaming(checkout: str, corpus: str, lines: int, scratch: str) -> dict:
    cache = os.path.join(scratch, f"cache-streaming-{lines}")
    shutil.rmtree(cache, ignore_errors=True)
    run = run_child(checkout, corpus, cache, scratch, "--streaming", "true")
    result = {
        "code": "current, --streaming",
        "lines": lines,
        "run": run,
        "cache_mb": round(folder_size(cache) / 2**20, 1),
    }
    shutil.rmtree(cache, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return result


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares a + b·x."""
    n, mx, my = len(xs), sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs) if n > 1 else 0.0
    return my - b * mx, b


def render(results: list[dict], command: str) -> str:
    rows = []
    streamed = [r for r in results if "run" in r]
    results = [r for r in results if "run" not in r]
    for r in results:
        rows.append(
            [
                r["code"], f"{r['lines']:,}", r["cold"]["seconds_to_first_step"], r["warm"]["seconds_to_first_step"],
                r["cold"]["rss_anon_mb"], r["cold"]["rss_file_mb"], r["warm"]["rss_anon_mb"], r["warm"]["rss_file_mb"],
                r["cache_mb"],
            ]
        )  # fmt: skip
    header = [
        "code", "lines", "s to 1st step, cold", "s to 1st step, warm", "anon RSS MB, cold", "file RSS MB, cold",
        "anon RSS MB, warm", "file RSS MB, warm", "datasets cache MB",
    ]  # fmt: skip
    text = [f"Command: `{command}` (results: `docs/benchmarks/data_scale.json`)", "", markdown_table(header, rows)]
    current = [r for r in results if r["code"] == "current"]
    if len(current) >= 2:
        xs = [r["lines"] for r in current]
        cold_a, cold_b = linear_fit(xs, [r["cold"]["seconds_to_first_step"] for r in current])
        warm_a, warm_b = linear_fit(xs, [r["warm"]["seconds_to_first_step"] for r in current])
        anon_a, anon_b = linear_fit(xs, [r["cold"]["rss_anon_mb"] for r in current])
        warm_anon_a, warm_anon_b = linear_fit(xs, [r["warm"]["rss_anon_mb"] for r in current])
        text += [
            "",
            f"Linear fit over the measured sizes (current code): cold {cold_a:.0f} s + {cold_b * 1e6:.1f} s per 10⁶ "
            f"lines, warm {warm_a:.0f} s + {warm_b * 1e6:.1f} s per 10⁶ lines; anonymous RSS {anon_a:.0f} MB + "
            f"{anon_b * 1e6:.1f} MB per 10⁶ lines cold, {warm_anon_a:.0f} MB + {warm_anon_b * 1e6:.1f} MB per 10⁶ "
            f"lines warm. **Extrapolated, not measured**: 10⁷ lines ≈ {cold_a + cold_b * 1e7:.0f} s cold / "
            f"{warm_a + warm_b * 1e7:.0f} s warm, 10⁸ lines ≈ {cold_a + cold_b * 1e8:.0f} s cold / "
            f"{warm_a + warm_b * 1e8:.0f} s warm; anonymous RSS (warm) ≈ {warm_anon_a + warm_anon_b * 1e7:.0f} MB / "
            f"{warm_anon_a + warm_anon_b * 1e8:.0f} MB. Beyond what preparing costs, `--streaming` (below, measured "
            "up to 10⁸ lines) starts in seconds at any size.",
        ]
    if streamed:
        header = [
            "code",
            "lines",
            "corpus file MB",
            "s to 1st step",
            "anon RSS MB",
            "file RSS MB",
            "datasets cache MB",
        ]
        rows = [
            [r["code"], f"{r['lines']:,}", r.get("file_mb", "-"), r["run"]["seconds_to_first_step"],
             r["run"]["rss_anon_mb"], r["run"]["rss_file_mb"], r["cache_mb"]]
            for r in streamed
        ]  # fmt: skip
        text += [
            "",
            "`--streaming true` (the same run; the corpus is read as training goes, nothing is prepared or cached):",
            "",
            markdown_table(header, rows),
        ]
    text += [
        "",
        f"Machine: {os.cpu_count()} cores, {platform.platform()}; one process, all-MiniLM-L6-v2, batch 64, length 32. "
        "Cold: empty datasets cache (the corpus is read into Arrow and tokenised); warm: the same run again.",
    ]
    return "\n".join(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", nargs="+", type=int, default=[100_000, 1_000_000, 5_000_000])
    parser.add_argument("--streaming_lines", nargs="+", type=int, default=[1_000_000, 100_000_000])
    parser.add_argument("--baseline_rev", default=None, help="also run this commit, for the sizes in --baseline_lines")
    parser.add_argument("--baseline_lines", nargs="+", type=int, default=[100_000, 1_000_000])
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", default="docs/benchmarks/data_scale.json")
    parser.add_argument("--doc", default="docs/benchmarks.md")
    args = parser.parse_args()

    scratch = args.workdir or tempfile.mkdtemp(prefix="data-scale-")
    os.makedirs(scratch, exist_ok=True)
    with open(resolve_train_file("wiki1m"), encoding="utf-8") as f:
        sentences = [line.strip() for line in f if line.strip()]
    baseline = None
    if args.baseline_rev:
        baseline = os.path.join(scratch, "baseline")
        subprocess.run(["git", "worktree", "add", "--detach", baseline, args.baseline_rev], cwd=REPO, check=True)
    results = []
    try:
        for lines in sorted(set(args.lines) | set(args.streaming_lines)):
            corpus = os.path.join(scratch, f"corpus-{lines}.txt")
            make_corpus(corpus, lines, sentences)
            if baseline and lines in args.baseline_lines:
                results.append(measure(f"baseline {args.baseline_rev}", baseline, corpus, lines, scratch))
            if lines in args.lines:
                results.append(measure("current", REPO, corpus, lines, scratch))
            if lines in args.streaming_lines:
                results.append(measure_streaming(REPO, corpus, lines, scratch))
                results[-1]["file_mb"] = round(os.path.getsize(corpus) / 2**20)
            os.remove(corpus)
    finally:
        if baseline:
            subprocess.run(["git", "worktree", "remove", "--force", baseline], cwd=REPO, check=False)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    command = "python -m bench.performance.data_scale " + " ".join(sys.argv[1:])
    replace_section(args.doc, "data_scale", render(results, command.strip()))
    print(f"wrote {args.out} and the data_scale section of {args.doc}")


if __name__ == "__main__":
    main()
