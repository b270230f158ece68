"""The objective registry: an objective defined in this file alone (a toy additive-margin InfoNCE) gets its flags
from the CLI and YAML, trains for 2 steps, and appears in run_config.json and the model card; every built-in
objective logs exactly the statistics it declares."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import pytest
import torch
from tiny_run import base_argv
from torch import Tensor, nn

import hncse.train
from hncse.config import HNCSEConfig
from hncse.errors import ConfigError
from hncse.losses import (
    OBJECTIVES,
    ContrastiveParams,
    Objective,
    Panel,
    Statistic,
    hyperparameter,
    register,
    unregister,
)
from hncse.losses.common import LOCAL_BATCH, cosine_logits, diagonal_cross_entropy, positive_mask
from hncse.parser import make_parser, parse_args

TOY_BIBTEX = "@misc{toy2026, title = {A toy margin for InfoNCE}, year = {2026}}"


@dataclass
class MarginParams(ContrastiveParams):
    toy_margin: float = hyperparameter(0.2, "toy: margin subtracted from each positive's cosine before τ.")
    toy_log_every: int = hyperparameter(1, "toy: a setting that does not make another run.", same_run=False)

    def __post_init__(self):
        super().__post_init__()
        if self.toy_margin < 0:
            raise ConfigError(f"--toy_margin must be ≥ 0, got {self.toy_margin}")


class MarginLoss(nn.Module):
    """InfoNCE whose positive logit is lowered by a margin (as in AM-softmax)."""

    name = "toy"

    def __init__(self, temperature: float, margin: float):
        super().__init__()
        self.temperature, self.margin = temperature, margin

    @classmethod
    def from_params(cls, params: MarginParams, seed: int | None = None) -> MarginLoss:
        return cls(params.temperature, params.toy_margin)

    def forward(self, z1: Tensor, z2: Tensor, exchange=LOCAL_BATCH) -> tuple[Tensor, dict[str, Tensor]]:
        candidates, offset = exchange.gather(z2)
        sim = cosine_logits(z1, candidates)  # (N, M)
        own = positive_mask(*sim.shape, offset, sim.device)
        loss = diagonal_cross_entropy(sim - self.margin * own, self.temperature, offset)
        gap = sim[own].mean() - sim.masked_fill(own, float("nan")).nanmean()
        return loss, {"toy_gap": gap.detach()}

    def get_config_dict(self) -> dict:
        return {"objective": self.name, "temperature": self.temperature, "toy_margin": self.margin}


TOY = Objective(
    name="toy",
    loss=MarginLoss,
    params=MarginParams,
    statistics=(Statistic("toy_gap", "positive − mean negative", Panel("toy margin", "cosine")),),
    description="Toy: InfoNCE with an additive margin on the positive",
    citations=(TOY_BIBTEX,),
)


@pytest.fixture
def toy():
    register(TOY)
    yield TOY
    unregister("toy")


def test_flags_parse_from_the_command_line_and_yaml(toy, corpus_file, tmp_path):
    _, _, args = parse_args(["--train_file", str(corpus_file), "--objective", "toy", "--toy_margin", "0.3"])
    assert (args.objective, args.toy_margin, args.toy_log_every, args.temperature) == ("toy", 0.3, 1, 0.05)
    config = tmp_path / "toy.yaml"
    config.write_text(f"train_file: {corpus_file}\nobjective: toy\ntoy_margin: 0.4\n", encoding="utf-8")
    _, _, args = parse_args([str(config), "--toy_log_every", "5"])
    assert (args.toy_margin, args.toy_log_every) == (0.4, 5)
    assert isinstance(args, HNCSEConfig)  # the plug-in's values are set on the one config class
    help_text = " ".join(make_parser().format_help().split())  # argparse wraps lines
    assert "--toy_margin" in help_text and "margin subtracted from each positive" in help_text
    assert "objectives registered outside hncse: toy" in help_text
    with pytest.raises(ConfigError, match=r"^--toy_margin must be ≥ 0, got -1.0$"):
        parse_args(["--train_file", str(corpus_file), "--objective", "toy", "--toy_margin", "-1"])


def test_unregistered_objective_is_gone(corpus_file):
    register(TOY)
    unregister("toy")
    assert "toy_margin" not in {f.name for f in dataclasses.fields(HNCSEConfig)}
    with pytest.raises(ConfigError, match=r"^unknown argument --toy_margin"):
        parse_args(["--train_file", str(corpus_file), "--toy_margin", "0.3"])
    with pytest.raises(ConfigError, match=r"--objective: unknown value 'toy'; choose one of simcse, pm, hnm"):
        parse_args(["--train_file", str(corpus_file), "--objective", "toy"])


def test_two_step_run_writes_its_parameters_into_run_config_and_card(
    toy, tiny_model_dir, corpus_file, senteval_dir, tmp_path
):
    out = tmp_path / "toy-run"
    argv = base_argv(tiny_model_dir, corpus_file, senteval_dir, out)
    hncse.train.main([*argv, "--objective", "toy", "--toy_margin", "0.3", "--max_steps", "2"])

    settings = json.loads((out / "checkpoint-2" / "run_config.json").read_text())
    assert settings["objective"] == "toy" and settings["toy_margin"] == 0.3
    assert "toy_log_every" not in settings  # same_run=False: another value may resume this run
    assert settings["temperature"] == 0.05 and "pm_theta" in settings  # the built-ins' are still there

    card = (out / "README.md").read_text()
    assert "- Objective: `toy` — Toy: InfoNCE with an additive margin on the positive." in card
    assert "| toy_margin | 0.3 |" in card and TOY_BIBTEX in card and "gao2021simcse" in card
    assert "- toy\n" in card  # the objective's tag in the YAML header

    logged = [
        entry for entry in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in entry
    ]
    assert len(logged) == 2 and all("toy_gap" in entry for entry in logged)


def test_a_parameter_declared_twice_must_agree():
    @dataclass
    class Hotter(ContrastiveParams):
        temperature: float = hyperparameter(0.1, "another default for a shared parameter")

    clash = Objective("hot", MarginLoss, Hotter, (), "clash")
    with pytest.raises(TypeError, match="parameter 'temperature'"):
        register(clash)
    assert "hot" not in OBJECTIVES


def test_a_statistic_declared_twice_must_agree():
    """One name, one line: the training curves draw a statistic once, with one label."""
    relabelled = Statistic("sim_positive", "another label")
    clash = Objective("relabel", MarginLoss, MarginParams, (relabelled,), "clash")
    with pytest.raises(TypeError, match="statistic 'sim_positive'"):
        register(clash)
    assert "relabel" not in OBJECTIVES
    with pytest.raises(TypeError, match=r"statistics must be Statistic\(name, label\), got 'toy_gap'"):
        Objective("names_only", MarginLoss, MarginParams, ("toy_gap",), "a name without a label")


@pytest.mark.parametrize("name", ["simcse", "pm", "hnm", "hybrid", "hybrid_sum"])
def test_each_builtin_objective_logs_what_it_declares(name):
    objective = OBJECTIVES[name]
    defaults = objective.params()  # every built-in has defaults for all its parameters
    loss = objective.build(defaults, seed=0)
    torch.manual_seed(0)
    z1, z2 = torch.randn(12, 8), torch.randn(12, 8)
    _, stats = loss(z1, z2)
    assert tuple(stats) == tuple(statistic.name for statistic in objective.statistics)
    assert loss.get_config_dict()["objective"] == name
