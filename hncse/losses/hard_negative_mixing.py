"""HNCSE-HNM: synthetic hard negatives mixed from each anchor's k hardest in-batch negatives (docs/method.md §3; with
given hard negatives, §9)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hncse.citations import HNCSE_BIBTEX
from hncse.losses.common import (
    LOCAL_BATCH,
    SIMILARITY_PANEL,
    SIMILARITY_STATISTICS,
    Candidates,
    ContrastiveParams,
    as_float,
    check_views,
    cosine_logits,
    diagonal_cross_entropy,
    gather_candidates,
    hard_negative_config,
    positive_mask,
    require,
    similarity_stats,
)
from hncse.losses.registry import Objective, Statistic, hyperparameter

logger = logging.getLogger(__name__)

# `hnm_stats`' own key, beside `similarity_stats`'
SYNTHETIC_STATISTICS = (Statistic("sim_synthetic", "synthetic negatives (HNM)", SIMILARITY_PANEL),)


@dataclass
class HardNegativeMixingParams(ContrastiveParams):
    """HNM's hyper-parameters (k, s, α, detaching, the pair sampler's seed)."""

    hnm_k: int = hyperparameter(10, "HNM: hardest in-batch negatives to mix from (≤ batch − 1).")
    hnm_s: int = hyperparameter(40, "HNM: synthetic negatives per anchor.")
    hnm_alpha: float = hyperparameter(0.5, "HNM: mixing weight α of the two negatives.")
    hnm_detach_synthetic: bool = hyperparameter(False, "HNM: no gradient through synthetic negatives.")
    hnm_seed: int | None = hyperparameter(None, "HNM: seed of the pair sampler (default: --seed).")

    def __post_init__(self):
        super().__post_init__()
        require(
            [
                (self.hnm_k >= 2, f"--hnm_k must be ≥ 2, got {self.hnm_k}"),
                (self.hnm_s >= 1, f"--hnm_s must be ≥ 1, got {self.hnm_s}"),
                (0.0 <= self.hnm_alpha <= 1.0, f"--hnm_alpha must be in [0, 1], got {self.hnm_alpha}"),
            ]
        )


def hardest_negatives(sim: Tensor, k: int, offset: int = 0) -> Tensor:
    """T_i: indices of the k most similar candidates of row i, its own positive (column offset + i) excluded.

    Ties are broken by the lower index (a stable sort), so the choice is deterministic. sim: (N, M) → (N, k).
    """
    own = positive_mask(*sim.shape, offset, sim.device)
    order = torch.sort(sim.detach().masked_fill(own, float("-inf")), dim=1, descending=True, stable=True).indices
    return order[:, :k]


def sample_pairs(num_rows: int, k: int, s: int, generator: torch.Generator | None, device) -> tuple[Tensor, Tensor]:
    """s pairs (a, b), a < b, of positions in 0..k-1 per row, uniformly with replacement from the k(k-1)/2 pairs.

    Pairs are numbered in lexicographic order ((0,1), (0,2), …, (k-2,k-1)); returns two (rows, s) tensors.
    """
    first, second = torch.triu_indices(k, k, offset=1, device=device)  # (P,), (P,)
    pick = torch.randint(first.numel(), (num_rows, s), generator=generator, device=device)  # (rows, s)
    return first[pick], second[pick]


def synthetic_similarities(
    z1: Tensor, candidates: Tensor, top: Tensor, pos_a: Tensor, pos_b: Tensor, alpha: float, detach: bool = False
) -> Tensor:
    """cos(z1_i, g_i,m) for g_i,m = normalize(α·z2_a + (1−α)·z2_b), a = T_i[pos_a[i, m]], b = T_i[pos_b[i, m]].

    Computed without building the (N, s, d) synthetic vectors: the numerator is α·ẑ1_i·z2_a + (1−α)·ẑ1_i·z2_b
    and ‖α·z2_a + (1−α)·z2_b‖² = α²‖z2_a‖² + (1−α)²‖z2_b‖² + 2α(1−α)·z2_a·z2_b, both read from (N, M) and
    (M, M) products. Returns (N, s).
    """
    source = candidates.detach() if detach else candidates
    a = top.gather(1, pos_a)  # (N, s) candidate indices
    b = top.gather(1, pos_b)
    dots = F.normalize(z1, dim=-1) @ source.T  # (N, M) ẑ1_i · z2_j
    gram = source @ source.T  # (M, M) z2_j · z2_l
    squared = gram.diagonal()
    numerator = alpha * dots.gather(1, a) + (1.0 - alpha) * dots.gather(1, b)
    norm_sq = alpha**2 * squared[a] + (1.0 - alpha) ** 2 * squared[b] + 2 * alpha * (1.0 - alpha) * gram[a, b]
    return numerator / norm_sq.clamp_min(1e-24).sqrt()


def hnm_logits(
    z1: Tensor,
    z2: Tensor,
    k: int,
    s: int,
    alpha: float,
    generator,
    detach: bool,
    offset: int = 0,
    num_anchors: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Row i: [cos(z1_i, z2_1..M) | cos(z1_i, g_i,1..s)] (not yet divided by τ), and the synthetic similarities.

    z2: (M, d) candidates of the (global) batch (its positives, then any given hard negatives), row offset + i
    anchor i's positive. The pair sampler draws for all `num_anchors` anchors of the global batch (default M) and
    this process keeps its rows, so the pairs of an anchor do not depend on how the global batch is split over
    processes.
    """
    z1, z2 = as_float(z1), as_float(z2)
    sim = cosine_logits(z1, z2)  # (N, M)
    top = hardest_negatives(sim, k, offset)  # (N, k)
    num_anchors = z2.shape[0] if num_anchors is None else num_anchors
    pos_a, pos_b = sample_pairs(num_anchors, k, s, generator, z1.device)  # (global anchors, s) each
    rows = slice(offset, offset + z1.shape[0])
    synthetic_sim = synthetic_similarities(z1, z2, top, pos_a[rows], pos_b[rows], alpha, detach)  # (N, s)
    return torch.cat([sim, synthetic_sim], dim=1), synthetic_sim


