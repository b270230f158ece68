"""STS scoring: Spearman ×100 between cosine similarity and gold scores, with SentEval's three aggregates.

For a year of STS12–16, "all" is one Spearman over the concatenated subsets (SimCSE's headline setting),
"wmean" the subset scores averaged with pair-count weights, "mean" their plain average. The correlation goes
through the repository's `evaluate` metric module (hncse/evaluation/metrics/sts_spearman), so it loads offline.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch.nn.functional as F

from hncse.evaluation.embedding_cache import EmbeddingLookup, encode_unique
from hncse.evaluation.evaluator import Evaluator, EvaluatorSpec
from hncse.evaluation.senteval_data import (
    HUB_STS,
    SHORT_NAMES,
    STS_TASKS,
    STS_YEARS,
    TABLE_NAMES,
    STSPairs,
    STSTask,
    load_sts_task,
)

METRIC_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics", "sts_spearman")


@functools.cache
def sts_metric():
    """The `evaluate` module, loaded once per process; in memory so parallel processes share no cache file."""
    import evaluate

    return evaluate.load(METRIC_PATH, keep_in_memory=True)


def spearman(predictions: np.ndarray, references: np.ndarray) -> float:
    return sts_metric().compute(predictions=np.asarray(predictions), references=np.asarray(references))["spearman"]


def cosine_scores(lookup: EmbeddingLookup, pairs: STSPairs) -> np.ndarray:
    u = F.normalize(lookup(pairs.sentences1), dim=-1)
    v = F.normalize(lookup(pairs.sentences2), dim=-1)
    return (u * v).sum(dim=-1).double().numpy()


def aggregate(subset_scores: list[float], subset_sizes: list[int], all_score: float) -> dict[str, float]:
    """SentEval's "all" (given), "wmean" (pair-count weighted mean of subsets) and "mean"."""
    return {
        "all": all_score,
        "wmean": float(np.average(subset_scores, weights=subset_sizes)),
        "mean": float(np.mean(subset_scores)),
    }


def score_sts_task(task: STSTask, lookup: EmbeddingLookup) -> dict:
    """Spearman ×100 of one STS task from precomputed embeddings: aggregates plus each subset's score."""
    predicted = [cosine_scores(lookup, pairs) for pairs in task.subsets]
    per_subset = [spearman(p, pairs.scores) for p, pairs in zip(predicted, task.subsets)]
    all_score = spearman(np.concatenate(predicted), np.concatenate([pairs.scores for pairs in task.subsets]))
    sizes = [len(pairs) for pairs in task.subsets]
    result = aggregate(per_subset, sizes, all_score)
    result["pairs"] = sum(sizes)
    if len(task.subsets) > 1:
        result["subsets"] = {
            pairs.name.split("/", 1)[-1]: {"spearman": s, "pairs": n}
            for pairs, s, n in zip(task.subsets, per_subset, sizes)
        }
    return result


def sts_sentences(tasks) -> list[str]:
    return [s for task in tasks for pairs in task.subsets for s in (*pairs.sentences1, *pairs.sentences2)]


def evaluate_sts(encoder, tasks: dict[str, STSTask], batch_size: int = 128, bf16: bool = False) -> dict[str, dict]:
    """Score every task; each distinct sentence across all of them is encoded once."""
    lookup = encode_unique(encoder, sts_sentences(tasks.values()), batch_size, bf16)
    return {name: score_sts_task(task, lookup) for name, task in tasks.items()}


class STSEvaluator(Evaluator):
    """An STS table column of SentEval (a year of STS12–16, STS-B or SICK-R): Spearman ×100 of the cosine."""

    group, average_key, average_metric, position = "sts", "sts_avg", "avg_sts", 0.0

    def __init__(self, task: STSTask, short_name: str):
        super().__init__(task.name, short_name)
        self.task = task

    def sentences(self) -> list[str]:
        return sts_sentences([self.task])

    def score(self, lookup: EmbeddingLookup, mode: str, options: dict) -> dict:
        return score_sts_task(self.task, lookup)

    def metrics(self, entry: dict, mode: str) -> dict[str, float]:
        metrics = {f"{self.short_name}_spearman": entry["all"]}
        if self.name in STS_YEARS:
            metrics[f"{self.short_name}_spearman_wmean"] = entry["wmean"]
        return metrics

    def average_value(self, entry: dict, mode: str) -> float:
        return entry["all"]

    @classmethod
    def tables(cls, entries: dict[str, dict], results: dict) -> list[str]:
        """SimCSE's STS table: the "all" row, and "wmean" beside it when a year of STS12–16 is there."""
        names = list(entries)
        header = "| STS | " + " | ".join(TABLE_NAMES.get(n, n) for n in names) + " | Avg. |"
        rows = [header, "|---" * (len(names) + 2) + "|"]
        settings = ["all", "wmean"] if any(n in STS_YEARS for n in names) else ["all"]
        for setting in settings:
            scores = [entries[n][setting] for n in names]
            rows.append(
                f"| {setting} | " + " | ".join(f"{s:.2f}" for s in scores) + f" | {float(np.mean(scores)):.2f} |"
            )
        return ["\n".join(rows)]

    @classmethod
    def index_results(cls, entries: dict[str, dict], split: str) -> list[dict]:
        return [sts_index_result(task, split, scores["all"]) for task, scores in entries.items()]

    @classmethod
    def dev_index_results(cls, spec: EvaluatorSpec, value: float) -> list[dict]:
        return [sts_index_result(spec.name, "validation", value)] if spec.name in HUB_STS else []


def sts_index_result(task: str, split: str, spearman_x100: float) -> dict:
    """A model card's `model-index` result: the Hub copy of the set, Spearman of the cosine in [-1, 1]."""
    return {
        "task": {"type": "semantic-similarity", "name": "Semantic Similarity"},
        "dataset": {"name": f"{TABLE_NAMES[task]} {split}", "type": HUB_STS[task][0], "split": split},
        "metrics": [{"type": "spearman_cosine", "value": round(spearman_x100 / 100, 4), "name": "Spearman Cosine"}],
    }


def sts_spec(task: str) -> EvaluatorSpec:
    def load(split: str, data_dir: str | None, flag: str) -> STSEvaluator:
        return STSEvaluator(load_sts_task(task, data_dir, split, flag), SHORT_NAMES[task])

    return EvaluatorSpec(
        name=task,
        short_name=SHORT_NAMES[task],
        kind=STSEvaluator,
        load=load,
        main_metric=f"{SHORT_NAMES[task]}_spearman",
        table_name=TABLE_NAMES[task],
        splits=("test",) if task in STS_YEARS else ("dev", "test"),
        task_sets=("sts",),
    )


SPECS = [sts_spec(task) for task in STS_TASKS]
