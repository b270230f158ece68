"""STS evaluation in training: Spearman ×100 of cosine similarity on STS-B and SICK-R (SentEval's files).

Reads SentEval's `data/downstream` layout (`--eval_data_dir` or HNCSE_DATA_DIR); without one, STS-B comes
from the Hub (`sentence-transformers/stsb`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch.nn.functional as F
from scipy.stats import spearmanr

DATA_DIR_ENV = "HNCSE_DATA_DIR"
HUB_STSB = "sentence-transformers/stsb"
STSB_FILES = {"train": "sts-train.csv", "dev": "sts-dev.csv", "test": "sts-test.csv"}
SICK_FILES = {"train": "SICK_train.txt", "dev": "SICK_trial.txt", "test": "SICK_test_annotated.txt"}


@dataclass
class STSPairs:
    """Sentence pairs with gold similarity scores."""

    name: str
    sentences1: list[str]
    sentences2: list[str]
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def _tokens(text: str) -> str:
    # SentEval splits on whitespace and the SimCSE batcher re-joins with one space.
    return " ".join(text.split())


def _read_tsv(path: str, flag: str) -> list[list[str]]:
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: missing evaluation file (set the SentEval data folder with {flag} or ${DATA_DIR_ENV})"
        )
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\r\n").split("\t") for line in f]


def load_stsb(data_dir: str, split: str = "dev", flag: str = "--eval_data_dir") -> STSPairs:
    """STS Benchmark from SentEval's STS/STSBenchmark/sts-{split}.csv (score column 5, sentences 6 and 7)."""
    rows = _read_tsv(os.path.join(data_dir, "STS", "STSBenchmark", STSB_FILES[split]), flag)
    rows = [r for r in rows if len(r) >= 7]
    return STSPairs(
        f"stsb-{split}",
        [_tokens(r[5]) for r in rows],
        [_tokens(r[6]) for r in rows],
        np.array([float(r[4]) for r in rows]),
    )


def load_sickr(data_dir: str, split: str = "dev", flag: str = "--eval_data_dir") -> STSPairs:
    """SICK relatedness from SentEval's SICK/ folder (header line; sentence A, B, relatedness in columns 2-4)."""
    rows = _read_tsv(os.path.join(data_dir, "SICK", SICK_FILES[split]), flag)[1:]
    rows = [r for r in rows if len(r) >= 4]
    return STSPairs(
        f"sickr-{split}",
        [_tokens(r[1]) for r in rows],
        [_tokens(r[2]) for r in rows],
        np.array([float(r[3]) for r in rows]),
    )


def load_stsb_from_hub(split: str = "dev") -> STSPairs:
    from datasets import load_dataset

    hub_split = {"dev": "validation"}.get(split, split)
    ds = load_dataset(HUB_STSB, split=hub_split)
    return STSPairs(f"stsb-{split}", list(ds["sentence1"]), list(ds["sentence2"]), np.array(ds["score"], dtype=float))


def resolve_data_dir(data_dir: str | None) -> str | None:
    return data_dir or os.environ.get(DATA_DIR_ENV) or None


def dev_sets(data_dir: str | None, tasks: list[str]) -> dict[str, STSPairs]:
    """The in-training evaluation sets by metric name: {"stsb": …, "sickr": …}."""
    data_dir = resolve_data_dir(data_dir)
    loaders = {"stsb": load_stsb, "sickr": load_sickr}
    sets = {}
    for task in tasks:
        if task not in loaders:
            raise ValueError(f"eval_tasks: unknown task {task!r}; choose from {', '.join(loaders)}")
        if data_dir is not None:
            sets[task] = loaders[task](data_dir, "dev")
        elif task == "stsb":
            sets[task] = load_stsb_from_hub("dev")
        else:
            raise FileNotFoundError(
                f"eval_tasks: {task} needs SentEval's data folder; set --eval_data_dir or ${DATA_DIR_ENV}"
            )
    return sets


def sts_spearman(encoder, pairs: STSPairs, batch_size: int = 128) -> float:
    """Spearman ×100 between cos(u, v) and the gold scores; every distinct sentence is encoded once."""
    unique = list(dict.fromkeys(pairs.sentences1 + pairs.sentences2))
    index = {s: i for i, s in enumerate(unique)}
    embeddings = F.normalize(encoder.encode(unique, batch_size=batch_size), dim=-1)
    u = embeddings[[index[s] for s in pairs.sentences1]]
    v = embeddings[[index[s] for s in pairs.sentences2]]
    cosine = (u * v).sum(dim=-1).double().numpy()
    return float(spearmanr(cosine, pairs.scores).correlation * 100)
