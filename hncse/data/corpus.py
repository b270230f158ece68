"""The training rows, prepared: one sentence per row ("text"), or the labelled columns anchor, positive,
negative_1..K. A row with an empty or missing field of a labelled set is an error naming its file, line and column,
or, with `--skip_bad_rows`, dropped and counted."""

from __future__ import annotations

import logging

import numpy as np
from datasets import Dataset

from hncse.data.files import (
    CorpusSource,
    corpus_source,
    keep_rows,
    non_blank_rows,
    only_text_column,
    pick_text_column,
    read_training_data,
    row_location,
)
from hncse.data.shape import ANCHOR, POSITIVE, DataShape, data_shape
from hncse.errors import DataError

logger = logging.getLogger(__name__)


def load_sentences(corpus: CorpusSource | None = None, **fields) -> Dataset:
    """A Dataset with one column, "text", with blank rows dropped (and counted in the log), and only the first
    `max_samples` sentences if given.

    Sources (`CorpusSource`, or its fields by name): a local or remote .txt (one sentence per line), a
    .csv/.tsv/.json/.jsonl with a text column, a corpus of princeton-nlp/datasets-for-simcse by name (`wiki1m`,
    `nli`; `hncse.data.sources`), or a Hub dataset. text_column defaults to "text", else the only text column.
    """
    corpus = corpus_source(corpus, **fields)
    raw, source = read_training_data(corpus)
    return sentences_from(raw, source, corpus.text_column, corpus.max_samples)


def sentences_from(raw: Dataset, source: str, text_column: str | None, max_samples: int | None) -> Dataset:
    """The one-sentence-per-row corpus of `load_sentences` from the data as read."""
    raw = only_text_column(raw, pick_text_column(raw, text_column, source))
    keep = non_blank_rows(raw, "text", source)
    kept = int(keep.sum())
    if kept == 0:
        raise DataError(f"{source}: no sentences (the corpus is empty or only blank lines)")
    if kept < len(keep):
        logger.warning("%s: dropped %d blank line(s); %d sentences remain", source, len(keep) - kept, kept)
    raw = keep_rows(raw, keep, max_samples)
    logger.info("%s: %d training sentences", source, len(raw))
    return raw


def load_training_data(
    corpus: CorpusSource | None = None,
    *,
    anchor_column: str | None = None,
    positive_column: str | None = None,
    negative_columns: list[str] | None = None,
    skip_bad_rows: bool = False,
    **fields,
) -> tuple[Dataset, DataShape]:
    """(the training data, its shape): one column "text" (`load_sentences`), or the columns anchor,
    positive, negative_1..K of a labelled set, with at most `max_samples` rows (`CorpusSource`, or its fields by
    name)."""
    corpus = corpus_source(corpus, **fields)
    raw, source = read_training_data(corpus)
    shape = data_shape(raw.column_names, source, corpus.text_column, anchor_column, positive_column, negative_columns)
    if not shape.labelled:
        column = pick_text_column(raw, shape.text, source)
        return sentences_from(raw, source, column, corpus.max_samples), DataShape(text=column)
    return labelled_examples(raw, source, shape, skip_bad_rows, corpus.max_samples), shape


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
