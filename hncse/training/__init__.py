"""Training: the Trainer subclass, the cached contrastive step, checkpoints (what a folder holds, which one to
resume), the model card and Hub publishing."""

from hncse.training.run_facts import RunFacts
from hncse.training.trainer import HNCSETrainer

__all__ = ["HNCSETrainer", "RunFacts"]
