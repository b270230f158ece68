"""HNCSE-PM: move each positive towards its anchor's hardest in-batch negative (docs/method.md §2; with given hard
negatives, §9)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hncse.citations import HNCSE_BIBTEX
from hncse.losses.common import (
    LOCAL_BATCH,
    SIMILARITY_STATISTICS,
    Candidates,
    ContrastiveParams,
    as_float,
    cosine_logits,
    gather_candidates,
    hard_negative_config,
    info_nce_loss,
    positive_mask,
    positive_similarities,
    require,
    similarity_stats,
)
from hncse.losses.registry import Objective, Panel, Statistic, hyperparameter

PM_PANEL = Panel("positive mixing (PM)", "share of anchors")
PM_STATISTICS = (  # `pm_stats`' keys
    Statistic("pm_case_a", "case A: hardest within θ of the positive", PM_PANEL),
    Statistic("pm_case_b", "case B: unmixed", PM_PANEL),
    Statistic("pm_case_c", "case C: hardest above the positive", PM_PANEL),
    Statistic("pm_ratio", "mixing ratio w2/w1", PM_PANEL, dashed=True),
)


@dataclass
class PositiveMixingParams(ContrastiveParams):
    """PM's hyper-parameters (θ, the case-A weights, the optional ratio search, detaching)."""

    pm_theta: float = hyperparameter(
        0.1, "PM: a positive with (p − n)/p ≤ θ over its hardest negative is mixed (case A)."
    )
    pm_w1: float = hyperparameter(1.0, "PM: case-A weight of the positive.")
    pm_w2: float = hyperparameter(0.5, "PM: case-A weight of the hardest negative.")
    pm_ratio_grid_size: int = hyperparameter(
        0, "PM: if ≥ 2, pick w2/w1 each step among this many values in [0, 1] (batched, no grad)."
    )
    pm_detach_coefficients: bool = hyperparameter(
        True, "PM: no gradient through the case-C coefficients (false: as the public code)."
    )

    def __post_init__(self):
        super().__post_init__()
        require(
            [
                (self.pm_theta >= 0, f"--pm_theta must be ≥ 0, got {self.pm_theta}"),
                (self.pm_w1 > 0, f"--pm_w1 must be > 0, got {self.pm_w1}"),
                (self.pm_w2 >= 0, f"--pm_w2 must be ≥ 0, got {self.pm_w2}"),
                (
                    self.pm_ratio_grid_size != 1 and self.pm_ratio_grid_size >= 0,
                    "--pm_ratio_grid_size must be 0 or ≥ 2",
                ),
            ]
        )


@dataclass
class MixedPositives:
    """The result of positive mixing for one batch."""

    positives: Tensor  # (N, d) ẑ2: the anchors' new positives, also the other anchors' negatives
    hardest: Tensor  # (N,) h(i), candidate index of the hardest negative of anchor i
    case: Tensor  # (N,) 0 = A (mixed with w1, w2), 1 = B (unchanged), 2 = C (mixed by similarity)
    ratio: Tensor  # () the w2/w1 ratio used for case A rows
    sim: Tensor  # (N, M) S = cos(z1, candidates) before mixing
    offset: int = 0  # candidate row offset + i is anchor i's own positive


def pm_cases(sim: Tensor, theta: float, offset: int = 0) -> tuple[Tensor, Tensor]:
    """Hardest negative h(i) (first index on ties) and case A/B/C of every anchor, from S = cos(z1, z2), (N, M).

    A: p > n and (p − n)/p ≤ θ, which needs p > 0 (else the ratio flips sign); B: p > n otherwise; C: p ≤ n.
    """
    own = positive_mask(*sim.shape, offset, sim.device)
    positive = positive_similarities(sim, offset)
    hardest = sim.masked_fill(own, float("-inf")).argmax(dim=1)  # (N,)
    negative = sim.gather(1, hardest[:, None]).squeeze(1)  # (N,)
    ahead = positive > negative
    barely = (positive > 0) & ((positive - negative) / positive <= theta)
    case = torch.where(ahead & barely, 0, torch.where(ahead, 1, 2))
    return hardest, case


def mixing_coefficients(
    sim: Tensor,
    hardest: Tensor,
    case: Tensor,
    w1: float,
    w2: float,
    detach: bool,
    eps: float = 1e-6,
    offset: int = 0,
) -> tuple[Tensor, Tensor]:
    """Per-row weights (c_pos, c_neg) of z2_i and z2_h(i): A → (w1, w2), B → (1, 0), C → (p, n) / (p + n)."""
    source = sim.detach() if detach else sim
    p = positive_similarities(source, offset)
    n = source.gather(1, hardest[:, None]).squeeze(1)
    total = p + n
    sign = torch.where(total < 0, -1.0, 1.0).to(total.dtype)
    total = torch.where(total.abs() < eps, sign * eps, total)  # keep p + n away from 0, with its sign
    c_pos = torch.where(case == 0, w1, torch.where(case == 1, 1.0, p / total))
    c_neg = torch.where(case == 0, w2, torch.where(case == 1, 0.0, n / total))
    return c_pos, c_neg


