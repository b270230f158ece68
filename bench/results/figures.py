"""The ablation's figures in docs/results.md, drawn from its runs' own records (docs/results/ablation.jsonl, written
by `python -m bench.results.ablation`): no number is typed in.

    python -m bench.results.figures [--results docs/results/ablation.jsonl] [--figures docs/figures]

- ablation_dev_curves.png: STS-B and SICK-R dev over the steps, per objective: the mean over seeds, and a band
  from the lowest to the highest seed; a second row from --zoom_from on;
- similarity_distributions.png: each held-out sentence's positive and hardest in-batch negative cosine as a
  training step sees them (`bench.results.ablation.probe_similarities`), at the start and after each objective's run,
  pooled over seeds;
- ablation_batch_similarities.png: the same two similarities as the runs logged them at every step, per objective.

The table under the figures gives the distributions' summaries. Needs the plots extra (matplotlib).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

from bench.report import markdown_table, replace_section
from hncse.losses import OBJECTIVES

DEV_SETS = {"stsb_dev": "STS-B dev", "sickr_dev": "SICK-R dev"}
SIMILARITIES = {"positive": ("positive", "tab:blue"), "hardest_negative": ("hardest negative", "tab:red")}
BATCH_STATISTICS = {"sim_positive": "positive", "sim_hardest_negative": "hardest negative"}


def read_runs(path: str) -> dict[str, list[dict]]:
    """The runs with curves and probes, by objective in the registry's order."""
    with open(path, encoding="utf-8") as f:
        runs = [json.loads(line) for line in f if line.strip()]
    runs = [r for r in runs if "dev_curve" in r and "similarities" in r]
    if not runs:
        raise SystemExit(
            f"{path}: no run with dev curves and similarity probes (run python -m bench.results.ablation)"
        )
    by_objective = {o: [r for r in runs if r["objective"] == o] for o in OBJECTIVES}
    return {o: sorted(rs, key=lambda r: r["seed"]) for o, rs in by_objective.items() if rs}


def seed_band(runs: list[dict], curve: str, key: str) -> tuple[list[int], list[float], list[float], list[float]]:
    """(steps, mean, lowest, highest) over the runs' `curve` entries (the steps every run has)."""
    steps = sorted(set.intersection(*({e["step"] for e in r[curve] if key in e} for r in runs)))
    values = [[next(e[key] for e in r[curve] if e["step"] == step and key in e) for r in runs] for step in steps]
    return steps, [statistics.mean(v) for v in values], [min(v) for v in values], [max(v) for v in values]


