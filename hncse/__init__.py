"""HNCSE: sentence embeddings by contrastive learning with hard negatives (unlabelled sentences, or labelled pairs
and triplets), as a Trainer recipe.

Layers, each importing only from those before it: `errors`, `citations` ← `distributed`, `data.sources` ←
`losses`, `data.files` ← `modeling` ← `evaluation`, `data` ← `config`, `plots` ← `parser` ← `training` ← the entry
points (`data.cli`, `evaluate`, `st_losses`, `run_hncse.py`). CONTRIBUTING.md has the table and the rules;
docs/method.md the method.
"""

from hncse.config import DataArguments, HNCSEConfig, ModelArguments
from hncse.data import ColumnsCollator, DataShape, load_training_data, tokenize_examples
from hncse.errors import HNCSEError
from hncse.losses import Objective, SimCSELoss, info_nce_loss, register
from hncse.modeling import POOLER_TYPES, SentenceEncoder, similarity
from hncse.training import HNCSETrainer, RunFacts

__version__ = "0.1.0"

__all__ = [
    "POOLER_TYPES",
    "ColumnsCollator",
    "DataShape",
    "DataArguments",
    "HNCSEConfig",
    "HNCSEError",
    "HNCSETrainer",
    "ModelArguments",
    "Objective",
    "RunFacts",
    "SentenceEncoder",
    "SimCSELoss",
    "info_nce_loss",
    "load_training_data",
    "register",
    "similarity",
    "tokenize_examples",
]
