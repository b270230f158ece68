"""Alignment and uniformity of normalised embeddings (Wang & Isola, 2020), as SimCSE reports them.

alignment = E‖f(x) − f(x⁺)‖² over positive pairs (STS-B dev pairs with gold score > 4);
uniformity = log E exp(−2‖f(x) − f(y)‖²) over all pairs of distinct sentences. Lower is better for both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from hncse.evaluation.embedding_cache import EmbeddingLookup
from hncse.evaluation.evaluator import Evaluator
from hncse.evaluation.senteval_data import STSPairs


def alignment(x: Tensor, y: Tensor, alpha: float = 2.0) -> float:
    """Mean ‖x_i − y_i‖^alpha of L2-normalised paired rows."""
    x, y = F.normalize(x.double(), dim=-1), F.normalize(y.double(), dim=-1)
    return float((x - y).norm(dim=1).pow(alpha).mean())


def uniformity(x: Tensor, t: float = 2.0) -> float:
    """log of the mean of exp(−t‖x_i − x_j‖²) over all pairs i < j of L2-normalised rows."""
    x = F.normalize(x.double(), dim=-1)
    return float(torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log())


def alignment_uniformity(lookup: EmbeddingLookup, pairs: STSPairs, threshold: float = 4.0) -> dict[str, float]:
    positive = pairs.scores > threshold
    s1 = [s for s, keep in zip(pairs.sentences1, positive) if keep]
    s2 = [s for s, keep in zip(pairs.sentences2, positive) if keep]
    unique = list(dict.fromkeys(pairs.sentences1 + pairs.sentences2))
    return {
        "alignment": alignment(lookup(s1), lookup(s2)),
        "uniformity": uniformity(lookup(unique)),
        "positive_pairs": len(s1),
        "sentences": len(unique),
    }


class AlignmentUniformityEvaluator(Evaluator):
    """SimCSE's analysis on STS-B dev pairs: its numbers go to the results' top level (`alignment`, `uniformity`).
    Not a task of `--tasks`: the suite adds it (`load_suite(alignment=True)`)."""

    position, result_keys = 2.0, ("alignment", "uniformity", "positive_pairs", "sentences")

    def __init__(self, pairs: STSPairs):
        super().__init__("alignment_uniformity", "alignment_uniformity")
        self.pairs = pairs

    def sentences(self) -> list[str]:
        return self.pairs.sentences1 + self.pairs.sentences2

    def score(self, lookup: EmbeddingLookup, mode: str, options: dict) -> dict:
        return alignment_uniformity(lookup, self.pairs)

    def metrics(self, entry: dict, mode: str) -> dict[str, float]:
        return {"alignment": entry["alignment"], "uniformity": entry["uniformity"]}

    @classmethod
    def tables(cls, entries: dict[str, dict], results: dict) -> list[str]:
        return [
            f"alignment {results['alignment']:.4f} · uniformity {results['uniformity']:.4f} "
            f"(STS-B dev, {results['positive_pairs']} pairs with gold > 4, {results['sentences']} sentences)"
        ]
