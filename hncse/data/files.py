"""Reading a training file or Hub dataset as `datasets` rows: the file formats by ending, each local file checked
before `datasets` reads it (UTF-8, CSV quoting and header, parquet footer; JSON syntax when it fails) so that a bad
one is one line naming its file and line, blank rows found in Arrow, remote paths, and where a row is in its file.
The other data modules call down into this one; none of them opens a file itself.

CSV and TSV files are read as they were written, and where the reading is ambiguous the file is refused:

- `.csv`: CSV quoting, as Python's csv module, pandas and SimCSE's NLI file write it: a field that starts with `"`
  runs to the next lone `"` and may hold commas and line breaks; `""` inside it is one quote.
- `.tsv`: no quoting (GLUE's, SentEval's, `"\\t".join`'s files): a quote is text wherever it is, so a sentence may
  start with one. A TSV that a CSV writer quoted (pandas' `to_csv(sep="\\t")` quotes a field that holds a quote and
  doubles it: `"a ""b"" c"`), told by such a field or a header of quoted names, is read with CSV quoting, as it was
  written. A remote .tsv is read without quoting.
- Refused, naming FILE:LINE: a quote never closed or followed by text (a stray quote at the start of a sentence,
  which CSV reads as opening a field that swallows the lines after it), a row with more fields than the header, a
  column named twice. Rows whose quoted fields hold line breaks are logged (how many, the first one's lines).
- Values are text as written: `NA`, `null` or `None` is a sentence; only an empty field is missing.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import itertools
import json
import logging
import os
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets import Dataset, IterableDataset, load_dataset

from hncse.data.sources import resolve_train_file
from hncse.errors import DataError, first_line

logger = logging.getLogger(__name__)

TABLE_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


CHECK_BLOCK_BYTES = 1 << 20  # how much of a text file is decoded at a time to check that it is UTF-8


MASK_SLICE_ROWS = 1 << 16  # rows per slice when finding blank rows (Arrow keeps what a slice used)


SNIFF_BYTES = 16 << 20  # how much of a streamed CSV/TSV is checked (and a TSV's quoting told from) before training


# pandas would also read NA, null, None, nan, … as missing, and so drop those sentences: only an empty field is.
CSV_VALUES = {"keep_default_na": False, "na_values": [""]}


# A field that a CSV writer quoted in a tab-separated file: wholly in quotes, its inner quotes doubled.
CSV_QUOTED_FIELD = re.compile(rb'(?:^|(?<=\t))"(?:[^"\t\r\n]*"")+[^"\t\r\n]*"(?=[\t\r\n]|\Z)', re.MULTILINE)


def is_remote(path: str) -> bool:
    return path.startswith(("http://", "https://", "hf://"))


# The first bytes of compressed files, which would otherwise be reported as text that is not UTF-8.
COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"(\xb5/\xfd": "zstd", b"PK\x03\x04": "zip"}


def compression_of(path: str) -> str | None:
    with open(path, "rb") as f:
        start = f.read(8)
    return next((kind for magic, kind in COMPRESSED.items() if start.startswith(magic)), None)


def check_text_file(path: str) -> int:
    """Fail on the first line that is not UTF-8, naming file, line and column (datasets would only say 'codec'),
    on a compressed file, and on a file with nothing but white space. Decoded in large blocks; lines are counted
    only to name one. Returns how many lines the file has."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    has_text = False
    if kind := compression_of(path):
        raise DataError(f"{path}: a {kind}-compressed file, not text; decompress it first and pass the result")
    lines, last = 0, b"\n"
    with open(path, "rb") as f:
        while block := f.read(CHECK_BLOCK_BYTES):
            try:
                decoder.decode(block)
            except UnicodeDecodeError:
                raise DataError(bad_utf8_line(path)) from None
            has_text = has_text or bool(block.strip())
            lines, last = lines + block.count(b"\n"), block[-1:]
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise DataError(bad_utf8_line(path)) from None
    if not has_text:
        raise DataError(f"{path}: no sentences (the corpus is empty or only blank lines)")
    return lines + (last != b"\n")


