"""`--streaming`: train on a corpus read as training goes — a file of any size or a Hub dataset — with nothing
prepared beforehand and memory that does not grow with the corpus.

The corpus becomes an endless `SentenceStream`: pass after pass, each shuffled through a buffer (its own seed per
pass), blank rows dropped. Sentences are tokenised by `TokenizingCollator` as batches are built, so only the
sentences that are trained on are tokenised, in the DataLoader's workers if there are any. With several processes,
accelerate gives each its share of every global batch (the same global batches as one process with the whole
batch); a resumed run replays the sentences already trained on without tokenising them.
"""

from __future__ import annotations

import itertools
import logging
import os

import datasets
import numpy as np
import tokenizers
import torch
from transformers import PreTrainedTokenizerBase

from hncse.data.files import (
    SNIFF_BYTES,
    CorpusSource,
    check_streamed_file,
    corpus_source,
    file_builder,
    file_changed,
    file_fingerprint,
    is_remote,
    only_text_column,
    pick_text_column,
    stream_error,
)
from hncse.data.sources import resolve_train_file
from hncse.errors import DataError

logger = logging.getLogger(__name__)


def stream_sentences(corpus: CorpusSource | None = None, **fields) -> tuple[datasets.IterableDataset, str]:
    """(a streaming dataset with one column, "text", blank rows dropped, at most `max_samples` rows; its source).

    The sources of `hncse.data.corpus.load_sentences` (`CorpusSource`, or its fields by name); a named corpus
    (`wiki1m`, `nli`) not on this machine is read from the Hub as it goes rather than downloaded first."""
    corpus = corpus_source(corpus, **fields)
    corpus.check()
    cache_dir = corpus.cache_dir
    if corpus.train_file is not None:
        train_file = resolve_train_file(corpus.train_file, stream=True)
        source = train_file
        if not is_remote(train_file) and not os.path.isfile(train_file):
            raise DataError(f"{train_file}: no such file (--train_file)")
        if not is_remote(train_file):
            try:
                builder, kwargs = file_builder(train_file, SNIFF_BYTES)
                check_streamed_file(train_file, builder, kwargs)
            except OSError as error:  # no permission to read it, an I/O error
                raise DataError(f"{train_file}: cannot be read ({error.strerror or error}) (--train_file)") from None
        else:
            builder, kwargs = file_builder(train_file)
        if builder == "text":
            kwargs["chunksize"] = TEXT_CHUNK_BYTES
        raw = datasets.load_dataset(
            builder, data_files={"train": train_file}, split="train", streaming=True, cache_dir=cache_dir, **kwargs
        )
    else:
        source = corpus.dataset_name
        raw = datasets.load_dataset(
            source, corpus.dataset_config_name, split=corpus.dataset_split, streaming=True, cache_dir=cache_dir
        )
    try:
        column = pick_text_column(raw, corpus.text_column, source)  # may read the first rows
    except DataError:
        raise
    except (OSError, ValueError) as error:  # a parser's (pyarrow, pandas: ValueError), a file's, UTF-8
        raise DataError(stream_error(source, error)) from None
    raw = only_text_column(raw, column).filter(non_blank, batched=True, fn_kwargs={"source": source})
    if corpus.max_samples is not None:
        raw = raw.take(corpus.max_samples)
    logger.info("%s: streamed (read as training goes; no corpus-wide statistics such as truncation counts)", source)
    return raw, source


def non_blank(batch: dict, source: str) -> list[bool]:
    keep = []
    for text in batch["text"]:
        if text is not None and not isinstance(text, str):
            raise DataError(f"{source}: column 'text' holds {type(text).__name__}, expected text")
        keep.append(bool(text) and not text.isspace())
    return keep


SKIPPED = {"text": None}  # a sentence already trained on, in a resumed run
READ_BLOCK = 1024  # sentences read from the corpus at a time
TEXT_CHUNK_BYTES = 1 << 20  # bytes of a .txt corpus decoded at a time (datasets' default, 10 MB, stays in memory)


