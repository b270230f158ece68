"""Bad training files, each generated here: read as they were written (a TSV's stray quotes, a pandas TSV, CSV
quoting with line breaks, `NA` as a sentence) or refused with one line naming the file and its line."""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hncse.data import load_sentences, load_training_data
from hncse.errors import DataError


def write(tmp_path, name: str, text: str | bytes):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def refused(path, load=load_sentences) -> str:
    with pytest.raises(DataError) as error:
        load(train_file=str(path))
    message = str(error.value)
    assert "\n" not in message, message
    return message


# ---- CSV and TSV quoting -------------------------------------------------------------------------------------------

STRAY_QUOTES = ['"Hi," she said.', '"He said, hi', "5\" 2' tall", 'a "quoted" word', '""', '"""']


def test_a_tsv_reads_its_quotes_as_text_one_row_per_line(tmp_path):
    """The common TSV of sentences (GLUE's, SentEval's, `"\\t".join`): CSV quoting would swallow the lines after
    `"He said, hi` into one field and drop the quotes of `"Hi," she said.`."""
    path = write(tmp_path, "stray.tsv", "text\tid\n" + "".join(f"{s}\t{i}\n" for i, s in enumerate(STRAY_QUOTES)))
    assert load_sentences(train_file=str(path))["text"] == STRAY_QUOTES


def test_a_tsv_written_by_pandas_is_read_as_written(tmp_path):
    """pandas (and `Dataset.to_csv`) quote a field that holds a quote or a tab: such a TSV is read with CSV quoting."""
    sentences = ['He said "hi".', "a\ttab inside", "plain", '"Hi," she said.']
    path = tmp_path / "pandas.tsv"
    pd.DataFrame({"text": sentences, "id": range(4)}).to_csv(path, sep="\t", index=False)
    assert load_sentences(train_file=str(path))["text"] == sentences
    quoted = tmp_path / "all_quoted.tsv"  # every field quoted: told by the header
    pd.DataFrame({"text": ["a b", "c d"]}).to_csv(quoted, sep="\t", index=False, quoting=csv.QUOTE_ALL)
    assert load_sentences(train_file=str(quoted))["text"] == ["a b", "c d"]


def test_a_csv_keeps_its_quoting_and_logs_fields_with_line_breaks(tmp_path, caplog):
    """SimCSE's NLI file quotes fields with commas and quotes; a quoted line break is one row, and the log says so
    (fewer rows than lines is never silent)."""
    rows = [["a, b", 'he said "no"', "c"], ["two\nlines", "x", "y"], ["z", "w", "v"]]
    path = tmp_path / "nli.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([["sent0", "sent1", "hard_neg"], *rows])
    with caplog.at_level(logging.WARNING, logger="hncse.data"):
        data, _ = load_training_data(train_file=str(path))
    assert [[r["anchor"], r["positive"], r["negative_1"]] for r in data] == rows
    assert "1 row(s) hold a quoted field with line breaks (the first: lines 3-4)" in caplog.text


@pytest.mark.parametrize(
    "text, message",
    [
        # the brief's case: a sentence that opens a quote and never closes it swallows every line after it
        ('text,label\n"one sentence,1\ntwo,2\nthree,3\n',
         ':2: a quoted field is never closed (it runs on to the end of the file); close the quote, or write a quote '
         'inside a quoted field as ""'),
        # the same, up to a later quote inside a sentence
        ('text,label\n"one sentence,1\ntwo,2\nthree "x" four,3\nfive,4\n',
         ':2: a quoted field runs on to line 4, where text follows its closing quote (an unclosed quote?); close the '
         'quote, or write a quote inside a quoted field as ""'),
        # a raw sentence that starts with a quote (pandas would drop both quotes)
        ('text,label\nfine,1\n"Hi" she said,2\n',
         ':3: text after the closing quote of a quoted field; a field that starts with a quote must end with it: '
         'quote the whole field and double the quotes inside it ("""Hi,"" she said")'),
    ],
)  # fmt: skip
def test_a_stray_quote_in_a_csv_is_refused_naming_its_line(tmp_path, text, message):
    path = write(tmp_path, "stray.csv", text)
    assert refused(path) == f"{path}{message}"


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("dup.csv", "text,text,label\na,b,1\n",
         ":1: column 'text' is named twice in the header (columns 1 and 2); give each column its own name"),
        ("dup.tsv", "sent0\tsent1\tsent1\na\tb\tc\n",
         ":1: column 'sent1' is named twice in the header (columns 2 and 3); give each column its own name"),
    ],
)  # fmt: skip
def test_a_column_named_twice_is_refused(tmp_path, name, text, message):
    """pandas would rename the second `a` to `a.1` and train on the first without a word."""
    path = write(tmp_path, name, text)
    assert refused(path, load_training_data) == f"{path}{message}"


@pytest.mark.parametrize(
    "name, text, message",
    [
        # one field more in the first row: pandas would make its first field the index and shift the columns
        ("wide.tsv", "text\tlabel\na b\tc d\t1\ne f\t2\n",
         ":2: 3 fields, but the header names 2; a .tsv has no quoting, so a tab inside a field splits it: remove "
         "the tab"),
        ("wide.csv", "text,label\na b,1\nc, d,2\n", ':3: 3 fields, but the header names 2; quote a field that holds '
         'a comma ("a, b")'),
    ],
)  # fmt: skip
def test_a_row_with_more_fields_than_the_header_is_refused(tmp_path, name, text, message):
    path = write(tmp_path, name, text)
    assert refused(path) == f"{path}{message}"