@torch.no_grad()
def search_mixing_ratio(
    z1: Tensor,
    candidates: Tensor,
    hard_z2: Tensor,
    c_pos: Tensor,
    c_neg: Tensor,
    case: Tensor,
    grid: Tensor,
    offset: int = 0,
    exchange=LOCAL_BATCH,
    num_positives: int | None = None,
):
    """The w2/w1 ratio on `grid` minimising mean_i(S̃_ii − mean_{j≠i} S̃_ij) + mean_i rank_i(S̃_ii).

    S̃ is the similarity to the candidates with the (global) batch's mixed positives in place of its positives
    (the first `num_positives` candidates; the rest, given negatives, stay) when case-A rows use (1, ratio);
    rank_i counts the entries of row i above its positive (0 = the positive ranks first). All grid points in one
    batched computation; with a `GlobalBatch` the means run over every process's anchors.
    """
    num_positives = candidates.shape[0] if num_positives is None else num_positives
    own = candidates[offset : offset + z1.shape[0]]
    fixed, _ = exchange.gather(c_pos[:, None] * own + c_neg[:, None] * hard_z2)  # (M, d)
    hard_all, _ = exchange.gather(hard_z2)
    is_a, _ = exchange.gather((case == 0).to(candidates.dtype))
    positives = candidates[None, :num_positives] + grid[:, None, None] * hard_all[None]
    mixed = torch.where(is_a[None, :, None] > 0, positives, fixed[None])  # (G, M, d)
    if num_positives < candidates.shape[0]:  # the given negatives, the same for every ratio
        given = candidates[num_positives:]
        mixed = torch.cat([mixed, given[None].expand(grid.shape[0], *given.shape)], dim=1)
    sims = torch.einsum("nd,gmd->gnm", F.normalize(z1, dim=-1), F.normalize(mixed, dim=-1))  # (G, N, M)
    diag = sims.diagonal(offset=offset, dim1=1, dim2=2)[:, : z1.shape[0]]  # (G, N)
    m = candidates.shape[0]
    gap = diag - (sims.sum(dim=2) - diag) / (m - 1)
    rank = (sims > diag[..., None]).sum(dim=2).to(sims.dtype)
    objective = exchange.sum((gap + rank).sum(dim=1)) / m  # (G,): mean over all anchors of the global batch
    return grid[objective.argmin()]


def mix_positives(
    z1: Tensor,
    z2: Tensor,
    theta: float = 0.1,
    w1: float = 1.0,
    w2: float = 0.5,
    detach_coefficients: bool = True,
    ratio_grid: Tensor | None = None,
    offset: int = 0,
    exchange=LOCAL_BATCH,
    num_positives: int | None = None,
) -> MixedPositives:
    """Build the anchors' ẑ2 by the three cases of docs/method.md §2. Gradients flow through the vectors (and through
    the case-C coefficients when detach_coefficients=False).

    z1: (N, d) anchors; z2: (M, d) candidates (the global batch's second views, then any given hard negatives:
    `Candidates.vectors`), row offset + i anchor i's; the first `num_positives` of them are positives (all if
    None). The hardest negative is mined over every candidate but the anchor's own positive.
    """
    z1, z2 = as_float(z1), as_float(z2)
    sim = cosine_logits(z1, z2)  # (N, M)
    hardest, case = pm_cases(sim.detach(), theta, offset)
    hard_z2 = z2[hardest]  # (N, d)
    own = z2[offset : offset + z1.shape[0]]  # (N, d)
    c_pos, c_neg = mixing_coefficients(sim, hardest, case, w1, w2, detach_coefficients, offset=offset)
    ratio = torch.full((), w2 / w1, device=z2.device)  # a fill, not a copy from the host
    if ratio_grid is not None:
        searched = search_mixing_ratio(
            z1.detach(),
            z2.detach(),
            hard_z2.detach(),
            c_pos.detach(),
            c_neg.detach(),
            case,
            ratio_grid,
            offset,
            exchange,
            num_positives,
        )
        # Without case-A rows anywhere the search has nothing to choose: keep (and report) w2/w1. Decided on the
        # device, so that no step waits for it.
        ratio = torch.where(exchange.sum((case == 0).sum()) > 0, searched, ratio)
        c_neg = torch.where(case == 0, w1 * ratio, c_neg)
    positives = c_pos[:, None].to(z2.dtype) * own + c_neg[:, None].to(z2.dtype) * hard_z2
    return MixedPositives(positives, hardest, case, ratio, sim, offset)


def pm_stats(mixed: MixedPositives) -> dict[str, Tensor]:
    case = mixed.case
    return {
        "pm_case_a": (case == 0).float().mean(),
        "pm_case_b": (case == 1).float().mean(),
        "pm_case_c": (case == 2).float().mean(),
        "pm_ratio": mixed.ratio.float(),
    }


def ratio_grid_tensor(size: int, device) -> Tensor | None:
    """`size` evenly spaced w2/w1 ratios in [0, 1] (0 or 1 point: no search)."""
    return torch.linspace(0.0, 1.0, size, device=device) if size >= 2 else None


