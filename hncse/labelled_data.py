"""Labelled training data: (anchor, positive) pairs and (anchor, positive, hard negative…) triplets, beside the
one-sentence-per-row corpus of `hncse.data`.

The shape is read from the columns: `--text_column` (or a single text column) → one sentence per row;
`sent0, sent1[, hard_neg]` (SimCSE's NLI file) or `anchor, positive[, negative | negative_1, negative_2, …]`
(sentence-transformers' datasets) → pairs or triplets; `--anchor_column`, `--positive_column` and
`--negative_columns` name other columns. A row with an empty or missing field is an error naming its file, line
and column, or, with `--skip_bad_rows`, dropped and counted.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from dataclasses import dataclass

import numpy as np
import torch
from datasets import Dataset

from hncse.data import (
    TOKENISE_BATCH_ROWS,
    encode_with_lengths,
    file_builder,
    is_remote,
    keep_rows,
    non_blank_rows,
    pick_text_column,
    read_training_data,
    sentences_from,
)
from hncse.errors import DataError

logger = logging.getLogger(__name__)

# Column names that make a table pairs or triplets without flags: (anchor, positive, negatives).
NAMED_SHAPES = (("sent0", "sent1", ("hard_neg",)), ("anchor", "positive", ("negative",)))
NUMBERED_NEGATIVE = re.compile(r"negative_(\d+)$")  # sentence-transformers' negative_1, negative_2, …
ANCHOR, POSITIVE = "anchor", "positive"  # the columns of a prepared labelled dataset, then negative_1..K


@dataclass(frozen=True)
class DataShape:
    """Which columns are trained on: one text column, or an anchor, a positive and K ≥ 0 given hard negatives."""

    text: str | None = None
    anchor: str | None = None
    positive: str | None = None
    negatives: tuple[str, ...] = ()

    @property
    def labelled(self) -> bool:
        return self.anchor is not None

    @property
    def columns(self) -> tuple[str, ...]:
        """The source columns, in the order of the prepared dataset's (anchor, positive, negative_1, …)."""
        return (self.anchor, self.positive, *self.negatives) if self.labelled else (self.text,)

    @property
    def kind(self) -> str:
        if not self.labelled:
            return "sentences"
        if not self.negatives:
            return "pairs"
        return "triplets" if len(self.negatives) == 1 else "tuples"  # an anchor, a positive and K ≥ 2 negatives

    def describe(self) -> str:
        """E.g. `triplets (anchor: sent0, positive: sent1, hard negative: hard_neg)`."""
        if not self.labelled:
            return f"one sentence per row (column {self.text!r})"
        parts = [f"anchor: {self.anchor}", f"positive: {self.positive}"]
        if self.negatives:
            parts.append(f"hard negative{'s' if len(self.negatives) > 1 else ''}: {', '.join(self.negatives)}")
        return f"{self.kind} ({', '.join(parts)})"


def numbered_negatives(columns: list[str]) -> list[str]:
    """negative_1, negative_2, … present, in number order."""
    found = [(int(m.group(1)), c) for c in columns if (m := NUMBERED_NEGATIVE.match(c))]
    return [c for _, c in sorted(found)]


def data_shape(
    columns: list[str],
    source: str,
    text_column: str | None = None,
    anchor_column: str | None = None,
    positive_column: str | None = None,
    negative_columns: list[str] | None = None,
) -> DataShape:
    """The shape the flags name, else the one the column names tell, else one sentence per row (text column picked
    by `hncse.data.pick_text_column`: returned here as None)."""
    named = [f for f, v in (("--anchor_column", anchor_column), ("--positive_column", positive_column)) if v]
    if text_column is not None:
        if named or negative_columns:
            flags = ", ".join(named + (["--negative_columns"] if negative_columns else []))
            raise DataError(f"--text_column trains on one sentence per row; it cannot go with {flags}")
        return DataShape(text=text_column)
    anchor, positive, negatives = anchor_column, positive_column, None
    if not (anchor and positive):
        for default_anchor, default_positive, default_negatives in NAMED_SHAPES:
            if {anchor or default_anchor, positive or default_positive} <= set(columns):
                anchor, positive = anchor or default_anchor, positive or default_positive
                negatives = [c for c in default_negatives if c in columns] + numbered_negatives(columns)
                break
    if not (anchor and positive):
        if named or negative_columns:
            raise DataError(
                f"{source}: pairs need an anchor and a positive column: give both --anchor_column and "
                f"--positive_column (columns are {columns})"
            )
        return DataShape()  # one sentence per row
    negatives = list(negative_columns) if negative_columns is not None else (negatives or [])
    for flag, column in [("--anchor_column", anchor), ("--positive_column", positive)] + [
        ("--negative_columns", c) for c in negatives
    ]:
        if column not in columns:
            raise DataError(f"{source}: no column {column!r} ({flag}); columns are {columns}")
    used = [anchor, positive, *negatives]
    if len(set(used)) < len(used):
        raise DataError(f"{source}: a column is named twice among anchor, positive and negatives ({used})")
    return DataShape(anchor=anchor, positive=positive, negatives=tuple(negatives))


