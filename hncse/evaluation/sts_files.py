"""Your own STS sets as evaluators (`--sts_files`): a CSV, TSV, JSON Lines or parquet file, or a Hub dataset, of
sentence pairs with a gold score, scored as SentEval's STS-B is (Spearman ×100 of the cosine, and Pearson).

The format is sentence-transformers' STS format (columns `sentence1`, `sentence2`, `score`, any score scale) or
the columns named by `--sts_columns`. A Hub dataset is `name[:config][@split]` (e.g.
`sentence-transformers/stsb@validation`, `mteb/sts22-crosslingual-sts:de@test`). The sentences are fed as they
are (no whitespace normalisation, no language assumed), as sentence-transformers' `EmbeddingSimilarityEvaluator`
feeds them, so that the two give the same number. A file is read as a training file is (`hncse.data.files`: a
.tsv's quotes are text unless a CSV writer quoted it, a .csv has CSV quoting, a stray quote, a column named twice
or a JSON line that is not an object is refused naming its line). Every check is made when the file is read,
before a model is loaded or anything is written.

The sets are named at run time (a file's stem, a dataset's last path part, made unique), not registered one by
one: a logged `eval_<name>_spearman` is the main metric of such a set (`main_metric_suffix`).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from hncse.data.files import TABLE_SUFFIXES, is_remote, non_blank_rows, read_data_file, read_hub_dataset, row_location
from hncse.errors import DataError, EvalConfigError
from hncse.evaluation.embedding_cache import EmbeddingLookup
from hncse.evaluation.evaluator import EVALUATORS, Evaluator
from hncse.evaluation.senteval_data import STSPairs
from hncse.evaluation.sts import cosine_scores, sts_metric

DEFAULT_COLUMNS = ("sentence1", "sentence2", "score")  # sentence-transformers' STS format
# The Hub split a dataset given without `@split` is read from, by the suite's split, in order of preference.
HUB_SPLITS = {"dev": ("validation", "dev"), "test": ("test",)}


@dataclass(frozen=True)
class STSFileSource:
    """One `--sts_files` entry: a file (`path`) or a Hub dataset (`dataset`, `config`, `split`), and its name."""

    given: str  # as on the command line
    name: str  # metric keys (`<name>_spearman`) and tables
    path: str | None = None
    dataset: str | None = None
    config: str | None = None
    split: str | None = None

    @property
    def is_file(self) -> bool:
        return self.path is not None

    @property
    def main_metric(self) -> str:
        return f"{self.name}{STSFileEvaluator.main_metric_suffix}"


def is_file_entry(entry: str) -> bool:
    """A path (it exists, is a URL, or ends like a table file), else a Hub dataset id."""
    suffix = os.path.splitext(entry.split("?")[0])[1].lower()
    return os.path.exists(entry) or is_remote(entry) or suffix in TABLE_SUFFIXES or entry.startswith((".", "/", "~"))


def slug(text: str) -> str:
    """Lower-case letters, digits and underscores: a name that is a metric key on every logger."""
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_") or "sts"


def name_candidates(path: str | None, dataset: str | None, config: str | None, split: str | None) -> list[str]:
    """Names to try for an entry, shortest first: the file's stem, with its ending, with more and more of its
    folders; or the dataset's last path part, with its config, then its split."""
    if path is not None:
        where = path.split("?")[0] if is_remote(path) else os.path.abspath(path)
        parts = [p for p in re.split(r"[/\\]", where) if p not in ("", ".", "..", "http:", "https:", "hf:")]
        parts[-1], suffix = os.path.splitext(parts[-1])
        names = [slug("_".join(parts[-n:])) for n in range(1, len(parts) + 1)]
        return [names[0], slug(f"{parts[-1]}{suffix}"), *names[1:]]  # dev, dev_csv, data_dev, …
    names = [slug(dataset.rstrip("/").split("/")[-1])]
    for extra in (config, split):
        if extra:
            names.append(slug(f"{names[-1]}_{extra}"))
    return names


