"""Contrastive objectives. Each is a small module whose core is a pure function of the two views' embeddings,
built from the training config by `from_config`."""

from hncse.losses.hard_negative_mixing import HardNegativeMixingLoss
from hncse.losses.hybrid import HybridLoss, HybridSumLoss
from hncse.losses.positive_mixing import PositiveMixingLoss, mix_positives
from hncse.losses.simcse import SimCSELoss, info_nce_loss

OBJECTIVES = {
    "simcse": SimCSELoss,
    "pm": PositiveMixingLoss,
    "hnm": HardNegativeMixingLoss,
    "hybrid": HybridLoss,
    "hybrid_sum": HybridSumLoss,
}

__all__ = [
    "OBJECTIVES",
    "HardNegativeMixingLoss",
    "HybridLoss",
    "HybridSumLoss",
    "PositiveMixingLoss",
    "SimCSELoss",
    "info_nce_loss",
    "mix_positives",
]
