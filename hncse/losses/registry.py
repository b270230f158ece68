"""The objective registry: each contrastive objective declares here everything the recipe needs to know of it.

From these declarations come the training config's fields and flags (`--help` included), the settings that make
a checkpoint belong to a run (`run_config.json`), the statistics logged every logging step, and the model card's
description and citations. Adding an objective is one file that ends with an `Objective(...)` and one
`register(...)` line in `hncse/losses/__init__.py`; `tests/losses/test_registry.py` shows one defined in a test.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass

from hncse.errors import ConfigError


@dataclass(frozen=True)
class Panel:
    """A plot of training_curves.png that statistics of one kind share: its title and its y axis."""

    title: str
    ylabel: str


@dataclass(frozen=True)
class Statistic:
    """A detached scalar an objective's `forward` returns, logged at every logging step.

    training_curves.png draws it as a line named `label` in `panel` (dashed: a quantity of another kind than the
    panel's others, PM's ratio beside its shares); panel None: logged only (a term of the drawn training loss).
    """

    name: str
    label: str
    panel: Panel | None = Panel("the objective's statistics", "value")
    dashed: bool = False


@dataclass(frozen=True)
class Objective:
    """One contrastive objective.

    Args:
        name: the value of `--objective`.
        loss: the loss module's class. `loss.from_params(params, seed)` builds it; its `forward(z1, z2, exchange)`
            returns (loss, statistics) and `get_config_dict()` the hyper-parameters shown on the model card.
        params: a dataclass of its hyper-parameters. Each field becomes a training-config field and flag of the
            same name; `__post_init__` validates the values, raising `ConfigError` that names the flag. A field
            several objectives share (`temperature`) is declared once, in a common base dataclass.
        statistics: the detached statistics `forward` returns, in its order (`Statistic`s: name, label, panel),
            logged averaged at every logging step and drawn in training_curves.png.
        description: one line for readers of the model card.
        citations: BibTeX entries the model card cites for it (beside the recipe's own).
        min_batch_size: the fewest sentences per device it can train on.
    """

    name: str
    loss: type
    params: type
    statistics: tuple[Statistic, ...]
    description: str
    citations: tuple[str, ...] = ()
    min_batch_size: int = 2

    def __post_init__(self):
        if not dataclasses.is_dataclass(self.params):
            raise TypeError(f"objective {self.name!r}: params must be a dataclass, got {self.params!r}")
        for statistic in self.statistics:
            if not isinstance(statistic, Statistic):
                raise TypeError(
                    f"objective {self.name!r}: statistics must be Statistic(name, label), got {statistic!r}"
                )

    def params_from(self, source) -> typing.Any:
        """Its hyper-parameters read from `source` (the training config, or any object with those attributes);
        validated by the params dataclass."""
        values = {f.name: getattr(source, f.name) for f in dataclasses.fields(self.params) if f.init}
        for name, value in values.items():  # inf or nan would train nothing (e.g. τ = inf: every logit 0)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"--{name} must be a finite number, got {value}")
        return self.params(**values)

    def build(self, source, seed: int | None = None):
        """The loss module, configured from `source`; `seed` seeds any sampler it has unless a parameter does."""
        return self.loss.from_params(self.params_from(source), seed=seed)


OBJECTIVES: dict[str, Objective] = {}


def register(objective: Objective) -> Objective:
    """Make `objective` available to `--objective`; its parameters must agree with those of the same name."""
    if objective.name in OBJECTIVES:
        raise ValueError(f"an objective named {objective.name!r} is already registered")
    OBJECTIVES[objective.name] = objective
    try:
        hyperparameter_fields()
        declared_statistics()
    except TypeError:
        del OBJECTIVES[objective.name]
        raise
    return objective


def unregister(name: str) -> None:
    OBJECTIVES.pop(name, None)


def get_objective(name: str, flag: str = "--objective") -> Objective:
    if name not in OBJECTIVES:
        raise ConfigError(f"{flag}: unknown value {name!r}; choose one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


@dataclass(frozen=True)
class HyperParameter:
    """One training-config field contributed by the registered objectives."""

    name: str
    type: typing.Any
    default: typing.Any
    help: str
    choices: tuple | None
    same_run: bool


def hyperparameter_fields() -> list[HyperParameter]:
    """Every registered objective's hyper-parameters, each once, in registration then declaration order.

    Raises TypeError if two objectives declare a field of the same name with another type or default.
    """
    found: dict[str, HyperParameter] = {}
    for objective in OBJECTIVES.values():
        hints = typing.get_type_hints(objective.params)
        for f in dataclasses.fields(objective.params):
            if not f.init:
                continue
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if default is dataclasses.MISSING:
                raise TypeError(f"objective {objective.name!r}: parameter {f.name!r} needs a default")
            choices = f.metadata.get("choices")
            parameter = HyperParameter(
                f.name,
                hints[f.name],
                default,
                f.metadata.get("help", ""),
                tuple(choices) if choices is not None else None,
                f.compare,
            )
            known = found.setdefault(f.name, parameter)
            if (known.type, known.default) != (parameter.type, parameter.default):
                raise TypeError(
                    f"objective {objective.name!r}: parameter {f.name!r} ({parameter.type}, default "
                    f"{parameter.default!r}) differs from the one already declared ({known.type}, {known.default!r})"
                )
    return list(found.values())


def declared_statistics() -> list[Statistic]:
    """Every registered objective's statistics, each once, in registration then declaration order (the order
    training_curves.png draws them in).

    Raises TypeError if two objectives declare a statistic of the same name differently (one line, one label).
    """
    found: dict[str, Statistic] = {}
    for objective in OBJECTIVES.values():
        for statistic in objective.statistics:
            known = found.setdefault(statistic.name, statistic)
            if known != statistic:
                raise TypeError(
                    f"objective {objective.name!r}: statistic {statistic.name!r} ({statistic}) differs from the one "
                    f"already declared ({known})"
                )
    return list(found.values())


def run_keys() -> list[str]:
    """The hyper-parameters whose value makes a checkpoint belong to one run (those not marked same_run=False)."""
    return [p.name for p in hyperparameter_fields() if p.same_run]


def hyperparameter(default, help: str, same_run: bool = True, choices=None):
    """A params-dataclass field: its default, its flag's help (and choices), and whether it identifies a run.

    The metadata holds only what `HfArgumentParser` passes on to argparse (help, choices): whether the field
    identifies a run is its `compare` (two params that differ only in such a field are equal: the same run)."""
    metadata = {"help": help}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    return dataclasses.field(default=default, compare=same_run, metadata=metadata)


def build_loss(args):
    """The objective module named by `args.objective` (the training config), with its hyper-parameters from it."""
    return get_objective(args.objective).build(args, seed=args.seed)
