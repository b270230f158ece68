"""SentEval's STS and transfer tasks, scored as SimCSE reports them, without SentEval.

suite (which tasks, loaded once, one encoding pass) ← sts, transfer, alignment_uniformity ← embedding_cache,
senteval_data (the files). `cli` is `python -m hncse.evaluate`; the Trainer's in-training evaluation is `suite`.
Imports nothing from `hncse.training`.
"""

from hncse.evaluation.suite import (
    MODES,
    TASK_SETS,
    EvalSuite,
    flat_metrics,
    format_tables,
    load_suite,
    produced_metrics,
    resolve_tasks,
    run_suite,
)

__all__ = [
    "MODES",
    "TASK_SETS",
    "EvalSuite",
    "flat_metrics",
    "format_tables",
    "load_suite",
    "produced_metrics",
    "resolve_tasks",
    "run_suite",
]
