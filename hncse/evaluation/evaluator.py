"""What an evaluation set is to the suite, and the registry of the ones `--eval_tasks` / `--tasks` can name.

An `Evaluator` says which sentences it needs and scores them from their embeddings; the suite encodes the distinct
sentences of all its evaluators once and hands each the same lookup. An `EvaluatorSpec` registers a named set:
how to load it for a split, its main metric (the dev metric that logs, tables, cards and plots show, and that
`--metric_for_best_model` may name) and which `--task_set` takes it. Adding an evaluator is its file (a subclass
and its specs) and one `register_evaluator` per spec; nothing else names the kinds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from hncse.errors import EvalConfigError
from hncse.evaluation.embedding_cache import EmbeddingLookup

DEV_METRIC_PREFIX = "eval_"  # how the Trainer logs the metrics of an evaluation during training


class Evaluator(ABC):
    """One evaluation set.

    Class attributes, shared by every set of a kind: `group`, the key of the results under which each set's entry
    goes (`results[group][name]`; None merges the entry into the results' top level); `average_key` and
    `average_metric`, the results key and metric name of the mean over the group's sets (None: no mean); `position`,
    where the kind's sets come in the results and tables (and so in the encoding order); `result_keys`, for a kind
    without a group, the top-level keys its entry adds."""

    group: str | None = None
    result_keys: tuple[str, ...] = ()
    average_key: str | None = None
    average_metric: str | None = None
    position: float = 1.0
    # A kind whose sets are named at run time (your own files), not registered one by one: how its main metric ends.
    # A logged `eval_<name><suffix>` is then the main metric of one of its sets, in a log read back later too.
    main_metric_suffix: str | None = None

    def __init__(self, name: str, short_name: str):
        self.name, self.short_name = name, short_name

    @abstractmethod
    def sentences(self) -> list[str]:
        """Every sentence it needs embedded (repeats allowed: the suite encodes each distinct one once)."""

    @abstractmethod
    def score(self, lookup: EmbeddingLookup, mode: str, options: dict) -> dict:
        """Its results entry (JSON-serialisable) from the embeddings. mode: "dev", "test" or "fasttest"."""

    @abstractmethod
    def metrics(self, entry: dict, mode: str) -> dict[str, float]:
        """The scalar metrics of its entry for logs and checkpoint selection (its main metric among them)."""

    def average_value(self, entry: dict, mode: str) -> float:
        """Its part in the group's mean (`average_key`)."""
        raise NotImplementedError

    @classmethod
    def tables(cls, entries: dict[str, dict], results: dict) -> list[str]:
        """Markdown blocks for the kind's entries in the results (none by default)."""
        return []

    @classmethod
    def index_results(cls, entries: dict[str, dict], split: str) -> list[dict]:
        """Model cards' `model-index` results for the kind's entries in the results (none by default)."""
        return []

    @classmethod
    def dev_index_results(cls, spec: EvaluatorSpec, value: float) -> list[dict]:
        """Model cards' `model-index` results for a dev metric's value logged in training (none by default)."""
        return []


@dataclass(frozen=True)
class EvaluatorSpec:
    """A named evaluation set: `--eval_tasks NAME` (dev) and `--tasks NAME` (any mode) load it.

    load(split, data_dir, flag) → an Evaluator; split is "dev" or "test"; flag names the data folder's argument in
    errors. main_metric: e.g. `stsb_spearman` (logged during training as `eval_stsb_spearman`)."""

    name: str  # what task lists hold (SentEval's name for the built-ins, e.g. STSBenchmark)
    short_name: str  # metric keys and the usual spelling on the command line (stsb)
    kind: type[Evaluator]
    load: Callable[[str, str | None, str], Evaluator]
    main_metric: str
    table_name: str = ""  # as SimCSE's tables write it (STS-B); defaults to the name
    splits: tuple[str, ...] = ("dev", "test")
    task_sets: tuple[str, ...] = ()  # the --task_set values that include it ("full" takes sts and transfer)


EVALUATORS: dict[str, EvaluatorSpec] = {}
# Kinds whose entries results can hold, in `position` order: those of the registered sets, and suite-level ones
# that no task names (alignment and uniformity), added with `register_result_kind`.
RESULT_KINDS: list[type[Evaluator]] = []


def register_result_kind(kind: type[Evaluator]) -> None:
    if kind not in RESULT_KINDS:
        RESULT_KINDS.append(kind)
        RESULT_KINDS.sort(key=lambda k: k.position)


def register_evaluator(spec: EvaluatorSpec) -> EvaluatorSpec:
    for other in EVALUATORS.values():
        if other.name != spec.name and spec.short_name in (other.name.lower(), other.short_name):
            raise EvalConfigError(f"evaluator {spec.name!r}: the name {spec.short_name!r} is {other.name}'s")
    EVALUATORS[spec.name] = spec
    register_result_kind(spec.kind)
    return spec


def evaluator_spec(name: str) -> EvaluatorSpec:
    return EVALUATORS[name]


def task_sets() -> dict[str, list[str]]:
    """`--task_set` values → the tasks they hold, in registration order; "full" is the STS and transfer sets."""
    sets: dict[str, list[str]] = {}
    for spec in EVALUATORS.values():
        for task_set in spec.task_sets:
            sets.setdefault(task_set, []).append(spec.name)
    sets["full"] = sets.get("sts", []) + sets.get("transfer", [])
    return sets


def lookup_task(name: str, flag: str = "--tasks") -> str:
    """The registered name for a short (`stsb`), table (`STS-B`) or registered (`STSBenchmark`) name."""
    key = name.strip().lower().replace("-", "")
    for spec in EVALUATORS.values():
        spellings = (spec.name.lower(), spec.short_name, spec.table_name.lower().replace("-", ""))
        if key in spellings:
            return spec.name
    choices = ", ".join(spec.short_name for spec in EVALUATORS.values())
    raise EvalConfigError(f"{flag}: unknown task {name!r}; choose from {choices}")


def main_metrics() -> dict[str, EvaluatorSpec]:
    """Each registered set's main metric → its spec: the dev metrics."""
    return {spec.main_metric: spec for spec in EVALUATORS.values()}


def dev_metric_spec(key: str) -> EvaluatorSpec | None:
    """The set whose main metric `key` is (`eval_stsb_spearman` or `stsb_spearman`), else None. A set named at run
    time (a kind's `main_metric_suffix`) is described by a spec that cannot load it again."""
    metric = key.removeprefix(DEV_METRIC_PREFIX)
    spec = main_metrics().get(metric)
    if spec is not None:
        return spec
    for kind in RESULT_KINDS:
        suffix = kind.main_metric_suffix
        if suffix and metric.endswith(suffix) and len(metric) > len(suffix):
            name = metric.removesuffix(suffix)
            return EvaluatorSpec(name, name, kind, load=named_at_run_time, main_metric=metric, splits=("dev", "test"))
    return None


def index_results(results: dict, split: str) -> list[dict]:
    """`model-index` results for a suite's results, kind by kind in `position` order."""
    found = []
    for kind in RESULT_KINDS:
        if kind.group is not None and results.get(kind.group):
            found += kind.index_results(results[kind.group], split)
    return found


def named_at_run_time(split: str, data_dir: str | None, flag: str) -> Evaluator:
    raise EvalConfigError(f"{flag}: a set named at run time is loaded from its own file, not by name")


def dev_metrics_in(keys) -> list[str]:
    """The dev metrics among logged keys (`eval_stsb_spearman`, `eval_sickr_spearman`, …; not the loss, runtime,
    means or alignment), in the order given."""
    return [k for k in keys if k.startswith(DEV_METRIC_PREFIX) and dev_metric_spec(k) is not None]
