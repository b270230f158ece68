"""MTEB on a trained folder, loaded as sentence-transformers loads it: MTEB's own result files, and its scores as a
plain dict for the results JSON, a markdown table and the model card's `model-index`.

mteb (≥ 2) is the optional extra `pip install 'hncse[mteb]'`, imported only when a run asks for it. Runs always
re-evaluate (`overwrite_strategy="always"`): a folder retrained in place keeps its name, and MTEB's cache would
otherwise hand back the old weights' scores. Scores are kept as MTEB reports them (fractions, 0–1); the table
shows them ×100, as the SentEval tables do.

The plain mteb equivalent. A model on the Hub, with mteb's command line:

    mteb run -m USER/MODEL -t STS12 STS22 --output-folder mteb_results --batch-size 128

`mteb run -m` resolves Hub ids and mteb's model registry only (mteb 2.26: a local folder fails with "No model
implementation is available for this model"), so for a local folder pass the model loaded by sentence-transformers:

    import mteb
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer("outputs/my-run")
    mteb.evaluate(model, mteb.get_tasks(tasks=["STS12", "STS22"]), cache=mteb.ResultCache("mteb_results"),
                  encode_kwargs={"batch_size": 128}, overwrite_strategy="always")

Both write `mteb_results/results/<model>/<revision>/<task>.json` (and `model_meta.json`), as `run_mteb` does.
mteb names <model> after the model card's `model_name` (`no_model_name__available` for most local folders),
`run_mteb` after the folder (its `model_name=`); <revision> is `no_revision_available` for a local folder.
"""

from __future__ import annotations

import difflib
import os
import re

import yaml

from hncse.errors import EvalConfigError, EvalDataError, first_line, hub_offline

INSTALL_HINT = "pip install 'hncse[mteb]'"
MTEB_URL = "https://github.com/embeddings-benchmark/mteb"
SUBSET_KEYS = ("hf_subset", "languages", "mteb_version")  # in MTEB's per-subset scores, but not scores
CARD_NAME = "README.md"  # a sentence-transformers folder's model card
CARD_SECTION = ("<!-- mteb:start -->", "<!-- mteb:end -->")  # what add_to_card replaces when it runs again
CARD_HEADER = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)


def import_mteb(flag: str = "--mteb"):
    """mteb, or one line saying how to install it."""
    try:
        import mteb
    except ImportError as error:
        raise EvalConfigError(f"{flag} needs mteb ≥ 2 ({first_line(error)}): {INSTALL_HINT}") from error
    if int(mteb.__version__.split(".")[0]) < 2:
        raise EvalConfigError(f"{flag} needs mteb ≥ 2, found {mteb.__version__}: {INSTALL_HINT}")
    return mteb


def _task_names(mteb) -> list[str]:
    try:  # the registry's classes: their names without building the ~2,000 tasks
        from mteb.get_tasks import TASK_LIST

        return [cls.metadata.name for cls in TASK_LIST]
    except ImportError:
        return [task.metadata.name for task in mteb.get_tasks(exclude_superseded=False)]


def _resolve(mteb, name: str, flag: str) -> list:
    """The task of that name (exact, else ignoring case), else the benchmark's tasks, else one line with the
    closest names."""
    try:
        return [mteb.get_task(name)]
    except KeyError:
        pass
    tasks = {n.lower(): n for n in _task_names(mteb)}
    if name.lower() in tasks:  # sts12 → STS12
        return [mteb.get_task(tasks[name.lower()])]
    try:
        return list(mteb.get_benchmark(name).tasks)  # builds mteb's benchmarks, once: seconds
    except KeyError:
        pass
    names = {**tasks, **{b.name.lower(): b.name for b in mteb.get_benchmarks()}}
    close = [names[n] for n in difflib.get_close_matches(name.lower(), list(names), n=3)]
    hint = f"; did you mean {', '.join(close)}?" if close else " (`mteb available-tasks` lists them)"
    raise EvalConfigError(f"{flag}: unknown MTEB task or benchmark {name!r}{hint}")


def mteb_tasks(tasks: list, flag: str = "--mteb") -> list:
    """MTEB task objects for task names (exact, else ignoring case) or benchmark names, or task objects as given.
    Cheap for task names (no data, no model): the CLI can check them before the other evaluations run."""
    mteb = import_mteb(flag)
    resolved = []
    for task in tasks:
        resolved += _resolve(mteb, task, flag) if isinstance(task, str) else [task]
    return resolved


