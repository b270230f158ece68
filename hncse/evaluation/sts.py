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
from hncse.evaluation.senteval_data import STSPairs, STSTask

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
