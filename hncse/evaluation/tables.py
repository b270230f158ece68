"""Markdown tables of evaluation results: each kind of set draws its own block (`Evaluator.tables`), and the run's
dev table has a column per dev metric (each set's main metric, `hncse.evaluation.evaluator.dev_metrics_in`)."""

from __future__ import annotations

from hncse.evaluation.evaluator import RESULT_KINDS, dev_metric_spec, dev_metrics_in


def results_tables(results: dict) -> str:
    """The suite's results in SimCSE's column order: STS ("all" and "wmean" rows), transfer accuracy ×100, and
    alignment/uniformity, each where the results have it."""
    blocks = []
    for kind in RESULT_KINDS:
        if kind.group is None:
            blocks += kind.tables({}, results) if any(k in results for k in kind.result_keys) else []
        elif results.get(kind.group):
            blocks += kind.tables(results[kind.group], results)
    return "\n\n".join(blocks)


def dev_table(rows: list[tuple[str, dict[str, float]]]) -> str:
    """The run's table: one row per model state (before training, after), a column per dev metric logged."""
    metrics = dev_metrics_in(dict.fromkeys(k for _, m in rows for k in m))  # in the order they were logged
    header = "| model | " + " | ".join(dev_metric_spec(m).short_name for m in metrics) + " |"
    lines = [header, "|---" * (len(metrics) + 1) + "|"]
    for name, m in rows:
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.2f}" if k in m else "-" for k in metrics) + " |")
    return "\n".join(lines)


def dev_table_title(rows: list[tuple[str, dict[str, float]]]) -> str:
    metrics = dev_metrics_in(dict.fromkeys(k for _, m in rows for k in m))
    if all(m.endswith("_spearman") for m in metrics):
        return "STS dev Spearman x100"
    return "Dev scores x100"