class PositiveMixingLoss(nn.Module):
    """HNCSE-PM: InfoNCE against positives mixed with the hardest in-batch negative.

    For anchor i with positive similarity p and hardest-negative similarity n: if the positive is barely ahead
    ((p − n)/p ≤ θ, case A) it becomes w1·z2_i + w2·z2_h(i); clearly ahead (B) it stays; behind (C) it becomes
    p/(p+n)·z2_i + n/(p+n)·z2_h(i). The mixed vectors are also the other anchors' negatives.

    Args:
        temperature: τ.
        theta: θ, the relative margin below which a positive is "barely ahead".
        w1, w2: case-A weights (only w2/w1 matters for cosine).
        ratio_grid_size: if ≥ 2, choose w2/w1 every step among this many ratios in [0, 1] by the public code's
            objective (batched, without gradients) instead of the fixed w2/w1.
        detach_coefficients: stop gradients through the case-C coefficients (the public code lets them flow).
        hard_negative_weight: added to the scaled logit of each anchor's own given hard negatives.

    Inputs: z1, z2 of shape (N, d), optionally the given hard negatives (N, K, d), and the batch exchange
    (`hncse.distributed`): with `GlobalBatch` the hardest negatives are mined over the global batch (its given
    negatives included) and every process's mixed positives are negatives. Logs the fraction of anchors in each
    case.
    """

    name = "pm"

    def __init__(
        self,
        temperature: float = 0.05,
        theta: float = 0.1,
        w1: float = 1.0,
        w2: float = 0.5,
        ratio_grid_size: int = 0,
        detach_coefficients: bool = True,
        hard_negative_weight: float = 0.0,
    ):
        super().__init__()
        if w1 <= 0:
            raise ValueError(f"pm_w1 must be > 0, got {w1}")
        self.temperature, self.theta, self.w1, self.w2 = temperature, theta, w1, w2
        self.ratio_grid_size, self.detach_coefficients = ratio_grid_size, detach_coefficients
        self.hard_negative_weight = hard_negative_weight

    @classmethod
    def from_params(cls, params: PositiveMixingParams, seed: int | None = None) -> PositiveMixingLoss:
        return cls(
            params.temperature,
            params.pm_theta,
            params.pm_w1,
            params.pm_w2,
            params.pm_ratio_grid_size,
            params.pm_detach_coefficients,
            params.hard_negative_weight,
        )

    def mix(self, z1: Tensor, z2: Tensor, exchange=LOCAL_BATCH, negatives: Tensor | None = None) -> MixedPositives:
        """Mixed positives of this process's anchors, mined over the candidates the exchange provides."""
        return self.mix_gathered(z1, gather_candidates(z2, negatives, exchange), exchange)

    def mix_gathered(self, z1: Tensor, candidates: Candidates, exchange=LOCAL_BATCH) -> MixedPositives:
        """Mixed positives of this process's anchors, mined over the gathered candidates."""
        grid = ratio_grid_tensor(self.ratio_grid_size, z1.device)
        vectors, num_positives = candidates.vectors, candidates.positives.shape[0]
        return mix_positives(
            z1, vectors, self.theta, self.w1, self.w2, self.detach_coefficients, grid, candidates.offset, exchange,
            num_positives,
        )  # fmt: skip

    def mixed_candidates(self, z1: Tensor, candidates: Candidates, exchange=LOCAL_BATCH):
        """(the mixed positives, the candidates with every anchor's mixed positive in place of its positive)."""
        mixed = self.mix_gathered(z1, candidates, exchange)
        positives, _ = exchange.gather(mixed.positives)  # every anchor's mixed positive is a negative
        return mixed, candidates.with_positives(positives)

    def forward(
        self, z1: Tensor, z2: Tensor, exchange=LOCAL_BATCH, negatives: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        mixed, candidates = self.mixed_candidates(z1, gather_candidates(z2, negatives, exchange), exchange)
        loss, _ = info_nce_loss(z1, candidates, self.temperature, hard_negative_weight=self.hard_negative_weight)
        with torch.no_grad():
            stats = {**similarity_stats(mixed.sim, mixed.offset), **pm_stats(mixed)}
        return loss, stats

    def get_config_dict(self) -> dict:
        return {
            "objective": self.name,
            "temperature": self.temperature,
            "pm_theta": self.theta,
            "pm_w1": self.w1,
            "pm_w2": self.w2,
            "pm_ratio_grid_size": self.ratio_grid_size,
            "pm_detach_coefficients": self.detach_coefficients,
            **hard_negative_config(self),
        }


OBJECTIVE = Objective(
    name="pm",
    loss=PositiveMixingLoss,
    params=PositiveMixingParams,
    statistics=SIMILARITY_STATISTICS + PM_STATISTICS,
    description="HNCSE positive mixing: a positive that is too easy or too hard is mixed with the anchor's hardest "
    "in-batch negative, then InfoNCE",
    citations=(HNCSE_BIBTEX,),
)