def load_training_data(
    train_file: str | None = None,
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    dataset_split: str = "train",
    text_column: str | None = None,
    cache_dir: str | None = None,
    max_samples: int | None = None,
    anchor_column: str | None = None,
    positive_column: str | None = None,
    negative_columns: list[str] | None = None,
    skip_bad_rows: bool = False,
) -> tuple[Dataset, DataShape]:
    """(the training data, its shape): one column "text" (`hncse.data.load_sentences`), or the columns anchor,
    positive, negative_1..K of a labelled set, with at most `max_samples` rows."""
    raw, source = read_training_data(train_file, dataset_name, dataset_config_name, dataset_split, cache_dir)
    shape = data_shape(raw.column_names, source, text_column, anchor_column, positive_column, negative_columns)
    if not shape.labelled:
        column = pick_text_column(raw, shape.text, source)
        return sentences_from(raw, source, column, max_samples), DataShape(text=column)
    return labelled_examples(raw, source, shape, skip_bad_rows, max_samples), shape


def labelled_examples(
    raw: Dataset, source: str, shape: DataShape, skip_bad_rows: bool, max_samples: int | None
) -> Dataset:
    """The shape's columns renamed anchor, positive, negative_1..K; a row with an empty or missing field is a
    `DataError` naming where it is, or dropped and counted with `skip_bad_rows`."""
    masks = [non_blank_rows(raw, column, source) for column in shape.columns]  # a non-text column is an error
    keep = np.logical_and.reduce(masks)
    bad = len(keep) - int(keep.sum())
    if bad:
        row = int(np.flatnonzero(~keep)[0])
        column = next(c for c, mask in zip(shape.columns, masks) if not mask[row])
        where = f"{row_location(source, row)}: column {column!r} is empty or missing"
        if not skip_bad_rows:
            raise DataError(f"{where}; fill it, or pass --skip_bad_rows to drop such rows ({bad} in all)")
        if bad == len(keep):
            raise DataError(f"{source}: every row has an empty or missing field (the first: {where})")
        logger.warning("--skip_bad_rows: dropped %d row(s) with an empty or missing field (the first: %s)", bad, where)
    names = [ANCHOR, POSITIVE] + [f"negative_{k}" for k in range(1, len(shape.negatives) + 1)]
    examples = raw.select_columns(list(shape.columns))
    examples = examples.rename_columns({c: n for c, n in zip(shape.columns, names) if c != n})
    examples = examples.select_columns(names)  # in this order
    examples = keep_rows(examples, keep, max_samples)
    logger.info("%s: %d training %s: %s", source, len(examples), shape.kind, shape.describe())
    return examples


def row_location(source: str, row: int) -> str:
    """`file:line` of data row `row` (0-based) of a local CSV/TSV/JSON Lines file, else `source: row N`."""
    if is_remote(source) or not os.path.isfile(source):
        return f"{source}: row {row + 1}"
    builder, kwargs = file_builder(source)
    with open(source, encoding="utf-8", newline="") as f:
        if builder == "csv":
            reader = csv.reader(f, delimiter=kwargs.get("delimiter", ","))
            start, records = 1, -1  # the header is record -1
            for record in reader:
                if record:  # blank lines are no row
                    if records == row:
                        return f"{source}:{start}"
                    records += 1
                start = reader.line_num + 1
        elif builder == "json" and not f.read(4096).lstrip().startswith("["):
            f.seek(0)
            lines = (number for number, line in enumerate(f, start=1) if line.strip())
            for index, number in enumerate(lines):
                if index == row:
                    return f"{source}:{number}"
    return f"{source}: row {row + 1}"


def tokenize_examples(dataset: Dataset, tokenizer, max_seq_length: int, num_proc: int | None = None) -> Dataset:
    """input_ids/attention_mask (+token_type_ids), each a list of the row's sentences (anchor, positive, negatives)
    truncated and unpadded, and `num_tokens`: their untruncated lengths."""
    columns = dataset.column_names
    num_special = tokenizer.num_special_tokens_to_add()

    def tokenize(batch):
        encoded = [encode_with_lengths(tokenizer, batch[c], max_seq_length, num_special) for c in columns]
        return {key: [list(row) for row in zip(*(e[key] for e in encoded))] for key in encoded[0]}

    return dataset.map(
        tokenize,
        batched=True,
        batch_size=TOKENISE_BATCH_ROWS,
        writer_batch_size=TOKENISE_BATCH_ROWS,
        num_proc=num_proc if num_proc and num_proc > 1 else None,
        remove_columns=columns,
        desc=f"Tokenising {len(columns)} sentences per row (max_seq_length={max_seq_length})",
    )


class ColumnsCollator:
    """Pads a batch of labelled rows to (N, C, L) tensors: C sentences per row (anchor, positive, negatives), every
    sentence of the batch to the same length, so the trainer encodes them in one pass."""

    def __init__(self, tokenizer, pad_to_multiple_of: int | None = None):
        self.tokenizer, self.pad_to_multiple_of = tokenizer, pad_to_multiple_of

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        keys = [k for k in rows[0] if k != "num_tokens"]
        per_row = len(rows[0]["input_ids"])
        sentences = [{k: row[k][c] for k in keys} for row in rows for c in range(per_row)]
        batch = self.tokenizer.pad(sentences, pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="pt")
        return {k: v.view(len(rows), per_row, -1) for k, v in batch.items()}
