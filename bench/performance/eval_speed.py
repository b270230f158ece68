"""Wall time of the 7-task STS evaluation: ours vs sentence-transformers' evaluator on the same pairs, one run.

    python -m bench.performance.eval_speed [--rounds 3] [--out docs/benchmarks/eval_speed.json] [--render_only]

Model: the bundled all-MiniLM-L6-v2 (mean pooling), CPU. Sets: STS12–16, STS-B test, SICK-R test from
SentEval's data (`senteval`: $HNCSE_DATA_DIR's copy, the Hub cache or a download; 18,850 pairs). Ours:
`hncse.evaluation.sts.evaluate_sts` (every distinct sentence encoded once, batches by token count, batch 128).
Theirs: one `EmbeddingSimilarityEvaluator` per set (cosine, STS12–16 pooled as SentEval's "all"), run through a
`SequentialEvaluator`, at its default batch size 16 and at 128. The three alternate in a rotating order every
round so that drifts in machine speed hit all alike; the report gives the median seconds and both Spearman figures
per set (they must agree to 0.01).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import torch

from bench.report import markdown_table, replace_section
from hncse.data.sources import resolve_senteval_dir
from hncse.evaluation.senteval_data import STS_TASKS, TABLE_NAMES, load_sts_task
from hncse.evaluation.sts import evaluate_sts
from hncse.modeling import SentenceEncoder
from hncse.modeling.resolve import resolve_model_path

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
SENTEVAL = "senteval"  # $HNCSE_DATA_DIR's copy, the Hub cache, or a download
DOC = "docs/benchmarks.md"


def run_ours(encoder, tasks) -> dict[str, float]:
    return {name: r["all"] for name, r in evaluate_sts(encoder, tasks, batch_size=128).items()}


def run_sentence_transformers(model, tasks, batch_size: int) -> dict[str, float]:
    from sentence_transformers.sentence_transformer.evaluation import (
        EmbeddingSimilarityEvaluator,
        SequentialEvaluator,
    )

    evaluators = []
    for name, task in tasks.items():
        evaluators.append(
            EmbeddingSimilarityEvaluator(
                [s for pairs in task.subsets for s in pairs.sentences1],
                [s for pairs in task.subsets for s in pairs.sentences2],
                np.concatenate([pairs.scores for pairs in task.subsets]).tolist(),
                batch_size=batch_size,
                main_similarity="cosine",
                name=name,
                write_csv=False,
            )
        )
    metrics = SequentialEvaluator(evaluators)(model)
    return {name: metrics[f"{name}_spearman_cosine"] * 100 for name in tasks}


def measure(rounds: int) -> dict:
    from sentence_transformers import SentenceTransformer

    torch.set_grad_enabled(False)
    tasks = {name: load_sts_task(name, resolve_senteval_dir(SENTEVAL), "test") for name in STS_TASKS}
    folder = resolve_model_path(MODEL)
    encoder = SentenceEncoder.from_pretrained(folder).eval()  # its sentence-transformers Pooling: mean
    st_model = SentenceTransformer(folder, device="cpu")
    runners = {
        "hncse (batch 128)": lambda: run_ours(encoder, tasks),
        "sentence-transformers (batch 16, default)": lambda: run_sentence_transformers(st_model, tasks, 16),
        "sentence-transformers (batch 128)": lambda: run_sentence_transformers(st_model, tasks, 128),
    }
    names = list(runners)
    times: dict[str, list[float]] = {n: [] for n in names}
    scores: dict[str, dict[str, float]] = {}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start = time.perf_counter()
            scores[name] = runners[name]()
            times[name].append(time.perf_counter() - start)
            print(f"round {r + 1}: {name}: {times[name][-1]:.1f} s", flush=True)
    sentences = sum(2 * len(p) for t in tasks.values() for p in t.subsets)
    unique = len({s for t in tasks.values() for p in t.subsets for s in (*p.sentences1, *p.sentences2)})
    return {
        "model": MODEL,
        "pooler": encoder.pooler_type,
        "pairs": {name: sum(len(p) for p in t.subsets) for name, t in tasks.items()},
        "sentences": sentences,
        "unique_sentences": unique,
        "rounds": rounds,
        "seconds": times,
        "scores": scores,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "command": f"python -m bench.performance.eval_speed --rounds {rounds}",
    }


def render(result: dict) -> str:
    names = list(result["seconds"])
    ours = names[0]
    median = {n: statistics.median(result["seconds"][n]) for n in names}
    rows = []
    for n in names:
        each = " / ".join(f"{t:.1f}" for t in result["seconds"][n])
        rows.append([n, f"{median[n]:.1f}", each, f"{median[n] / median[ours]:.2f}×"])
    timing = markdown_table(["evaluator", "median s", "each round s", "time vs hncse"], rows)
    sets = list(result["pairs"])
    score_rows = [[n] + [f"{result['scores'][n][s]:.2f}" for s in sets] for n in names]
    diff = max(abs(result["scores"][n][s] - result["scores"][ours][s]) for n in names for s in sets)
    scores = markdown_table(["evaluator"] + [TABLE_NAMES[s] for s in sets], score_rows)
    return "\n".join(
        [
            f"`{result['command']}` — {result['model']} ({result['pooler']} pooling), CPU: {result['machine']}.",
            f"{sum(result['pairs'].values())} pairs = {result['sentences']} sentences, "
            f"{result['unique_sentences']} distinct. Rounds alternate the evaluators in a rotating order.",
            "",
            timing,
            "",
            f"Spearman ×100 of each (largest difference to ours: {diff:.4f}):",
            "",
            scores,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="docs/benchmarks/eval_speed.json")
    parser.add_argument("--render_only", action="store_true", help="rewrite the doc section from --out")
    args = parser.parse_args()
    if args.render_only:
        with open(args.out, encoding="utf-8") as f:
            result = json.load(f)
    else:
        result = measure(args.rounds)
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    replace_section(DOC, "eval_speed", render(result))
    print(render(result))


if __name__ == "__main__":
    main()
