"""training_curves.png: what a run did, step by step, drawn from its log history (`trainer_state.json`).

Panels: the training loss (and learning rate); each dev metric with the best step marked; then each panel of the
statistics the registered objectives declare (`hncse.losses.Statistic`: the built-ins' similarities in the batch and
positive mixing's case fractions, a plug-in objective's own). A panel is drawn only when the run logged its values.
matplotlib is an optional extra (`pip install "hncse[plots]"`): without it, `plotting_unavailable` says why no
picture is drawn.

    hncse-plot OUTPUT_DIR        # (re)draws OUTPUT_DIR/training_curves.png from its trainer_state.json
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import tempfile

from hncse.errors import ConfigError, first_line, run_cli
from hncse.evaluation.evaluator import dev_metrics_in
from hncse.losses.registry import Panel, Statistic, declared_statistics

CURVES_NAME = "training_curves.png"
PLOTS_EXTRA = 'pip install "hncse[plots]"'


def statistic_panels() -> dict[Panel, list[Statistic]]:
    """The registered objectives' drawn statistics by panel, panels and lines in declaration order (read when
    drawing: a plug-in objective registered after import is drawn too)."""
    panels: dict[Panel, list[Statistic]] = {}
    for statistic in declared_statistics():
        if statistic.panel is not None:
            panels.setdefault(statistic.panel, []).append(statistic)
    return panels


def drawn_keys() -> set[str]:
    """The logged values that become points (besides the dev metrics)."""
    return {"loss", "learning_rate", *(s.name for lines in statistic_panels().values() for s in lines)}


def plotting_unavailable() -> str | None:
    """Why this environment cannot draw the picture, or None when it can."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return f"matplotlib is not installed ({PLOTS_EXTRA} draws them)"
    return None


def training_entries(log_history: list[dict]) -> list[dict]:
    """The entries logged while training: those before the run's closing summary (`train_runtime`), after which
    come the final evaluations of the kept weights and the test sets, which belong to no training step."""
    entries = []
    for entry in log_history:
        if "train_runtime" in entry:
            break
        entries.append(entry)
    return entries


def metric_key(metric: str) -> str:
    """The logged name of a dev metric, as the Trainer reads `metric_for_best_model` (`stsb_spearman` →
    `eval_stsb_spearman`)."""
    return metric if metric.startswith("eval_") else f"eval_{metric}"


def evaluations_in(entries: list[dict]) -> list[dict]:
    return [e for e in entries if "eval_runtime" in e]


def dev_metrics(entries: list[dict]) -> list[str]:
    """The dev metrics evaluated during training (`eval_sickr_spearman`, `eval_stsb_spearman`, …), sorted: the
    same colours whether drawn from the trainer's log or from trainer_state.json (written with sorted keys)."""
    names = {k for e in evaluations_in(entries) for k in e}
    return sorted(dev_metrics_in(names))


def best_evaluation(entries: list[dict], metric: str, greater_is_better: bool = True) -> dict | None:
    """The evaluation the Trainer counts as best by `metric`: the first strictly best after step 0 (the evaluation
    at the start is a reference, never selected)."""
    metric = metric_key(metric)
    best = None
    for entry in entries:
        value = entry.get(metric)
        if value is None or entry.get("step", 0) == 0 or not math.isfinite(value):
            continue
        if best is None or (value > best[metric] if greater_is_better else value < best[metric]):
            best = entry
    return best


def _series(entries: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(e["step"], e[key]) for e in entries if key in e and "step" in e]
    return [s for s, _ in points], [v for _, v in points]


def _label(metric: str) -> str:
    return metric.removeprefix("eval_").replace("_", " ")


