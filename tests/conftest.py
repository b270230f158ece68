"""Offline fixtures: a tiny random BERT with a word-level vocabulary, a small corpus and a small SentEval folder."""

from __future__ import annotations

import os

# The suite runs on CPU (gloo for several processes) even on a machine with GPUs: no CUDA device is visible to it
# or to the processes it starts, and DeepSpeed is told so: results cannot depend on a GPU, nor hang on NCCL.
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ["DS_ACCELERATOR"] = "cpu"

import re  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import BertConfig, BertModel, BertTokenizerFast  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HNCSE_SHARED_DATA", REPO.parent / "shared" / "data"))
SENTEVAL = SHARED_DATA / "senteval"
WIKI = SHARED_DATA / "unsup" / "wiki1m_random10k.txt"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# A local data copy set in the developer's shell would change what the tests resolve; tests that want one set it.
os.environ.pop("HNCSE_DATA_DIR", None)


def _head(path: Path, n: int) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [next(f) for _ in range(n)]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not WIKI.is_file() or not SENTEVAL.is_dir():
        raise FileNotFoundError(f"tests need ../shared/data beside the checkout (looked in {SHARED_DATA})")
    return SHARED_DATA


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory, shared_data) -> Path:
    """200 Wikipedia sentences from SimCSE's wiki1m."""
    path = tmp_path_factory.mktemp("corpus") / "wiki200.txt"
    path.write_text("".join(_head(WIKI, 200)), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def triplet_file(tmp_path_factory, corpus_file) -> Path:
    """A CSV of SimCSE's NLI columns (sent0, sent1, hard_neg) from the corpus sentences: each sentence, its first
    words, and the next sentence."""
    import csv

    sentences = [line.strip() for line in corpus_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    path = tmp_path_factory.mktemp("triplets") / "triplets.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sent0", "sent1", "hard_neg"])
        for i, sentence in enumerate(sentences[:64]):
            words = sentence.split()
            writer.writerow([sentence, " ".join(words[: max(3, 2 * len(words) // 3)]), sentences[i + 1]])
    return path


@pytest.fixture(scope="session")
def senteval_dir(tmp_path_factory, shared_data) -> Path:
    """SentEval layout with the first 80 STS-B dev pairs and 80 SICK trial pairs (fast dev evaluation)."""
    root = tmp_path_factory.mktemp("senteval")
    (root / "STS" / "STSBenchmark").mkdir(parents=True)
    (root / "SICK").mkdir()
    stsb = _head(SENTEVAL / "STS" / "STSBenchmark" / "sts-dev.csv", 80)
    (root / "STS" / "STSBenchmark" / "sts-dev.csv").write_text("".join(stsb), encoding="utf-8")
    sick = _head(SENTEVAL / "SICK" / "SICK_trial.txt", 81)
    (root / "SICK" / "SICK_trial.txt").write_text("".join(sick), encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, corpus_file, senteval_dir) -> Path:
    """A random 2-layer BERT (hidden 32) and a word-level WordPiece vocabulary built from the test data."""
    root = tmp_path_factory.mktemp("tiny-bert")
    text = corpus_file.read_text(encoding="utf-8").lower()
    for path in senteval_dir.rglob("*.*"):
        text += path.read_text(encoding="utf-8").lower()
    words = sorted(set(re.findall(r"[a-z]+|[0-9]+|[^\sa-z0-9]", text)))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab=str(root / "vocab.txt"), do_lower_case=True, model_max_length=64)
    assert len(tokenizer) == len(vocab) and "[UNK]" not in tokenizer.tokenize("a man is playing .")
    tokenizer.save_pretrained(root)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        initializer_range=0.5,  # a wider random init than BERT's 0.02, so sentences get distinct vectors
    )
    BertModel(config).save_pretrained(root)
    return root


@pytest.fixture(scope="session")
def senteval_small(tmp_path_factory, shared_data) -> Path:
    """Every SentEval file cut to its first 40 lines (MRPC/SICK keep their header): all 14 tasks in seconds."""
    root = tmp_path_factory.mktemp("senteval-small")
    for path in SENTEVAL.rglob("*"):
        if path.is_file():
            target = root / path.relative_to(SENTEVAL)
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "rb") as f:
                target.write_bytes(b"".join(line for _, line in zip(range(40), f)))
    return root
