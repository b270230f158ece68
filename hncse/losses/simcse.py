"""SimCSE: InfoNCE between two dropout views of the same batch (unsupervised, docs/method.md §1), or between
labelled anchors and positives with the given hard negatives among the negatives (supervised, §9)."""

from __future__ import annotations

from torch import Tensor, nn

from hncse.citations import SIMCSE_BIBTEX
from hncse.losses.common import (
    LOCAL_BATCH,
    SIMILARITY_STATISTICS,
    ContrastiveParams,
    gather_candidates,
    hard_negative_config,
    info_nce_loss,
)
from hncse.losses.registry import Objective


class SimCSELoss(nn.Module):
    """InfoNCE over in-batch negatives with temperature τ (SimCSE, Gao et al. 2021).

    Args:
        temperature: τ; logits are cos(z1_i, z2_j) / τ. SimCSE and the HNCSE paper use 0.05.
        hard_negative_weight: added to the scaled logit of each anchor's own given hard negatives (SimCSE's
            option; 0 in its supervised results).

    Inputs: ``z1``, ``z2`` of shape (N, d) — the two dropout views of the same N sentences, or labelled anchors
    and their positives — optionally ``negatives`` (N, K, d), each row's given hard negatives, and the batch
    exchange (`hncse.distributed`): with `GlobalBatch`, the positives and given negatives of every process are
    the candidates. Logits are computed in float32 whatever the training precision.
    """

    name = "simcse"

    def __init__(self, temperature: float = 0.05, hard_negative_weight: float = 0.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature, self.hard_negative_weight = temperature, hard_negative_weight

    def forward(
        self, z1: Tensor, z2: Tensor, exchange=LOCAL_BATCH, negatives: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        candidates = gather_candidates(z2, negatives, exchange)
        return info_nce_loss(z1, candidates, self.temperature, hard_negative_weight=self.hard_negative_weight)

    @classmethod
    def from_params(cls, params: ContrastiveParams, seed: int | None = None) -> SimCSELoss:
        return cls(params.temperature, params.hard_negative_weight)

    def get_config_dict(self) -> dict:
        return {"objective": self.name, "temperature": self.temperature, **hard_negative_config(self)}


OBJECTIVE = Objective(
    name="simcse",
    loss=SimCSELoss,
    params=ContrastiveParams,
    statistics=SIMILARITY_STATISTICS,
    description="SimCSE: the two dropout views of a sentence are a positive pair, the other sentences of the batch "
    "are its negatives (InfoNCE)",
    citations=(SIMCSE_BIBTEX,),
)
