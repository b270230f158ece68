"""Ablation of the objectives on the bundled all-MiniLM-L6-v2 `[CLS]` vector (docs/method.md §2-§4), 3 seeds each.

    python -m bench.results.ablation [--seeds 42 43 44] [--max_train_samples 6400]

Every objective trains from the same weights (pooler `cls`, MLP head in training only) on the same
Wikipedia sentences with the same budget (one pass over --max_train_samples sentences, batch 64, length 32,
lr 3e-5); the final model (no checkpoint selection, so the dev sets are not used for tuning) is scored on
STS-B dev and SICK-R dev. Each run also records its dev curve (the trainer's evaluation every --eval_steps
steps, from step 0) and, before and after training, the positive and hardest-negative similarities of held-out
sentences as a step sees them (`probe_similarities`). Results are appended to docs/results/ablation.jsonl as
they come (a rerun skips finished runs); the table in docs/results.md is regenerated from that file, and
`python -m bench.results.figures` draws its figures from it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import torch
from transformers import DataCollatorWithPadding, set_seed

from bench.report import markdown_table, replace_section
from hncse.data import load_sentences, tokenize_sentences
from hncse.data.sources import resolve_senteval_dir
from hncse.evaluation import load_suite
from hncse.evaluation.senteval_data import load_sts_task
from hncse.evaluation.sts import evaluate_sts
from hncse.losses import OBJECTIVES
from hncse.losses.common import cosine_logits, hardest_negative_similarities, positive_similarities
from hncse.modeling import SentenceEncoder
from hncse.parser import parse_args
from hncse.training.trainer import HNCSETrainer
from hncse.training.views import split_views, stacked_features

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
CORPUS = (
    "wiki1m"  # a corpus name: $HNCSE_DATA_DIR's copy (here the 10k-sentence extract), the Hub cache, or a download
)
SENTEVAL = "senteval"  # likewise SentEval's data/downstream folder
DEV_SETS = {"stsb": "STSBenchmark", "sickr": "SICKRelatedness"}
PROBE_SENTENCES = 1024  # held out: the corpus lines right after the training ones
HISTOGRAM_BINS = 100  # of width 0.02 over cosine [-1, 1]


def evaluate(encoder) -> dict[str, float]:
    tasks = {
        f"{short}_dev": load_sts_task(name, resolve_senteval_dir(SENTEVAL), "dev") for short, name in DEV_SETS.items()
    }
    return {name: result["all"] for name, result in evaluate_sts(encoder, tasks).items()}


def probe_similarities(model, sentences: list[str], batch_size: int, max_seq_length: int) -> dict:
    """Each sentence's positive cosine (its other dropout view) and hardest in-batch negative cosine, in training
    mode and in batches of the training size, as a step sees them: histograms and summaries. The global random
    state is left as it was (dropout is seeded by itself), so that the run trains exactly as without the probe."""
    positives, hardest = [], []
    was_training = model.training
    model.train()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        for start in range(0, len(sentences), batch_size):
            batch = model.tokenizer(
                sentences[start : start + batch_size], truncation=True, max_length=max_seq_length, padding=True,
                return_tensors="pt",
            )  # fmt: skip
            features, columns = stacked_features(dict(batch))
            z1, z2, _ = split_views(model(**features), columns)
            sim = cosine_logits(z1, z2)
            positives.append(positive_similarities(sim))
            hardest.append(hardest_negative_similarities(sim))
    model.train(was_training)
    positive, hardest_negative = torch.cat(positives), torch.cat(hardest)
    return {
        "positive": cosine_histogram(positive),
        "hardest_negative": cosine_histogram(hardest_negative),
        "mean_positive": round(positive.mean().item(), 4),
        "mean_hardest_negative": round(hardest_negative.mean().item(), 4),
        "hardest_negative_above_positive": round((hardest_negative > positive).float().mean().item(), 4),
    }


def cosine_histogram(values: torch.Tensor) -> list[int]:
    """Counts of cosines in HISTOGRAM_BINS equal bins over [-1, 1]. Clamped first: a cosine of two equal vectors
    comes out at 1 + ε on some CPUs, which `torch.histc` would drop as outside its range."""
    return [int(c) for c in torch.histc(values.clamp(-1.0, 1.0), bins=HISTOGRAM_BINS, min=-1.0, max=1.0)]


def train_one(objective: str, seed: int, max_train_samples: int, eval_steps: int, extra: list[str]) -> dict:
    _, data_args, args = parse_args(
        ["--train_file", CORPUS, "--output_dir", tempfile.mkdtemp(), "--objective", objective, "--seed", str(seed),
         "--max_train_samples", str(max_train_samples), "--eval_strategy", "steps", "--eval_steps", str(eval_steps),
         "--save_strategy", "no", "--load_best_model_at_end", "false", "--disable_tqdm", "true",
         "--dataloader_pin_memory", "false", *extra]
    )  # fmt: skip
    args.eval_on_start = True
    set_seed(seed)
    model = SentenceEncoder.from_pretrained(MODEL, pooler_type="cls", mlp_only_train=True)
    corpus = load_sentences(train_file=CORPUS)
    if len(corpus) < max_train_samples + PROBE_SENTENCES:
        raise SystemExit(f"{CORPUS}: {len(corpus)} sentences, the runs need {max_train_samples + PROBE_SENTENCES}")
    probe = corpus.select(range(max_train_samples, max_train_samples + PROBE_SENTENCES))["text"]
    probe_args = (args.per_device_train_batch_size, data_args.max_seq_length)
    before = probe_similarities(model, probe, *probe_args)
    data = tokenize_sentences(corpus.select(range(max_train_samples)), model.tokenizer, data_args.max_seq_length)
    trainer = HNCSETrainer(
        model=model,
        args=args,
        train_dataset=data,
        eval_dataset=load_suite(list(DEV_SETS.values()), "dev", resolve_senteval_dir(SENTEVAL)),
        data_collator=DataCollatorWithPadding(model.tokenizer),
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    history = trainer.state.log_history
    train_logs = [e for e in history if "loss" in e]
    evaluations = [e for e in history if "eval_runtime" in e]
    return {
        "objective": objective,
        "seed": seed,
        "steps": trainer.state.global_step,
        "train_seconds": round(seconds - sum(e["eval_runtime"] for e in evaluations), 1),
        "last_logged": train_logs[-1] if train_logs else {},
        "train_logs": train_logs,
        "dev_curve": [
            {"step": e["step"], **{f"{short}_dev": e[f"eval_{short}_spearman"] for short in DEV_SETS}}
            for e in evaluations
        ],
        "similarities": {"before": before, "after": probe_similarities(model, probe, *probe_args)},
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
    command = (
        f"python -m bench.results.ablation --seeds {seeds} --max_train_samples {args.max_train_samples} "
        f"--eval_steps {args.eval_steps}"
    )
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
    parser.add_argument("--eval_steps", type=int, default=20, help="the dev curve's interval, in steps")
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
    budget = {"max_train_samples": args.max_train_samples, "eval_steps": args.eval_steps}
    results = [r for r in results if all(r.get(k) == v for k, v in budget.items())]
    done = {(r["objective"], r["seed"]) for r in results}
    baseline = evaluate(SentenceEncoder.from_pretrained(MODEL, pooler_type="cls_before_pooler"))
    print(f"untrained: {baseline}", flush=True)
    for seed in [] if args.render_only else args.seeds:
        for objective in args.objectives:
            if (objective, seed) in done:
                continue
            result = {**train_one(objective, seed, args.max_train_samples, args.eval_steps, args.extra), **budget}
            summary = {k: result[k] for k in ("objective", "seed", "steps", "stsb_dev", "sickr_dev")}
            print(json.dumps(summary), flush=True)
            results.append(result)
            with open(args.results, "a", encoding="utf-8") as f:
                f.write(json.dumps(result) + "\n")
            replace_section(args.doc, "ablation", render(results, baseline, args))
    replace_section(args.doc, "ablation", render(results, baseline, args))


if __name__ == "__main__":
    main()
