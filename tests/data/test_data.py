"""Corpus loading: formats, blank lines, and the one-line errors for bad files."""

import json
import logging

import pytest

from hncse.data import load_sentences, tokenize_sentences
from hncse.errors import DataError


def test_text_file_drops_and_counts_blank_lines(tmp_path, caplog):
    path = tmp_path / "c.txt"
    path.write_text("first sentence\n\n   \nsecond sentence\r\nthird\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="hncse.data"):
        ds = load_sentences(train_file=str(path))
    assert ds["text"] == ["first sentence", "second sentence", "third"]
    assert "dropped 2 blank line(s)" in caplog.text


def test_csv_and_jsonl_with_text_column(tmp_path):
    csv = tmp_path / "c.csv"
    csv.write_text("id,sentence\n1,hello world\n2,\n3,good bye\n", encoding="utf-8")
    assert load_sentences(train_file=str(csv))["text"] == ["hello world", "good bye"]
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text("\n".join(json.dumps({"n": i, "body": f"s {i}"}) for i in range(3)) + "\n", encoding="utf-8")
    assert load_sentences(train_file=str(jsonl), text_column="body")["text"] == ["s 0", "s 1", "s 2"]
    with pytest.raises(DataError, match="no column 'missing'"):
        load_sentences(train_file=str(jsonl), text_column="missing")


def test_parquet_sentences_and_pairs(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hncse.data import load_training_data

    sentences = tmp_path / "s.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3], "text": ["hello world", "  ", "good bye"]}), sentences)
    assert load_sentences(train_file=str(sentences))["text"] == ["hello world", "good bye"]
    pairs = tmp_path / "p.parquet"
    pq.write_table(pa.table({"sent0": ["a b", "c d"], "sent1": ["a c", "c e"]}), pairs)
    data, shape = load_training_data(train_file=str(pairs))
    assert shape.kind == "pairs" and data["anchor"] == ["a b", "c d"] and data["positive"] == ["a c", "c e"]


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(DataError, match=f"{missing}: no such file"):
        load_sentences(train_file=str(missing))


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_or_blank_only_file(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=f"{path}: no sentences"):
        load_sentences(train_file=str(path))


def test_non_utf8_names_file_line_and_column(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("fine line\nsecond fine line\ncaf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(DataError) as info:
        load_sentences(train_file=str(path))
    message = str(info.value)
    assert message.startswith(f"{path}:3: not valid UTF-8 (byte 0xe9 at column 4)")
    assert "\n" not in message


def test_exactly_one_source_required():
    with pytest.raises(DataError, match="exactly one"):
        load_sentences()


def test_tokenisation_truncates_and_does_not_pad(tiny_model_dir, corpus_file):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    ds = tokenize_sentences(load_sentences(train_file=str(corpus_file)), tokenizer, max_seq_length=12)
    lengths = [len(ids) for ids in ds["input_ids"]]
    assert max(lengths) == 12 and min(lengths) < 12
    assert set(ds.column_names) >= {"input_ids", "attention_mask"} and "text" not in ds.column_names


def test_dataset_name_reads_a_dataset_folder(tmp_path):
    """--dataset_name goes through datasets.load_dataset: a Hub id online, or a folder of data files."""
    folder = tmp_path / "my_corpus"
    folder.mkdir()
    (folder / "train.jsonl").write_text('{"sentence": "one"}\n{"sentence": " "}\n{"sentence": "two"}\n')
    assert load_sentences(dataset_name=str(folder))["text"] == ["one", "two"]


@pytest.mark.parametrize("slice_rows", [3, 1 << 20])
def test_blank_rows_match_pythons_strip_and_max_samples_counts_kept_rows(tmp_path, monkeypatch, slice_rows):
    """The Arrow filter keeps exactly the rows Python's str.strip() would, Unicode white space included (the
    zero-width space is not white space to either), in slices or not; --max_train_samples takes the first N rows
    that are kept."""
    import hncse.data.files

    monkeypatch.setattr(hncse.data.files, "MASK_SLICE_ROWS", slice_rows)
    texts = ["one", "\u00a0\u3000", None, "two\u2003", "\x1c\x1f", "\u200b", "", "three", "\t\x0b\x0c", "four"]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}) for t in texts) + "\n", encoding="utf-8")
    expected = [t for t in texts if t is not None and t.strip()]
    assert load_sentences(train_file=str(path))["text"] == expected
    assert load_sentences(train_file=str(path), max_samples=3)["text"] == expected[:3]
    assert load_sentences(train_file=str(path), max_samples=100)["text"] == expected
    plain = tmp_path / "plain.txt"
    plain.write_text("a\nb\nc\n", encoding="utf-8")
    assert load_sentences(train_file=str(plain), max_samples=2)["text"] == ["a", "b"]


def test_a_column_that_is_not_text_names_its_first_row(tmp_path):
    path = tmp_path / "numbers.jsonl"
    path.write_text('{"text": null}\n{"text": 7}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"numbers.jsonl: row 2: column 'text' holds int, expected text"):
        load_sentences(train_file=str(path))


def test_utf8_is_checked_across_block_boundaries(tmp_path, monkeypatch):
    import hncse.data.files

    monkeypatch.setattr(hncse.data.files, "CHECK_BLOCK_BYTES", 7)  # splits the multi-byte characters below
    path = tmp_path / "many.txt"
    path.write_text("café crème\nnaïve\n" * 5 + "fine\n", encoding="utf-8")
    assert len(load_sentences(train_file=str(path))) == 11
    path.write_bytes(path.read_bytes() + "bad caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"many.txt:12: not valid UTF-8 \(byte 0xe9 at column 8\)"):
        load_sentences(train_file=str(path))
    path.write_bytes(b"ok\n" + "é".encode()[:1])  # the file ends inside a character
    with pytest.raises(DataError, match=r"many.txt:2: not valid UTF-8 \(byte 0xc3 at column 1\)"):
        load_sentences(train_file=str(path))


def test_truncation_summary_against_a_naive_count(tiny_model_dir, corpus_file):
    from transformers import AutoTokenizer

    from hncse.data import truncation_summary

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    sentences = load_sentences(train_file=str(corpus_file))
    tokenized = tokenize_sentences(sentences, tokenizer, max_seq_length=12, num_proc=2)
    lengths = [len(tokenizer(t)["input_ids"]) for t in sentences["text"]]  # one at a time, untruncated
    assert tokenized["num_tokens"][:] == lengths  # two processes: the same rows, in the same order
    longest = lengths.index(max(lengths))
    summary = truncation_summary(sentences, tokenized, 12)
    assert summary.startswith(f"{sum(n > 12 for n in lengths)} of {len(lengths)} training sentences")
    assert f"the longest has {max(lengths)} tokens (sentence {longest + 1}:" in summary
    assert truncation_summary(sentences, tokenized, 10_000) is None
