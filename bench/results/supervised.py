"""Supervised training on small real labelled sets (bench/results/supervised_data.py): supervised SimCSE against
HNCSE's best objective of the ablation (`hybrid_sum`), on the bundled all-MiniLM-L6-v2 `[CLS]`, 3 seeds each.

    python -m bench.results.supervised [--seeds 42 43 44] [--objectives simcse hybrid_sum]

Every run goes through `hncse.train.main` with SimCSE's supervised setting (pooler `cls` with its Linear+tanh head
kept at inference, length 32, τ 0.05, lr 5e-5, 3 epochs, no checkpoint selection), then its saved folder is scored
on STS-B dev and SICK-R test. Results are appended to docs/results/supervised.jsonl as they come (a rerun skips
finished runs) and the table in docs/results.md is regenerated from that file.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import statistics
import tempfile
import time

import hncse.train
from bench.report import markdown_table, replace_section
from bench.results.supervised_data import build
from hncse.data.sources import resolve_senteval_dir
from hncse.evaluation.senteval_data import load_sts_task, normalise
from hncse.evaluation.sts import evaluate_sts
from hncse.modeling import SentenceEncoder

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
SENTEVAL = "senteval"  # SentEval's data/downstream: $HNCSE_DATA_DIR's copy, the Hub cache or a download
# name → (file written by bench.results.supervised_data, per-device batch, what the table says it is)
DATASETS = {
    "sick_triplets": ("sick_triplets", 32, "SICK train triplets (entailment, contradiction)"),
    "stsb_pairs": ("stsb_pairs", 64, "STS-B train pairs scored ≥ 4"),
}
SCORES = {"stsb_dev": ("STSBenchmark", "dev"), "sickr_test": ("SICKRelatedness", "test")}
SUPERVISED = ["--pooler_type", "cls", "--mlp_only_train", "false", "--max_seq_length", "32", "--temperature", "0.05",
              "--learning_rate", "5e-5", "--num_train_epochs", "3"]  # fmt: skip


@functools.cache
def score_tasks() -> dict:
    senteval = resolve_senteval_dir(SENTEVAL)
    return {name: load_sts_task(task, senteval, split) for name, (task, split) in SCORES.items()}


def score(encoder) -> dict[str, float]:
    return {name: result["all"] for name, result in evaluate_sts(encoder, score_tasks()).items()}


def seen_in_training(path: str) -> dict[str, str]:
    """Per scored set: how many of its distinct sentences, and of its pairs, occur verbatim (white space normalised,
    as the scorer reads them) in the training file: a sentence anywhere, a pair as two sentences of one row."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = [[normalise(text) for text in row] for row in list(csv.reader(f))[1:]]
    trained = {text for row in rows for text in row}
    trained_pairs = {frozenset((a, b)) for row in rows for a in row for b in row if a != b}
    seen = {}
    for name, task in score_tasks().items():
        pairs = [frozenset(p) for subset in task.subsets for p in zip(subset.sentences1, subset.sentences2)]
        sentences = {s for p in pairs for s in p}
        seen[name] = (
            f"{len(sentences & trained)} of {len(sentences)} sentences, "
            f"{sum(p in trained_pairs for p in pairs)} of {len(pairs)} pairs"
        )
    return seen


def train_one(dataset: str, path: str, batch: int, objective: str, seed: int) -> dict:
    out = tempfile.mkdtemp(prefix=f"sup-{dataset}-{objective}-{seed}-")
    argv = ["--model_name_or_path", MODEL, "--train_file", path, "--output_dir", out, "--objective", objective,
            "--seed", str(seed), "--per_device_train_batch_size", str(batch), "--eval_strategy", "no",
            "--save_strategy", "no", "--load_best_model_at_end", "false", "--disable_tqdm", "true",
            "--dataloader_pin_memory", "false", "--logging_steps", "5", *SUPERVISED]  # fmt: skip
    start = time.perf_counter()
    hncse.train.main(argv)
    seconds = time.perf_counter() - start
    with open(os.path.join(out, "trainer_state.json"), encoding="utf-8") as f:
        state = json.load(f)
    logs = [e for e in state["log_history"] if "loss" in e]
    return {
        "dataset": dataset,
        "objective": objective,
        "seed": seed,
        "steps": state["global_step"],
        "train_seconds": round(seconds, 1),
        "first_logged": logs[0] if logs else {},
        "last_logged": logs[-1] if logs else {},
        **score(SentenceEncoder.from_pretrained(out)),
    }


def mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def render(results: list[dict], baseline: dict, args) -> str:
    header = ["training data", "rows", "objective", "seeds", "steps", "STS-B dev", "Δ start", "SICK-R test", "Δ start"]
    overlap = []
    rows = [["none (the start, `[CLS]`)", "-", "-", "-", "-", f"{baseline['stsb_dev']:.2f}", "-",
             f"{baseline['sickr_test']:.2f}", "-"]]  # fmt: skip
    per_seed = []
    seeds = sorted({r["seed"] for r in results})
    for dataset, (_, _, description) in DATASETS.items():
        for objective in args.objectives:
            runs = [r for r in results if r["dataset"] == dataset and r["objective"] == objective]
            if not runs:
                continue
            stsb, sickr = [r["stsb_dev"] for r in runs], [r["sickr_test"] for r in runs]
            rows.append([
                description, runs[0].get("rows", "-"), objective, len(runs), runs[0]["steps"], mean_std(stsb),
                f"{statistics.mean(stsb) - baseline['stsb_dev']:+.2f}", mean_std(sickr),
                f"{statistics.mean(sickr) - baseline['sickr_test']:+.2f}",
            ])  # fmt: skip
            if objective == args.objectives[0]:
                seen = runs[0].get("seen_in_training", {})
                overlap.append([description, seen.get("stsb_dev", "-"), seen.get("sickr_test", "-")])
            per_seed.append(
                [description, objective]
                + [next((f"{r['stsb_dev']:.2f} / {r['sickr_test']:.2f}" for r in runs if r["seed"] == s), "-")
                   for s in seeds]
            )  # fmt: skip
    seeds, objectives = " ".join(map(str, args.seeds)), " ".join(args.objectives)
    command = f"python -m bench.results.supervised --seeds {seeds} --objectives {objectives}"
    return (
        f"Command: `{command}` (results: `{args.results}`; data: `python -m bench.results.supervised_data`)\n\n"
        + markdown_table(header, rows)
        + "\n\nWhat of the scored sets occurs verbatim in the training data (distinct sentences; pairs as two "
        "sentences of one training row):\n\n"
        + markdown_table(["training data", "STS-B dev", "SICK-R test"], overlap)
        + "\n\nPer seed (STS-B dev / SICK-R test):\n\n"
        + markdown_table(["training data", "objective"] + [f"seed {s}" for s in seeds], per_seed)
        + '\n\nSpearman ×100 (SentEval\'s "all" setting), mean ± sample standard deviation over seeds; final model of '
        "each run, no checkpoint selection. The start is the bundled model's `[CLS]` vector without a head; the "
        "trained models keep the Linear+tanh head at inference (SimCSE's supervised setting), so the start has no "
        "head and the trained ones a head trained from a random one."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objectives", nargs="+", default=["simcse", "hybrid_sum"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--data", default="outputs/supervised-data", help="where bench.results.supervised_data writes")
    parser.add_argument("--results", default="docs/results/supervised.jsonl")
    parser.add_argument("--doc", default="docs/results.md")
    parser.add_argument("--render_only", action="store_true", help="rewrite the doc table from --results")
    args = parser.parse_args()
    paths = build(resolve_senteval_dir(SENTEVAL), args.data)
    os.makedirs(os.path.dirname(args.results), exist_ok=True)
    results = []
    if os.path.exists(args.results):
        with open(args.results, encoding="utf-8") as f:
            results = [json.loads(line) for line in f if line.strip()]
    done = {(r["dataset"], r["objective"], r["seed"]) for r in results}
    baseline = score(SentenceEncoder.from_pretrained(MODEL, pooler_type="cls_before_pooler"))
    print(f"start: {baseline}", flush=True)
    for seed in [] if args.render_only else args.seeds:
        for dataset, (name, batch, _) in DATASETS.items():
            with open(paths[name], encoding="utf-8") as f:
                num_rows = sum(1 for _ in f) - 1
            for objective in args.objectives:
                if (dataset, objective, seed) in done:
                    continue
                result = {
                    **train_one(dataset, paths[name], batch, objective, seed),
                    "rows": num_rows,
                    "seen_in_training": seen_in_training(paths[name]),
                }
                print(json.dumps({k: v for k, v in result.items() if not k.endswith("_logged")}), flush=True)
                results.append(result)
                with open(args.results, "a", encoding="utf-8") as f:
                    f.write(json.dumps(result) + "\n")
                replace_section(args.doc, "supervised", render(results, baseline, args))
    replace_section(args.doc, "supervised", render(results, baseline, args))


if __name__ == "__main__":
    main()
