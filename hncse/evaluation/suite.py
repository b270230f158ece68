"""The evaluation suite: which SentEval tasks, in which mode, loaded once and scored with one encoding pass.

Modes follow SimCSE's `evaluation.py`:
- "dev": STS-B and SICK-R dev sets; transfer tasks report their validation accuracy with the fast protocol.
- "test": the test sets (STS12–16, STS-B test, SICK-R test); transfer with SentEval's full protocol.
- "fasttest": the test sets; transfer with the fast protocol (5 folds, RMSprop, fewer passes).

The Trainer's in-training evaluation is this code in "dev" mode; `python -m hncse.evaluate` and `--do_predict`
run it in "test" mode.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from hncse.errors import EvalConfigError
from hncse.evaluation.alignment_uniformity import alignment_uniformity
from hncse.evaluation.embedding_cache import encode_unique
from hncse.evaluation.senteval_data import (
    SHORT_NAMES,
    STS_TASKS,
    STS_YEARS,
    TABLE_NAMES,
    TASK_BY_SHORT_NAME,
    TRANSFER_TASKS,
    ClassificationTask,
    STSPairs,
    STSTask,
    load_sts_task,
    load_transfer_task,
)
from hncse.evaluation.sts import score_sts_task, sts_sentences
from hncse.evaluation.transfer import PROTOCOLS, evaluate_transfer_task

logger = logging.getLogger(__name__)

TASK_SETS = {"sts": STS_TASKS, "transfer": TRANSFER_TASKS, "full": STS_TASKS + TRANSFER_TASKS}
MODES = ("dev", "test", "fasttest")
TRANSFER_TABLE_NAMES = {"SST2": "SST-2"}


@dataclass
class EvalSuite:
    """Loaded evaluation data for one mode."""

    mode: str
    sts: dict[str, STSTask] = field(default_factory=dict)
    transfer: dict[str, ClassificationTask] = field(default_factory=dict)
    alignment_pairs: STSPairs | None = None

    def sentences(self) -> list[str]:
        out = sts_sentences(self.sts.values())
        for task in self.transfer.values():
            out += task.sentences()
        if self.alignment_pairs is not None:
            out += self.alignment_pairs.sentences1 + self.alignment_pairs.sentences2
        return out


def task_name(name: str, flag: str = "--tasks") -> str:
    """SentEval's task name for a short (`stsb`), table (`STS-B`) or SentEval (`STSBenchmark`) name."""
    key = name.strip().lower().replace("-", "")
    for long_name in STS_TASKS + TRANSFER_TASKS:
        if key in (long_name.lower(), SHORT_NAMES[long_name], TABLE_NAMES.get(long_name, "").lower().replace("-", "")):
            return long_name
    if key in TASK_BY_SHORT_NAME:
        return TASK_BY_SHORT_NAME[key]
    choices = ", ".join(SHORT_NAMES[t] for t in STS_TASKS + TRANSFER_TASKS)
    raise EvalConfigError(f"{flag}: unknown task {name!r}; choose from {choices}")


def resolve_tasks(
    task_set: str | None,
    tasks: list[str] | None,
    mode: str,
    flag: str = "--tasks",
    task_set_flag: str = "--task_set",
) -> list[str]:
    """The tasks to run. A task set in dev mode drops STS12–16 (they have no dev split), as SimCSE does.

    flag, task_set_flag: how the caller's command line names `tasks` and `task_set`, for the error messages.
    """
    if mode not in MODES:
        raise EvalConfigError(f"--mode: unknown value {mode!r}; choose from {', '.join(MODES)}")
    if tasks:
        names = list(dict.fromkeys(task_name(t, flag) for t in tasks))
        if mode == "dev":
            no_dev = [n for n in names if n in STS_YEARS]
            if no_dev:
                raise EvalConfigError(f"{flag}: {', '.join(no_dev)} have no dev split; use --mode test or drop them")
        return names
    if task_set not in TASK_SETS:
        raise EvalConfigError(f"{task_set_flag}: unknown value {task_set!r}; choose from {', '.join(TASK_SETS)}")
    return [n for n in TASK_SETS[task_set] if not (mode == "dev" and n in STS_YEARS)]


def load_suite(
    tasks: list[str], mode: str, data_dir: str | None, alignment: bool = False, flag: str = "--senteval_dir"
) -> EvalSuite:
    """Read every task's files (or the Hub copies of the STS sets when no folder is given)."""
    split = "dev" if mode == "dev" else "test"
    suite = EvalSuite(mode)
    for name in tasks:
        if name in STS_TASKS:
            suite.sts[name] = load_sts_task(name, data_dir, split, flag)
        else:
            suite.transfer[name] = load_transfer_task(name, data_dir, flag)
    if alignment:
        stsb_dev = suite.sts.get("STSBenchmark") if mode == "dev" else None
        suite.alignment_pairs = (stsb_dev or load_sts_task("STSBenchmark", data_dir, "dev", flag)).subsets[0]
    return suite