def bad_utf8_line(path: str) -> str:
    """The message naming the first line of `path` that is not UTF-8."""
    with open(path, "rb") as f:
        for line_number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as error:
                return (
                    f"{path}:{line_number}: not valid UTF-8 "
                    f"(byte 0x{raw[error.start]:02x} at column {error.start + 1}); re-encode the file as UTF-8"
                )
    return f"{path}: not valid UTF-8 (a character cut at the end of the file); re-encode the file as UTF-8"


def check_parquet_file(path: str) -> None:
    """A .parquet that is not one (text, another format, cut short) is said to be so, its footer read alone: pyarrow
    would fail later with words about magic bytes. So is a column named twice (pyarrow: 'Multiple matches')."""
    try:
        names = pq.read_schema(path).names
    except (pa.ArrowException, OSError):
        names = None
    if names is not None:
        duplicate_columns(path, None, names)
        return
    with open(path, "rb") as f:
        start = f.read(4)
    if not start:
        reason = "it is empty"
    elif kind := compression_of(path):
        reason = f"it is {kind}-compressed; decompress it first"
    elif start == b"PAR1":
        reason = "cut short or damaged: its footer is missing; write or copy it again"
    else:
        reason = "it does not start like one: another format named .parquet? Give it its format's ending"
    raise DataError(f"{path}: not a valid parquet file ({reason})")


@dataclass(frozen=True)
class CorpusSource:
    """Where the training sentences come from and how many are read: one value for every reader of the corpus
    (prepared, labelled or streamed), built once from the data arguments.

    Either `train_file` (a path, URL, or a corpus name of `hncse.data.sources`: `wiki1m`, `nli`) or a Hub
    `dataset_name` with its config and split; `text_column` defaults to "text", else the only text column;
    `max_samples`: only the first so many rows; `cache_dir`: the `datasets` cache.
    """

    train_file: str | None = None
    dataset_name: str | None = None
    dataset_config_name: str | None = None
    dataset_split: str = "train"
    text_column: str | None = None
    cache_dir: str | None = None
    max_samples: int | None = None

    def check(self) -> None:
        if (self.train_file is None) == (self.dataset_name is None):
            raise DataError("give exactly one of --train_file and --dataset_name")


def corpus_source(corpus: CorpusSource | None = None, **fields) -> CorpusSource:
    """`corpus` with `fields` replaced, or a `CorpusSource` of `fields` alone: the corpus readers also take its
    fields by name (`load_sentences(train_file=path)`, as the benchmarks and older callers do)."""
    return dataclasses.replace(corpus, **fields) if corpus is not None else CorpusSource(**fields)


def read_training_data(corpus: CorpusSource) -> tuple[Dataset, str]:
    """(the training data as `datasets` reads it, every column; its source: the file, or the dataset's name)."""
    corpus.check()
    if corpus.train_file is None:
        dataset = read_hub_dataset(
            corpus.dataset_name, corpus.dataset_config_name, corpus.dataset_split, "--dataset_name", corpus.cache_dir
        )
        return dataset, corpus.dataset_name
    train_file = resolve_train_file(corpus.train_file)  # a corpus name (wiki1m, nli) → its file
    return read_data_file(train_file, "--train_file", corpus.cache_dir), train_file


def read_data_file(path: str, flag: str, cache_dir: str | None = None) -> Dataset:
    """A local or remote file as `datasets` reads it (its format by ending), every column; errors name `flag`."""
    lines = None
    if not is_remote(path):
        if not os.path.isfile(path):
            raise DataError(f"{path}: no such file ({flag})")
        try:
            builder, kwargs = file_builder(path)
            if builder == "parquet":
                check_parquet_file(path)
            else:
                lines = check_text_file(path)
            if builder == "csv":
                check_delimited_file(path, kwargs)
        except OSError as error:  # no permission to read it, an I/O error
            raise DataError(f"{path}: cannot be read ({error.strerror or first_line(error)}) ({flag})") from None
    else:
        builder, kwargs = file_builder(path)
    try:
        # Through `datasets` so that the corpus and its tokenisation are cached on disk: in distributed runs the
        # main process tokenises and the others load the result.
        data = load_dataset(builder, data_files={"train": path}, split="train", cache_dir=cache_dir, **kwargs)
    except Exception as error:  # datasets wraps parser and network errors in several exception types
        if is_remote(path):
            raise DataError(f"{path}: cannot be downloaded ({first_line(error)}) ({flag})") from None
        raise DataError(unreadable(path, error)) from None
    if builder == "json" and lines is not None and len(data) != lines and not starts_with(path, b"["):
        # pyarrow reads `{…} {…}` on one line as two rows: a JSON Lines file is checked to be one object per line
        # whenever its row count is not its line count (blank lines, or such a line).
        if where := json_error(path):
            raise DataError(where)
    return data