@torch.no_grad()
def hnm_stats(candidates: Candidates, logits: Tensor, synthetic_sim: Tensor) -> dict[str, Tensor]:
    """The similarity statistics over the candidates' columns of HNM's logits, and the mean synthetic one."""
    sim = logits[:, : candidates.vectors.shape[0]]
    return {**similarity_stats(sim, candidates.offset), "sim_synthetic": synthetic_sim.mean()}


class HardNegativeMixingLoss(nn.Module):
    """HNCSE-HNM: InfoNCE where each anchor also sees s synthetic negatives made from its k hardest negatives.

    For anchor i, T_i holds the k candidates most similar to it (its positive excluded); s pairs (a, b) of T_i
    are drawn with replacement from a seeded generator and mixed as normalize(α·z2_a + (1−α)·z2_b). Row i's
    logits are [cos(z1_i, z2_j) for all j | cos(z1_i, g_i,m) for its s synthetic negatives] / τ, target i.

    Args:
        temperature: τ.
        k: hardest negatives to mix from (clamped to N−1 with a one-time warning; needs N ≥ 3).
        s: synthetic negatives per anchor.
        alpha: mixing weight α.
        detach_synthetic: stop gradients through the synthetic negatives (off, as in the public code).
        seed: seed of the pair sampler (its own generator, so the model's dropout stream is untouched).
        hard_negative_weight: added to the scaled logit of each anchor's own given hard negatives.

    Inputs: z1, z2 of shape (N, d), optionally the given hard negatives (N, K, d), and the batch exchange
    (`hncse.distributed`): with `GlobalBatch` the k hardest negatives are mined over the global batch, its given
    negatives included.
    """

    name = "hnm"

    def __init__(
        self,
        temperature: float = 0.05,
        k: int = 10,
        s: int = 40,
        alpha: float = 0.5,
        detach_synthetic: bool = False,
        seed: int = 42,
        hard_negative_weight: float = 0.0,
    ):
        super().__init__()
        if k < 2 or s < 1:
            raise ValueError(f"hnm_k must be ≥ 2 and hnm_s ≥ 1, got k={k}, s={s}")
        self.temperature, self.k, self.s, self.alpha = temperature, k, s, alpha
        self.detach_synthetic, self.seed = detach_synthetic, seed
        self.hard_negative_weight = hard_negative_weight
        self._generators: dict[str, torch.Generator] = {}
        self._restored: dict[str, Tensor] = {}  # states loaded before the generator of that device exists
        self._warned_k = False

    @classmethod
    def from_params(cls, params: HardNegativeMixingParams, seed: int | None = None) -> HardNegativeMixingLoss:
        """`params.hnm_seed` seeds the pair sampler, else `seed` (the run's --seed), else 42."""
        seed = params.hnm_seed if params.hnm_seed is not None else seed if seed is not None else 42
        return cls(
            params.temperature, params.hnm_k, params.hnm_s, params.hnm_alpha, params.hnm_detach_synthetic, seed,
            params.hard_negative_weight,
        )  # fmt: skip

    def generator(self, device: torch.device) -> torch.Generator:
        """One seeded generator per kind of device (a process uses one GPU, whichever its index), created on first
        use and advanced by every draw."""
        key = device.type
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
            if key in self._restored:
                self._generators[key].set_state(self._restored.pop(key))
        return self._generators[key]

    def get_extra_state(self) -> dict[str, Tensor]:
        """The sampler's position (saved in checkpoints), so a resumed run draws the pairs it would have drawn."""
        return {key: generator.get_state() for key, generator in self._generators.items()}

    def set_extra_state(self, state: dict[str, Tensor]) -> None:
        for key, value in state.items():
            key = key.split(":")[0]  # states saved under a device index ("cuda:0") by earlier versions
            if key in self._generators:
                self._generators[key].set_state(value)
            else:
                self._restored[key] = value

    def effective_k(self, num_candidates: int) -> int:
        k = min(self.k, num_candidates - 1)
        if k < 2:
            raise ValueError(f"hard-negative mixing needs at least 3 sentences per batch, got {num_candidates}")
        if k < self.k and not self._warned_k:
            logger.warning("hnm_k=%d exceeds the %d in-batch negatives: using k=%d", self.k, num_candidates - 1, k)
            self._warned_k = True
        return k

    def logits(self, z1: Tensor, candidates: Candidates) -> tuple[Tensor, Tensor]:
        """Logits of this process's anchors against the gathered candidates (positives and given negatives)."""
        vectors = candidates.vectors
        check_views(z1, vectors, candidates.offset)
        k = self.effective_k(vectors.shape[0])
        generator = self.generator(z1.device)
        return hnm_logits(
            z1, vectors, k, self.s, self.alpha, generator, self.detach_synthetic, candidates.offset,
            candidates.positives.shape[0],
        )  # fmt: skip

    def loss(self, z1: Tensor, candidates: Candidates) -> tuple[Tensor, Tensor, Tensor]:
        """(the loss, the logits [similarities | synthetic similarities], the synthetic similarities)."""
        logits, synthetic_sim = self.logits(z1, candidates)
        weight = self.hard_negative_weight
        loss = diagonal_cross_entropy(logits, self.temperature, candidates.offset, candidates, weight)
        return loss, logits, synthetic_sim

    def forward(
        self, z1: Tensor, z2: Tensor, exchange=LOCAL_BATCH, negatives: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        candidates = gather_candidates(z2, negatives, exchange)
        loss, logits, synthetic_sim = self.loss(z1, candidates)
        return loss, hnm_stats(candidates, logits, synthetic_sim)

    def get_config_dict(self) -> dict:
        return {
            "objective": self.name,
            "temperature": self.temperature,
            "hnm_k": self.k,
            "hnm_s": self.s,
            "hnm_alpha": self.alpha,
            "hnm_detach_synthetic": self.detach_synthetic,
            "hnm_seed": self.seed,
            **hard_negative_config(self),
        }


OBJECTIVE = Objective(
    name="hnm",
    loss=HardNegativeMixingLoss,
    params=HardNegativeMixingParams,
    statistics=SIMILARITY_STATISTICS + SYNTHETIC_STATISTICS,
    description="HNCSE hard-negative mixing: synthetic hard negatives, mixed from each anchor's k hardest in-batch "
    "negatives, are added to InfoNCE's denominator",
    citations=(HNCSE_BIBTEX,),
    min_batch_size=3,
)
