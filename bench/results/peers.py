"""The nearest peers of the ablation's hncse rows, trained in sentence-transformers' own trainer, 3 seeds each.

    python -m bench.results.peers [--seeds 42 43 44] [--rows ROW ...]   (default: every row of ROWS)

A sibling of bench.results.ablation with the same budget: the bundled all-MiniLM-L6-v2 weights, the first
--max_train_samples sentences of the wiki1m corpus, one pass in batches of 64 (incomplete last batch dropped: 100
steps), length 32, lr 3e-5 and the rest of the schedule as hncse's config sets it (copied from the config that
bench.results.ablation's runs parse, and checked equal), seeds 42 43 44. Each row trains a `SentenceTransformer` of
Transformer → Pooling (`cls`, the [CLS] vector) in `SentenceTransformerTrainer` with one loss:

- `mnrl`: sentence-transformers' `MultipleNegativesRankingLoss`, each sentence as (anchor, positive): unsupervised
  SimCSE as sentence-transformers ships it (scale 20 = temperature 0.05, dropout makes the two views differ);
- `mnrl_hardness9`: the same with `hardness_mode="in_batch_negatives", hardness_strength=9.0` (Lan et al. 2025);
- `hncse_simcse`, `hncse_hybrid_sum`: hncse's objectives as a sentence-transformers loss (`HNCSELoss`), one column
  of sentences encoded twice in one pass, so that the trainer is not what differs from MNRL;
- `hncse_simcse_head`: `HNCSELoss` simcse with the hncse rows' Linear+tanh head (a Dense module, initialised to the
  very weights hncse's head gets under the same seed) in training only, dropped before scoring: the control that
  tells the trainer apart from the head;
- `mnrl_head`, `mnrl_hardness9_head`, `hncse_hybrid_sum_head`: the other rows with that head, so that each peer is
  also compared with the hncse rows on the loss alone.

The hncse rows of bench.results.ablation use the [CLS] vector with that head in training only; the rows without `_head`
have no head at all (sentence-transformers has no training-only module). The final model of each run (no checkpoint
selection) is saved as a sentence-transformers folder, loaded back with `hncse.modeling.SentenceEncoder` and scored on
STS-B dev and SICK-R dev with hncse's evaluator, as bench.results.ablation scores its runs. Results are appended to
docs/results/peers.jsonl as they come (a rerun skips finished runs) and the table in docs/results.md, beside the hncse
rows' numbers from docs/results/ablation.jsonl, is regenerated from those files.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
from datasets import Dataset
from transformers import set_seed

from bench.report import markdown_table, replace_section
from hncse.data import load_sentences
from hncse.data.sources import resolve_senteval_dir
from hncse.evaluation.senteval_data import load_sts_task
from hncse.evaluation.sts import evaluate_sts
from hncse.modeling import SentenceEncoder
from hncse.modeling.resolve import resolve_model_path
from hncse.parser import parse_args
from hncse.training.sampler import PermutationSampler

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
CORPUS = "wiki1m"  # as bench.results.ablation: $HNCSE_DATA_DIR's copy, the Hub cache, or a download
SENTEVAL = "senteval"
DEV_SETS = {"stsb": "STSBenchmark", "sickr": "SICKRelatedness"}  # bench.results.ablation's
HNCSE_ROWS = {
    "simcse": "simcse",
    "hybrid_sum": "hybrid_sum",
}  # bench.results.ablation's objectives shown beside the peers

# The TrainingArguments that decide the updates: copied from hncse's config into sentence-transformers' arguments.
SCHEDULE_FIELDS = (
    "learning_rate", "lr_scheduler_type", "lr_scheduler_kwargs", "warmup_steps", "weight_decay", "adam_beta1",
    "adam_beta2", "adam_epsilon", "max_grad_norm", "optim", "optim_args", "seed", "data_seed",
    "per_device_train_batch_size", "gradient_accumulation_steps", "num_train_epochs", "max_steps",
    "dataloader_drop_last", "use_cpu", "bf16", "fp16", "logging_steps",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Row:
    label: str
    loss: str  # "mnrl" or "hncse"
    options: dict  # keyword arguments of the loss
    head: bool = False  # hncse's Linear+tanh head in training only


ROWS = {
    "mnrl": Row("MNRL (ST trainer)", "mnrl", {}),
    "mnrl_hardness9": Row(
        "MNRL hardness 9 (ST trainer)", "mnrl", {"hardness_mode": "in_batch_negatives", "hardness_strength": 9.0}
    ),
    "hncse_simcse": Row("HNCSELoss simcse (ST trainer)", "hncse", {"objective": "simcse"}),
    "hncse_hybrid_sum": Row("HNCSELoss hybrid_sum (ST trainer)", "hncse", {"objective": "hybrid_sum"}),
    "hncse_simcse_head": Row(
        "HNCSELoss simcse + train-only head (ST trainer)", "hncse", {"objective": "simcse"}, True
    ),
    # The peers with the head too: the comparison with the hncse rows that differs in the loss alone.
    "mnrl_head": Row("MNRL + train-only head (ST trainer)", "mnrl", {}, True),
    "mnrl_hardness9_head": Row(
        "MNRL hardness 9 + train-only head (ST trainer)",
        "mnrl",
        {"hardness_mode": "in_batch_negatives", "hardness_strength": 9.0},
        True,
    ),
    "hncse_hybrid_sum_head": Row(
        "HNCSELoss hybrid_sum + train-only head (ST trainer)", "hncse", {"objective": "hybrid_sum"}, True
    ),
}
DEFAULT_ROWS = list(ROWS)


def evaluate(encoder, senteval: str) -> dict[str, float]:
    """bench.results.ablation.evaluate, with the SentEval folder as an argument: Spearman ×100 on STS-B dev and
    SICK-R dev."""
    tasks = {
        f"{short}_dev": load_sts_task(name, resolve_senteval_dir(senteval), "dev") for short, name in DEV_SETS.items()
    }
    return {name: result["all"] for name, result in evaluate_sts(encoder, tasks).items()}


def hncse_arguments(corpus: str, seed: int, max_train_samples: int, batch_size: int, max_seq_length: int):
    """(data args, training args) of an hncse run of this budget, as bench.results.ablation parses them."""
    _, data_args, args = parse_args(
        ["--train_file", corpus, "--output_dir", tempfile.mkdtemp(), "--objective", "simcse", "--seed", str(seed),
         "--max_train_samples", str(max_train_samples), "--per_device_train_batch_size", str(batch_size),
         "--max_seq_length", str(max_seq_length), "--eval_strategy", "no", "--save_strategy", "no",
         "--load_best_model_at_end", "false", "--disable_tqdm", "true", "--dataloader_pin_memory", "false"]
    )  # fmt: skip
    return data_args, args


def plain(value):
    """A JSON-able form of a TrainingArguments value (enums by their value)."""
    return getattr(value, "value", value)


def st_arguments(hncse_args, output_dir: str):
    """sentence-transformers' training arguments with hncse's schedule (SCHEDULE_FIELDS), checked equal."""
    from sentence_transformers import SentenceTransformerTrainingArguments

    args = SentenceTransformerTrainingArguments(
        output_dir=output_dir,
        **{name: getattr(hncse_args, name) for name in SCHEDULE_FIELDS},
        eval_strategy="no",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    differ = {
        name: (plain(getattr(hncse_args, name)), plain(getattr(args, name)))
        for name in SCHEDULE_FIELDS
        if plain(getattr(hncse_args, name)) != plain(getattr(args, name))
    }
    if differ or hncse_args.accelerator_config.use_seedable_sampler != args.accelerator_config.use_seedable_sampler:
        raise RuntimeError(f"sentence-transformers' arguments differ from hncse's: {differ}")
    return args


def build_model(model_name: str, seed: int, max_seq_length: int, head: bool):
    """Transformer → Pooling(cls) (→ Dense tanh, the hncse head) over the same weights hncse's runs start from.
    With the head, its weights are the ones `SentenceEncoder` initialises under the same seed (bench.results.ablation
    builds its model right after `set_seed(seed)`)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Dense, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    set_seed(seed)
    reference = SentenceEncoder.from_pretrained(model_name, pooler_type="cls", mlp_only_train=True)
    transformer = Transformer(
        resolve_model_path(model_name), max_seq_length=max_seq_length, model_kwargs={"dtype": torch.float32}
    )
    modules = [transformer, Pooling(transformer.get_embedding_dimension(), pooling_mode="cls")]
    if head:
        linear = reference.mlp[0]
        modules.append(
            Dense(linear.in_features, linear.out_features, activation_function=torch.nn.Tanh(),
                  init_weight=linear.weight.detach().clone(), init_bias=linear.bias.detach().clone())
        )  # fmt: skip
    model = SentenceTransformer(modules=modules, device="cpu")
    eval_length = reference.max_seq_length
    del reference
    return model, eval_length