def unreadable(path: str, error: BaseException, when: str = "", sniff_bytes: int | None = None) -> str:
    """The one line for a local file that `datasets` could not read (`when`: e.g. ` after sentence 10`): the line at
    fault where the format tells it, else what the parser said."""
    builder, kwargs = file_builder(path, sniff_bytes)
    if builder == "json" and (where := json_error(path)):
        return where
    if builder == "csv":
        check_delimited_file(path, kwargs)  # raises, naming the line, where the file breaks a rule
    if builder == "parquet":
        check_parquet_file(path)
    return f"{path}: cannot be read as {builder}{when}: {parser_reason(error)}"


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


def file_builder(path: str, sniff_bytes: int | None = None) -> tuple[str, dict]:
    """The `datasets` builder that reads a file, by its ending (.txt or any other: one sentence per line), and its
    options: a .tsv is read without quoting unless a CSV writer quoted it (`csv_quoted`, in its first `sniff_bytes`;
    all of it by default)."""
    suffix = os.path.splitext(path.split("?")[0])[1].lower()
    builder = TABLE_SUFFIXES.get(suffix, "text")
    if builder != "csv":
        return builder, {}
    delimiter = "\t" if suffix == ".tsv" else ","
    quoted = delimiter == "," or (not is_remote(path) and os.path.isfile(path) and csv_quoted(path, sniff_bytes))
    return builder, {"delimiter": delimiter, "quoting": csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE, **CSV_VALUES}


def csv_quoted(path: str, limit: int | None = None) -> bool:
    """Whether a tab-separated file was written with CSV quoting: a header of quoted names, or a field wholly in
    quotes with its inner quotes doubled (how a CSV writer writes a field that holds a quote; a raw sentence is
    almost never so)."""
    with open(path, "rb") as f:
        header = next((line for line in f if line.strip(b" \r\n")), b"").removeprefix(codecs.BOM_UTF8)
        names = header.rstrip(b"\r\n").split(b"\t")
        if all(len(name) > 1 and name.startswith(b'"') and name.endswith(b'"') for name in names):
            return True
        f.seek(0)
        read = 0
        while (limit is None or read < limit) and (block := f.read(CHECK_BLOCK_BYTES)):
            block += f.readline()  # whole lines, so that a field is never cut in two
            read += len(block)
            if b'""' in block and CSV_QUOTED_FIELD.search(block):
                return True
    return False


