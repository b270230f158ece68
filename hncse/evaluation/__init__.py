"""SentEval's STS and transfer tasks, scored as SimCSE reports them, without SentEval; and the protocol any other
evaluation set follows.

suite (which sets, loaded once, one encoding pass) ← sts, sts_files, transfer, alignment_uniformity (one file per
kind of set: its `Evaluator` and its specs; `sts_files` is your own STS sets, `--sts_files`) ← evaluator (the
protocol and the registry), embedding_cache, senteval_data (the files). `tables` draws results; `cli` is
`python -m hncse.evaluate`; the Trainer's in-training evaluation is `suite`. Imports nothing from
`hncse.training`.

A new kind of set: a file with an `Evaluator` subclass and its `EvaluatorSpec`s, and a `register_evaluator` line
below (or in your own code): `--eval_tasks`, `--metric_for_best_model`, the logs, the run's table, the model card and
the training curves then know its main metric.
"""

from hncse.evaluation import alignment_uniformity, sts, sts_files, transfer
from hncse.evaluation.evaluator import (
    EVALUATORS,
    Evaluator,
    EvaluatorSpec,
    dev_metric_spec,
    dev_metrics_in,
    index_results,
    register_evaluator,
    register_result_kind,
    task_sets,
)
from hncse.evaluation.sts_files import STSFileSource, load_sts_files, parse_sts_files
from hncse.evaluation.suite import (
    MODES,
    EvalSuite,
    flat_metrics,
    load_suite,
    produced_metrics,
    resolve_tasks,
    run_suite,
)
from hncse.evaluation.tables import dev_table, dev_table_title, results_tables

for spec in [*sts.SPECS, *transfer.SPECS]:
    register_evaluator(spec)
register_result_kind(sts_files.STSFileEvaluator)  # your own STS sets (--sts_files), named at run time
register_result_kind(alignment_uniformity.AlignmentUniformityEvaluator)

TASK_SETS = task_sets()

__all__ = [
    "EVALUATORS",
    "MODES",
    "TASK_SETS",
    "EvalSuite",
    "Evaluator",
    "EvaluatorSpec",
    "STSFileSource",
    "dev_metric_spec",
    "dev_metrics_in",
    "dev_table",
    "dev_table_title",
    "flat_metrics",
    "index_results",
    "load_sts_files",
    "load_suite",
    "parse_sts_files",
    "produced_metrics",
    "register_evaluator",
    "register_result_kind",
    "resolve_tasks",
    "results_tables",
    "run_suite",
]