def _load_task_data(task, flag: str) -> None:
    """Load a task's data before the model runs on it, so that a dataset that cannot be had (offline, a private
    one) is one line naming the task; mteb itself would carry on with no data for a public task."""
    try:
        task.load_data()
    except Exception as error:  # datasets raises ConnectionError, DatasetNotFoundError, FileNotFoundError, …
        name, path = task.metadata.name, task.metadata.dataset.get("path")
        why = (
            "; HF_HUB_OFFLINE is set: run it once online so that the datasets cache holds it" if hub_offline() else ""
        )
        raise EvalDataError(
            f"{flag}: MTEB task {name}'s data ({path}) could not be loaded: {first_line(error)}{why}"
        ) from error


def _hub_task_type(metadata) -> str:
    """The model card's task type (STS → semantic-similarity, as the card's own STS entries have it)."""
    try:
        return metadata.simplified_task_type
    except KeyError:  # a type mteb has no simplified name for
        return metadata.type


def _scores(task_result) -> dict[str, dict[str, dict[str, float]]]:
    """{split: {subset: {metric: value}}} from a TaskResult: the scalar scores, `main_score` among them."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for split, subsets in task_result.scores.items():
        for entry in subsets:
            scalars = {
                key: float(value)
                for key, value in entry.items()
                if key not in SUBSET_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool)
            }
            out.setdefault(split, {})[entry.get("hf_subset", "default")] = scalars
    return out


def _mteb_model(mteb, model_path: str, device: str | None, model_name: str | None, max_seq_length: int | None):
    """The folder as sentence-transformers loads it, in mteb's wrapper, named for MTEB's result folders."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_path, device=device)
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    wrapper = mteb.SentenceTransformerEncoderWrapper(model)
    if model_name is None:
        model_name = os.path.basename(os.path.normpath(model_path)) if os.path.isdir(model_path) else model_path
    wrapper.mteb_model_meta = wrapper.mteb_model_meta.model_copy(update={"name": model_name})
    return wrapper


def run_mteb(
    model_path: str,
    tasks: list,
    output_folder: str,
    batch_size: int = 128,
    device: str | None = None,
    model_name: str | None = None,
    flag: str = "--mteb",
    max_seq_length: int | None = None,
) -> dict:
    """Run MTEB tasks (names of tasks or benchmarks, or task objects) on `model_path` loaded by
    `SentenceTransformer(model_path)`; MTEB's result files go to `output_folder/results/<model_name>/…`.

    model_name: the folder name MTEB files the results under (default: the folder's basename, or the Hub id).
    max_seq_length: truncate longer inputs (default: the folder's own `max_seq_length`).
    Returns {"model", "mteb_version", "output_folder", "tasks": {task: {"type", "hub_type", "main_metric", "dataset",
    "revision", "file", "scores": {split: {subset: {"main_score": …, metric: …}}}}}}, scores as MTEB reports them
    (0–1)."""
    mteb = import_mteb(flag)
    resolved = mteb_tasks(tasks, flag)  # an unknown name fails before anything loads
    cache = mteb.ResultCache(output_folder)
    results: dict = {"model": model_path, "mteb_version": mteb.__version__, "output_folder": output_folder}
    results["tasks"] = {}
    wrapper = None
    for task in resolved:
        if not task.is_aggregate:  # an aggregate loads its parts' data itself
            _load_task_data(task, flag)
        if wrapper is None:  # after the first task's data: data that cannot be had fails before the model loads
            wrapper = _mteb_model(mteb, model_path, device, model_name, max_seq_length)
        outcome = mteb.evaluate(
            wrapper,
            task,
            cache=cache,
            overwrite_strategy="always",
            encode_kwargs={"batch_size": batch_size},
            co2_tracker=False,
            show_progress_bar=False,
        )
        if not task.is_aggregate:
            task.unload_data()
        for task_result in outcome.task_results:
            results["tasks"][task_result.task_name] = {
                "type": task.metadata.type,
                "hub_type": _hub_task_type(task.metadata),
                "main_metric": task.metadata.main_score,
                "dataset": task.metadata.dataset.get("path"),
                "revision": task_result.dataset_revision,
                "file": str(
                    cache.get_task_result_path(task_name=task_result.task_name, model_name=wrapper.mteb_model_meta)
                ),
                "scores": _scores(task_result),
            }
    return results


