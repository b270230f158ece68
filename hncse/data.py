"""Training corpus: one sentence per example, from a text/csv/jsonl file or a Hub dataset, tokenised once."""

from __future__ import annotations

import codecs
import logging
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, IterableDataset, load_dataset

from hncse.data_sources import resolve_train_file
from hncse.errors import DataError, first_line

logger = logging.getLogger(__name__)

TABLE_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json"}
CHECK_BLOCK_BYTES = 1 << 20  # how much of a text file is decoded at a time to check that it is UTF-8
MASK_SLICE_ROWS = 1 << 16  # rows per slice when finding blank rows (Arrow keeps what a slice used)
TOKENISE_BATCH_ROWS = 10_000  # sentences tokenised at a time, and rows per record batch of the cached result
PARALLEL_TOKENISATION_ROWS = 100_000  # from this many sentences on, tokenise in one process per core by default


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


def load_sentences(
    train_file: str | None = None,
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    dataset_split: str = "train",
    text_column: str | None = None,
    cache_dir: str | None = None,
    max_samples: int | None = None,
) -> Dataset:
    """A Dataset with one column, "text", with blank rows dropped (and counted in the log), and only the first
    `max_samples` sentences if given.

    Sources: a local or remote .txt (one sentence per line), a .csv/.tsv/.json/.jsonl with a text column, a
    corpus of princeton-nlp/datasets-for-simcse by name (`wiki1m`, `nli`; `hncse.data_sources`), or a Hub
    dataset. text_column defaults to "text", else the only text column.
    """
    raw, source = read_training_data(train_file, dataset_name, dataset_config_name, dataset_split, cache_dir)
    return sentences_from(raw, source, text_column, max_samples)


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
        try:
            raw = load_dataset(dataset_name, dataset_config_name, split=dataset_split, cache_dir=cache_dir)
        except Exception as error:  # offline, no such dataset or split, no permission: many types
            raise DataError(f"--dataset_name {dataset_name}: cannot be loaded ({first_line(error)})") from None
        return raw, dataset_name
    train_file = resolve_train_file(train_file)  # a corpus name (wiki1m, nli) → its file
    builder, kwargs = file_builder(train_file)
    if not is_remote(train_file):
        if not os.path.isfile(train_file):
            raise DataError(f"{train_file}: no such file (--train_file)")
        check_text_file(train_file)
    try:
        # Through `datasets` so that the corpus and its tokenisation are cached on disk: in distributed runs the
        # main process tokenises and the others load the result.
        raw = load_dataset(builder, data_files={"train": train_file}, split="train", cache_dir=cache_dir, **kwargs)
    except Exception as error:  # datasets wraps parser and network errors in several exception types
        if is_remote(train_file):
            raise DataError(f"{train_file}: cannot be downloaded ({first_line(error)}) (--train_file)") from None
        raise DataError(f"{train_file}: cannot be read as {builder}: {parser_reason(error)}") from None
    return raw, train_file


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


def only_text_column(dataset: Dataset | IterableDataset, column: str) -> Dataset | IterableDataset:
    """The dataset with `column` alone, named "text"."""
    dataset = dataset.select_columns([column])
    return dataset if column == "text" else dataset.rename_column(column, "text")


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


