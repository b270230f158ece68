"""The training data: where it comes from (`sources`, `hncse-data`), reading files (`files`), what a row is
(`shape`), the prepared rows (`corpus`), tokenising them (`tokenize`), batches (`collators`), `--streaming`
(`streaming`), and the one entry the script calls (`pipeline`: `read_training_corpus`, then `prepare`).

Inside the package imports point down: sources ← files ← shape, tokenize ← corpus ← collators, streaming ←
pipeline ← cli. `sources` is also what evaluation asks where SentEval's data is: it imports nothing else of hncse
but `errors`.
"""

from hncse.data.collators import ColumnsCollator
from hncse.data.corpus import load_sentences, load_training_data
from hncse.data.files import CorpusSource
from hncse.data.pipeline import TrainingCorpus, TrainingData, read_training_corpus
from hncse.data.shape import DataShape, data_shape
from hncse.data.streaming import SKIPPED, SentenceStream, TokenizingCollator, stream_sentences
from hncse.data.tokenize import drop_wordless, tokenize_examples, tokenize_sentences, truncation_summary

__all__ = [
    "SKIPPED",
    "ColumnsCollator",
    "CorpusSource",
    "DataShape",
    "SentenceStream",
    "TokenizingCollator",
    "TrainingCorpus",
    "TrainingData",
    "data_shape",
    "drop_wordless",
    "load_sentences",
    "load_training_data",
    "read_training_corpus",
    "stream_sentences",
    "tokenize_examples",
    "tokenize_sentences",
    "truncation_summary",
]