def mteb_table(results: dict) -> str:
    """A markdown table: a row per task, split and subset (and the subsets' mean where a task has several)."""
    rows = ["| MTEB task | type | split | subset | metric | score ×100 |", "|---|---|---|---|---|---|"]
    for name, task in results["tasks"].items():
        for split, subsets in task["scores"].items():
            values = []
            for subset, scores in subsets.items():
                values.append(scores["main_score"])
                rows.append(
                    f"| {name} | {task['type']} | {split} | {subset} | {task['main_metric']} | "
                    f"{100 * scores['main_score']:.2f} |"
                )
            if len(values) > 1:
                mean = 100 * sum(values) / len(values)
                rows.append(f"| {name} | {task['type']} | {split} | mean | {task['main_metric']} | {mean:.2f} |")
    return "\n".join(rows)


def model_index_entries(results: dict) -> list[dict]:
    """`model-index` results entries for the model card (one per task, split and subset), in the shape of the
    card's STS entries: task type/name, dataset name/type/config/split/revision, metrics (the main metric first,
    values 0–1, 4 decimals) and MTEB as the source."""
    entries = []
    for name, task in results["tasks"].items():
        for split, subsets in task["scores"].items():
            for subset, scores in subsets.items():
                main = task["main_metric"]
                keys = [main] + [k for k in scores if k not in (main, "main_score")]
                dataset = {"name": f"MTEB {name} ({subset})", "type": task["dataset"] or name, "config": subset}
                dataset["split"] = split
                if task.get("revision"):
                    dataset["revision"] = task["revision"]
                entries.append(
                    {
                        "task": {"type": task["hub_type"], "name": task["type"]},
                        "dataset": dataset,
                        "metrics": [{"type": k, "value": round(scores.get(k, scores["main_score"]), 4)} for k in keys],
                        "source": {"name": "MTEB", "url": MTEB_URL},
                    }
                )
    return entries


def card_path(folder: str, flag: str = "--mteb_to_card") -> str:
    """The model card of a local folder that has one with a YAML header (as run_hncse.py writes it), or one line."""
    path = os.path.join(folder, CARD_NAME)
    if not os.path.isdir(folder):
        raise EvalConfigError(f"{flag}: {folder} is not a local folder (the card of a Hub model is edited on the Hub)")
    if not os.path.isfile(path):
        raise EvalConfigError(f"{flag}: {folder} has no {CARD_NAME} to add the MTEB scores to")
    with open(path, encoding="utf-8") as f:
        if not CARD_HEADER.match(f.read()):
            raise EvalConfigError(f"{flag}: {path} has no YAML header (--- … ---) for the model-index")
    return path


def _entry_key(entry: dict) -> tuple:
    dataset = entry.get("dataset") or {}
    return dataset.get("name"), dataset.get("config"), dataset.get("split")


def add_to_card(folder: str, results: dict, command: str) -> str:
    """Add MTEB's scores to a folder's model card: `model_index_entries` into the YAML header's `model-index`
    (an entry for the same task, subset and split replaced, the card's other entries kept) and the table as an
    "MTEB results" section (replaced when it runs again; before "## Usage", else at the end). The card is
    rewritten in one step (a temporary file renamed over it). run_hncse.py writes a new card whenever it saves
    the folder: run this after training. Returns the card's path."""
    path = card_path(folder)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    header = CARD_HEADER.match(text)
    metadata = yaml.safe_load(header.group(1)) or {}
    entries = model_index_entries(results)
    index = metadata.get("model-index") or [{"name": os.path.basename(os.path.normpath(folder)), "results": []}]
    new = {_entry_key(e) for e in entries}
    kept = [
        e for e in index[0].get("results") or []
        if not ((e.get("source") or {}).get("name") == "MTEB" and _entry_key(e) in new)
    ]  # fmt: skip
    index[0]["results"] = kept + entries
    metadata["model-index"] = index
    start, end = CARD_SECTION
    section = (
        f"{start}\n## MTEB results\n\nThe main score ×100 of each task, from `{command}` (mteb "
        f"{results['mteb_version']}, the folder loaded by sentence-transformers).\n\n{mteb_table(results)}\n{end}\n"
    )
    body = text[header.end() :]
    if start in body and end in body:
        before, rest = body.split(start, 1)
        body = before + section + rest.split(end, 1)[1].lstrip("\n")
    elif "\n## Usage" in body:
        before, after = body.split("\n## Usage", 1)
        body = f"{before}\n{section}\n## Usage{after}"
    else:
        body = body.rstrip("\n") + "\n\n" + section
    dumped = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True).strip()
    partial = path + ".partial"
    with open(partial, "w", encoding="utf-8") as f:
        f.write(f"---\n{dumped}\n---\n{body}")
    os.replace(partial, path)
    return path