def token_counts(column) -> np.ndarray:
    """(rows, sentences per row) untruncated lengths from a `num_tokens` column (or chunk): one length per row, or a
    list of one per sentence of a row (pairs, triplets)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        values = pc.list_flatten(column).to_numpy(zero_copy_only=False)
        return values.reshape(len(column), -1)
    return column.to_numpy(zero_copy_only=False).reshape(-1, 1)


def drop_wordless(dataset: Dataset, tokenizer, source: str) -> tuple[Dataset, str | None]:
    """(the tokenised rows whose sentences all have a token besides the special ones, a warning naming how many did
    not): text of zero-width or control characters alone passes as non-blank but would train on [CLS] [SEP]."""
    counts = token_counts(dataset.with_format("arrow")["num_tokens"])
    keep = counts.min(axis=1) > tokenizer.num_special_tokens_to_add()
    dropped = len(keep) - int(keep.sum())
    what = "sentence" if counts.shape[1] == 1 else "row"
    if dropped == len(keep):
        raise DataError(f"{source}: no {what} has a word the tokenizer knows of (only special tokens)")
    if not dropped:
        return dataset, None
    first = int(np.flatnonzero(~keep)[0]) + 1
    which = "that tokenise" if what == "sentence" else "with a sentence that tokenises"
    return keep_rows(dataset, keep, None), (
        f"{source}: dropped {dropped} {what}(s) {which} to no token at all (e.g. only zero-width or control "
        f"characters; the first is {what} {first}); {len(dataset) - dropped} remain"
    )


def tokenize_sentences(dataset: Dataset, tokenizer, max_seq_length: int, num_proc: int | None = None) -> Dataset:
    """input_ids/attention_mask (+token_type_ids) truncated to max_seq_length, unpadded (the collator pads), and
    `num_tokens`: each sentence's length before truncation (see `truncation_summary`).

    num_proc: tokenising processes; default one per core from PARALLEL_TOKENISATION_ROWS sentences on (the
    result, its order included, does not depend on it)."""
    num_special = tokenizer.num_special_tokens_to_add()
    if num_proc is None and len(dataset) >= PARALLEL_TOKENISATION_ROWS:
        num_proc = min(os.cpu_count() or 1, 8)

    def tokenize(batch):
        return encode_with_lengths(tokenizer, batch["text"], max_seq_length, num_special)

    return dataset.map(
        tokenize,
        batched=True,
        # Each batch is written as one record batch, which stays a chunk of every column with its own bookkeeping
        # in memory when the cached result is opened: large batches keep that small per sentence.
        batch_size=TOKENISE_BATCH_ROWS,
        writer_batch_size=TOKENISE_BATCH_ROWS,
        num_proc=num_proc if num_proc and num_proc > 1 else None,
        remove_columns=dataset.column_names,
        desc=f"Tokenising (max_seq_length={max_seq_length})",
    )


def encode_with_lengths(tokenizer, texts: list[str], max_seq_length: int, num_special: int) -> dict[str, list]:
    """The tokenizer's truncated, unpadded encoding of `texts`, and `num_tokens`: each text's untruncated length."""
    # The overflow pieces (stride 0) cost nothing extra and give each sentence's untruncated length.
    encoded = tokenizer(texts, truncation=True, max_length=max_seq_length, return_overflowing_tokens=True)
    owners = encoded.pop("overflow_to_sample_mapping")
    first_piece = [i for i, owner in enumerate(owners) if i == 0 or owners[i - 1] != owner]
    num_tokens = [num_special] * len(texts)
    for owner, ids in zip(owners, encoded["input_ids"]):
        num_tokens[owner] += len(ids) - num_special
    columns = {key: [values[i] for i in first_piece] for key, values in encoded.items()}
    return {**columns, "num_tokens": num_tokens}


def truncation_summary(sentences: Dataset, tokenized: Dataset, max_seq_length: int) -> str | None:
    """One line on the sentences cut to max_seq_length (how many, the longest, an example), or None if none was.
    Computed on the Arrow column in one pass, whatever the corpus size. `sentences`: the text, one column per
    sentence of a row, in the order of the tokenised ones."""
    # Chunk by chunk, each read in place from the memory-mapped cache: a concatenated copy of the column would be
    # 8 bytes per sentence that Arrow's allocator keeps.
    longer = total = longest = most = rows = 0
    for chunk in tokenized.with_format("arrow")["num_tokens"].chunks:
        lengths = token_counts(chunk)
        longer += int((lengths > max_seq_length).sum())
        if lengths.size and int(lengths.max()) > most:
            most, longest = int(lengths.max()), rows * lengths.shape[1] + int(lengths.argmax())
        total += lengths.size
        rows += len(lengths)
    if not longer:
        return None
    columns = sentences.column_names
    row, column = divmod(longest, len(columns))
    example = " ".join(sentences[row][columns[column]].split()[:8])
    where = f"sentence {row + 1}" if len(columns) == 1 else f"row {row + 1}, {columns[column]}"
    share = 100 * longer / total
    return (
        f"{longer} of {total} training sentences ({share:.1f}%) are longer than "
        f"--max_seq_length {max_seq_length} tokens and were truncated to it; the longest has {most} "
        f'tokens ({where}: "{example} …")'
    )
