"""STS Spearman: rank correlation ×100 between a model's similarity scores and gold similarity scores.

An `evaluate` metric module kept in the repository so that it loads offline:
`evaluate.load("hncse/metrics/sts_spearman")`. Ties get average ranks (as `scipy.stats.spearmanr`, which
SentEval and sentence-transformers use); the Pearson correlation is reported beside it.
"""

import datasets
import evaluate
from scipy.stats import pearsonr, spearmanr

_DESCRIPTION = "Spearman (and Pearson) correlation ×100 between predicted similarities and gold scores."

_KWARGS_DESCRIPTION = """
Args:
    predictions: similarity scores given by the model (e.g. cosine similarities), one per sentence pair.
    references: gold similarity scores, one per sentence pair.
Returns:
    spearman: Spearman's rank correlation ×100.
    pearson: Pearson's correlation ×100.
Example:
    >>> metric = evaluate.load("hncse/metrics/sts_spearman")
    >>> metric.compute(predictions=[0.1, 0.5, 0.9], references=[1.0, 2.0, 4.5])
    {'spearman': 100.0, 'pearson': 99.6...}
"""

_CITATION = """\
@inproceedings{conneau2018senteval,
  title={SentEval: An Evaluation Toolkit for Universal Sentence Representations},
  author={Conneau, Alexis and Kiela, Douwe},
  booktitle={LREC},
  year={2018}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class StsSpearman(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
            ),
        )

    def _compute(self, predictions, references):
        if len(predictions) < 2:
            raise ValueError(f"STS Spearman needs at least 2 pairs, got {len(predictions)}")
        return {
            "spearman": float(spearmanr(predictions, references)[0] * 100),
            "pearson": float(pearsonr(predictions, references)[0] * 100),
        }