def build_loss(row: Row, model, seed: int):
    if row.loss == "mnrl":
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

        return MultipleNegativesRankingLoss(model, **row.options)
    from hncse.st_losses import HNCSELoss

    return HNCSELoss(model, seed=seed, **row.options)  # seed: HNM's sampler, as hncse's trainer seeds it


class RecordingCollator:
    """The trainer's collator, keeping a digest of each batch's first column (the training order)."""

    def __init__(self, collator: Callable):
        self.collator = collator
        self.batches: list[str] = []

    def __getattr__(self, name):
        return getattr(self.collator, name)

    def __call__(self, features: list[dict]):
        first = next(iter(features[0]))
        self.batches.append(digest([row[first] for row in features]))
        return self.collator(features)


def digest(texts: list[str]) -> str:
    return hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()[:16]


def hncse_order(texts: list[str], seed: int, batch_size: int) -> list[str]:
    """The digests of the batches hncse's trainer draws from `texts` with this seed (its `PermutationSampler`,
    seeded by the run's seed, incomplete last batch dropped)."""
    order = list(PermutationSampler(len(texts), seed))
    return [
        digest([texts[i] for i in order[s : s + batch_size]])
        for s in range(0, len(order) - batch_size + 1, batch_size)
    ]


def train_one(name: str, seed: int, settings: dict) -> dict:
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer

    row = ROWS[name]
    batch_size, max_seq_length = settings["batch_size"], settings["max_seq_length"]
    data_args, hncse_args = hncse_arguments(
        settings["corpus"], seed, settings["max_train_samples"], batch_size, max_seq_length
    )
    output_dir = tempfile.mkdtemp(prefix=f"peers-{name}-{seed}-")
    args = st_arguments(hncse_args, output_dir)
    model, eval_length = build_model(settings["model"], seed, data_args.max_seq_length, row.head)
    corpus = load_sentences(train_file=settings["corpus"])
    if len(corpus) < settings["max_train_samples"]:
        raise SystemExit(
            f"{settings['corpus']}: {len(corpus)} sentences, the runs need {settings['max_train_samples']}"
        )
    texts = corpus.select(range(settings["max_train_samples"]))["text"]
    # MNRL takes (anchor, positive) pairs: the sentence twice. HNCSELoss takes the one column and encodes it twice.
    columns = {"anchor": texts, "positive": texts} if row.loss == "mnrl" else {"text": texts}
    loss = build_loss(row, model, seed)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=Dataset.from_dict(columns), loss=loss)
    recorder = RecordingCollator(trainer.data_collator)
    trainer.data_collator = recorder
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    # Scored as hncse's runs are: without the head (training only), at the evaluation length hncse's model has.
    scored = SentenceTransformer(modules=[model[0], model[1]], device="cpu") if row.head else model
    scored.max_seq_length = eval_length
    folder = os.path.join(output_dir, "final")
    scored.save(folder)
    encoder = SentenceEncoder.from_pretrained(folder)
    shutil.rmtree(output_dir, ignore_errors=True)  # the encoder is in memory; 90 MB a run
    train_logs = [e for e in trainer.state.log_history if "loss" in e]
    return {
        "row": name,
        "label": row.label,
        "seed": seed,
        "steps": trainer.state.global_step,
        "loss_class": type(loss).__name__,
        "loss_config": json.loads(json.dumps(loss.get_config_dict(), default=str)),
        "train_only_head": row.head,
        "modules": [type(m).__name__ for m in model],
        "scored_modules": [type(m).__name__ for m in scored],
        "scored_pooler": encoder.pooler_type,
        "train_max_seq_length": data_args.max_seq_length,
        "eval_max_seq_length": encoder.max_seq_length,
        "schedule": {name: plain(getattr(args, name)) for name in SCHEDULE_FIELDS},
        "order_as_hncse": recorder.batches == hncse_order(texts, seed, batch_size),
        "train_seconds": round(seconds, 1),
        "last_logged": train_logs[-1] if train_logs else {},
        "train_logs": train_logs,
        **evaluate(encoder, settings["senteval"]),
    }


def mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def read_jsonl(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def render(results: list[dict], hncse_results: list[dict], args) -> str:
    groups: list[tuple[str, str, str, list[dict]]] = []  # (label, trainer, scored as, runs)
    for objective in HNCSE_ROWS:
        runs = [r for r in hncse_results if r["objective"] == objective and r["seed"] in args.seeds]
        if runs:
            groups.append(
                (f"hncse {objective} (HNCSETrainer, bench.results.ablation)", "HNCSETrainer", "cls + head", runs)
            )
    for name in args.rows:
        row, runs = ROWS[name], [r for r in results if r["row"] == name and r["seed"] in args.seeds]
        if runs:
            groups.append((row.label, "SentenceTransformerTrainer", "cls + head" if row.head else "cls", runs))
    header = ["row", "trained with", "seeds", "STS-B dev", "SICK-R dev", "train s / run"]
    rows = [
        [label, pooled, len(runs), mean_std([r["stsb_dev"] for r in runs]), mean_std([r["sickr_dev"] for r in runs]),
         f"{statistics.mean(r['train_seconds'] for r in runs):.0f}"]
        for label, _, pooled, runs in groups
    ]  # fmt: skip
    seeds = sorted({r["seed"] for _, _, _, runs in groups for r in runs})

    def per_seed(key: str) -> str:
        table = [
            [label] + [next((f"{r[key]:.2f}" for r in runs if r["seed"] == s), "-") for s in seeds]
            for label, _, _, runs in groups
        ]
        return markdown_table(["row"] + [f"seed {s}" for s in seeds], table)

    command = f"python -m bench.results.peers --seeds {' '.join(map(str, args.seeds))}"
    if args.rows != DEFAULT_ROWS:
        command += f" --rows {' '.join(args.rows)}"
    if args.max_train_samples != 6400:
        command += f" --max_train_samples {args.max_train_samples}"
    shown = [r for _, trainer, _, runs in groups if trainer != "HNCSETrainer" for r in runs]
    order = all(r["order_as_hncse"] for r in shown)
    return (
        f"Command: `{command}` (results: `{args.results}`; the hncse rows: `{args.ablation_results}`, written by "
        "`python -m bench.results.ablation --seeds 42 43 44 --max_train_samples 6400 --eval_steps 20`)\n\n"
        + markdown_table(header, rows)
        + "\n\nSTS-B dev per seed:\n\n"
        + per_seed("stsb_dev")
        + "\n\nSICK-R dev per seed:\n\n"
        + per_seed("sickr_dev")
        + "\n\nSpearman ×100 of the final model, mean ± sample standard deviation over seeds, scored by hncse's "
        "evaluator (`SentenceEncoder` on the saved folder, [CLS] vector, no head). *Trained with*: the vector the "
        "loss saw in training (`cls + head`: hncse's Linear+tanh head on it, training only). Training order "
        + ("the same batches as hncse's trainer draws with the same seed, checked batch by batch in every run"
           if order and shown else "NOT the same as hncse's in some run (`order_as_hncse` in the results)")
        + ". Train seconds are wall time on a shared machine, not a benchmark."
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=DEFAULT_ROWS, choices=list(ROWS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--max_train_samples", type=int, default=6400)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--max_seq_length", type=int, default=32)
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--corpus", default=CORPUS)
    parser.add_argument("--senteval", default=SENTEVAL)
    parser.add_argument("--results", default="docs/results/peers.jsonl")
    parser.add_argument("--ablation_results", default="docs/results/ablation.jsonl")
    parser.add_argument("--doc", default="docs/results.md")
    parser.add_argument("--render_only", action="store_true", help="rewrite the doc table from --results")
    args = parser.parse_args(argv)
    os.makedirs(os.path.dirname(args.results) or ".", exist_ok=True)
    settings = {
        "max_train_samples": args.max_train_samples, "batch_size": args.batch_size,
        "max_seq_length": args.max_seq_length, "model": args.model, "corpus": args.corpus, "senteval": args.senteval,
    }  # fmt: skip
    results = [r for r in read_jsonl(args.results) if all(r.get(k) == v for k, v in settings.items())]
    hncse_results = [
        r for r in read_jsonl(args.ablation_results) if r.get("max_train_samples") == args.max_train_samples
    ]
    done = {(r["row"], r["seed"]) for r in results}
    for seed in [] if args.render_only else args.seeds:
        for name in args.rows:
            if (name, seed) in done:
                print(f"skipping {name} seed {seed}: in {args.results}", flush=True)
                continue
            result = {**train_one(name, seed, settings), **settings}
            summary = {k: result[k] for k in ("row", "seed", "steps", "stsb_dev", "sickr_dev", "order_as_hncse")}
            print(json.dumps(summary), flush=True)
            results.append(result)
            with open(args.results, "a", encoding="utf-8") as f:
                f.write(json.dumps(result) + "\n")
            replace_section(args.doc, "peers", render(results, hncse_results, args))
    replace_section(args.doc, "peers", render(results, hncse_results, args))


if __name__ == "__main__":
    main()
