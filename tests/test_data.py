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
