"""The command line of run_hncse.py: a YAML/JSON config file and flags, which override it.

    run_hncse.py configs/quickstart.yaml --learning_rate 1e-5

Flags are the fields of `hncse.config`'s dataclasses, and the hyper-parameters of any objective registered outside
the package (a plug-in), which are set on the training config after parsing.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import typing

import yaml
from transformers import HfArgumentParser
from transformers.hf_argparser import string_to_bool

from hncse.config import DataArguments, HNCSEConfig, ModelArguments
from hncse.errors import ConfigError
from hncse.losses import OBJECTIVES, hyperparameter_fields
from hncse.losses.registry import HyperParameter

ARGUMENT_GROUPS = (ModelArguments, DataArguments, HNCSEConfig)
GROUP_FIELDS = {f.name for group in ARGUMENT_GROUPS for f in dataclasses.fields(group)}


def plugin_parameters() -> list[HyperParameter]:
    """The hyper-parameters of objectives registered outside the package: those no argument group has a field for."""
    return [p for p in hyperparameter_fields() if p.name not in GROUP_FIELDS]


def flag_names() -> list[tuple[str, object]]:
    """(name, default) of every flag: the argument groups' fields, then the plug-ins' hyper-parameters."""
    fields = [(f.name, f.default) for group in ARGUMENT_GROUPS for f in dataclasses.fields(group) if f.init]
    return fields + [(p.name, p.default) for p in plugin_parameters()]


class OneLineParser(HfArgumentParser):
    """argparse prints the whole usage (over a hundred lines) before a bad value's message: raise it as one line."""

    def error(self, message: str):
        raise ConfigError(message)


def make_parser() -> HfArgumentParser:
    """The argument groups' flags, and one group for the plug-in objectives' hyper-parameters (argparse puts what
    is left over after the dataclasses into a namespace of its own: `parse_args` sets it on the training config)."""
    parser = OneLineParser(ARGUMENT_GROUPS)
    parameters = plugin_parameters()
    if parameters:
        own = {o.name: {f.name for f in dataclasses.fields(o.params)} - GROUP_FIELDS for o in OBJECTIVES.values()}
        plugins = [name for name, fields in own.items() if fields]
        group = parser.add_argument_group(f"objectives registered outside hncse: {', '.join(plugins)}")
        for p in parameters:
            kind = string_to_bool if p.type is bool else p.type
            group.add_argument(f"--{p.name}", type=kind, default=p.default, choices=p.choices, help=p.help)
    return parser


class ConfigLoader(yaml.SafeLoader):
    """YAML as of 1.2: only true/false are booleans, so that `eval_strategy: no` or `save_strategy: on` stay the
    words they are (YAML 1.1, PyYAML's default, reads yes/no/on/off as booleans)."""


ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def split_config_file(argv: list[str]) -> tuple[str | None, list[str]]:
    """(the config file, the flags): the file is the one argument ending in .yaml/.yml/.json that is not the value
    of a flag before it (`--deepspeed ds_configs/zero2.json`), wherever it stands."""
    found = [
        i for i, arg in enumerate(argv)
        if arg.endswith(CONFIG_SUFFIXES) and not arg.startswith("--")
        and (i == 0 or not argv[i - 1].startswith("--") or "=" in argv[i - 1])
    ]  # fmt: skip
    if len(found) > 1:
        raise ConfigError(f"one config file at most; got {' and '.join(argv[i] for i in found)}")
    if not found:
        return None, argv
    return argv[found[0]], argv[: found[0]] + argv[found[0] + 1 :]


def config_file_to_argv(path: str) -> list[str]:
    """Turn a YAML/JSON mapping into command-line tokens, so that values are typed and checked like flags."""
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: no such config file")
    with open(path, encoding="utf-8") as f:
        try:
            config = json.load(f) if path.endswith(".json") else yaml.load(f, Loader=ConfigLoader)
        except (json.JSONDecodeError, yaml.YAMLError) as error:
            raise ConfigError(
                f"{path}: not valid {'JSON' if path.endswith('.json') else 'YAML'}: {str(error).splitlines()[0]}"
            ) from None
    if config is None:
        return []
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of argument names to values")
    known = {name for name, _ in flag_names()}
    argv: list[str] = []
    for key, value in config.items():
        if key not in known:
            raise ConfigError(f"{path}: unknown argument {key!r}")
        if value is None:
            continue
        argv.append(f"--{key}")
        if isinstance(value, list):
            argv.extend(str(v) for v in value)
        elif isinstance(value, dict):
            argv.append(json.dumps(value))
        elif isinstance(value, bool):
            argv.append("true" if value else "false")
        else:
            argv.append(str(value))
    return argv


