"""The two ways of combining PM and HNM (METHOD.md §4): one loss over mixed positives, or a weighted sum."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hncse.citations import HNCSE_BIBTEX
from hncse.losses.hard_negative_mixing import HardNegativeMixingLoss
from hncse.losses.positive_mixing import PositiveMixingLoss, pm_stats
from hncse.losses.simcse import LOCAL_BATCH, diagonal_cross_entropy, info_nce_loss, similarity_stats


class HybridLoss(nn.Module):
    """HNCSE hybrid: positive mixing first (ẑ2), then synthetic negatives mined from cos(z1, ẑ2) and mixed from
    rows of ẑ2; one cross-entropy over [cos(z1, ẑ2) | cos(z1, g)] / τ."""

    name = "hybrid"

    def __init__(self, pm: PositiveMixingLoss, hnm: HardNegativeMixingLoss):
        super().__init__()
        if pm.temperature != hnm.temperature:
            raise ValueError("PM and HNM must share the temperature")
        self.pm, self.hnm, self.temperature = pm, hnm, pm.temperature

    @classmethod
    def from_config(cls, args) -> HybridLoss:
        return cls(PositiveMixingLoss.from_config(args), HardNegativeMixingLoss.from_config(args))

    def forward(self, z1: Tensor, z2: Tensor, exchange=LOCAL_BATCH) -> tuple[Tensor, dict[str, Tensor]]:
        mixed = self.pm.mix(z1, z2, exchange)
        positives, offset = exchange.gather(mixed.positives)
        logits, synthetic_sim = self.hnm.logits(z1, positives, offset)
        loss = diagonal_cross_entropy(logits, self.temperature, offset)
        with torch.no_grad():
            stats = {
                **similarity_stats(mixed.sim, mixed.offset),
                **pm_stats(mixed),
                "sim_synthetic": synthetic_sim.mean(),
            }
        return loss, stats

    def get_config_dict(self) -> dict:
        return {**self.pm.get_config_dict(), **self.hnm.get_config_dict(), "objective": self.name}

    @property
    def citation(self) -> str:
        return HNCSE_BIBTEX


class HybridSumLoss(nn.Module):
    """L_PM + λ·L_HNM, each computed from the original two views."""

    name = "hybrid_sum"

    def __init__(self, pm: PositiveMixingLoss, hnm: HardNegativeMixingLoss, weight: float = 1.0):
        super().__init__()
        self.pm, self.hnm, self.weight = pm, hnm, weight

    @classmethod
    def from_config(cls, args) -> HybridSumLoss:
        return cls(PositiveMixingLoss.from_config(args), HardNegativeMixingLoss.from_config(args), args.hybrid_lambda)

    def forward(self, z1: Tensor, z2: Tensor, exchange=LOCAL_BATCH) -> tuple[Tensor, dict[str, Tensor]]:
        mixed = self.pm.mix(z1, z2, exchange)
        positives, offset = exchange.gather(mixed.positives)
        pm_loss, _ = info_nce_loss(z1, positives, self.pm.temperature, offset)
        hnm_loss, hnm_stats = self.hnm(z1, z2, exchange)
        with torch.no_grad():
            stats = {**hnm_stats, **pm_stats(mixed), "loss_pm": pm_loss.detach(), "loss_hnm": hnm_loss.detach()}
        return pm_loss + self.weight * hnm_loss, stats

    def get_config_dict(self) -> dict:
        return {
            **self.pm.get_config_dict(),
            **self.hnm.get_config_dict(),
            "objective": self.name,
            "hybrid_lambda": self.weight,
        }

    @property
    def citation(self) -> str:
        return HNCSE_BIBTEX
