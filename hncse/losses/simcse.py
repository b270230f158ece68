"""Unsupervised SimCSE: InfoNCE between two dropout views of the same batch (METHOD.md §1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hncse.citations import SIMCSE_BIBTEX


def as_float(z: Tensor) -> Tensor:
    """float32 for half-precision inputs (logits, softmax and mixing stay in float32); float32/64 unchanged."""
    return z if z.dtype in (torch.float32, torch.float64) else z.float()


def cosine_logits(z1: Tensor, z2: Tensor) -> Tensor:
    """Cosine similarity matrix S[i, j] = cos(z1_i, z2_j), always in float32 (or float64 if given)."""
    return F.normalize(as_float(z1), dim=-1) @ F.normalize(as_float(z2), dim=-1).T  # (N, M)


def similarity_stats(sim: Tensor) -> dict[str, Tensor]:
    """Mean positive (diagonal), mean negative and mean hardest-negative cosine of a square S = cos(z1, z2)."""
    n = sim.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=sim.device)
    return {
        "sim_positive": sim.diagonal().mean(),
        "sim_negative": sim.masked_fill(eye, float("nan")).nanmean(),
        "sim_hardest_negative": sim.masked_fill(eye, float("-inf")).amax(dim=1).mean(),
    }


def diagonal_cross_entropy(logits: Tensor, temperature: float) -> Tensor:
    """Mean cross-entropy of logits / τ where row i's target is column i (its positive)."""
    return F.cross_entropy(logits / temperature, torch.arange(logits.shape[0], device=logits.device))


def info_nce_loss(z1: Tensor, z2: Tensor, temperature: float = 0.05) -> tuple[Tensor, dict[str, Tensor]]:
    """Mean cross-entropy of S / temperature with target i for row i.

    Args:
        z1: (N, d) anchors (first dropout view).
        z2: (N, d) positives (second dropout view); every other row is an in-batch negative.

    Returns the loss and detached statistics (mean positive / mean negative / mean hardest-negative cosine).
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"expected two (N, d) views of the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    n = z1.shape[0]
    if n < 2:
        raise ValueError("the contrastive loss needs at least 2 sentences per batch (in-batch negatives)")
    sim = cosine_logits(z1, z2)  # (N, N)
    loss = diagonal_cross_entropy(sim, temperature)
    with torch.no_grad():
        stats = similarity_stats(sim)
    return loss, stats


class SimCSELoss(nn.Module):
    """InfoNCE over in-batch negatives with temperature τ (SimCSE, Gao et al. 2021).

    Args:
        temperature: τ; logits are cos(z1_i, z2_j) / τ. SimCSE and the HNCSE paper use 0.05.

    Inputs: ``z1``, ``z2`` of shape (N, d), the two dropout views of the same N sentences.
    Logits are computed in float32 whatever the training precision.
    """

    name = "simcse"

    def __init__(self, temperature: float = 0.05):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, z1: Tensor, z2: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return info_nce_loss(z1, z2, self.temperature)

    @classmethod
    def from_config(cls, args) -> SimCSELoss:
        return cls(args.temperature)

    def get_config_dict(self) -> dict:
        return {"objective": self.name, "temperature": self.temperature}

    @property
    def citation(self) -> str:
        return SIMCSE_BIBTEX