def run_suite(
    encoder, suite: EvalSuite, batch_size: int = 128, bf16: bool = False, mrpc_features: str = "senteval"
) -> dict:
    """Encode every distinct sentence of the suite once, then score each task. Returns the nested results."""
    start = time.time()
    sentences = suite.sentences()
    logger.info("Encoding %d sentences (%d distinct)", len(sentences), len(set(sentences)))
    lookup = encode_unique(encoder, sentences, batch_size, bf16)
    results: dict = {"mode": suite.mode, "sentences_encoded": len(lookup), "encode_seconds": time.time() - start}
    if suite.sts:
        results["sts"] = {name: score_sts_task(task, lookup) for name, task in suite.sts.items()}
        results["sts_avg"] = float(np.mean([r["all"] for r in results["sts"].values()]))
    if suite.transfer:
        protocol = PROTOCOLS[suite.mode]
        key = "devacc" if suite.mode == "dev" else "acc"
        results["transfer"] = {}
        for name, task in suite.transfer.items():
            task_start = time.time()
            results["transfer"][name] = evaluate_transfer_task(task, lookup, protocol, mrpc_features)
            results["transfer"][name]["seconds"] = round(time.time() - task_start, 2)
            logger.info("%s: %s (%.0f s)", name, results["transfer"][name][key], time.time() - task_start)
        results["transfer_avg"] = float(np.mean([r[key] for r in results["transfer"].values()]))
    if suite.alignment_pairs is not None:
        results.update(alignment_uniformity(lookup, suite.alignment_pairs))
    results["seconds"] = time.time() - start
    return results


def flat_metrics(results: dict) -> dict[str, float]:
    """Scalar metrics for logs and best-checkpoint selection: `stsb_spearman`, `mr_accuracy`, `avg_sts`, …"""
    metrics = {}
    for name, r in results.get("sts", {}).items():
        metrics[f"{SHORT_NAMES[name]}_spearman"] = r["all"]
        if name in STS_YEARS:
            metrics[f"{SHORT_NAMES[name]}_spearman_wmean"] = r["wmean"]
    key = "devacc" if results.get("mode") == "dev" else "acc"
    for name, r in results.get("transfer", {}).items():
        metrics[f"{SHORT_NAMES[name]}_accuracy"] = r[key]
    if len(results.get("sts", {})) > 1:
        metrics["avg_sts"] = results["sts_avg"]
    if len(results.get("transfer", {})) > 1:
        metrics["avg_transfer"] = results["transfer_avg"]
    for name in ("alignment", "uniformity"):
        if name in results:
            metrics[name] = results[name]
    return metrics


def produced_metrics(tasks: list[str]) -> set[str]:
    """Names `flat_metrics` yields for these tasks (to check --metric_for_best_model before training)."""
    names = {f"{SHORT_NAMES[t]}_{'spearman' if t in STS_TASKS else 'accuracy'}" for t in tasks}
    if sum(t in STS_TASKS for t in tasks) > 1:
        names.add("avg_sts")
    if sum(t in TRANSFER_TASKS for t in tasks) > 1:
        names.add("avg_transfer")
    return names


def format_tables(results: dict) -> str:
    """Markdown tables in SimCSE's column order: STS ("all" and "wmean" rows) and transfer accuracy ×100."""
    blocks = []
    sts = results.get("sts", {})
    if sts:
        names = list(sts)
        header = "| STS | " + " | ".join(TABLE_NAMES[n] for n in names) + " | Avg. |"
        rows = [header, "|---" * (len(names) + 2) + "|"]
        settings = ["all", "wmean"] if any(n in STS_YEARS for n in names) else ["all"]
        for setting in settings:
            scores = [sts[n][setting] for n in names]
            rows.append(
                f"| {setting} | " + " | ".join(f"{s:.2f}" for s in scores) + f" | {float(np.mean(scores)):.2f} |"
            )
        blocks.append("\n".join(rows))
    transfer = results.get("transfer", {})
    if transfer:
        key = "devacc" if results.get("mode") == "dev" else "acc"
        names = list(transfer)
        header = "| transfer | " + " | ".join(TRANSFER_TABLE_NAMES.get(n, n) for n in names) + " | Avg. |"
        scores = [transfer[n][key] for n in names]
        row = f"| {key} | " + " | ".join(f"{s:.2f}" for s in scores) + f" | {float(np.mean(scores)):.2f} |"
        blocks.append("\n".join([header, "|---" * (len(names) + 2) + "|", row]))
    if "alignment" in results:
        blocks.append(
            f"alignment {results['alignment']:.4f} · uniformity {results['uniformity']:.4f} "
            f"(STS-B dev, {results['positive_pairs']} pairs with gold > 4, {results['sentences']} sentences)"
        )
    return "\n\n".join(blocks)
