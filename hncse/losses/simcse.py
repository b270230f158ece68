"""Unsupervised SimCSE: InfoNCE between two dropout views of the same batch (docs/method.md §1)."""

from __future__ import annotations

from torch import Tensor, nn

from hncse.citations import SIMCSE_BIBTEX
from hncse.losses.common import LOCAL_BATCH, SIMILARITY_STATISTICS, ContrastiveParams, info_nce_loss
from hncse.losses.registry import Objective


class SimCSELoss(nn.Module):
    """InfoNCE over in-batch negatives with temperature τ (SimCSE, Gao et al. 2021).

    Args:
        temperature: τ; logits are cos(z1_i, z2_j) / τ. SimCSE and the HNCSE paper use 0.05.

    Inputs: ``z1``, ``z2`` of shape (N, d), the two dropout views of the same N sentences, and the batch
    exchange (`hncse.distributed`): with `GlobalBatch`, z2 of every process are the candidates.
    Logits are computed in float32 whatever the training precision.
    """

    name = "simcse"

    def __init__(self, temperature: float = 0.05):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, z1: Tensor, z2: Tensor, exchange=LOCAL_BATCH) -> tuple[Tensor, dict[str, Tensor]]:
        candidates, offset = exchange.gather(z2)
        return info_nce_loss(z1, candidates, self.temperature, offset)

    @classmethod
    def from_params(cls, params: ContrastiveParams, seed: int | None = None) -> SimCSELoss:
        return cls(params.temperature)

    def get_config_dict(self) -> dict:
        return {"objective": self.name, "temperature": self.temperature}


OBJECTIVE = Objective(
    name="simcse",
    loss=SimCSELoss,
    params=ContrastiveParams,
    statistics=SIMILARITY_STATISTICS,
    description="SimCSE: the two dropout views of a sentence are a positive pair, the other sentences of the batch "
    "are its negatives (InfoNCE)",
    citations=(SIMCSE_BIBTEX,),
)
