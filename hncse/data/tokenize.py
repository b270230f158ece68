"""Tokenising the prepared rows once, into the `datasets` cache: one sentence per row, or C sentences per row
(anchor, positive, negatives); each sentence's untruncated length is kept to count truncation and to drop rows
that tokenise to nothing."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset

from hncse.data.files import keep_rows
from hncse.errors import DataError

TOKENISE_BATCH_ROWS = 10_000  # sentences tokenised at a time, and rows per record batch of the cached result


PARALLEL_TOKENISATION_ROWS = 100_000  # from this many sentences on, tokenise in one process per core by default


def fixed_tokens(tokenizer, prompt: str = "") -> int:
    """Tokens every sentence gets besides its own words: the special tokens, and the prompt's."""
    prompt_tokens = len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) if prompt else 0
    return tokenizer.num_special_tokens_to_add() + prompt_tokens


def tokenize_sentences(
    dataset: Dataset, tokenizer, max_seq_length: int, num_proc: int | None = None, prompt: str = ""
) -> Dataset:
    """input_ids/attention_mask (+token_type_ids) truncated to max_seq_length, unpadded (the collator pads), and
    `num_tokens`: each sentence's length before truncation (see `truncation_summary`).

    num_proc: tokenising processes; default one per core from PARALLEL_TOKENISATION_ROWS sentences on (the
    result, its order included, does not depend on it). prompt: put before every sentence (`--prompt`)."""
    num_special = fixed_tokens(tokenizer, prompt)
    if num_proc is None and len(dataset) >= PARALLEL_TOKENISATION_ROWS:
        num_proc = min(os.cpu_count() or 1, 8)

    def tokenize(batch):
        return encode_with_lengths(tokenizer, batch["text"], max_seq_length, num_special, prompt)

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


def tokenize_examples(
    dataset: Dataset, tokenizer, max_seq_length: int, num_proc: int | None = None, prompt: str = ""
) -> Dataset:
    """input_ids/attention_mask (+token_type_ids), each a list of the row's sentences (anchor, positive, negatives)
    truncated and unpadded, and `num_tokens`: their untruncated lengths. prompt: put before every sentence."""
    columns = dataset.column_names
    num_special = fixed_tokens(tokenizer, prompt)

    def tokenize(batch):
        encoded = [encode_with_lengths(tokenizer, batch[c], max_seq_length, num_special, prompt) for c in columns]
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


def encode_with_lengths(
    tokenizer, texts: list[str], max_seq_length: int, num_special: int, prompt: str = ""
) -> dict[str, list]:
    """The tokenizer's truncated, unpadded encoding of `texts` (each after `prompt`), and `num_tokens`: each text's
    untruncated length."""
    if prompt:
        texts = [prompt + text for text in texts]
    # The overflow pieces (stride 0) cost nothing extra and give each sentence's untruncated length.
    encoded = tokenizer(texts, truncation=True, max_length=max_seq_length, return_overflowing_tokens=True)
    owners = encoded.pop("overflow_to_sample_mapping")
    first_piece = [i for i, owner in enumerate(owners) if i == 0 or owners[i - 1] != owner]
    num_tokens = [num_special] * len(texts)
    for owner, ids in zip(owners, encoded["input_ids"]):
        num_tokens[owner] += len(ids) - num_special
    columns = {key: [values[i] for i in first_piece] for key, values in encoded.items()}
    return {**columns, "num_tokens": num_tokens}


def token_counts(column) -> np.ndarray:
    """(rows, sentences per row) untruncated lengths from a `num_tokens` column (or chunk): one length per row, or a
    list of one per sentence of a row (pairs, triplets)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        values = pc.list_flatten(column).to_numpy(zero_copy_only=False)
        return values.reshape(len(column), -1)
    return column.to_numpy(zero_copy_only=False).reshape(-1, 1)


def drop_wordless(dataset: Dataset, tokenizer, source: str, prompt: str = "") -> tuple[Dataset, str | None]:
    """(the tokenised rows whose sentences all have a token besides the special ones, a warning naming how many did
    not): text of zero-width or control characters alone passes as non-blank but would train on [CLS] [SEP]."""
    counts = token_counts(dataset.with_format("arrow")["num_tokens"])
    keep = counts.min(axis=1) > fixed_tokens(tokenizer, prompt)
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
