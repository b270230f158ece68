"""Time spent writing checkpoints at the paper's schedule: the state to resume written at every save (what every
save did before --resume_state_steps) against the default policy (it every 1,000 steps and at the end, a model-only
checkpoint for each new best in between, nothing for the other saves).

    python -m bench.performance.checkpoint_cost [--out docs/benchmarks.md]
        [--json docs/benchmarks/checkpoint_cost.json]

A BERT-base-sized encoder (random weights, float32, AdamW) is trained by HNCSETrainer for 6 steps of 8 sentences on
the CPU, saving after every step with --resume_state_steps 3 and no evaluation, so that saves 1, 2, 4 and 5 keep the
model only and 3 and 6 are resumable: each save is timed and its folder measured. The projection for the paper's
schedule (15,625 steps, evaluation and save every 125 steps: 125 saves) multiplies those per-save figures: 125
resumable saves before; now 16 resumable ones plus one model-only save per new best, from none (the bound below) to
all 109 others (the bound above). Timings are this machine's disk and CPU; on a GPU machine a save also copies the
weights and optimizer state from the device.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time

from datasets import Dataset
from transformers import DataCollatorWithPadding

from bench.gpu_check.check import MINILM, random_bert
from bench.report import markdown_table, replace_section
from hncse.data import tokenize_sentences
from hncse.modeling import SentenceEncoder
from hncse.parser import parse_args
from hncse.training import HNCSETrainer
from hncse.training.checkpoints import is_model_only

PAPER_STEPS, PAPER_SAVE_EVERY, DEFAULT_RESUME_EVERY = 15_625, 125, 1_000


class TimedSaves(HNCSETrainer):
    """HNCSETrainer that records how long each checkpoint save took and what it wrote."""

    saves: list[dict]

    def _save_checkpoint(self, model, trial) -> None:
        start = time.perf_counter()
        super()._save_checkpoint(model, trial)
        seconds = time.perf_counter() - start
        folder = os.path.join(self.args.output_dir, f"checkpoint-{self.state.global_step}")
        if os.path.isdir(folder):
            size = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(folder) for f in files)
            kind = "model only" if is_model_only(folder) else "resumable"
            self.saves.append({"step": self.state.global_step, "kind": kind, "seconds": seconds, "bytes": size})


def measure(workdir: str) -> list[dict]:
    tokenizer = SentenceEncoder.from_pretrained(MINILM).tokenizer
    encoder = random_bert(tokenizer)
    texts = [f"sentence {i} of the checkpoint benchmark, about nothing in particular" for i in range(64)]
    dataset = tokenize_sentences(Dataset.from_dict({"text": texts}), tokenizer, 32).remove_columns("num_tokens")
    _, _, args = parse_args([
        "--train_file", "unused.txt", "--output_dir", workdir, "--per_device_train_batch_size", "8",
        "--max_steps", "6", "--save_steps", "1", "--resume_state_steps", "3", "--save_total_limit", "0",
        "--eval_strategy", "no", "--load_best_model_at_end", "false", "--logging_steps", "6", "--disable_tqdm",
        "true", "--report_to", "none", "--dataloader_pin_memory", "false",
    ])  # fmt: skip
    trainer = TimedSaves(
        model=encoder, args=args, train_dataset=dataset, data_collator=DataCollatorWithPadding(tokenizer)
    )
    trainer.saves = []
    trainer.train()
    return trainer.saves


def summary(saves: list[dict]) -> dict:
    per_kind = {}
    for kind in ("resumable", "model only"):
        chosen = [s for s in saves if s["kind"] == kind]
        per_kind[kind] = {
            "saves": len(chosen),
            "seconds": statistics.median(s["seconds"] for s in chosen),
            "MB": statistics.median(s["bytes"] for s in chosen) / 1e6,
        }
    saves_in_run = PAPER_STEPS // PAPER_SAVE_EVERY
    resumable_now = PAPER_STEPS // DEFAULT_RESUME_EVERY + (PAPER_STEPS % DEFAULT_RESUME_EVERY > 0)
    full, model = per_kind["resumable"], per_kind["model only"]
    before = saves_in_run * full["seconds"], saves_in_run * full["MB"]
    fewest = resumable_now * full["seconds"], resumable_now * full["MB"]
    most = (
        fewest[0] + (saves_in_run - resumable_now) * model["seconds"],
        fewest[1] + (saves_in_run - resumable_now) * model["MB"],
    )
    return {
        "per_kind": per_kind,
        "paper": {
            "saves": saves_in_run,
            "resumable_now": resumable_now,
            "before": {"seconds": before[0], "MB_written": before[1]},
            "now_no_new_best": {"seconds": fewest[0], "MB_written": fewest[1]},
            "now_every_save_a_new_best": {"seconds": most[0], "MB_written": most[1]},
        },
    }


def render(result: dict, command: str) -> str:
    per_kind, paper = result["per_kind"], result["paper"]
    rows = [[kind, v["saves"], f"{v['seconds']:.2f}", f"{v['MB']:,.0f}"] for kind, v in per_kind.items()]
    projection = [
        [f"before: the state to resume at all {paper['saves']} saves", paper["before"]],
        [f"now, no new best between the {paper['resumable_now']} resumable saves", paper["now_no_new_best"]],
        [f"now, every one of the other {paper['saves'] - paper['resumable_now']} saves a new best",
         paper["now_every_save_a_new_best"]],
    ]  # fmt: skip
    return "\n\n".join([
        f"Written by `{command}` ({result['machine']}; checkpoints written to {result['disk']}).",
        "Per save of a BERT-base-sized encoder (110M parameters, float32, AdamW state), median of the saves of each "
        "kind:",
        markdown_table(["checkpoint", "saves timed", "seconds", "MB"], rows),
        f"The paper's schedule ({PAPER_STEPS:,} steps, a save every {PAPER_SAVE_EVERY}), from the figures above:",
        markdown_table(
            ["policy", "seconds writing checkpoints", "GB written"],
            [[name, f"{v['seconds']:,.0f}", f"{v['MB_written'] / 1000:,.1f}"] for name, v in projection],
        ),
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/benchmarks.md")
    parser.add_argument("--json", default="docs/benchmarks/checkpoint_cost.json")
    parser.add_argument("--workdir", default=None, help="where the checkpoints are written (default: a temp dir)")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="checkpoint_cost_", dir=args.workdir)
    try:
        saves = measure(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = summary(saves) | {
        "saves": saves,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "disk": os.path.dirname(workdir),
    }
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    replace_section(args.out, "checkpoint_cost", render(result, "python -m bench.performance.checkpoint_cost"))
    print(render(result, "python -m bench.performance.checkpoint_cost"))


if __name__ == "__main__":
    main()