def unique_names(candidates: list[list[str]], taken: set[str]) -> list[str]:
    """One name per entry: its shortest candidate, longer for every entry whose name another entry or a registered
    set has, then numbered."""
    levels = [0] * len(candidates)
    while True:
        names = [c[min(level, len(c) - 1)] for c, level in zip(candidates, levels)]
        clashing = [i for i, n in enumerate(names) if n in taken or names.count(n) > 1]
        longer = [i for i in clashing if levels[i] < len(candidates[i]) - 1]
        if not longer:
            break
        for i in longer:
            levels[i] += 1
    final: list[str] = []
    for name in names:
        number, unique = 2, name
        while unique in taken or unique in final:
            unique, number = f"{name}_{number}", number + 1
        final.append(unique)
    return final


def parse_sts_files(entries: list[str] | None, flag: str = "--sts_files") -> list[STSFileSource]:
    """Each entry's kind and unique name; the same file or dataset given twice is refused. Nothing is read."""
    parsed = []
    seen: dict[str, str] = {}
    for entry in entries or []:
        entry = entry.strip()
        if not entry:
            raise EvalConfigError(f"{flag}: an empty entry")
        path = dataset = config = split = None
        if is_file_entry(entry):
            path = entry
            key = entry if is_remote(entry) else os.path.realpath(entry)
        else:
            dataset, _, split = entry.partition("@")
            dataset, _, config = dataset.partition(":")
            if not dataset or "@" in split or ":" in config:
                raise EvalConfigError(f"{flag} {entry!r}: a Hub dataset is name[:config][@split]")
            config, split = config or None, split or None
            key = f"{dataset}:{config}@{split}"
        if key in seen:
            raise EvalConfigError(f"{flag}: {entry} is given twice (as {seen[key]} too)")
        seen[key] = entry
        parsed.append((entry, path, dataset, config, split))
    taken = {spec.short_name for spec in EVALUATORS.values()} | {spec.name.lower() for spec in EVALUATORS.values()}
    names = unique_names([name_candidates(*p[1:]) for p in parsed], taken)
    return [STSFileSource(p[0], name, *p[1:]) for p, name in zip(parsed, names)]


def check_columns(columns: list[str] | None, flag: str = "--sts_columns") -> tuple[str, str, str]:
    if columns is None:
        return DEFAULT_COLUMNS
    if len(columns) != 3 or len(set(columns)) != 3:
        raise EvalConfigError(f"{flag} takes three different column names (SENTENCE1 SENTENCE2 SCORE), got {columns}")
    return tuple(columns)


def read_sts_file(
    source: STSFileSource, columns: tuple[str, str, str], split: str, flag: str = "--sts_files"
) -> tuple[STSPairs, dict]:
    """The pairs of one entry, checked: the columns exist, every sentence is text, every score a finite number, at
    least 2 pairs and not one score for all (Spearman would be undefined). Returns (pairs, where they came from)."""
    if source.is_file:
        data = read_data_file(source.path, flag)
        origin = {"source": source.given}
        where = source.path
    else:
        data, hub_split = hub_split_of(source, split, flag)
        origin = {"source": source.given, "dataset": source.dataset, "config": source.config, "split": hub_split}
        where = f"{source.dataset}" + (f":{source.config}" if source.config else "") + f"@{hub_split}"
    missing = [c for c in columns if c not in data.column_names]
    if missing:
        raise DataError(
            f"{where}: no column {', '.join(repr(c) for c in missing)}; its columns are {data.column_names} "
            "(name them with --sts_columns SENTENCE1 SENTENCE2 SCORE)"
        )
    first, second, score_column = columns
    for column in (first, second):
        keep = non_blank_rows(data, column, where)
        if not keep.all():
            row = int(np.flatnonzero(~keep)[0])
            raise DataError(f"{location(source, where, row)}: empty {column!r}: every pair needs two sentences")
    scores = score_values(data.with_format("arrow")[score_column], source, where, score_column)
    if len(scores) < 2:
        raise DataError(f"{where}: {len(scores)} pair(s); a correlation needs at least 2")
    if np.all(scores == scores[0]):
        raise DataError(
            f"{where}: every {score_column!r} is {scores[0]:g}; Spearman is undefined for a constant score"
        )
    pairs = STSPairs(source.name, list(data[first]), list(data[second]), scores)
    return pairs, {**origin, "columns": list(columns)}


def location(source: STSFileSource, where: str, row: int) -> str:
    return row_location(source.path, row) if source.is_file else f"{where}: row {row + 1}"


