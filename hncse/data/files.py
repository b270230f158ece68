"""Reading a training file or Hub dataset as `datasets` rows: the file formats by ending, UTF-8 checked and named by
line, blank rows found in Arrow, remote paths, and where a row is in its file. The other data modules call down
into this one; none of them opens a file itself."""

from __future__ import annotations

import codecs
import csv
import logging
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, IterableDataset, load_dataset

from hncse.data.sources import resolve_train_file
from hncse.errors import DataError, first_line

logger = logging.getLogger(__name__)

TABLE_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
BINARY_BUILDERS = {"parquet"}  # not text: no UTF-8 check, rows have no line


CHECK_BLOCK_BYTES = 1 << 20  # how much of a text file is decoded at a time to check that it is UTF-8


MASK_SLICE_ROWS = 1 << 16  # rows per slice when finding blank rows (Arrow keeps what a slice used)


def is_remote(path: str) -> bool:
    return path.startswith(("http://", "https://", "hf://"))


# The first bytes of compressed files, which would otherwise be reported as text that is not UTF-8.
COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"(\xb5/\xfd": "zstd", b"PK\x03\x04": "zip"}


def check_text_file(path: str) -> None:
    """Fail on the first line that is not UTF-8, naming file, line and column (datasets would only say 'codec'),
    on a compressed file, and on a file with nothing but white space. Decoded in large blocks; lines are counted
    only to name one."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    has_text = False
    with open(path, "rb") as f:
        start = f.read(8)
        f.seek(0)
    for magic, kind in COMPRESSED.items():
        if start.startswith(magic):
            raise DataError(f"{path}: a {kind}-compressed file, not text; decompress it first and pass the result")
    with open(path, "rb") as f:
        while block := f.read(CHECK_BLOCK_BYTES):
            try:
                decoder.decode(block)
            except UnicodeDecodeError:
                report_bad_utf8_line(path)
            has_text = has_text or bool(block.strip())
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        report_bad_utf8_line(path)
    if not has_text:
        raise DataError(f"{path}: no sentences (the corpus is empty or only blank lines)")


def report_bad_utf8_line(path: str) -> None:
    with open(path, "rb") as f:
        for line_number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(
                    f"{path}:{line_number}: not valid UTF-8 "
                    f"(byte 0x{raw[error.start]:02x} at column {error.start + 1}); re-encode the file as UTF-8"
                ) from None


def read_training_data(
    train_file: str | None = None,
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    dataset_split: str = "train",
    cache_dir: str | None = None,
) -> tuple[Dataset, str]:
    """(the training data as `datasets` reads it, every column; its source: the file, or the dataset's name)."""
    if (train_file is None) == (dataset_name is None):
        raise DataError("give exactly one of --train_file and --dataset_name")
    if train_file is None:
        return read_hub_dataset(
            dataset_name, dataset_config_name, dataset_split, "--dataset_name", cache_dir
        ), dataset_name
    train_file = resolve_train_file(train_file)  # a corpus name (wiki1m, nli) → its file
    return read_data_file(train_file, "--train_file", cache_dir), train_file


def read_data_file(path: str, flag: str, cache_dir: str | None = None) -> Dataset:
    """A local or remote file as `datasets` reads it (its format by ending), every column; errors name `flag`."""
    builder, kwargs = file_builder(path)
    if not is_remote(path):
        if not os.path.isfile(path):
            raise DataError(f"{path}: no such file ({flag})")
        if builder not in BINARY_BUILDERS:
            check_text_file(path)
    try:
        # Through `datasets` so that the corpus and its tokenisation are cached on disk: in distributed runs the
        # main process tokenises and the others load the result.
        return load_dataset(builder, data_files={"train": path}, split="train", cache_dir=cache_dir, **kwargs)
    except Exception as error:  # datasets wraps parser and network errors in several exception types
        if is_remote(path):
            raise DataError(f"{path}: cannot be downloaded ({first_line(error)}) ({flag})") from None
        raise DataError(f"{path}: cannot be read as {builder}: {parser_reason(error)}") from None


def read_hub_dataset(
    name: str, config: str | None, split: str | None, flag: str, cache_dir: str | None = None
) -> Dataset | dict:
    """A Hub dataset (a split of it, or every split as a dict when `split` is None); errors name `flag`."""
    try:
        return load_dataset(name, config, split=split, cache_dir=cache_dir)
    except Exception as error:  # offline, no such dataset, config or split, no permission: many types
        raise DataError(f"{flag} {name}: cannot be loaded ({first_line(error)})") from None


def parser_reason(error: BaseException) -> str:
    """What `datasets` says went wrong reading a file: the innermost error of the chain it wraps the parser's in."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    reason = first_line(error)
    if "corresponds to no data" in reason:  # datasets' words for a table with a header and no rows
        return "no rows below the header"
    return reason


def file_builder(train_file: str) -> tuple[str, dict]:
    """The `datasets` builder that reads a file, by its ending (.txt or any other: one sentence per line), and its
    options."""
    suffix = os.path.splitext(train_file.split("?")[0])[1].lower()
    return TABLE_SUFFIXES.get(suffix, "text"), ({"delimiter": "\t"} if suffix == ".tsv" else {})


def non_blank_rows(dataset: Dataset, column: str, source: str) -> np.ndarray:
    """A boolean mask of the rows whose text is a non-empty string, computed in Arrow (no Python loop over rows);
    a column of another type is a data error naming its first row."""
    values = dataset.with_format("arrow")[column]  # a pyarrow ChunkedArray, the dataset's row order
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type) or pa.types.is_null(values.type)):
        row = pc.index(pc.is_valid(values), True).as_py()
        raise DataError(
            f"{source}: row {row + 1}: column {column!r} holds {type(values[row].as_py()).__name__}, expected text"
        )
    if pa.types.is_null(values.type):
        return np.zeros(len(values), dtype=bool)
    keep = np.empty(len(values), dtype=bool)
    for start in range(0, len(values), MASK_SLICE_ROWS):  # slices: the temporary arrays stay small
        part = values.slice(start, MASK_SLICE_ROWS)
        # utf8_is_space is Python's str.isspace (non-empty, all Unicode white space): no trimmed copy is made.
        text = pc.and_kleene(pc.greater(pc.binary_length(part), 0), pc.invert(pc.utf8_is_space(part)))
        keep[start : start + len(part)] = pc.fill_null(text, False).to_numpy(zero_copy_only=False)
    return keep


def keep_rows(dataset: Dataset, keep: np.ndarray, limit: int | None) -> Dataset:
    """The rows `keep` marks, the first `limit` of them; a prefix is selected as a range (no index mapping)."""
    kept = int(keep.sum())
    count = kept if limit is None else min(kept, limit)
    if kept == len(keep):
        return dataset if count == len(dataset) else dataset.select(range(count))
    return dataset.select(np.flatnonzero(keep)[:count])


def pick_text_column(dataset: Dataset | IterableDataset, text_column: str | None, source: str) -> str:
    if dataset.features is not None:
        columns = dataset.column_names
        is_text = {c: getattr(dataset.features[c], "dtype", None) in ("string", "large_string") for c in columns}
    else:  # a stream that tells its columns only once read: its first row
        first = next(iter(dataset), {})
        columns, is_text = list(first), {c: isinstance(v, str) for c, v in first.items()}
    if text_column is not None:
        if text_column not in columns:
            raise DataError(f"{source}: no column {text_column!r} (--text_column); columns are {columns}")
        return text_column
    if "text" in columns:
        return "text"
    string_columns = [c for c in columns if is_text[c]]
    if not string_columns:
        raise DataError(f"{source}: no text column among {columns}; set --text_column")
    if len(string_columns) > 1:  # e.g. a label column of words before the sentences: never guess
        raise DataError(
            f"{source}: several text columns ({', '.join(string_columns)}) and none named 'text'; name the one to "
            "train on with --text_column, or a pair's with --anchor_column and --positive_column"
        )
    logger.info("%s: training on its column %r (the only text column)", source, string_columns[0])
    return string_columns[0]


def only_text_column(dataset: Dataset | IterableDataset, column: str) -> Dataset | IterableDataset:
    """The dataset with `column` alone, named "text"."""
    dataset = dataset.select_columns([column])
    return dataset if column == "text" else dataset.rename_column(column, "text")


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
