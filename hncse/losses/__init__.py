"""Contrastive objectives. Each is a small module whose core is a pure function of the two views' embeddings."""

from hncse.losses.simcse import SimCSELoss, info_nce_loss

OBJECTIVES = {"simcse": SimCSELoss}

__all__ = ["OBJECTIVES", "SimCSELoss", "info_nce_loss"]