def delimited_records(path: str, options: dict, limit: int | None = None):
    """(first line, last line, fields) of each row of a CSV/TSV file read with `options` (`file_builder`'s), its
    header first, blank lines skipped as pandas skips them, up to about `limit` characters. Read as pandas reads
    it, but strictly: a quote never closed, or text after a closing quote, is a `DataError` naming its line."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        lines = itertools.chain(f, ["\n"])  # a quoted field still open at the end runs on into this line break
        reader = csv.reader(lines, delimiter=options["delimiter"], quoting=options["quoting"], strict=True)
        start, read = 1, 0
        try:
            for record in reader:
                if record and not (len(record) == 1 and record[0] and not record[0].strip(" \t")):
                    yield start, reader.line_num, record
                    if limit is not None:
                        read += sum(map(len, record))
                        if read > limit:
                            return
                start = reader.line_num + 1
        except csv.Error as error:
            raise DataError(quoting_error(path, start, reader.line_num, str(error))) from None


def quoting_error(path: str, start: int, line: int, error: str) -> str:
    """The one line for what Python's csv module refused in the record from line `start` to `line`: mostly a stray
    quote at the start of a field, which CSV reads as opening a quoted field that swallows what follows."""
    if "unexpected end of data" in error:
        return (
            f"{path}:{start}: a quoted field is never closed (it runs on to the end of the file); close the quote, "
            'or write a quote inside a quoted field as ""'
        )
    if "expected after" in error and line > start:  # a quote closed it lines later, mid-field
        return (
            f"{path}:{start}: a quoted field runs on to line {line}, where text follows its closing quote (an "
            'unclosed quote?); close the quote, or write a quote inside a quoted field as ""'
        )
    if "expected after" in error:
        return (
            f"{path}:{line}: text after the closing quote of a quoted field; a field that starts with a quote must "
            'end with it: quote the whole field and double the quotes inside it ("""Hi,"" she said")'
        )
    if "field larger than field limit" in error:
        return (
            f"{path}:{start}: a field of more than {csv.field_size_limit()} characters (an unclosed quote?); close "
            "the quote or split the text"
        )
    return f"{path}:{line}: {error}"


def check_delimited_file(path: str, options: dict, limit: int | None = None) -> None:
    """Refuse, naming the line, what pandas would read silently wrong: a stray quote (`delimited_records`), a column
    named twice (pandas renames it `a.1`), a row with more fields than the header (pandas makes its first field the
    index, or fails). A row with fewer fields has missing values. Quoted fields that hold line breaks are rows, as
    in any CSV, and said in the log: fewer rows than lines is then never silent."""
    records = delimited_records(path, options, limit)
    line, _, header = next(records, (1, 1, None))
    if header is None:
        return
    duplicate_columns(path, line, header)
    broken, first = 0, None
    for line, last, fields in records:
        if len(fields) > len(header):
            if options["delimiter"] == ",":
                hint = 'quote a field that holds a comma ("a, b")'
            elif options["quoting"] == csv.QUOTE_NONE:
                hint = "a .tsv has no quoting, so a tab inside a field splits it: remove the tab"
            else:
                hint = "quote a field that holds a tab"
            raise DataError(f"{path}:{line}: {len(fields)} fields, but the header names {len(header)}; {hint}")
        if last > line:
            broken, first = broken + 1, first or (line, last)
    if broken:
        logger.warning(
            "%s: %d row(s) hold a quoted field with line breaks (the first: lines %d-%d), each read as one row; if "
            "a stray quote joined rows there, close it",
            path,
            broken,
            *first,
        )


def duplicate_columns(path: str, line: int | None, names: list[str]) -> None:
    """A column named twice is refused: pandas would rename the second `a` to `a.1` without a word; `line`: the
    header's (None for parquet)."""
    seen: dict[str, int] = {}
    for column, name in enumerate(names, start=1):
        if name in seen:
            where = f"{path}:{line}: column {name!r} is named twice in the header"
            if line is None:
                where = f"{path}: column {name!r} is named twice"
            raise DataError(f"{where} (columns {seen[name]} and {column}); give each column its own name")
        seen[name] = column


def starts_with(path: str, prefix: bytes) -> bool:
    """Whether the file's first character that is not white space (or a BOM) begins `prefix`."""
    with open(path, "rb") as f:
        return f.read(CHECK_BLOCK_BYTES).removeprefix(codecs.BOM_UTF8).lstrip().startswith(prefix)


