"""Cost of the HNCSE objectives, measured side by side in one run (the machine is noisy: ratios, not absolutes).

    python -m bench.performance.objective_cost [--rounds 8] [--st_steps 20] [--out docs/benchmarks/objective_cost.json]

1. Training step (forward of both views, loss, backward, AdamW step) of each objective on all-MiniLM-L6-v2,
   batch 64, length 32 (padded to 32), `cls` pooler + MLP: median seconds and ratio to `simcse`. Objectives
   run round-robin on the same batches, in an order rotated every round, so that drifts in machine speed
   hit all of them alike.
2. The loss alone (forward + backward on fixed embeddings, d = 384): vectorised vs the naive per-row
   versions of tests/losses/naive_losses.py, at batch 64 and 512.
3. Our `simcse` training vs sentence-transformers' SimCSE recipe (MultipleNegativesRankingLoss on
   (sentence, sentence) pairs) through each library's Trainer: same weights, batch 64, length 32, [CLS]
   pooling without MLP, AdamW lr 3e-5; sentences per second, alternated A B A B.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import torch

from bench.report import markdown_table, replace_section
from hncse.data import load_sentences, tokenize_sentences
from hncse.losses import OBJECTIVES, build_loss
from hncse.modeling import SentenceEncoder
from hncse.parser import parse_args
from hncse.training.trainer import HNCSETrainer
from tests.losses import naive_losses

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
CORPUS = (
    "wiki1m"  # a corpus name: $HNCSE_DATA_DIR's copy (here the 10k-sentence extract), the Hub cache, or a download
)
OBJECTIVE_NAMES = list(OBJECTIVES)


def config(output_dir: str, *extra: str):
    return parse_args(
        ["--train_file", CORPUS, "--output_dir", output_dir, "--eval_strategy", "no",
         "--load_best_model_at_end", "false", "--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true",
         *extra]
    )  # fmt: skip


def training_steps(rounds: int, batch_size: int, length: int) -> dict:
    _, _, args = config(tempfile.mkdtemp())
    torch.manual_seed(0)
    model = SentenceEncoder.from_pretrained(MODEL, pooler_type="cls")
    sentences = load_sentences(train_file=CORPUS)["text"]
    losses = {}
    for name in OBJECTIVE_NAMES:
        args.objective = name
        losses[name] = build_loss(args)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-7)
    model.train()
    times = {name: [] for name in OBJECTIVE_NAMES}
    for r in range(rounds + 1):  # round 0 warms up
        texts = sentences[r * batch_size : (r + 1) * batch_size]
        batch = model.tokenizer(texts, padding="max_length", truncation=True, max_length=length, return_tensors="pt")
        features = {k: torch.cat([v, v]) for k, v in batch.items()}
        shift = r % len(OBJECTIVE_NAMES)  # rotate the order so that no objective always runs first
        for name in OBJECTIVE_NAMES[shift:] + OBJECTIVE_NAMES[:shift]:
            start = time.perf_counter()
            z1, z2 = model(**features).chunk(2)
            loss, _ = losses[name](z1, z2)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if r > 0:
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["simcse"])
    return {
        name: {"median_s": statistics.median(t), "ratio_to_simcse": statistics.median(t) / base, "samples": len(t)}
        for name, t in times.items()
    }


def naive_objective(name: str, z1, z2, seed: int):
    k = min(10, z1.shape[0] - 1)
    pick = torch.randint(k * (k - 1) // 2, (z1.shape[0], 40), generator=torch.Generator().manual_seed(seed))
    if name == "simcse":
        return naive_losses.info_nce(z1, z2, 0.05)
    mixed, _ = naive_losses.pm_positives(z1, z2, 0.1, 1.0, 0.5)
    if name == "pm":
        return naive_losses.info_nce(z1, mixed, 0.05)
    if name == "hnm":
        return naive_losses.hnm_loss(z1, z2, k, 0.5, 0.05, pick)
    if name == "hybrid":
        return naive_losses.hnm_loss(z1, mixed, k, 0.5, 0.05, pick)
    return naive_losses.info_nce(z1, mixed, 0.05) + naive_losses.hnm_loss(z1, z2, k, 0.5, 0.05, pick)


def loss_alone(sizes: list[int], dim: int, repeats: int) -> dict:
    _, _, args = config(tempfile.mkdtemp())
    results = {}
    for n in sizes:
        g = torch.Generator().manual_seed(n)
        base1, base2 = torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g)
        for name in OBJECTIVE_NAMES:
            args.objective = name
            module = build_loss(args)
            vectorised = []
            for _ in range(repeats):
                z1, z2 = base1.clone().requires_grad_(), base2.clone().requires_grad_()
                start = time.perf_counter()
                module(z1, z2)[0].backward()
                vectorised.append(time.perf_counter() - start)
            z1, z2 = base1.clone().requires_grad_(), base2.clone().requires_grad_()
            start = time.perf_counter()
            naive_objective(name, z1, z2, args.seed).backward()
            naive = time.perf_counter() - start
            v = statistics.median(vectorised)
            results[f"{name}@{n}"] = {"vectorised_s": v, "naive_s": naive, "speedup": naive / v}
            print(f"  loss alone {name:10s} N={n:4d}: vectorised {v * 1e3:8.2f} ms, naive {naive:8.2f} s", flush=True)
    return results


def st_comparison(steps: int, batch_size: int, length: int, rounds: int = 2) -> dict:
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import DataCollatorWithPadding

    from hncse.modeling.resolve import resolve_model_path

    path = resolve_model_path(MODEL)
    texts = load_sentences(train_file=CORPUS)["text"][: steps * batch_size]
    common = dict(per_device_train_batch_size=batch_size, learning_rate=3e-5, max_steps=steps, report_to="none",
                  save_strategy="no", disable_tqdm=True, dataloader_drop_last=True, seed=42, use_cpu=True,
                  logging_steps=10**6, warmup_steps=0)  # fmt: skip

    def ours() -> float:
        _, _, args = config(tempfile.mkdtemp(), "--max_seq_length", str(length))
        for key, value in common.items():
            setattr(args, key, value)
        model = SentenceEncoder.from_pretrained(path, pooler_type="cls_before_pooler")
        data = tokenize_sentences(Dataset.from_dict({"text": texts}), model.tokenizer, length)
        trainer = HNCSETrainer(
            model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(model.tokenizer)
        )
        start = time.perf_counter()
        trainer.train()
        return time.perf_counter() - start

    def theirs() -> float:
        transformer = Transformer(path, max_seq_length=length)
        model = SentenceTransformer(
            modules=[transformer, Pooling(transformer.get_embedding_dimension(), "cls")], device="cpu"
        )
        args = SentenceTransformerTrainingArguments(output_dir=tempfile.mkdtemp(), **common)
        data = Dataset.from_dict({"anchor": texts, "positive": texts})
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=data, loss=MultipleNegativesRankingLoss(model, scale=20.0)
        )
        start = time.perf_counter()
        trainer.train()
        return time.perf_counter() - start

    runs = {"hncse": [], "sentence_transformers": []}
    for _ in range(rounds):
        runs["hncse"].append(ours())
        runs["sentence_transformers"].append(theirs())
        print(
            f"  trainers: hncse {runs['hncse'][-1]:.1f} s, "
            f"sentence-transformers {runs['sentence_transformers'][-1]:.1f} s",
            flush=True,
        )
    sentences = steps * batch_size
    result = {name: {"seconds": t, "sentences_per_s": [sentences / x for x in t]} for name, t in runs.items()}
    result["speedup"] = statistics.mean(runs["sentence_transformers"]) / statistics.mean(runs["hncse"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--st_steps", type=int, default=20)
    parser.add_argument("--st_rounds", type=int, default=2, help="alternations of the two trainers")
    parser.add_argument("--loss_repeats", type=int, default=5)
    parser.add_argument("--out", default="docs/benchmarks/objective_cost.json")
    parser.add_argument("--doc", default="docs/benchmarks.md")
    parser.add_argument("--render_only", action="store_true", help="rewrite the doc section from --out")
    parser.add_argument("--parts", nargs="+", type=int, default=[1, 2, 3], help="measure only these parts (1 2 3)")
    args = parser.parse_args()
    if args.render_only:
        with open(args.out, encoding="utf-8") as f:
            replace_section(args.doc, "objective-cost", render(json.load(f), args.out))
        return
    torch.manual_seed(0)
    previous = {}
    if set(args.parts) != {1, 2, 3} and os.path.exists(args.out):
        with open(args.out, encoding="utf-8") as f:
            previous = json.load(f)
    report = {
        **previous,
        "command": " ".join(["python -m bench.performance.objective_cost", *sys.argv[1:]]),
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "platform": platform.platform(), "torch": torch.__version__},
    }  # fmt: skip
    if 1 in args.parts:
        print("1. training step per objective", flush=True)
        report["training_step"] = training_steps(args.rounds, 64, 32)
        for name, r in report["training_step"].items():
            print(f"  {name:10s} {r['median_s']:.3f} s/step  x{r['ratio_to_simcse']:.3f}", flush=True)
    if 2 in args.parts:
        print("2. loss alone", flush=True)
        report["loss_alone"] = loss_alone([64, 512], 384, args.loss_repeats)
    if 3 in args.parts:
        print("3. hncse vs sentence-transformers", flush=True)
        report["vs_sentence_transformers"] = st_comparison(args.st_steps, 64, 32, args.st_rounds)
    earlier = previous.get("commands") or ({str(p): previous["command"] for p in (1, 2, 3)} if previous else {})
    report["commands"] = {**earlier, **{str(p): report["command"] for p in args.parts}}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    replace_section(args.doc, "objective-cost", render(report, args.out))
    print(f"wrote {args.out} and {args.doc}")


def render(report: dict, json_path: str) -> str:
    step = report["training_step"]
    step_rows = [[name, f"{r['median_s']:.3f}", f"{r['ratio_to_simcse']:.3f}"] for name, r in step.items()]
    loss_rows = [
        [
            key.split("@")[0],
            key.split("@")[1],
            f"{r['vectorised_s'] * 1e3:.2f}",
            f"{r['naive_s']:.2f}",
            f"{r['speedup']:.0f}",
        ]
        for key, r in report["loss_alone"].items()
    ]
    st = report["vs_sentence_transformers"]
    st_rows = [
        [
            name,
            ", ".join(f"{x:.1f}" for x in st[name]["seconds"]),
            ", ".join(f"{x:.1f}" for x in st[name]["sentences_per_s"]),
        ]
        for name in ("hncse", "sentence_transformers")
    ]
    machine = report["machine"]
    return "\n\n".join(
        [
            "Commands: "
            + "; ".join(f"part {p}: `{c}`" for p, c in sorted(report.get("commands", {}).items()))
            + f" (raw numbers: `{json_path}`). Machine: {machine['cpu_count']} CPU cores, "
            f"torch {machine['torch']} with {machine['torch_threads']} threads, {machine['platform']}.",
            "**Training step** (all-MiniLM-L6-v2, batch 64, length 32, cls + MLP, AdamW; median over rounds, "
            "objectives interleaved):\n\n" + markdown_table(["objective", "s / step", "× simcse"], step_rows),
            "**Loss alone** (forward + backward on fixed (N, 384) embeddings; naive = tests/losses/naive_losses.py, "
            "one run):\n\n" + markdown_table(["objective", "N", "vectorised ms", "naive s", "speed-up ×"], loss_rows),
            "**Against sentence-transformers** (each library's Trainer, same weights, batch 64, length 32, [CLS] "
            "without MLP, AdamW 3e-5; runs alternated):\n\n"
            + markdown_table(["library", "seconds per run", "sentences / s"], st_rows)
            + f"\n\nhncse trains at {st['speedup']:.2f}× the speed of sentence-transformers' "
            "MultipleNegativesRankingLoss recipe.",
        ]
    )


if __name__ == "__main__":
    main()
