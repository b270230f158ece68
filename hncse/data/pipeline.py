"""The training data from the run's arguments, in two steps: `read_training_corpus` before any model is loaded (the
rows and what a row is, so that a bad file or a shape the objective cannot take stops the run in seconds), then
`TrainingCorpus.prepare` once the tokenizer is there (the dataset the Trainer reads and its collator).

The pipeline is chosen here, not by the caller: one sentence per row (tokenised once into the `datasets` cache,
padded by transformers' collator), pairs and triplets (C sentences per row, `ColumnsCollator`), or `--streaming`
(read and tokenised as training goes, `SentenceStream` and `TokenizingCollator`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from datasets import Dataset, IterableDataset
from transformers import DataCollatorWithPadding

from hncse.data.collators import ColumnsCollator
from hncse.data.corpus import load_training_data
from hncse.data.files import CorpusSource
from hncse.data.shape import DataShape
from hncse.data.streaming import SentenceStream, TokenizingCollator, stream_sentences
from hncse.data.tokenize import drop_wordless, tokenize_examples, tokenize_sentences, truncation_summary

logger = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """What the Trainer is given: its dataset and collator; `rows`, how many rows it holds (None when streamed)."""

    dataset: Dataset | SentenceStream
    collator: object
    rows: int | None


@dataclass
class TrainingCorpus:
    """The training rows as read (not tokenised), their shape and where they came from."""

    rows: Dataset | IterableDataset
    shape: DataShape
    source: str
    streamed: bool

    def prepare(self, tokenizer, data_args, training_args, prompt: str = "") -> TrainingData:
        """Tokenised rows and their collator. Prepared corpora are tokenised once, by the main process first (the
        others load the cached result); truncation and rows with no token are reported once, by the main process.
        prompt: put before every sentence (`--prompt`)."""
        pad_to_multiple_of = 8 if training_args.fp16 or training_args.bf16 else None
        if self.streamed:  # tokenised batch by batch as training reads it
            # The sentences one DataLoader batch takes: every process's share, or the main process's when it sends
            # the batches (accelerate's dispatch_batches).
            shares = 1 if training_args.accelerator_config.dispatch_batches else training_args.world_size
            seed = training_args.seed if training_args.data_seed is None else training_args.data_seed
            per_batch = training_args.per_device_train_batch_size * shares
            dataset = SentenceStream(self.rows, self.source, seed, data_args.shuffle_buffer_size, per_batch)
            collator = TokenizingCollator(tokenizer, data_args.max_seq_length, pad_to_multiple_of, prompt)
            return TrainingData(dataset, collator, rows=None)
        tokenize = tokenize_examples if self.shape.labelled else tokenize_sentences
        with training_args.main_process_first(desc="tokenising the corpus"):
            workers = data_args.preprocessing_num_workers
            dataset = tokenize(self.rows, tokenizer, data_args.max_seq_length, workers, prompt)
        main_process = training_args.process_index == 0
        if main_process:  # a statistic over the whole corpus: once, on the main process
            truncated = truncation_summary(self.rows, dataset, data_args.max_seq_length)
            if truncated:
                logger.warning(truncated)
        dataset, dropped = drop_wordless(dataset, tokenizer, self.source, prompt)
        if dropped and main_process:
            logger.warning(dropped)
        dataset = dataset.remove_columns("num_tokens")
        collator_class = ColumnsCollator if self.shape.labelled else DataCollatorWithPadding
        collator = collator_class(tokenizer, pad_to_multiple_of=pad_to_multiple_of)
        return TrainingData(dataset, collator, rows=len(dataset))


def read_training_corpus(data_args, training_args, cache_dir: str | None = None) -> TrainingCorpus:
    """The rows `--train_file` / `--dataset_name` hold, checked (file, encoding, columns, bad rows) and their shape;
    with `--streaming`, a stream of one sentence per row that is read as training goes."""
    corpus = CorpusSource(
        train_file=data_args.train_file,
        dataset_name=data_args.dataset_name,
        dataset_config_name=data_args.dataset_config_name,
        dataset_split=data_args.dataset_split,
        text_column=data_args.text_column,
        cache_dir=cache_dir,
        max_samples=data_args.max_train_samples,
    )
    if data_args.streaming:
        # A stream is read by each process, its share of every global batch kept (rather than the main process
        # sending every batch), and the collator needs the raw "text" column.
        training_args.remove_unused_columns = False
        if training_args.accelerator_config.dispatch_batches is None:
            training_args.accelerator_config.dispatch_batches = False
        sentences, source = stream_sentences(corpus)
        return TrainingCorpus(sentences, DataShape(text=data_args.text_column or "text"), source, streamed=True)
    with training_args.main_process_first(desc="reading the corpus"):
        rows, shape = load_training_data(
            corpus,
            anchor_column=data_args.anchor_column,
            positive_column=data_args.positive_column,
            negative_columns=data_args.negative_columns,
            skip_bad_rows=data_args.skip_bad_rows,
        )
    return TrainingCorpus(rows, shape, corpus.train_file or corpus.dataset_name, streamed=False)