def draw_dev_curves(by_objective: dict[str, list[dict]], path: str, zoom_from: int) -> None:
    """Top row: the whole runs; bottom row: from step `zoom_from` on, where the objectives part."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 8), layout="constrained")
    axes = figure.subplots(2, len(DEV_SETS))
    for column, (key, name) in enumerate(DEV_SETS.items()):
        for row, first in enumerate((0, zoom_from)):
            ax = axes[row][column]
            for objective, runs in by_objective.items():
                steps, mean, low, high = seed_band(runs, "dev_curve", key)
                kept = [i for i, step in enumerate(steps) if step >= first]
                pick = lambda values: [values[i] for i in kept]  # noqa: E731
                (line,) = ax.plot(pick(steps), pick(mean), marker="o", markersize=3,
                                  label=f"{objective} ({len(runs)} seeds)")  # fmt: skip
                ax.fill_between(pick(steps), pick(low), pick(high), color=line.get_color(), alpha=0.15, linewidth=0)
            ax.set_title(name if row == 0 else f"{name}, from step {zoom_from}")
            ax.set_xlabel("step")
            ax.set_ylabel("Spearman ×100")
            ax.grid(alpha=0.3)
            ax.legend(loc="best", fontsize="small")
    figure.suptitle("dev curves of the ablation: mean over seeds, band from the lowest to the highest seed")
    figure.savefig(path, format="png", dpi=100)


def pooled(runs: list[dict], when: str, kind: str) -> list[int]:
    """The histogram of `kind` similarities, `when` (before / after training), summed over the runs."""
    return [sum(counts) for counts in zip(*(r["similarities"][when][kind] for r in runs))]


def start_runs(by_objective: dict[str, list[dict]]) -> list[dict]:
    """One run per seed for the start: every objective's run of a seed starts from the same weights and head, and
    the probe is seeded, so their "before" probes are the same (checked)."""
    first = next(iter(by_objective.values()))
    for runs in by_objective.values():
        for run in runs:
            twin = next((r for r in first if r["seed"] == run["seed"]), None)
            if twin is not None and twin["similarities"]["before"] != run["similarities"]["before"]:
                raise SystemExit(f"seed {run['seed']}: {run['objective']}'s start differs from {twin['objective']}'s")
    return first


def draw_similarity_distributions(by_objective: dict[str, list[dict]], path: str) -> None:
    from matplotlib.figure import Figure

    start = start_runs(by_objective)
    panels = [("start (before training)", start, "before")] + [(o, rs, "after") for o, rs in by_objective.items()]
    columns = 3
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(5 * columns, 3.6 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).flatten()
    bins = len(start[0]["similarities"]["before"]["positive"])
    edges = [-1 + 2 * i / bins for i in range(bins + 1)]
    occupied = [
        i for _, runs, when in panels for kind in SIMILARITIES for i, c in enumerate(pooled(runs, when, kind)) if c
    ]
    low, high = edges[min(occupied)] - 0.05, edges[max(occupied) + 1] + 0.05
    for ax, (title, runs, when) in zip(axes, panels):
        for kind, (label, color) in SIMILARITIES.items():
            counts = pooled(runs, when, kind)
            total = sum(counts) * (2 / bins)  # a density: each panel's area is 1
            ax.stairs([c / total for c in counts], edges, fill=True, alpha=0.35, color=color, label=label)
            if when == "after":
                start_counts = pooled(start, "before", kind)
                ax.stairs([c / total for c in start_counts], edges, color=color, linestyle=":", linewidth=1)
        seeds = len(runs)
        ax.set_title(f"{title}, {seeds} seed{'s' if seeds > 1 else ''}" if when == "after" else title)
        ax.set_xlim(low, high)
        ax.set_xlabel("cosine")
        ax.set_ylabel("density")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize="small")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    figure.suptitle(
        "held-out sentences' positive and hardest in-batch negative cosine, as a training step sees them "
        "(dotted: the start)"
    )
    figure.savefig(path, format="png", dpi=100)


def draw_batch_similarities(by_objective: dict[str, list[dict]], path: str) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 4.5), layout="constrained")
    for ax, (key, name) in zip(figure.subplots(1, len(BATCH_STATISTICS)), BATCH_STATISTICS.items()):
        for objective, runs in by_objective.items():
            steps, mean, low, high = seed_band(runs, "train_logs", key)
            (line,) = ax.plot(steps, mean, label=objective)
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_title(f"{name} cosine, mean over the batch's anchors")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    figure.suptitle("what the runs logged at each step: mean over seeds, band from the lowest to the highest seed")
    figure.savefig(path, format="png", dpi=100)


def summary_table(by_objective: dict[str, list[dict]]) -> str:
    def row(name: str, runs: list[dict], when: str) -> list[str]:
        probes = [r["similarities"][when] for r in runs]
        mean = lambda key: statistics.mean(p[key] for p in probes)  # noqa: E731
        gap = mean("mean_positive") - mean("mean_hardest_negative")
        return [name, f"{mean('mean_positive'):.3f}", f"{mean('mean_hardest_negative'):.3f}", f"{gap:.3f}",
                f"{100 * mean('hardest_negative_above_positive'):.2f}%"]  # fmt: skip

    rows = [row("start (before training)", start_runs(by_objective), "before")]
    rows += [row(objective, runs, "after") for objective, runs in by_objective.items()]
    header = ["model", "positive", "hardest negative", "gap", "hardest negative above positive"]
    return markdown_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="docs/results/ablation.jsonl")
    parser.add_argument("--figures", default="docs/figures")
    parser.add_argument("--doc", default="docs/results.md")
    parser.add_argument("--zoom_from", type=int, default=40, help="the dev curves' second row starts at this step")
    args = parser.parse_args()
    by_objective = read_runs(args.results)
    os.makedirs(args.figures, exist_ok=True)
    names = ("ablation_dev_curves.png", "similarity_distributions.png", "ablation_batch_similarities.png")
    paths = [os.path.join(args.figures, name) for name in names]
    draw_dev_curves(by_objective, paths[0], args.zoom_from)
    draw_similarity_distributions(by_objective, paths[1])
    draw_batch_similarities(by_objective, paths[2])
    relative = [os.path.relpath(p, os.path.dirname(os.path.abspath(args.doc))) for p in map(os.path.abspath, paths)]
    probe = next(iter(by_objective.values()))[0]["similarities"]["before"]
    body = "\n".join([
        f"Command: `python -m bench.results.figures` (from `{args.results}`, the runs of the table above)",
        "",
        f"![Dev curves of each objective, mean and seed band]({relative[0]})",
        "",
        f"![Positive and hardest-negative similarity distributions before and after training]({relative[1]})",
        "",
        f"Mean cosine over the {sum(probe['positive'])} held-out sentences of each probe (mean over seeds); gap = "
        "positive − hardest negative:",
        "",
        summary_table(by_objective),
        "",
        f"![The same similarities as the runs logged them at every step]({relative[2]})",
    ])  # fmt: skip
    replace_section(args.doc, "ablation_figures", body)
    print("\n".join(paths))


if __name__ == "__main__":
    main()
