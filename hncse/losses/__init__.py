"""Contrastive objectives. Each is one file: a small module whose core is a pure function of the two views'
embeddings, its hyper-parameters as a dataclass, and an `Objective` declaring both (`registry`). Imports only
torch and the foundations (`hncse.distributed`, `hncse.errors`, `hncse.citations`).
"""

from hncse.losses import hard_negative_mixing, hybrid, hybrid_sum, positive_mixing, simcse
from hncse.losses.common import ContrastiveParams, info_nce_loss
from hncse.losses.hard_negative_mixing import HardNegativeMixingLoss, HardNegativeMixingParams
from hncse.losses.hybrid import HybridLoss, HybridParams
from hncse.losses.hybrid_sum import HybridSumLoss, HybridSumParams
from hncse.losses.positive_mixing import PositiveMixingLoss, PositiveMixingParams, mix_positives
from hncse.losses.registry import (
    OBJECTIVES,
    Objective,
    Panel,
    Statistic,
    build_loss,
    declared_statistics,
    get_objective,
    hyperparameter,
    hyperparameter_fields,
    register,
    run_keys,
    unregister,
)
from hncse.losses.simcse import SimCSELoss

# The built-in objectives, in the order --help, run_config.json and the docs list them. A new objective is one
# file ending in an `Objective(...)` and one line here.
register(simcse.OBJECTIVE)
register(positive_mixing.OBJECTIVE)
register(hard_negative_mixing.OBJECTIVE)
register(hybrid.OBJECTIVE)
register(hybrid_sum.OBJECTIVE)

__all__ = [
    "OBJECTIVES",
    "ContrastiveParams",
    "HardNegativeMixingLoss",
    "HardNegativeMixingParams",
    "HybridLoss",
    "HybridParams",
    "HybridSumLoss",
    "HybridSumParams",
    "Objective",
    "Panel",
    "PositiveMixingLoss",
    "PositiveMixingParams",
    "SimCSELoss",
    "Statistic",
    "declared_statistics",
    "build_loss",
    "get_objective",
    "hyperparameter",
    "hyperparameter_fields",
    "info_nce_loss",
    "mix_positives",
    "register",
    "run_keys",
    "unregister",
]
