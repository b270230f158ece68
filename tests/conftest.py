"""Offline fixtures: a tiny random BERT with a word-level vocabulary, a small corpus and small SentEval folders.

The data are generated (tests/fixture_data.py), the same on every machine; SentEval's real data and the wiki1m
sample ($HNCSE_SHARED_DATA, else ../shared/data beside the checkout) are read only by the tests that need the real
sets themselves, through `real_data`, which skips where they are absent.
"""

from __future__ import annotations

import os

# The suite runs on CPU (gloo for several processes) even on a machine with GPUs: no CUDA device is visible to it
# or to the processes it starts, and DeepSpeed is told so: results cannot depend on a GPU, nor hang on NCCL.
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ["DS_ACCELERATOR"] = "cpu"

import csv  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from fixture_data import covered_text, wiki_sentences, words, write_senteval  # noqa: E402
from transformers import BertConfig, BertModel, BertTokenizerFast  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HNCSE_SHARED_DATA") or REPO.parent / "shared" / "data")
NO_REAL_DATA = "needs SentEval's data and the wiki1m sample: set HNCSE_SHARED_DATA or put it in ../shared/data"
CORPUS_SIZE = 200  # sentences in corpus_file (tests count steps per epoch from it)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# A local data copy set in the developer's shell would change what the tests resolve; tests that want one set it.
os.environ.pop("HNCSE_DATA_DIR", None)


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The project's copy of SimCSE's data (SentEval's data/downstream in senteval/, the wiki1m sample in unsup/),
    for the tests of the real sets themselves; they skip where it is absent."""
    if not (SHARED_DATA / "unsup" / "wiki1m_random10k.txt").is_file() or not (SHARED_DATA / "senteval").is_dir():
        pytest.skip(NO_REAL_DATA)
    return SHARED_DATA


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    """200 generated Wikipedia-like sentences, no two alike in their first words (nor once truncated)."""
    path = tmp_path_factory.mktemp("corpus") / "wiki200.txt"
    path.write_text("".join(line + "\n" for line in wiki_sentences(CORPUS_SIZE)), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def triplet_file(tmp_path_factory, corpus_file) -> Path:
    """A CSV of SimCSE's NLI columns (sent0, sent1, hard_neg) from the corpus sentences: each sentence, its first
    words, and the next sentence."""
    sentences = [line.strip() for line in corpus_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    path = tmp_path_factory.mktemp("triplets") / "triplets.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sent0", "sent1", "hard_neg"])
        for i, sentence in enumerate(sentences[:64]):
            first = sentence.split()
            writer.writerow([sentence, " ".join(first[: max(3, 2 * len(first) // 3)]), sentences[i + 1]])
    return path


@pytest.fixture(scope="session")
def senteval_small(tmp_path_factory) -> Path:
    """A generated SentEval data/downstream folder with all 14 tasks in SentEval's files and formats, a few dozen
    lines per file: the whole suite in seconds (fixture_data.write_senteval)."""
    root = tmp_path_factory.mktemp("senteval-small")
    write_senteval(root)
    return root


@pytest.fixture(scope="session")
def senteval_dir(tmp_path_factory, senteval_small) -> Path:
    """SentEval layout with STS-B dev and SICK trial only, 80 pairs each (fast dev evaluation)."""
    root = tmp_path_factory.mktemp("senteval")
    for name in ("STS/STSBenchmark/sts-dev.csv", "SICK/SICK_trial.txt"):
        (root / name).parent.mkdir(parents=True)
        shutil.copy(senteval_small / name, root / name)
    return root


@pytest.fixture(scope="session")
def project_data(tmp_path_factory, senteval_small) -> Path:
    """A generated folder in the project data folder's layout (senteval/, unsup/wiki1m_random10k.txt), for tests of
    a local copy in that layout; its corpus starts with corpus_file's sentences."""
    root = tmp_path_factory.mktemp("project-data")
    shutil.copytree(senteval_small, root / "senteval")
    (root / "unsup").mkdir()
    lines = "".join(line + "\n" for line in wiki_sentences(2 * CORPUS_SIZE))
    (root / "unsup" / "wiki1m_random10k.txt").write_text(lines, encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, corpus_file, senteval_small) -> Path:
    """A random 2-layer BERT (hidden 32) and a word-level WordPiece vocabulary built from the test data: no
    generated sentence (nor the tests' own, from the same lexicon) has an unknown word."""
    root = tmp_path_factory.mktemp("tiny-bert")
    text = corpus_file.read_text(encoding="utf-8") + covered_text(senteval_small)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(words(text)))
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab=str(root / "vocab.txt"), do_lower_case=True, model_max_length=64)
    assert len(tokenizer) == len(vocab)
    for sentence in (
        "a man is playing .",
        "a woman is slicing an onion and a man is playing a flute .",
        "two dogs run in the park .",
        "the history of the city is long and the river runs through it .",
    ):
        assert "[UNK]" not in tokenizer.tokenize(sentence), sentence
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
def decoder_dirs(tmp_path_factory, corpus_file, senteval_small) -> dict[str, Path]:
    """Tiny random Llama, Qwen3 and Mistral folders (tests/tiny_decoders.py) whose vocabularies cover the data."""
    from tiny_decoders import FAMILIES, write_decoder

    root = tmp_path_factory.mktemp("tiny-decoders")
    text = corpus_file.read_text(encoding="utf-8") + covered_text(senteval_small) + " the city is old"
    return {family: write_decoder(root, family, text) for family in FAMILIES}
