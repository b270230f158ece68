"""What the objectives share: the candidates an anchor is scored against, cosine logits in float32, the positives'
positions, InfoNCE, the statistics every objective logs, and the parameters every objective has (docs/method.md
§1, §9)."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from hncse.distributed import LocalBatch
from hncse.errors import ConfigError
from hncse.losses.registry import Panel, Statistic, hyperparameter

LOCAL_BATCH = LocalBatch()
SIMILARITY_PANEL = Panel("similarities in the batch", "cosine")
SIMILARITY_STATISTICS = (  # `similarity_stats`' keys
    Statistic("sim_positive", "positive", SIMILARITY_PANEL),
    Statistic("sim_hardest_negative", "hardest negative", SIMILARITY_PANEL),
    Statistic("sim_negative", "mean negative", SIMILARITY_PANEL),
)


@dataclass
class ContrastiveParams:
    """The hyper-parameters every objective here has: the temperature of the cosine logits, and the logit bonus of
    an anchor's own given hard negatives (labelled data only)."""

    temperature: float = hyperparameter(0.05, "Temperature τ of the cosine-similarity logits.")
    hard_negative_weight: float = hyperparameter(
        0.0,
        "With given hard negatives (triplets): added to the logit (after /τ) of each anchor's own hard negatives, "
        "as SimCSE's option of that name (0: none).",
    )

    def __post_init__(self):
        require([(self.temperature > 0, f"--temperature must be > 0, got {self.temperature}")])


def hard_negative_config(loss) -> dict:
    """`hard_negative_weight` for a loss's config dict when it is set (cards of unlabelled runs do not show it)."""
    return {"hard_negative_weight": loss.hard_negative_weight} if loss.hard_negative_weight else {}


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


@dataclass(frozen=True)
class Candidates:
    """What every anchor is scored against: the (global) batch's positives, row `offset + i` anchor i's own, then
    the given hard negatives of every row of the (global) batch, `per_row` each, row by row (docs/method.md §9).
    Without given negatives (one sentence per row, or pairs) the candidates are the positives alone."""

    positives: Tensor  # (M, d)
    offset: int = 0
    given: Tensor | None = None  # (M·K, d): rows j·K .. j·K + K − 1 are row j's given negatives

    @functools.cached_property
    def vectors(self) -> Tensor:
        """(M + M·K, d): the positives, then the given negatives (concatenated once per instance)."""
        return self.positives if self.given is None else torch.cat([self.positives, self.given])

    @property
    def per_row(self) -> int:
        return 0 if self.given is None else self.given.shape[0] // self.positives.shape[0]

    def with_positives(self, positives: Tensor) -> Candidates:
        """The same candidates with other positives in their place (PM's mixed ones)."""
        return dataclasses.replace(self, positives=positives)

    def own_negative_mask(self, num_rows: int, num_columns: int) -> Tensor:
        """(N, num_columns) mask of each anchor's own given negatives: row i, columns M + (offset + i)·K + 0..K−1."""
        device = self.positives.device
        start = self.positives.shape[0] + (torch.arange(num_rows, device=device) + self.offset) * self.per_row
        columns = torch.arange(num_columns, device=device)[None, :]
        return (columns >= start[:, None]) & (columns < start[:, None] + self.per_row)


def gather_candidates(z2: Tensor, negatives: Tensor | None, exchange=None) -> Candidates:
    """The candidates of this process's anchors: `z2` (N, d) and `negatives` (N, K, d) or None, gathered over the
    processes by the exchange (their rows in rank order, so the given negatives stay row by row)."""
    exchange = exchange if exchange is not None else LOCAL_BATCH
    positives, offset = exchange.gather(z2)
    if negatives is None:
        return Candidates(positives, offset)
    if negatives.dim() != 3 or negatives.shape[0] != z2.shape[0] or negatives.shape[2] != z2.shape[1]:
        shape = tuple(negatives.shape)
        raise ValueError(f"expected (N, K, d) negatives for ({z2.shape[0]}, d) positives, got {shape}")
    given, _ = exchange.gather(negatives.flatten(0, 1))
    return Candidates(positives, offset, given)


def positive_mask(num_rows: int, num_candidates: int, offset: int, device) -> Tensor:
    """(N, M) mask of each anchor's own positive: row i, column offset + i."""
    # Built from two aranges: no Python value is copied to the device (no host synchronisation in a step).
    columns = torch.arange(num_candidates, device=device)
    return columns[None, :] == torch.arange(offset, offset + num_rows, device=device)[:, None]


def positive_similarities(sim: Tensor, offset: int = 0) -> Tensor:
    """S[i, offset + i] for every row i."""
    return sim.diagonal(offset=offset)[: sim.shape[0]]


def hardest_negative_similarities(sim: Tensor, offset: int = 0) -> Tensor:
    """max over j ≠ offset + i of S[i, j] for every row i: each anchor's hardest negative."""
    own = positive_mask(*sim.shape, offset, sim.device)
    return sim.masked_fill(own, float("-inf")).amax(dim=1)


def similarity_stats(sim: Tensor, offset: int = 0) -> dict[str, Tensor]:
    """Mean positive, mean hardest-negative and mean negative cosine of S = cos(z1, candidates), (N, M)."""
    own = positive_mask(*sim.shape, offset, sim.device)
    return {
        "sim_positive": positive_similarities(sim, offset).mean(),
        "sim_hardest_negative": hardest_negative_similarities(sim, offset).mean(),
        "sim_negative": sim.masked_fill(own, float("nan")).nanmean(),
    }


def diagonal_cross_entropy(
    logits: Tensor, temperature: float, offset: int = 0, candidates: Candidates | None = None, weight: float = 0.0
) -> Tensor:
    """Mean cross-entropy of logits / τ where row i's target is column offset + i (its positive); with given
    negatives and a `weight`, `weight` is added to the scaled logits of each anchor's own (SimCSE's
    hard_negative_weight)."""
    targets = torch.arange(logits.shape[0], device=logits.device) + offset
    scaled = logits / temperature
    if weight and candidates is not None and candidates.per_row:
        scaled = scaled + weight * candidates.own_negative_mask(*logits.shape).to(scaled.dtype)
    return F.cross_entropy(scaled, targets)


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
    z1: Tensor,
    z2: Tensor | Candidates,
    temperature: float = 0.05,
    offset: int = 0,
    hard_negative_weight: float = 0.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Mean cross-entropy of S / temperature with target offset + i for row i.

    Args:
        z1: (N, d) anchors (first dropout view, or the labelled anchors).
        z2: (M, d) candidates: the second views of the (global) batch, M ≥ N; row offset + i is anchor i's
            positive and every other row a negative. Single process: M = N, offset 0. Or `Candidates`, which
            also hold the given hard negatives (and their own offset).
        hard_negative_weight: with given negatives, added to the scaled logits of each anchor's own.

    Returns the loss and detached statistics (mean positive / mean negative / mean hardest-negative cosine).
    """
    candidates = z2 if isinstance(z2, Candidates) else Candidates(z2, offset)
    offset = candidates.offset
    z2 = candidates.vectors
    check_views(z1, z2, offset)
    sim = cosine_logits(z1, z2)  # (N, M)
    loss = diagonal_cross_entropy(sim, temperature, offset, candidates, hard_negative_weight)
    with torch.no_grad():
        stats = similarity_stats(sim, offset)
    return loss, stats
