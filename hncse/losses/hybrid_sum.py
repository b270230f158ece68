"""HNCSE's second combination of PM and HNM (docs/method.md §4): L_PM + λ·L_HNM, each from the original two
views."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hncse.citations import HNCSE_BIBTEX
from hncse.losses.common import (
    LOCAL_BATCH,
    SIMILARITY_STATISTICS,
    gather_candidates,
    info_nce_loss,
    require,
)
from hncse.losses.hard_negative_mixing import SYNTHETIC_STATISTICS, HardNegativeMixingLoss, hnm_stats
from hncse.losses.hybrid import HybridParams
from hncse.losses.positive_mixing import PM_STATISTICS, PositiveMixingLoss, pm_stats
from hncse.losses.registry import Objective, Statistic, hyperparameter

# The two terms of the loss: logged, not drawn (the training-loss panel draws their weighted sum).
LOSS_TERMS = (Statistic("loss_pm", "PM loss", panel=None), Statistic("loss_hnm", "HNM loss (before λ)", panel=None))


@dataclass
class HybridSumParams(HybridParams):
    """PM's and HNM's hyper-parameters, and λ."""

    hybrid_lambda: float = hyperparameter(1.0, "hybrid_sum: weight λ of the HNM loss.")

    def __post_init__(self):
        super().__post_init__()
        require([(self.hybrid_lambda >= 0, f"--hybrid_lambda must be ≥ 0, got {self.hybrid_lambda}")])


class HybridSumLoss(nn.Module):
    """L_PM + λ·L_HNM, each computed from the original two views."""

    name = "hybrid_sum"

    def __init__(self, pm: PositiveMixingLoss, hnm: HardNegativeMixingLoss, weight: float = 1.0):
        super().__init__()
        self.pm, self.hnm, self.weight = pm, hnm, weight

    @classmethod
    def from_params(cls, params: HybridSumParams, seed: int | None = None) -> HybridSumLoss:
        return cls(
            PositiveMixingLoss.from_params(params),
            HardNegativeMixingLoss.from_params(params, seed),
            params.hybrid_lambda,
        )

    def forward(
        self, z1: Tensor, z2: Tensor, exchange=LOCAL_BATCH, negatives: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        candidates = gather_candidates(z2, negatives, exchange)
        mixed, mixed_candidates = self.pm.mixed_candidates(z1, candidates, exchange)
        weight = self.pm.hard_negative_weight
        pm_loss, _ = info_nce_loss(z1, mixed_candidates, self.pm.temperature, hard_negative_weight=weight)
        hnm_loss, logits, synthetic_sim = self.hnm.loss(z1, candidates)
        with torch.no_grad():
            stats = {
                **hnm_stats(candidates, logits, synthetic_sim),
                **pm_stats(mixed),
                "loss_pm": pm_loss.detach(),
                "loss_hnm": hnm_loss.detach(),
            }
        return pm_loss + self.weight * hnm_loss, stats

    def get_config_dict(self) -> dict:
        return {
            **self.pm.get_config_dict(),
            **self.hnm.get_config_dict(),
            "objective": self.name,
            "hybrid_lambda": self.weight,
        }


OBJECTIVE = Objective(
    name="hybrid_sum",
    loss=HybridSumLoss,
    params=HybridSumParams,
    statistics=SIMILARITY_STATISTICS + SYNTHETIC_STATISTICS + PM_STATISTICS + LOSS_TERMS,
    description="HNCSE: the positive-mixing loss plus λ times the hard-negative-mixing loss",
    citations=(HNCSE_BIBTEX,),
    min_batch_size=3,
)
