"""Pairs and triplets: every shape from every file type and from a dataset folder, the column flags, bad rows and
their one-line errors, tokenising and collating C sentences per row."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from transformers import AutoTokenizer

from hncse.data import ColumnsCollator, data_shape, load_training_data, tokenize_examples
from hncse.errors import DataError

ROWS = [
    {"q": "a man plays a guitar .", "p": "someone plays music .", "n1": "a cat sleeps .", "n2": "it rains ."},
    {"q": "two dogs run .", "p": "animals are running .", "n1": "the dogs sleep .", "n2": "a car drives ."},
    {"q": "a child eats .", "p": "a kid has food .", "n1": "nobody eats .", "n2": "the sun is up ."},
]
# Column names of each shape, as the data names them, and the shape detected from them.
SHAPES = {
    "pairs (simcse)": (["sent0", "sent1"], "pairs"),
    "triplets (simcse)": (["sent0", "sent1", "hard_neg"], "triplets"),
    "pairs (sentence-transformers)": (["anchor", "positive"], "pairs"),
    "triplets (sentence-transformers)": (["anchor", "positive", "negative"], "triplets"),
    "two negatives": (["anchor", "positive", "negative_1", "negative_2"], "tuples"),
}


def table(columns: list[str], rows=ROWS) -> list[dict]:
    return [dict(zip(columns, (row["q"], row["p"], row["n1"], row["n2"]))) for row in rows]


def write(path, records: list[dict], kind: str) -> None:
    columns = list(records[0])
    if kind in ("csv", "tsv"):
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, columns, delimiter="\t" if kind == "tsv" else ",")
            writer.writeheader()
            writer.writerows(records)
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    else:
        path.write_text(json.dumps(records), encoding="utf-8")


@pytest.mark.parametrize("kind", ["csv", "tsv", "json", "jsonl", "dataset folder"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_each_shape_from_each_source(tmp_path, shape, kind):
    columns, expected_kind = SHAPES[shape]
    records = table(columns)
    if kind == "dataset folder":  # --dataset_name: a Hub id, or a folder of data files (datasets.load_dataset)
        (tmp_path / "data").mkdir()
        write(tmp_path / "data" / "train.jsonl", records, "jsonl")
        examples, found = load_training_data(dataset_name=str(tmp_path / "data"))
    else:
        path = tmp_path / f"train.{kind}"
        write(path, records, kind)
        examples, found = load_training_data(train_file=str(path))
    assert found.kind == expected_kind and found.columns == tuple(columns)
    negatives = [f"negative_{k}" for k in range(1, len(columns) - 1)]
    assert examples.column_names == ["anchor", "positive", *negatives]
    assert examples["anchor"] == [r["q"] for r in ROWS] and examples["positive"] == [r["p"] for r in ROWS]
    if negatives:
        assert examples["negative_1"] == [r["n1"] for r in ROWS]


def test_one_text_column_stays_one_sentence_per_row(tmp_path):
    path = tmp_path / "train.csv"
    write(path, [{"text": r["q"], "label": 1} for r in ROWS], "csv")
    examples, shape = load_training_data(train_file=str(path))
    assert shape.kind == "sentences" and shape.text == "text" and examples.column_names == ["text"]
    # --text_column picks one column of a triplet file: unsupervised training on it
    path = tmp_path / "nli.csv"
    write(path, table(["sent0", "sent1", "hard_neg"]), "csv")
    examples, shape = load_training_data(train_file=str(path), text_column="sent1")
    assert shape.kind == "sentences" and examples["text"] == [r["p"] for r in ROWS]


def test_column_flags(tmp_path):
    path = tmp_path / "train.jsonl"
    write(path, table(["q", "p", "n1", "n2"]), "jsonl")
    examples, shape = load_training_data(
        train_file=str(path), anchor_column="q", positive_column="p", negative_columns=["n2", "n1"]
    )
    assert shape.describe() == "tuples (anchor: q, positive: p, hard negatives: n2, n1)"
    assert examples["negative_1"] == [r["n2"] for r in ROWS] and examples["negative_2"] == [r["n1"] for r in ROWS]
    # naming anchor and positive trains exactly those: pairs, from a triplet file too
    nli = tmp_path / "nli.csv"
    write(nli, table(["sent0", "sent1", "hard_neg"]), "csv")
    _, shape = load_training_data(train_file=str(nli), anchor_column="sent0", positive_column="sent1")
    assert shape.kind == "pairs"
    # --negative_columns alone adds to the detected anchor and positive
    _, shape = load_training_data(train_file=str(nli), negative_columns=["hard_neg", "sent0"][:1])
    assert shape.kind == "triplets"


@pytest.mark.parametrize(
    "flags,message",
    [
        ({"anchor_column": "q", "positive_column": "missing"}, "no column 'missing' (--positive_column)"),
        ({"anchor_column": "q", "positive_column": "p", "negative_columns": ["x"]}, "no column 'x' (--negative_col"),
        ({"anchor_column": "q"}, "give both --anchor_column and --positive_column"),
        ({"anchor_column": "q", "positive_column": "q"}, "a column is named twice"),
        ({"text_column": "q", "anchor_column": "q"}, "--text_column trains on one sentence per row"),
    ],
)
def test_column_flag_errors_are_one_line(tmp_path, flags, message):
    path = tmp_path / "train.jsonl"
    write(path, table(["q", "p", "n1", "n2"]), "jsonl")
    with pytest.raises(DataError, match="^" + r"[^\n]*" + message.replace("(", r"\(").replace(")", r"\)")):
        load_training_data(train_file=str(path), **flags)


def test_several_text_columns_without_a_shape_name_the_flags(tmp_path):
    path = tmp_path / "train.jsonl"
    write(path, table(["q", "p"]), "jsonl")
    with pytest.raises(DataError, match="--text_column, or a pair's with --anchor_column and --positive_column"):
        load_training_data(train_file=str(path))


def test_an_empty_field_names_file_line_and_column(tmp_path):
    path = tmp_path / "train.csv"
    # a quoted field over two lines before the bad row: the line is the file's, not the row's
    path.write_text(
        'sent0,sent1,hard_neg\n"a man\nplays",someone plays,a cat\n\ntwo dogs,dogs run,\na child,a kid,nobody\n',
        encoding="utf-8",
    )
    with pytest.raises(DataError) as error:
        load_training_data(train_file=str(path))
    message = str(error.value)
    assert message.startswith(f"{path}:5: column 'hard_neg' is empty or missing") and "\n" not in message
    assert "--skip_bad_rows" in message


def test_a_missing_key_in_json_lines_names_its_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(
        '{"anchor": "a", "positive": "b", "negative": "c"}\n\n{"anchor": "d", "positive": "e"}\n', encoding="utf-8"
    )
    with pytest.raises(DataError, match=rf"^{path}:3: column 'negative' is empty or missing"):
        load_training_data(train_file=str(path))


def test_a_tsv_and_a_dataset_folder_name_the_row(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("anchor\tpositive\na\tb\nc\t \n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{path}:3: column 'positive'"):
        load_training_data(train_file=str(path))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.json").write_text(json.dumps([{"anchor": "a", "positive": ""}]), encoding="utf-8")
    with pytest.raises(DataError, match=r": row 1: column 'positive' is empty or missing"):
        load_training_data(dataset_name=str(tmp_path / "data"))


def test_skip_bad_rows_drops_and_counts_them(tmp_path, caplog):
    path = tmp_path / "train.csv"
    records = table(["sent0", "sent1", "hard_neg"])
    records[1]["hard_neg"] = ""
    records[2]["sent1"] = "   "
    write(path, records, "csv")
    with caplog.at_level("WARNING"):
        examples, _ = load_training_data(train_file=str(path), skip_bad_rows=True)
    assert examples["anchor"] == [ROWS[0]["q"]]
    said = "--skip_bad_rows: dropped 2 row(s) with an empty or missing field"
    assert f"{said} (the first: {path}:3: column 'hard_neg'" in caplog.text
    only_bad = tmp_path / "bad.csv"
    write(only_bad, records[1:], "csv")
    with pytest.raises(DataError, match="every row has an empty or missing field"):
        load_training_data(train_file=str(only_bad), skip_bad_rows=True)


def test_max_samples_counts_kept_rows(tmp_path):
    path = tmp_path / "train.csv"
    records = table(["sent0", "sent1"]) * 3
    records[0] = {"sent0": "", "sent1": "x"}
    write(path, records, "csv")
    examples, _ = load_training_data(train_file=str(path), skip_bad_rows=True, max_samples=4)
    assert len(examples) == 4 and examples["anchor"][0] == ROWS[1]["q"]


def test_a_non_text_column_is_refused(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"anchor": "a", "positive": 3}\n', encoding="utf-8")
    with pytest.raises(DataError, match="column 'positive' holds int, expected text"):
        load_training_data(train_file=str(path))


def test_shape_detection_without_data():
    assert data_shape(["sent0", "sent1", "hard_neg", "label"], "x").kind == "triplets"
    assert data_shape(["anchor", "positive", "negative_2", "negative_10", "negative_1"], "x").negatives == (
        "negative_1", "negative_2", "negative_10",
    )  # fmt: skip
    assert not data_shape(["text", "sent0"], "x").labelled  # sent0 without sent1: not a pair


def test_tokenised_rows_collate_to_rows_columns_length(tiny_model_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    path = tmp_path / "train.csv"
    write(path, table(["anchor", "positive", "negative_1", "negative_2"]), "csv")
    examples, _ = load_training_data(train_file=str(path))
    tokenized = tokenize_examples(examples, tokenizer, max_seq_length=6)
    assert tokenized[0]["num_tokens"] == [len(tokenizer(ROWS[0][c])["input_ids"]) for c in ("q", "p", "n1", "n2")]
    batch = ColumnsCollator(tokenizer, pad_to_multiple_of=8)([tokenized[i] for i in range(3)])
    assert batch["input_ids"].shape == (3, 4, 8) and batch["attention_mask"].shape == (3, 4, 8)
    for row, key in enumerate(ROWS):
        for column, name in enumerate(("q", "p", "n1", "n2")):
            ids = tokenizer(key[name], truncation=True, max_length=6)["input_ids"]
            assert batch["input_ids"][row, column, : len(ids)].tolist() == ids
            assert int(batch["attention_mask"][row, column].sum()) == len(ids)
    assert torch.all(batch["input_ids"][batch["attention_mask"] == 0] == tokenizer.pad_token_id)
