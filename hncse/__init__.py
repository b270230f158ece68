"""HNCSE: unsupervised sentence embeddings by contrastive learning with hard negatives, as a Trainer recipe."""

from hncse.config import DataArguments, HNCSEConfig, ModelArguments
from hncse.losses import SimCSELoss, info_nce_loss
from hncse.modeling import POOLER_TYPES, SentenceEncoder, similarity
from hncse.trainer import HNCSETrainer

__version__ = "0.1.0"

__all__ = [
    "POOLER_TYPES",
    "DataArguments",
    "HNCSEConfig",
    "HNCSETrainer",
    "ModelArguments",
    "SentenceEncoder",
    "SimCSELoss",
    "info_nce_loss",
    "similarity",
]
