"""Ablation of the objectives on the bundled all-MiniLM-L6-v2 `[CLS]` vector (docs/method.md §2-§4), 3 seeds each.

    python -m bench.ablation [--seeds 42 43 44] [--max_train_samples 6400]

Every objective trains from the same weights (pooler `cls`, MLP head in training only) on the same
Wikipedia sentences with the same budget (one pass over --max_train_samples sentences, batch 64, length 32,
lr 3e-5); the final model (no checkpoint selection, so the dev sets are not used for tuning) is scored on
STS-B dev and SICK-R dev. Results are appended to docs/results/ablation.jsonl as they come (a rerun skips
finished runs) and the table in docs/results.md is regenerated from that file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

from transformers import DataCollatorWithPadding, set_seed

from bench.report import markdown_table, replace_section
from hncse.data import load_sentences, tokenize_sentences
from hncse.data_sources import resolve_senteval_dir
from hncse.evaluation.senteval_data import load_sts_task
from hncse.evaluation.sts import evaluate_sts
from hncse.losses import OBJECTIVES
from hncse.modeling import SentenceEncoder
from hncse.parser import parse_args
from hncse.training.trainer import HNCSETrainer

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
CORPUS = (
    "wiki1m"  # a corpus name: $HNCSE_DATA_DIR's copy (here the 10k-sentence extract), the Hub cache, or a download
)
SENTEVAL = "senteval"  # likewise SentEval's data/downstream folder
DEV_SETS = {"stsb": "STSBenchmark", "sickr": "SICKRelatedness"}


def evaluate(encoder) -> dict[str, float]:
    tasks = {
        f"{short}_dev": load_sts_task(name, resolve_senteval_dir(SENTEVAL), "dev") for short, name in DEV_SETS.items()
    }
    return {name: result["all"] for name, result in evaluate_sts(encoder, tasks).items()}


def train_one(objective: str, seed: int, max_train_samples: int, extra: list[str]) -> dict:
    _, data_args, args = parse_args(
        ["--train_file", CORPUS, "--output_dir", tempfile.mkdtemp(), "--objective", objective, "--seed", str(seed),
         "--max_train_samples", str(max_train_samples), "--eval_strategy", "no", "--save_strategy", "no",
         "--load_best_model_at_end", "false", "--disable_tqdm", "true", "--dataloader_pin_memory", "false", *extra]
    )  # fmt: skip
    set_seed(seed)
    model = SentenceEncoder.from_pretrained(MODEL, pooler_type="cls", mlp_only_train=True)
    sentences = load_sentences(train_file=CORPUS).select(range(max_train_samples))
    data = tokenize_sentences(sentences, model.tokenizer, data_args.max_seq_length)
    trainer = HNCSETrainer(
        model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(model.tokenizer)
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    train_logs = [e for e in trainer.state.log_history if "loss" in e]
    return {
        "objective": objective,
        "seed": seed,
        "steps": trainer.state.global_step,
        "train_seconds": round(seconds, 1),
        "last_logged": train_logs[-1] if train_logs else {},
        **evaluate(model),
    }


def render(results: list[dict], baseline: dict, args) -> str:
    rows = [
        [
            "untrained start ([CLS])",
            "-",
            f"{baseline['stsb_dev']:.2f}",
            "-",
            f"{baseline['sickr_dev']:.2f}",
            "-",
            "-",
            "-",
        ]
    ]
    by_objective: dict[str, list[dict]] = {}
    for r in results:
        by_objective.setdefault(r["objective"], []).append(r)

    def mean_std(values: list[float]) -> str:
        if len(values) < 2:
            return f"{values[0]:.2f}"
        return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"

    simcse = by_objective.get("simcse", [])

    def delta(runs: list[dict], key: str) -> str:
        if not simcse or runs is simcse:
            return "-"
        return f"{statistics.mean(r[key] for r in runs) - statistics.mean(r[key] for r in simcse):+.2f}"

    def mixed_by_pm(runs: list[dict]) -> str:
        """Share of anchors in PM cases A or C at the last logging step (mean over seeds)."""
        logged = [r["last_logged"] for r in runs if "pm_case_a" in r.get("last_logged", {})]
        if not logged:
            return "-"
        return f"{100 * statistics.mean(float(e['pm_case_a']) + float(e['pm_case_c']) for e in logged):.1f}%"

    for objective in OBJECTIVES:
        runs = by_objective.get(objective, [])
        if not runs:
            continue
        rows.append([
            objective, len(runs), mean_std([r["stsb_dev"] for r in runs]), delta(runs, "stsb_dev"),
            mean_std([r["sickr_dev"] for r in runs]), delta(runs, "sickr_dev"),
            mixed_by_pm(runs), f"{statistics.mean(r['train_seconds'] for r in runs):.0f}",
        ])  # fmt: skip
    header = [
        "objective",
        "seeds",
        "STS-B dev",
        "Δ simcse",
        "SICK-R dev",
        "Δ simcse",
        "PM-mixed anchors",
        "train s / run",
    ]
    seeds = " ".join(map(str, args.seeds))
    command = f"python -m bench.ablation --seeds {seeds} --max_train_samples {args.max_train_samples}"
    if args.extra:
        command += " " + " ".join(args.extra)
    seeds_seen = sorted({r["seed"] for r in results})
    per_seed = [
        [objective] + [next((f"{r['stsb_dev']:.2f}" for r in runs if r["seed"] == seed), "-") for seed in seeds_seen]
        for objective, runs in ((o, by_objective[o]) for o in OBJECTIVES if o in by_objective)
    ]
    return (
        f"Command: `{command}` (results: `{args.results}`)\n\n"
        + markdown_table(header, rows)
        + "\n\nSTS-B dev per seed:\n\n"
        + markdown_table(["objective"] + [f"seed {seed}" for seed in seeds_seen], per_seed)
        + "\n\nSpearman ×100, mean ± sample standard deviation over seeds; final model of each run, no checkpoint "
        "selection. PM-mixed anchors: share of anchors in PM case A or C at the last logging step. Train seconds "
        "are wall time on a shared machine, not a benchmark (see docs/benchmarks.md)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objectives", nargs="+", default=list(OBJECTIVES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--max_train_samples", type=int, default=6400)
    parser.add_argument("--results", default="docs/results/ablation.jsonl")
    parser.add_argument("--doc", default="docs/results.md")
    parser.add_argument("extra", nargs="*", help="more run_hncse.py flags for every run, after --")
    parser.add_argument("--render_only", action="store_true", help="rewrite the doc table from --results")
    args = parser.parse_args()
    os.makedirs(os.path.dirname(args.results), exist_ok=True)
    results = []
    if os.path.exists(args.results):
        with open(args.results, encoding="utf-8") as f:
            results = [json.loads(line) for line in f if line.strip()]
    done = {(r["objective"], r["seed"]) for r in results if r.get("max_train_samples") == args.max_train_samples}
    results = [r for r in results if r.get("max_train_samples") == args.max_train_samples]
    baseline = evaluate(SentenceEncoder.from_pretrained(MODEL, pooler_type="cls_before_pooler"))
    print(f"untrained: {baseline}", flush=True)
    for seed in [] if args.render_only else args.seeds:
        for objective in args.objectives:
            if (objective, seed) in done:
                continue
            result = {
                **train_one(objective, seed, args.max_train_samples, args.extra),
                "max_train_samples": args.max_train_samples,
            }
            print(json.dumps({k: v for k, v in result.items() if k != "last_logged"}), flush=True)
            results.append(result)
            with open(args.results, "a", encoding="utf-8") as f:
                f.write(json.dumps(result) + "\n")
            replace_section(args.doc, "ablation", render(results, baseline, args))
    replace_section(args.doc, "ablation", render(results, baseline, args))


if __name__ == "__main__":
    main()
