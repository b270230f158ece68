"""The sentence encoder: a transformers model, SimCSE's poolers and the training head, saved as a folder that
transformers and sentence-transformers both load. Imports nothing from `hncse.training` or `hncse.evaluation`.
"""

from hncse.modeling.encoder import FEATURE_KEYS, SentenceEncoder, similarity
from hncse.modeling.folder import HNCSE_CONFIG_NAME, MLP_WEIGHTS_NAME, WEIGHTS_NAME
from hncse.modeling.pooling import POOLER_TYPES, POOLERS, Pooler, get_pooler, register_pooler, unregister_pooler

__all__ = [
    "FEATURE_KEYS",
    "HNCSE_CONFIG_NAME",
    "MLP_WEIGHTS_NAME",
    "POOLER_TYPES",
    "POOLERS",
    "WEIGHTS_NAME",
    "Pooler",
    "SentenceEncoder",
    "get_pooler",
    "register_pooler",
    "similarity",
    "unregister_pooler",
]
