"""The evaluation suite: which registered evaluation sets, in which mode, loaded once and scored with one encoding
pass over their distinct sentences.

Modes follow SimCSE's `evaluation.py`:
- "dev": STS-B and SICK-R dev sets; transfer tasks report their validation accuracy with the fast protocol.
- "test": the test sets (STS12–16, STS-B test, SICK-R test); transfer with SentEval's full protocol.
- "fasttest": the test sets; transfer with the fast protocol (5 folds, RMSprop, fewer passes).

The Trainer's in-training evaluation is this code in "dev" mode; `python -m hncse.evaluate` and `--do_predict`
run it in "test" mode. The sets are `Evaluator`s (`hncse.evaluation.evaluator`); this module knows none of their
kinds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from hncse.errors import EvalConfigError
from hncse.evaluation.alignment_uniformity import AlignmentUniformityEvaluator
from hncse.evaluation.embedding_cache import encode_unique
from hncse.evaluation.evaluator import EVALUATORS, Evaluator, evaluator_spec, lookup_task, task_sets
from hncse.evaluation.senteval_data import load_sts_task
from hncse.evaluation.sts_files import STSFileSource

logger = logging.getLogger(__name__)

MODES = ("dev", "test", "fasttest")
ALIGNMENT_TASK = "STSBenchmark"  # alignment and uniformity are measured on its dev pairs


@dataclass
class EvalSuite:
    """Loaded evaluation sets for one mode, in the order their results and tables take."""

    mode: str
    evaluators: list[Evaluator] = field(default_factory=list)

    def sentences(self) -> list[str]:
        return [s for evaluator in self.evaluators for s in evaluator.sentences()]


def resolve_tasks(
    task_set: str | None,
    tasks: list[str] | None,
    mode: str,
    flag: str = "--tasks",
    task_set_flag: str = "--task_set",
) -> list[str]:
    """The tasks to run. A task set in dev mode drops the sets without a dev split (STS12–16), as SimCSE does.

    flag, task_set_flag: how the caller's command line names `tasks` and `task_set`, for the error messages.
    """
    if mode not in MODES:
        raise EvalConfigError(f"--mode: unknown value {mode!r}; choose from {', '.join(MODES)}")
    if tasks:
        names = list(dict.fromkeys(lookup_task(t, flag) for t in tasks))
        if mode == "dev":
            no_dev = [n for n in names if "dev" not in EVALUATORS[n].splits]
            if no_dev:
                raise EvalConfigError(f"{flag}: {', '.join(no_dev)} have no dev split; use --mode test or drop them")
        return names
    sets = task_sets()
    if task_set not in sets:
        raise EvalConfigError(f"{task_set_flag}: unknown value {task_set!r}; choose from {', '.join(sets)}")
    return [n for n in sets[task_set] if not (mode == "dev" and "dev" not in EVALUATORS[n].splits)]


def load_suite(
    tasks: list[str],
    mode: str,
    data_dir: str | None,
    alignment: bool = False,
    flag: str = "--senteval_dir",
    extra: list[Evaluator] = (),
) -> EvalSuite:
    """Read every task's files (or the Hub copies of the STS sets when no folder is given); `extra`: sets loaded
    by their caller (your own files, `load_sts_files`), scored in the same encoding pass."""
    split = "dev" if mode == "dev" else "test"
    evaluators = [evaluator_spec(name).load(split, data_dir, flag) for name in tasks] + list(extra)
    if alignment:
        loaded = next((e for e in evaluators if e.name == ALIGNMENT_TASK), None) if mode == "dev" else None
        task = loaded.task if loaded is not None else load_sts_task(ALIGNMENT_TASK, data_dir, "dev", flag)
        evaluators.append(AlignmentUniformityEvaluator(task.subsets[0]))
    return EvalSuite(mode, sorted(evaluators, key=lambda e: e.position))


def run_suite(
    encoder, suite: EvalSuite, batch_size: int = 128, bf16: bool = False, mrpc_features: str = "senteval"
) -> dict:
    """Encode every distinct sentence of the suite once, then score each set. Returns the nested results: each
    set's entry under its kind's group (`results["sts"]["STSBenchmark"]`), then the group's mean."""
    start = time.time()
    sentences = suite.sentences()
    logger.info("Encoding %d sentences (%d distinct)", len(sentences), len(set(sentences)))
    lookup = encode_unique(encoder, sentences, batch_size, bf16)
    results: dict = {"mode": suite.mode, "sentences_encoded": len(lookup), "encode_seconds": time.time() - start}
    options = {"mrpc_features": mrpc_features}
    for group, evaluators in grouped(suite.evaluators):
        entries = {e.name: e.score(lookup, suite.mode, options) for e in evaluators}
        if group is None:
            for entry in entries.values():
                results.update(entry)
            continue
        results[group] = entries
        kind = type(evaluators[0])
        if kind.average_key:
            values = [e.average_value(entries[e.name], suite.mode) for e in evaluators]
            results[kind.average_key] = float(np.mean(values))
    results["seconds"] = time.time() - start
    return results


def grouped(evaluators: list[Evaluator]) -> list[tuple[str | None, list[Evaluator]]]:
    """The evaluators by results group, groups in order of first appearance (each top-level one alone)."""
    groups: dict = {}
    for index, evaluator in enumerate(evaluators):
        groups.setdefault(evaluator.group if evaluator.group is not None else ("top", index), []).append(evaluator)
    return [(key if isinstance(key, str) else None, members) for key, members in groups.items()]


def flat_metrics(results: dict, suite: EvalSuite) -> dict[str, float]:
    """Scalar metrics for logs and best-checkpoint selection: `stsb_spearman`, `mr_accuracy`, `avg_sts`, …"""
    metrics = {}
    averages = {}
    for group, evaluators in grouped(suite.evaluators):
        for evaluator in evaluators:
            entry = results[group][evaluator.name] if group is not None else results
            metrics.update(evaluator.metrics(entry, suite.mode))
        kind = type(evaluators[0])
        if group is not None and kind.average_metric and len(evaluators) > 1:
            averages[kind.average_metric] = results[kind.average_key]
    return {**metrics, **averages}


def produced_metrics(tasks: list[str], sts_files: list[STSFileSource] = ()) -> set[str]:
    """Names `flat_metrics` yields for these tasks' and files' main metrics and means (to check
    --metric_for_best_model before anything is loaded)."""
    specs = [evaluator_spec(t) for t in tasks]
    names = {spec.main_metric for spec in specs} | {source.main_metric for source in sts_files}
    for kind in {spec.kind for spec in specs}:
        if kind.average_metric and sum(spec.kind is kind for spec in specs) > 1:
            names.add(kind.average_metric)
    return names