def test_words_pandas_takes_for_missing_stay_sentences(tmp_path):
    path = write(tmp_path, "words.csv", "text,label\nNA,1\nnull,2\nNone,3\nnan,4\n,5\nN/A,6\n")
    assert load_sentences(train_file=str(path))["text"] == ["NA", "null", "None", "nan", "N/A"]  # the empty one: blank


def test_a_line_of_spaces_is_no_row_when_a_line_is_named(tmp_path):
    """pandas skips a line of spaces as blank: the line named for a bad row counts it as no row too."""
    path = write(tmp_path, "nli.csv", "sent0,sent1,hard_neg\na,b,c\n   \nd,e,\n")
    assert refused(path, load_training_data).startswith(f"{path}:4: column 'hard_neg' is empty or missing")


# ---- JSON and JSON Lines -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("bad.jsonl", '{"text": "a"}\n{"text": "b"\n{"text": "c"}\n',
         ":2: not valid JSON (Expecting ',' delimiter at column 13); a JSON Lines file holds one object per line"),
        ("first.jsonl", '{"text": "a",}\n{"text": "b"}\n',
         ":1: not valid JSON (Expecting property name enclosed in double quotes at column 14); a JSON Lines file "
         "holds one object per line"),
        ("array.json", '[{"text": "a"},\n {"text": "b"}\n {"text": "c"}]\n',
         ":3: not valid JSON (Expecting ',' delimiter at column 2)"),
        # pyarrow reads two objects on one line as two rows: the lines named for later rows would be wrong
        ("two.jsonl", '{"text": "a"} {"text": "b"}\n{"text": "c"}\n',
         ":1: not valid JSON (Extra data at column 15); a JSON Lines file holds one object per line"),
        ("strings.jsonl", '"a sentence"\n"another"\n',
         ':1: a JSON string, not an object; each line of a JSON Lines file is one row: {"column": value, …}'),
        ("mixed.jsonl", '{"text": "a"}\n["b", "c"]\n',
         ':2: a JSON array, not an object; each line of a JSON Lines file is one row: {"column": value, …}'),
    ],
)  # fmt: skip
def test_a_json_error_names_its_line(tmp_path, name, text, message):
    path = write(tmp_path, name, text)
    assert refused(path) == f"{path}{message}"


def test_json_that_datasets_reads_stays_readable(tmp_path):
    """Blank lines in JSON Lines, an array over several lines, an array on one line."""
    lines = write(tmp_path, "blank.jsonl", '{"text": "a"}\n\n{"text": "b"}\n\n')
    assert load_sentences(train_file=str(lines))["text"] == ["a", "b"]
    array = write(tmp_path, "array.json", json.dumps([{"text": "a"}, {"text": "b"}], indent=2))
    assert load_sentences(train_file=str(array))["text"] == ["a", "b"]
    one_line = write(tmp_path, "one.json", json.dumps([{"text": "a"}, {"text": "b"}]))
    assert load_sentences(train_file=str(one_line))["text"] == ["a", "b"]


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.csv", "empty.tsv"])
def test_an_empty_table_file(tmp_path, name):
    path = write(tmp_path, name, "\n  \n")
    assert refused(path) == f"{path}: no sentences (the corpus is empty or only blank lines)"


# ---- parquet --------------------------------------------------------------------------------------------------------


def parquet_bytes() -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"text": [f"sentence {i}" for i in range(100)]}), buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"just some text\nmore text\n", "it does not start like one: another format named .parquet? Give it its "
         "format's ending"),
        (b"caf\xe9\n", "it does not start like one: another format named .parquet? Give it its format's ending"),
        (parquet_bytes()[:300], "cut short or damaged: its footer is missing; write or copy it again"),
        (b"", "it is empty"),
        (gzip.compress(parquet_bytes()), "it is gzip-compressed; decompress it first"),
    ],
    ids=["text", "latin-1 text", "cut short", "empty", "gzip"],
)  # fmt: skip
def test_a_parquet_file_that_is_not_one(tmp_path, content, reason):
    path = write(tmp_path, "data.parquet", content)
    assert refused(path) == f"{path}: not a valid parquet file ({reason})"


def test_a_parquet_column_named_twice(tmp_path):
    path = tmp_path / "dup.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array(["a b"]), pa.array(["c d"])], names=["text", "text"]), path)
    message = "column 'text' is named twice (columns 1 and 2); give each column its own name"
    assert refused(path, load_training_data) == f"{path}: {message}"


@pytest.mark.parametrize("name", ["corpus.txt", "corpus.csv", "corpus.parquet"])
def test_a_file_that_cannot_be_opened(tmp_path, monkeypatch, name):
    """No permission to read it (what chmod 000 gives a user who is not root): a PermissionError traceback before."""
    path = write(tmp_path, name, "text\na b\n")

    def no_permission(file, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr("hncse.data.files.open", no_permission, raising=False)
    monkeypatch.setattr(pq, "read_schema", no_permission)
    assert refused(path) == f"{path}: cannot be read (Permission denied) (--train_file)"