def without_cleared(argv: list[str]) -> tuple[list[str], set[str]]:
    """(argv without the arguments whose last value is `none`/`null`, those arguments' names), for the arguments
    that may be None."""
    # From the annotations: HfArgumentParser rewrites Optional[X] to X in the fields' own types.
    optional = {
        name for group in ARGUMENT_GROUPS for name, hint in typing.get_type_hints(group).items()
        if type(None) in typing.get_args(hint)
    }  # fmt: skip
    spans = flag_spans(argv)
    values = {name: argv[start + 1 : end] or [argv[start].partition("=")[2]] for name, start, end in spans}
    cleared = {name for name, tokens in values.items() if name in optional and [t.lower() for t in tokens] in
               (["none"], ["null"])}  # fmt: skip
    return without_flags(argv, cleared), cleared


def flag_spans(argv: list[str]) -> list[tuple[str, int, int]]:
    """(name, start, end) of every `--name [values…]` in argv: argv[start:end] is the flag and its values."""
    spans = []
    for i, arg in enumerate(argv):
        if arg.startswith("--"):
            end = i + 1
            while end < len(argv) and not argv[end].startswith("--"):
                end += 1
            spans.append((arg[2:].partition("=")[0], i, end))
    return spans


def without_flags(argv: list[str], names: set[str]) -> list[str]:
    drop = {i for name, start, end in flag_spans(argv) if name in names for i in range(start, end)}
    return [arg for i, arg in enumerate(argv) if i not in drop]


def check_known_flags(argv: list[str]) -> None:
    """An unknown flag, named with the nearest known ones (HfArgumentParser would list the leftovers only)."""
    fields = flag_names()
    known = {f"--{name}" for name, _ in fields} | {f"--no_{name}" for name, default in fields if default is True}
    known |= {"--help"}
    for arg in argv:
        flag = arg.split("=", 1)[0].replace("-", "_").replace("__", "--", 1)
        if flag.startswith("--") and flag not in known and not any(k.startswith(flag) for k in known):
            close = difflib.get_close_matches(flag, sorted(known), n=2, cutoff=0.8)
            hint = f"; did you mean {' or '.join(close)}?" if close else "; see python run_hncse.py --help"
            raise ConfigError(f"unknown argument {flag}{hint}")


def parse_args(argv: list[str]) -> tuple[ModelArguments, DataArguments, HNCSEConfig]:
    """Parse `[config.yaml|config.json] [--flag value ...]`; flags override the file, before it or after it, and
    `--flag none` (or null) clears a value the file sets, for any argument that may be None."""
    config_file, flags = split_config_file(argv)
    from_file = config_file_to_argv(config_file) if config_file else []
    # A flag overrides the file's value whatever that value is (even one that would not parse).
    from_file = without_flags(from_file, {name for name, _, _ in flag_spans(flags)})
    argv = from_file + flags
    parser = make_parser()
    check_known_flags(argv)
    argv, cleared = without_cleared(argv)
    try:
        groups = parser.parse_args_into_dataclasses(args=argv)
    except ValueError as error:  # ConfigError too: name the config file when the bad value came from it
        message = str(error).strip().splitlines()[0]
        named = re.search(r"--(\w+)", message)
        if named and f"--{named[1]}" in from_file and f"--{named[1]}" not in flags:
            message = f"{config_file}: {named[1]}: {message}"
        raise ConfigError(message) from error
    model_args, data_args, training_args, *plugin_values = groups
    for name in cleared:
        for group in (model_args, data_args, training_args, *plugin_values):
            if hasattr(group, name):
                setattr(group, name, None)
    for values in plugin_values:  # a plug-in objective's hyper-parameters, checked with the built-ins' values
        for name, value in vars(values).items():
            setattr(training_args, name, value)
        training_args.check_objectives()
    return model_args, data_args, training_args