def _loss_panel(ax, entries: list[dict]) -> None:
    steps, loss = _series(entries, "loss")
    ax.plot(steps, loss, color="tab:blue", marker="." if len(steps) < 30 else None, label="training loss")
    ax.set_title("training loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    steps, rate = _series(entries, "learning_rate")
    if steps:
        rate_axis = ax.twinx()
        rate_axis.plot(steps, rate, color="0.6", linestyle="--", linewidth=1, label="learning rate")
        rate_axis.set_ylabel("learning rate", color="0.4")
        rate_axis.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        ax.legend(handles=ax.get_lines() + rate_axis.get_lines(), loc="upper right", fontsize="small")


def _dev_panel(ax, evaluations: list[dict], metrics: list[str], best_metric: str | None, best: dict | None) -> None:
    for metric in metrics:
        steps, values = _series(evaluations, metric)
        ax.plot(steps, values, marker="o", markersize=3, label=_label(metric))
    if best is not None and best_metric:
        metric = metric_key(best_metric)
        ax.axvline(best["step"], color="0.3", linestyle=":", linewidth=1)
        label = f"best {_label(metric)}: {best[metric]:.2f} at step {best['step']}"
        ax.plot([best["step"]], [best[metric]], marker="*", markersize=14, color="gold", markeredgecolor="black",
                linestyle="none", label=label)  # fmt: skip
    ax.set_title("dev sets")
    ax.set_xlabel("step")
    ax.set_ylabel("score ×100")
    ax.legend(loc="best", fontsize="small")


def _statistics_panel(ax, entries: list[dict], panel: Panel, statistics: list[Statistic]) -> None:
    for statistic in statistics:
        steps, values = _series(entries, statistic.name)
        if steps:
            ax.plot(steps, values, linestyle="--" if statistic.dashed else "-", label=statistic.label)
    ax.set_title(panel.title)
    ax.set_xlabel("step")
    ax.set_ylabel(panel.ylabel)
    ax.legend(loc="best", fontsize="small")


def draw_training_curves(
    log_history: list[dict],
    path: str,
    best_metric: str | None = None,
    greater_is_better: bool = True,
    best_step: int | None = None,
    title: str | None = None,
) -> None:
    """Draw the run's curves into the PNG `path` (written whole or not at all).

    best_metric: the metric that selects the best checkpoint (its best evaluation is marked); best_step: the step
    the Trainer selected, when it did (else the best evaluation of `best_metric` after step 0)."""
    from matplotlib.figure import Figure  # the optional extra; no pyplot: no global state, no display
    from matplotlib.ticker import MaxNLocator

    entries = training_entries(log_history)
    metrics, evaluations = dev_metrics(entries), evaluations_in(entries)
    best = None
    if best_metric and metrics:
        chosen = [e for e in evaluations if e.get("step") == best_step] if best_step else []
        best = chosen[-1] if chosen else best_evaluation(evaluations, best_metric, greater_is_better)
    panels = [lambda ax: _loss_panel(ax, entries)]
    if metrics:
        panels.append(lambda ax: _dev_panel(ax, evaluations, metrics, best_metric, best))
    for panel, statistics in statistic_panels().items():
        if any(s.name in e for e in entries for s in statistics):
            panels.append(functools.partial(_statistics_panel, entries=entries, panel=panel, statistics=statistics))
    columns = 1 if len(panels) == 1 else 2
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(6 * columns, 4 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).flatten()
    for ax, draw in zip(axes, panels):
        draw(ax)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    steps = max((e.get("step", 0) for e in entries), default=0)
    figure.suptitle(f"{title or 'training'}: {steps} steps")
    partial = f"{path}.partial"
    try:
        figure.savefig(partial, format="png", dpi=100)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def recorded_best_metric(state: dict) -> str | None:
    """The metric a saved Trainer state selected its best step by: the dev metric of the evaluation at
    `best_global_step` whose value is `best_metric` (the state records the value, not the name)."""
    step, value = state.get("best_global_step"), state.get("best_metric")
    for entry in evaluations_in(training_entries(state.get("log_history", []))):
        if entry.get("step") == step:
            return next((k for k in dev_metrics([entry]) if entry[k] == value), None)
    return None


def read_trainer_state(folder: str) -> tuple[str, dict]:
    """(the path of `folder`'s trainer_state.json, its contents) when it holds a log history to draw, else one line
    naming the folder or the file and what is wrong with it."""
    if not os.path.exists(folder):
        raise ConfigError(f"{folder}: no such folder (hncse-plot takes a run's output folder or a checkpoint)")
    if not os.path.isdir(folder):
        raise ConfigError(f"{folder}: not a folder (hncse-plot takes the folder that holds trainer_state.json)")
    path = os.path.join(folder, "trainer_state.json")
    if not os.path.isfile(path):
        raise ConfigError(f"{folder}: no trainer_state.json (a run's output folder or checkpoint has one)")
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: not readable JSON ({first_line(error)}); cut short or edited by hand?") from None
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: not a JSON object (the Trainer writes one); edited by hand?")
    history = state.get("log_history")
    if history is None:
        raise ConfigError(f"{path}: no log_history (the Trainer's record of the logged steps); nothing to draw")
    if not isinstance(history, list) or not all(isinstance(entry, dict) for entry in history):
        raise ConfigError(f"{path}: log_history is not a list of entries (the Trainer writes one); edited by hand?")
    if not history:
        raise ConfigError(f"{path}: log_history is empty (the run stopped before it logged a step); nothing to draw")
    drawn = {*drawn_keys(), *dev_metrics(history)}
    for i, entry in enumerate(history):
        for key, value in entry.items():
            if (key == "step" and not _is_number(value, int)) or (key in drawn and not _is_number(value, float)):
                raise ConfigError(f"{path}: log_history entry {i} has {key} {value!r}, not a number; edited by hand?")
    entries = training_entries(history)
    if not any("loss" in e for e in entries) and not dev_metrics(entries):
        raise ConfigError(
            f"{path}: no entry of its log_history ({len(entries)} logged while training) has a loss or a dev metric; "
            "nothing to draw"
        )
    return path, state


def _is_number(value, kind: type) -> bool:
    return isinstance(value, (int, kind)) and not isinstance(value, bool)


def check_writable(path: str) -> None:
    """The picture can be written at `path`, checked before it is drawn (one line, not a traceback)."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path} is a folder")
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"no folder {folder}")
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".hncse-write-check-"):
            pass
    except OSError as error:
        why = error.strerror or first_line(error)
        raise ConfigError(
            f"{path}: the picture cannot be written there ({why}; --output writes it elsewhere)"
        ) from None


def draw_from_trainer_state(folder: str, path: str | None = None) -> str:
    """Draw `folder`'s curves from its trainer_state.json (a run's output folder or a checkpoint); returns the
    picture's path. A folder or file that cannot be drawn from, or a picture that cannot be written, is one line."""
    _, state = read_trainer_state(folder)
    name = os.path.basename(os.path.abspath(folder))
    settings_path = os.path.join(folder, "run_config.json")
    try:  # the objective in the title only: a run_config.json that cannot be read leaves it out
        with open(settings_path, encoding="utf-8") as f:
            objective = json.load(f).get("objective")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        objective = None
    name = f"{name} ({objective})" if isinstance(objective, str) and objective else name
    path = path or os.path.join(folder, CURVES_NAME)
    check_writable(path)
    # The recorded best step is marked as is (the direction of the metric matters only when searching for it).
    best_step = state.get("best_global_step")
    try:
        draw_training_curves(
            state["log_history"], path, recorded_best_metric(state),
            best_step=best_step if isinstance(best_step, int) else None, title=name,
        )  # fmt: skip
    except OSError as error:  # e.g. the disk filled while writing: no picture, no partial file
        raise ConfigError(f"{path}: the picture could not be written ({first_line(error)})") from None
    return path


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="hncse-plot", description="Draw a run's training_curves.png from its logs.")
    parser.add_argument("folder", help="a run's output folder or a checkpoint (it holds trainer_state.json)")
    parser.add_argument("-o", "--output", help=f"the PNG to write (default: FOLDER/{CURVES_NAME})")
    args = parser.parse_args(argv)
    reason = plotting_unavailable()
    if reason:
        parser.exit(1, f"hncse-plot: {reason}\n")
    path = draw_from_trainer_state(args.folder, args.output)
    print(path)
    return path


def cli(argv: list[str] | None = None) -> None:
    """`hncse-plot`: a folder or file it cannot draw from is `hncse-plot: error: <one line>`, exit status 2."""
    run_cli(lambda: main(argv), "hncse-plot")


if __name__ == "__main__":
    cli()
