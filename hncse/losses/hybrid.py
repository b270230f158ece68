"""HNCSE hybrid: positive mixing, then hard-negative mixing over the mixed positives, in one loss
(docs/method.md §4). `hybrid_sum` is the other way of combining the two."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hncse.citations import HNCSE_BIBTEX
from hncse.losses.common import LOCAL_BATCH, SIMILARITY_STATISTICS, gather_candidates, similarity_stats
from hncse.losses.hard_negative_mixing import SYNTHETIC_STATISTICS, HardNegativeMixingLoss, HardNegativeMixingParams
from hncse.losses.positive_mixing import PM_STATISTICS, PositiveMixingLoss, PositiveMixingParams, pm_stats
from hncse.losses.registry import Objective


@dataclass
class HybridParams(HardNegativeMixingParams, PositiveMixingParams):
    """PM's and HNM's hyper-parameters together."""


class HybridLoss(nn.Module):
    """HNCSE hybrid: positive mixing first (ẑ2), then synthetic negatives mined from cos(z1, ẑ2) and mixed from
    rows of ẑ2 (and of the given hard negatives, if any); one cross-entropy over [cos(z1, ẑ2) | cos(z1, g)] / τ."""

    name = "hybrid"

    def __init__(self, pm: PositiveMixingLoss, hnm: HardNegativeMixingLoss):
        super().__init__()
        if pm.temperature != hnm.temperature:
            raise ValueError("PM and HNM must share the temperature")
        self.pm, self.hnm, self.temperature = pm, hnm, pm.temperature

    @classmethod
    def from_params(cls, params: HybridParams, seed: int | None = None) -> HybridLoss:
        return cls(PositiveMixingLoss.from_params(params), HardNegativeMixingLoss.from_params(params, seed))

    def forward(
        self, z1: Tensor, z2: Tensor, exchange=LOCAL_BATCH, negatives: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        mixed, candidates = self.pm.mixed_candidates(z1, gather_candidates(z2, negatives, exchange), exchange)
        loss, _, synthetic_sim = self.hnm.loss(z1, candidates)
        with torch.no_grad():
            stats = {
                **similarity_stats(mixed.sim, mixed.offset),
                **pm_stats(mixed),
                "sim_synthetic": synthetic_sim.mean(),
            }
        return loss, stats

    def get_config_dict(self) -> dict:
        return {**self.pm.get_config_dict(), **self.hnm.get_config_dict(), "objective": self.name}


OBJECTIVE = Objective(
    name="hybrid",
    loss=HybridLoss,
    params=HybridParams,
    statistics=SIMILARITY_STATISTICS + PM_STATISTICS + SYNTHETIC_STATISTICS,
    description="HNCSE hybrid: positive mixing, then hard-negative mixing over the mixed positives, in one loss",
    citations=(HNCSE_BIBTEX,),
    min_batch_size=3,
)
