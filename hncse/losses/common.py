"""What the objectives share: cosine logits in float32, the positives' positions, InfoNCE, the statistics every
objective logs, and the temperature parameter (docs/method.md §1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from hncse.distributed import LocalBatch
from hncse.errors import ConfigError
from hncse.losses.registry import hyperparameter

LOCAL_BATCH = LocalBatch()
SIMILARITY_STATISTICS = ("sim_positive", "sim_negative", "sim_hardest_negative")  # `similarity_stats`' keys


@dataclass
class ContrastiveParams:
    """The hyper-parameter every objective here has: the temperature of the cosine logits."""

    temperature: float = hyperparameter(0.05, "Temperature τ of the cosine-similarity logits.")

    def __post_init__(self):
        require([(self.temperature > 0, f"--temperature must be > 0, got {self.temperature}")])


def require(checks: list[tuple[bool, str]]) -> None:
    """Raise `ConfigError` with the message of the first failed check (each message names its flag)."""
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def as_float(z: Tensor) -> Tensor:
    """float32 for half-precision inputs (logits, softmax and mixing stay in float32); float32/64 unchanged."""
    return z if z.dtype in (torch.float32, torch.float64) else z.float()


def cosine_logits(z1: Tensor, z2: Tensor) -> Tensor:
    """Cosine similarity matrix S[i, j] = cos(z1_i, z2_j), always in float32 (or float64 if given)."""
    return F.normalize(as_float(z1), dim=-1) @ F.normalize(as_float(z2), dim=-1).T  # (N, M)


def positive_mask(num_rows: int, num_candidates: int, offset: int, device) -> Tensor:
    """(N, M) mask of each anchor's own positive: row i, column offset + i."""
    # Built from two aranges: no Python value is copied to the device (no host synchronisation in a step).
    columns = torch.arange(num_candidates, device=device)
    return columns[None, :] == torch.arange(offset, offset + num_rows, device=device)[:, None]


def positive_similarities(sim: Tensor, offset: int = 0) -> Tensor:
    """S[i, offset + i] for every row i."""
    return sim.diagonal(offset=offset)[: sim.shape[0]]


def similarity_stats(sim: Tensor, offset: int = 0) -> dict[str, Tensor]:
    """Mean positive, mean negative and mean hardest-negative cosine of S = cos(z1, candidates), (N, M)."""
    own = positive_mask(*sim.shape, offset, sim.device)
    return {
        "sim_positive": positive_similarities(sim, offset).mean(),
        "sim_negative": sim.masked_fill(own, float("nan")).nanmean(),
        "sim_hardest_negative": sim.masked_fill(own, float("-inf")).amax(dim=1).mean(),
    }


def diagonal_cross_entropy(logits: Tensor, temperature: float, offset: int = 0) -> Tensor:
    """Mean cross-entropy of logits / τ where row i's target is column offset + i (its positive)."""
    targets = torch.arange(logits.shape[0], device=logits.device) + offset
    return F.cross_entropy(logits / temperature, targets)


def check_views(z1: Tensor, candidates: Tensor, offset: int) -> None:
    if z1.dim() != 2 or candidates.dim() != 2 or z1.shape[1] != candidates.shape[1]:
        raise ValueError(
            f"expected (N, d) anchors and (M, d) candidates, got {tuple(z1.shape)}, {tuple(candidates.shape)}"
        )
    if offset < 0 or offset + z1.shape[0] > candidates.shape[0]:
        raise ValueError(f"the anchors' positives (rows {offset}..{offset + z1.shape[0] - 1}) are not all candidates")
    if candidates.shape[0] < 2:
        raise ValueError("the contrastive loss needs at least 2 sentences per batch (in-batch negatives)")


def info_nce_loss(
    z1: Tensor, z2: Tensor, temperature: float = 0.05, offset: int = 0
) -> tuple[Tensor, dict[str, Tensor]]:
    """Mean cross-entropy of S / temperature with target offset + i for row i.

    Args:
        z1: (N, d) anchors (first dropout view).
        z2: (M, d) candidates: the second views of the (global) batch, M ≥ N; row offset + i is anchor i's
            positive and every other row a negative. Single process: M = N, offset 0.

    Returns the loss and detached statistics (mean positive / mean negative / mean hardest-negative cosine).
    """
    check_views(z1, z2, offset)
    sim = cosine_logits(z1, z2)  # (N, M)
    loss = diagonal_cross_entropy(sim, temperature, offset)
    with torch.no_grad():
        stats = similarity_stats(sim, offset)
    return loss, stats