def json_error(path: str) -> str | None:
    """The line of a JSON or JSON Lines file that is not valid JSON, or, in JSON Lines, not one object per line (a
    row); None if every line is. A .json whose first line is not a value by itself is one document."""
    with open(path, encoding="utf-8-sig") as f:
        lines = ((number, line) for number, line in enumerate(f, start=1) if line.strip())
        first, second = next(lines, None), next(lines, None)
        if first is None:
            return None
        try:
            json.loads(first[1].rstrip())
            one_document = second is None
        except json.JSONDecodeError:
            one_document = not path.lower().endswith(".jsonl")
        if one_document:
            f.seek(0)
            try:
                json.load(f)
                return None
            except json.JSONDecodeError as error:
                return f"{path}:{error.lineno}: not valid JSON ({error.msg} at column {error.colno})"
        for number, line in itertools.chain([first, second], lines):
            try:
                value = json.loads(line.rstrip())  # columns as in the line
            except json.JSONDecodeError as error:
                return (
                    f"{path}:{number}: not valid JSON ({error.msg} at column {error.colno}); a JSON Lines file "
                    "holds one object per line"
                )
            if not isinstance(value, dict):
                return (
                    f"{path}:{number}: a JSON {JSON_TYPES[type(value)]}, not an object; each line of a JSON Lines "
                    'file is one row: {"column": value, …}'
                )
    return None


JSON_TYPES = {str: "string", int: "number", float: "number", bool: "boolean", list: "array", type(None): "null"}


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
        first = next(iter(dataset), None)
        if first is None:
            raise DataError(f"{source}: no sentences (the corpus is empty or only blank lines)")
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
    if builder == "csv":
        found = next(itertools.islice(delimited_records(source, kwargs), row + 1, None), None)  # after the header
        if found is not None:
            return f"{source}:{found[0]}"
    elif builder == "json" and not starts_with(source, b"["):
        with open(source, encoding="utf-8") as f:
            lines = (number for number, line in enumerate(f, start=1) if line.strip())
            number = next(itertools.islice(lines, row, None), None)
            if number is not None:
                return f"{source}:{number}"
    return f"{source}: row {row + 1}"


def file_fingerprint(source: str) -> tuple[int, int] | None:
    """(size, modification time) of a local file, to tell that a streamed corpus changed under the run; else None."""
    if is_remote(source) or not os.path.isfile(source):
        return None
    stat = os.stat(source)
    return stat.st_size, stat.st_mtime_ns


def file_changed(source: str, fingerprint: tuple[int, int] | None) -> str | None:
    """Why a streamed file is no longer the one the stream opened (deleted, cut short, rewritten), or None."""
    if fingerprint is None:
        return None
    again = "put it back as it was and run the same command again (it resumes from the last resumable checkpoint)"
    try:
        stat = os.stat(source)
    except FileNotFoundError:
        return f"{source}: no longer there (deleted or moved while training streamed it); {again}"
    if (stat.st_size, stat.st_mtime_ns) != fingerprint:
        return (
            f"{source}: changed while training streamed it ({fingerprint[0]} bytes when the stream opened, "
            f"{stat.st_size} now); {again}"
        )
    return None


def check_streamed_file(path: str, builder: str, kwargs: dict) -> None:
    """What a streamed file is checked for before training reads it: only what its start tells (it may be any
    size); the rest is checked as it is read."""
    if builder == "parquet":
        check_parquet_file(path)
        return
    if kind := compression_of(path):
        raise DataError(f"{path}: a {kind}-compressed file, not text; decompress it first and pass the result")
    with open(path, "rb") as f:
        start = f.read(CHECK_BLOCK_BYTES)
    if not start.strip() and os.path.getsize(path) <= len(start):
        raise DataError(f"{path}: no sentences (the corpus is empty or only blank lines)")
    if builder == "csv":
        try:
            check_delimited_file(path, kwargs, SNIFF_BYTES)
        except UnicodeDecodeError:
            raise DataError(bad_utf8_line(path)) from None


def stream_error(source: str, error: BaseException, when: str = "") -> str:
    """The one line for an error reading a stream (`when`: e.g. ` after sentence 10 of pass 2`)."""
    local = os.path.isfile(source)
    if isinstance(error, UnicodeDecodeError):
        if local:
            return bad_utf8_line(source)
        return f"{source}: not valid UTF-8{when} ({error.reason}); re-encode the file as UTF-8"
    if local:
        return unreadable(source, error, when, SNIFF_BYTES)
    return f"{source}: cannot be read{when} ({first_line(error)})"