def score_values(values: pa.ChunkedArray, source: STSFileSource, where: str, column: str) -> np.ndarray:
    """The scores as float64; the first that is missing, not a number or not finite is named by file:line."""
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        scores = values.to_numpy(zero_copy_only=False).astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(scores))  # nulls come out as NaN
        if len(bad):
            raise DataError(f"{location(source, where, int(bad[0]))}: {column!r} is not a number")
        return scores
    scores = np.empty(len(values), dtype=np.float64)
    for row, value in enumerate(values.to_pylist()):
        try:
            scores[row] = float(value)
        except (TypeError, ValueError):
            scores[row] = math.nan
        if not math.isfinite(scores[row]):
            raise DataError(f"{location(source, where, row)}: {column!r} is {value!r}, not a number")
    return scores


def hub_split_of(source: STSFileSource, split: str, flag: str):
    """The dataset's split: the one named, else the suite's (validation or dev for dev sets, test for test sets)."""
    if source.split is not None:
        return read_hub_dataset(source.dataset, source.config, source.split, flag), source.split
    splits = read_hub_dataset(source.dataset, source.config, None, flag)
    for name in HUB_SPLITS[split]:
        if name in splits:
            return splits[name], name
    if len(splits) == 1:
        return next(iter(splits.values())), next(iter(splits))
    raise DataError(
        f"{flag} {source.given}: no {' or '.join(HUB_SPLITS[split])} split; its splits are {list(splits)} "
        f"(name one: {source.given}@SPLIT)"
    )


class STSFileEvaluator(Evaluator):
    """One of your STS sets: Spearman ×100 of the cosine (its main metric, `<name>_spearman`) and Pearson ×100."""

    group, position, main_metric_suffix = "sts_files", 0.5, "_spearman"

    def __init__(self, pairs: STSPairs, origin: dict):
        super().__init__(pairs.name, pairs.name)
        self.pairs, self.origin = pairs, origin

    def sentences(self) -> list[str]:
        return [*self.pairs.sentences1, *self.pairs.sentences2]

    def score(self, lookup: EmbeddingLookup, mode: str, options: dict) -> dict:
        scores = sts_metric().compute(predictions=cosine_scores(lookup, self.pairs), references=self.pairs.scores)
        return {"spearman": scores["spearman"], "pearson": scores["pearson"], "pairs": len(self.pairs), **self.origin}

    def metrics(self, entry: dict, mode: str) -> dict[str, float]:
        return {f"{self.name}{self.main_metric_suffix}": entry["spearman"], f"{self.name}_pearson": entry["pearson"]}

    @classmethod
    def tables(cls, entries: dict[str, dict], results: dict) -> list[str]:
        rows = ["| STS file | pairs | Spearman | Pearson |", "|---|---|---|---|"]
        for name, entry in entries.items():
            rows.append(f"| {name} | {entry['pairs']} | {entry['spearman']:.2f} | {entry['pearson']:.2f} |")
        return ["\n".join(rows)]

    @classmethod
    def index_results(cls, entries: dict[str, dict], split: str) -> list[dict]:
        """`model-index` results of the entries (a Hub dataset is named by its id, a file by its name)."""
        results = []
        for name, entry in entries.items():
            dataset = {"name": name, "type": entry.get("dataset") or name, "split": entry.get("split") or split}
            if entry.get("config"):
                dataset["config"] = entry["config"]
            results.append(
                {
                    "task": {"type": "semantic-similarity", "name": "Semantic Similarity"},
                    "dataset": dataset,
                    "metrics": [
                        {
                            "type": "spearman_cosine",
                            "value": round(entry["spearman"] / 100, 4),
                            "name": "Spearman Cosine",
                        },
                        {
                            "type": "pearson_cosine",
                            "value": round(entry["pearson"] / 100, 4),
                            "name": "Pearson Cosine",
                        },
                    ],
                }
            )
        return results


def load_sts_files(
    sources: list[STSFileSource], columns: list[str] | None, split: str, flag: str = "--sts_files"
) -> list[STSFileEvaluator]:
    """Read and check every entry (`split`: "dev" or "test", the Hub split a dataset without `@split` is read from)."""
    checked = check_columns(columns)
    return [STSFileEvaluator(*read_sts_file(source, checked, split, flag)) for source in sources]