class SentenceStream(torch.utils.data.IterableDataset):
    """Endless {"text": sentence} examples: pass after pass over `sentences`, pass p shuffled through a buffer of
    `buffer_size` sentences with seed `seed` + p (0: the corpus order).

    `global_batch` is how many sentences one DataLoader batch of every process takes together: with DataLoader
    workers each yields whole global batches in turn (worker w the w-th, (w + W)-th, …), so the order is the same
    with any number of workers. After `skip(n)` the first n sentences of the stream are read but given as
    `SKIPPED` (the batches a resumed Trainer replays, which `TokenizingCollator` does not tokenise)."""

    def __init__(
        self, sentences: datasets.IterableDataset, source: str, seed: int, buffer_size: int, global_batch: int
    ):
        self.sentences = sentences
        self.source = source
        self.seed = seed
        self.buffer_size = buffer_size
        self.global_batch = global_batch
        self.start = 0
        self.fingerprint = file_fingerprint(source)  # a file deleted or changed under the run is an error

    def skip(self, sentences: int) -> None:
        self.start = sentences

    def one_pass(self, index: int):
        """Pass `index` over the corpus, its sentences one by one, shuffled through the buffer. Read in blocks with
        `iter`, which (unlike iterating the dataset) reads the whole corpus in a DataLoader worker too, instead of
        the worker's shards. The buffer is ours: `datasets`' shuffled stream gives 13,000 sentences/s, slower than
        tokenising them, where reading in blocks gives 220,000 (docs/gpu.md, input pipeline)."""
        blocks = self.unchanged(self.sentences.iter(batch_size=READ_BLOCK))
        texts = (text for block in blocks for text in block["text"])
        if self.buffer_size <= 1:
            yield from texts
            return
        rng = np.random.default_rng(self.seed + index)
        buffer = list(itertools.islice(texts, self.buffer_size))
        for text, slot in zip(texts, random_slots(rng, len(buffer))):
            yield buffer[slot]  # a random sentence of the buffer leaves it, the next one of the corpus takes its place
            buffer[slot] = text
        rng.shuffle(buffer)
        yield from buffer

    def unchanged(self, blocks):
        """The blocks, each checked to come from the file the stream opened: a corpus deleted, cut short or rewritten
        under the run is an error naming it, not a shorter or another pass without a word."""
        for block in blocks:
            if changed := file_changed(self.source, self.fingerprint):
                raise DataError(changed)
            yield block
        if changed := file_changed(self.source, self.fingerprint):
            raise DataError(changed)

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        workers, me = (worker.num_workers, worker.id) if worker is not None else (1, 0)
        position = 0  # sentences of the endless stream so far
        for index in itertools.count():
            empty = True
            try:
                for text in self.one_pass(index):
                    empty = False
                    if (position // self.global_batch) % workers == me:
                        yield {"text": text} if position >= self.start else SKIPPED
                    position += 1
            except DataError:
                raise
            except (OSError, ValueError) as error:  # a parser's (pyarrow, pandas: ValueError), a file's, UTF-8
                message = file_changed(self.source, self.fingerprint) or stream_error(
                    self.source, error, f" after sentence {position} of pass {index + 1}"
                )
                raise DataError(message) from None
            if empty:
                raise DataError(f"{self.source}: no sentences (the corpus is empty or only blank lines)")


def random_slots(rng: np.random.Generator, size: int):
    """Endless uniform draws from range(size), made a thousand at a time."""
    while True:
        yield from rng.integers(0, size, 1000).tolist()


class TokenizingCollator:
    """Tokenise, truncate and pad a batch of {"text"} examples: the tensors the tokenizer itself would return.

    With a fast tokenizer that pads on the right, the batch goes straight to its Rust backend (a copy that truncates)
    and is padded in one array: twice the sentences/s of the tokenizer's own call, whose Python conversion of every
    row costs as much as the tokenisation (docs/gpu.md, input pipeline)."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        max_seq_length: int,
        pad_to_multiple_of: int | None = None,
        prompt: str = "",
    ):
        self.tokenizer = tokenizer
        self.prompt = prompt  # put before every sentence (`--prompt`)
        self.max_seq_length = max_seq_length
        self.pad_to_multiple_of = pad_to_multiple_of
        self.backend = None
        if tokenizer.is_fast and tokenizer.padding_side == "right" and tokenizer.pad_token_id is not None:
            self.backend = tokenizers.Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
            self.backend.enable_truncation(max_seq_length)
            self.backend.no_padding()

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        if examples[0]["text"] is None:  # SKIPPED: a batch the resumed Trainer replays and drops; a stand-in
            return {"input_ids": torch.zeros(len(examples), 1, dtype=torch.long)}
        texts = [self.prompt + example["text"] for example in examples]
        if self.backend is None:
            return self.tokenizer(
                texts,
                truncation=True,
                max_length=self.max_seq_length,
                padding=True,
                pad_to_multiple_of=self.pad_to_multiple_of,
                return_tensors="pt",
            ).data
        encodings = self.backend.encode_batch(texts)
        width = max(len(encoding.ids) for encoding in encodings)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        names = self.tokenizer.model_input_names
        arrays = {name: np.zeros((len(encodings), width), dtype=np.int64) for name in names}
        arrays["input_ids"].fill(self.tokenizer.pad_token_id)
        for row, encoding in enumerate(encodings):
            length = len(encoding.ids)
            arrays["input_ids"][row, :length] = encoding.ids
            if "attention_mask" in arrays:
                arrays["attention_mask"][row, :length] = 1
            if "token_type_ids" in arrays:
                arrays["token_type_ids"][row, :length] = encoding.type_ids
        return {name: torch.from_numpy(array) for name, array in arrays.items()}
