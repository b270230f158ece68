"""The documented import path of HNCSE's objectives as sentence-transformers losses (`from hncse.st_losses import
HNCSELoss`). The code is `hncse.training.st_losses`, beside the trainer step whose encoding and objective it
shares."""

from hncse.training.st_losses import CachedHNCSELoss, HNCSELoss, stacked_columns

__all__ = ["CachedHNCSELoss", "HNCSELoss", "stacked_columns"]
