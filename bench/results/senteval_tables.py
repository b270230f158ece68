"""The full SentEval table (7 STS + 7 transfer tasks, test mode) of the bundled all-MiniLM-L6-v2, mean and [CLS].

    python -m bench.results.senteval_tables [--poolers avg cls_before_pooler] [--render_only]

Runs `python -m hncse.evaluate sentence-transformers/all-MiniLM-L6-v2 --pooler P --task_set full --mode test
--senteval_dir ../shared/data/senteval` for each pooler, keeps the JSON in docs/results/, writes the tables into
docs/results.md and the wall times (encoding, each transfer task) into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from bench.report import markdown_table, replace_section
from hncse.evaluation import cli as evaluate_cli
from hncse.evaluation import results_tables
from hncse.evaluation.transfer import TRANSFER_TABLE_NAMES

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
SENTEVAL = "../shared/data/senteval"
POOLER_NAMES = {"avg": "mean pooling (its own)", "cls_before_pooler": "[CLS] vector"}


def command(pooler: str) -> str:
    return f"python -m hncse.evaluate {MODEL} --pooler {pooler} --task_set full --mode test --senteval_dir {SENTEVAL}"


def json_path(pooler: str) -> str:
    return f"docs/results/senteval_minilm_{pooler}.json"


def run(pooler: str) -> dict:
    start = time.perf_counter()
    results = evaluate_cli.main(command(pooler).split()[3:] + ["--output_json", json_path(pooler)])
    results["wall_seconds"] = time.perf_counter() - start
    cpu = platform.processor() or platform.machine()
    results["machine"] = f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__}"
    with open(json_path(pooler), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    return results


def render_results(all_results: dict[str, dict]) -> str:
    blocks = []
    for pooler, results in all_results.items():
        title = f"**{MODEL}, {POOLER_NAMES.get(pooler, pooler)}** — `{command(pooler)}`"
        blocks += [title, "", results_tables(results), ""]
    return "\n".join(blocks)


def render_times(all_results: dict[str, dict]) -> str:
    tasks = list(next(iter(all_results.values()))["transfer"])
    rows = []
    for pooler, r in all_results.items():
        transfer_total = sum(r["transfer"][t]["seconds"] for t in tasks)
        rows.append(
            [POOLER_NAMES.get(pooler, pooler), r["sentences_encoded"], f"{r['encode_seconds']:.0f}"]
            + [f"{r['transfer'][t]['seconds']:.0f}" for t in tasks]
            + [f"{transfer_total:.0f}", f"{r['wall_seconds']:.0f}"]
        )
    header = ["pooling", "distinct sentences", "encode s"] + [f"{TRANSFER_TABLE_NAMES.get(t, t)} s" for t in tasks]
    header += ["transfer total s", "wall s"]
    machine = next(iter(all_results.values()))["machine"]
    return "\n".join(
        [
            f"`python -m bench.results.senteval_tables` — {MODEL}, full suite in test mode (SentEval's full transfer "
            f"protocol: 10 folds, Adam, every classifier of a stage trained as one batched model), CPU: {machine}.",
            "'encode' covers every distinct sentence of the 14 tasks (STS + transfer + STS-B dev for alignment), "
            "once; each task column is its classifier time.",
            "",
            markdown_table(header, rows),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--poolers", nargs="+", default=["avg", "cls_before_pooler"])
    parser.add_argument("--render_only", action="store_true")
    args = parser.parse_args()
    os.makedirs("docs/results", exist_ok=True)
    all_results = {}
    for pooler in args.poolers:
        if args.render_only:
            with open(json_path(pooler), encoding="utf-8") as f:
                all_results[pooler] = json.load(f)
        else:
            all_results[pooler] = run(pooler)
    replace_section("docs/results.md", "senteval_minilm", render_results(all_results))
    replace_section("docs/benchmarks.md", "senteval_time", render_times(all_results))


if __name__ == "__main__":
    main()
