"""--streaming: the corpus read as training goes — its order, resume, workers, processes, sources and errors."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import pytest
import torch
from accelerate.data_loader import IterableDatasetShard
from tiny_run import REPO, crash_after_step
from transformers import AutoTokenizer, DataCollatorWithPadding

import hncse.train
from hncse.data import (
    SKIPPED,
    SentenceStream,
    TokenizingCollator,
    load_sentences,
    stream_sentences,
    tokenize_sentences,
)
from hncse.errors import ConfigError, DataError
from hncse.parser import parse_args


@pytest.fixture
def lines_file(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("".join(f"sentence number {i} .\n" + ("\n   \n" if i % 7 == 0 else "") for i in range(50)))
    return path


def texts(stream, n: int) -> list[str]:
    return [example["text"] for example in itertools.islice(stream, n)]


def test_each_pass_is_a_new_permutation_of_the_non_blank_lines(lines_file):
    sentences, source = stream_sentences(train_file=str(lines_file))
    corpus = [f"sentence number {i} ." for i in range(50)]
    assert texts(SentenceStream(sentences, source, seed=0, buffer_size=0, global_batch=4), 100) == corpus + corpus

    shuffled = texts(SentenceStream(sentences, source, seed=3, buffer_size=1000, global_batch=4), 100)
    first, second = shuffled[:50], shuffled[50:]
    assert sorted(first) == sorted(second) == sorted(corpus)
    assert first != corpus and second != first  # shuffled, and differently in each pass
    assert texts(SentenceStream(sentences, source, seed=3, buffer_size=1000, global_batch=4), 100) == shuffled
    assert texts(SentenceStream(sentences, source, seed=4, buffer_size=1000, global_batch=4), 100) != shuffled


def test_max_samples_and_text_column(tmp_path):
    path = tmp_path / "rows.jsonl"
    rows = [{"label": i, "sentence": f"row {i}" if i != 2 else " "} for i in range(10)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sentences, _ = stream_sentences(train_file=str(path), max_samples=4)
    assert [e["text"] for e in sentences] == ["row 0", "row 1", "row 3", "row 4"]  # the first text column
    with pytest.raises(DataError, match="no column 'body'"):
        stream_sentences(train_file=str(path), text_column="body")


def test_skip_replays_the_first_sentences_as_placeholders(lines_file):
    sentences, source = stream_sentences(train_file=str(lines_file))
    whole = texts(SentenceStream(sentences, source, seed=1, buffer_size=16, global_batch=4), 120)
    resumed = SentenceStream(sentences, source, seed=1, buffer_size=16, global_batch=4)
    resumed.skip(70)  # past the end of the first pass
    replayed = list(itertools.islice(resumed, 120))
    assert replayed[:70] == [SKIPPED] * 70 and [e["text"] for e in replayed[70:]] == whole[70:]


def test_workers_and_processes_see_the_batches_of_one_process(lines_file):
    """DataLoader workers each take whole global batches in turn; accelerate's split of an iterable dataset between
    2 processes gives each half of every global batch: together the batches of 1 process with the global batch."""
    sentences, source = stream_sentences(train_file=str(lines_file))

    def batches(global_batch: int, batch_size: int, workers: int, process: int | None = None):
        stream = SentenceStream(sentences, source, seed=2, buffer_size=8, global_batch=global_batch)
        if process is not None:
            stream = IterableDatasetShard(stream, batch_size=batch_size, num_processes=2, process_index=process)
        loader = torch.utils.data.DataLoader(stream, batch_size=batch_size, num_workers=workers, collate_fn=list)
        return [[e["text"] for e in batch] for batch in itertools.islice(loader, 15)]

    one = batches(global_batch=8, batch_size=8, workers=0)
    assert batches(global_batch=8, batch_size=8, workers=2) == one
    for workers in (0, 2):
        two = [batches(global_batch=8, batch_size=4, workers=workers, process=p) for p in (0, 1)]
        assert [a + b for a, b in zip(*two)] == one


def test_collator_gives_the_prepared_corpus_batches(tiny_model_dir, corpus_file):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prepared = tokenize_sentences(load_sentences(train_file=str(corpus_file)), tokenizer, 16)
    expected = DataCollatorWithPadding(tokenizer)([prepared[i] for i in range(8)])
    sentences, source = stream_sentences(train_file=str(corpus_file))
    stream = SentenceStream(sentences, source, seed=0, buffer_size=0, global_batch=8)
    examples = list(itertools.islice(stream, 8))
    got = TokenizingCollator(tokenizer, 16)(examples)
    assert TokenizingCollator(tokenizer, 16).backend is not None  # the fast path
    assert set(got) == set(expected) - {"num_tokens"}
    for key in got:
        assert torch.equal(got[key], expected[key])
    # What the tokenizer's own call returns, with a multiple to pad to and with padding on the left (which the fast
    # path leaves to the tokenizer), and for a tokenizer without token types (RoBERTa's inputs).
    for multiple, side in ((None, "right"), (8, "right"), (8, "left")):
        tokenizer.padding_side = side
        own = tokenizer([e["text"] for e in examples], truncation=True, max_length=16, padding=True,
                        pad_to_multiple_of=multiple, return_tensors="pt")  # fmt: skip
        got = TokenizingCollator(tokenizer, 16, multiple)(examples)
        assert set(got) == set(own) and all(torch.equal(got[k], own[k]) for k in own)
    tokenizer.padding_side = "right"
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    got = TokenizingCollator(tokenizer, 16)(examples)
    own = tokenizer([e["text"] for e in examples], truncation=True, max_length=16, padding=True, return_tensors="pt")
    assert set(got) == set(own) == {"input_ids", "attention_mask"}
    assert all(torch.equal(got[k], own[k]) for k in own)


def test_streaming_needs_max_steps(tiny_model_dir, corpus_file):
    from hncse.training.preflight import check_arguments

    argv = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(corpus_file), "--streaming", "1"]
    with pytest.raises(ConfigError, match="--streaming needs --max_steps"):
        check_arguments(*parse_args(argv)[1:])


def test_named_corpus_streams_from_the_hub_unless_on_this_machine(monkeypatch, tmp_path):
    from hncse.data.sources import resolve_train_file

    monkeypatch.delenv("HNCSE_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    address = resolve_train_file("wiki1m", stream=True)
    assert address == "hf://datasets/princeton-nlp/datasets-for-simcse/wiki1m_for_simcse.txt"
    assert not (tmp_path / "empty-cache").exists()  # nothing was downloaded
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="not available offline"):
        resolve_train_file("wiki1m", stream=True)


def losses(output_dir) -> dict[int, float]:
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    return {e["step"]: e["loss"] for e in history if "loss" in e}


def streaming_argv(tiny_model_dir, train, out, *extra) -> list[str]:
    return [
        "--model_name_or_path", str(tiny_model_dir), *train, "--output_dir", str(out), "--streaming", "true",
        "--shuffle_buffer_size", "64", "--per_device_train_batch_size", "8", "--max_steps", "6", "--save_steps", "3",
        "--resume_state_steps", "3", "--logging_steps", "1", "--eval_strategy", "no", "--load_best_model_at_end",
        "false", "--objective", "hybrid", "--hnm_k", "4", "--learning_rate", "1e-3", "--dataloader_pin_memory",
        "false", "--disable_tqdm", "true", *extra,
    ]  # fmt: skip


def test_streamed_run_resumes_at_the_sentence_it_stopped(tiny_model_dir, corpus_file, tmp_path, monkeypatch):
    """20 sentences, 6 steps of 8: the run crosses passes; a crash after step 3 and the same command again repeat the
    uninterrupted loss curve (the same sentences and dropout in every step)."""
    train = ["--train_file", str(corpus_file), "--max_train_samples", "20"]
    hncse.train.main(streaming_argv(tiny_model_dir, train, tmp_path / "uninterrupted"))
    expected = losses(tmp_path / "uninterrupted")
    assert sorted(expected) == [1, 2, 3, 4, 5, 6]
    assert "train_samples" not in json.loads((tmp_path / "uninterrupted" / "train_results.json").read_text())
    assert "read as a stream" in (tmp_path / "uninterrupted" / "README.md").read_text()

    with crash_after_step(3), pytest.raises(RuntimeError, match="simulated crash"):
        hncse.train.main(streaming_argv(tiny_model_dir, train, tmp_path / "resumed"))

    tokenised = []
    monkeypatch.setattr(TokenizingCollator, "__call__", lambda self, ex, f=TokenizingCollator.__call__: (
        tokenised.append(ex[0]["text"] is not None), f(self, ex))[1])  # fmt: skip
    hncse.train.main(streaming_argv(tiny_model_dir, train, tmp_path / "resumed"))
    assert losses(tmp_path / "resumed") == expected
    assert tokenised.count(False) == 3 and tokenised.count(True) >= 3  # the 3 replayed batches were not tokenised


def test_hub_dataset_streams_with_its_text_column(tiny_model_dir, corpus_file, tmp_path):
    """A dataset repository (here a local folder, as load_dataset takes both) with a label column first."""
    repo = tmp_path / "dataset-repo"
    repo.mkdir()
    lines = corpus_file.read_text().splitlines()
    (repo / "train.jsonl").write_text("".join(json.dumps({"label": 1, "sentence": s}) + "\n" for s in lines))
    out = tmp_path / "out"
    hncse.train.main(streaming_argv(tiny_model_dir, ["--dataset_name", str(repo)], out, "--max_steps", "2"))
    assert sorted(losses(out)) == [1, 2] and (out / "model.safetensors").is_file()


def test_bad_utf8_in_a_stream_is_one_line_naming_the_file(tmp_path):
    """In the first block read (when the stream is opened) and far into the stream (11 MB, past datasets' first
    10 MB block)."""
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine line\n" * 5 + b"bad \xff line\n")
    with pytest.raises(DataError, match=r"bad\.txt:6: not valid UTF-8 \(byte 0xff at column 5\)"):
        stream_sentences(train_file=str(path))
    path.write_bytes(b"fine line\n" * 1_100_000 + b"bad \xff line\n")
    sentences, source = stream_sentences(train_file=str(path))
    with pytest.raises(DataError, match=r"bad\.txt:1100001: not valid UTF-8"):
        texts(SentenceStream(sentences, source, seed=0, buffer_size=0, global_batch=2), 1_200_000)


def test_two_processes_stream_their_share(tiny_model_dir, corpus_file, tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
        "run_hncse.py", *streaming_argv(tiny_model_dir, ["--train_file", str(corpus_file)], out, "--max_steps", "3"),
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(losses(out)) == [1, 2, 3] and (out / "checkpoint-3").is_dir()
    assert "negatives from the global batch of 2 processes" in proc.stderr


def write_corpus(path, kind: str, rows: int = 5000) -> None:
    sentences = [f"sentence number {i} ." for i in range(rows)]
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"text": sentences}), path, row_group_size=500)
    elif kind == "jsonl":
        path.write_text("".join(json.dumps({"text": s}) + "\n" for s in sentences), encoding="utf-8")
    else:
        path.write_text(("text\n" if kind == "csv" else "") + "".join(s + "\n" for s in sentences), encoding="utf-8")


@pytest.mark.parametrize("kind", ["txt", "jsonl", "csv", "parquet"])
@pytest.mark.parametrize("change", ["deleted", "cut short"])
def test_a_file_deleted_or_cut_short_under_the_stream_is_one_line(tmp_path, kind, change):
    """Read in blocks as training goes: a deleted file failed with a FileNotFoundError traceback, one cut short gave a
    shorter pass without a word (or a parser's traceback)."""
    path = tmp_path / f"corpus.{kind}"
    write_corpus(path, kind)
    sentences, source = stream_sentences(train_file=str(path))
    stream = iter(SentenceStream(sentences, source, seed=0, buffer_size=0, global_batch=4))
    next(stream)
    size = path.stat().st_size
    if change == "deleted":
        path.unlink()
    else:
        with open(path, "r+b") as f:
            f.truncate(size // 3)
    with pytest.raises(DataError) as error:
        list(itertools.islice(stream, 20_000))
    again = "put it back as it was and run the same command again (it resumes from the last resumable checkpoint)"
    if change == "deleted":
        expected = f"{path}: no longer there (deleted or moved while training streamed it); {again}"
    else:
        expected = f"{path}: changed while training streamed it ({size} bytes when the stream opened, {size // 3} now)"
    assert str(error.value).startswith(expected) and "\n" not in str(error.value), str(error.value)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.txt", b"", ": no sentences (the corpus is empty or only blank lines)"),
        ("empty.jsonl", b"\n", ": no sentences (the corpus is empty or only blank lines)"),
        ("text.parquet", b"one sentence\n", ": not a valid parquet file (it does not start like one: another format "
         "named .parquet? Give it its format's ending)"),
        ("bad.jsonl", b'{"text": "a"}\n{"text": "b"\n', ":2: not valid JSON (Expecting ',' delimiter at column 13); "
         "a JSON Lines file holds one object per line"),
        ("quote.csv", b'text\n"one\ntwo\n', ':2: a quoted field is never closed (it runs on to the end of the file); '
         'close the quote, or write a quote inside a quoted field as ""'),
        ("dup.csv", b"text,text\na,b\n", ":1: column 'text' is named twice in the header (columns 1 and 2); give "
         "each column its own name"),
        ("corpus.txt.gz", b"\x1f\x8b\x08\x00rest", ": a gzip-compressed file, not text; decompress it first and pass "
         "the result"),
    ],
)  # fmt: skip
def test_a_bad_streamed_file_is_one_line_naming_it(tmp_path, name, content, message):
    """When the stream opens (before a model loads): a traceback of pyarrow, pandas or StopIteration before."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as error:
        sentences, source = stream_sentences(train_file=str(path))
        texts(SentenceStream(sentences, source, seed=0, buffer_size=0, global_batch=2), 10)
    assert str(error.value) == f"{path}{message}"


def test_a_streamed_tsv_reads_its_quotes_as_text(tmp_path):
    path = tmp_path / "quotes.tsv"
    path.write_text('text\tid\n"He said, hi\t1\ntwo\t2\n"Hi," she said.\t3\n', encoding="utf-8")
    sentences, _ = stream_sentences(train_file=str(path))
    assert [e["text"] for e in sentences] == ['"He said, hi', "two", '"Hi," she said.']
