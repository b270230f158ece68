"""The evaluator protocol: a kind of evaluation set defined in this file alone, plus one `register_evaluator`, is
named by `--eval_tasks`, picks the best checkpoint, and shows in the trainer's log, the run's table and the card."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from tiny_run import base_argv

import hncse.train
from hncse.errors import ConfigError
from hncse.evaluation import EVALUATORS, Evaluator, EvaluatorSpec, register_evaluator
from hncse.evaluation.evaluator import RESULT_KINDS
from hncse.modeling import SentenceEncoder


class CohesionEvaluator(Evaluator):
    """A toy set: 100 × the mean cosine over all pairs of distinct sentences of a list."""

    group = "toy"

    def __init__(self, sentences: list[str]):
        super().__init__("Cohesion", "cohesion")
        self.texts = sentences

    def sentences(self) -> list[str]:
        return self.texts

    def score(self, lookup, mode, options) -> dict:
        z = F.normalize(lookup(self.texts), dim=-1)
        off_diagonal = ~torch.eye(len(z), dtype=torch.bool)
        return {"mean_cosine": 100 * float((z @ z.T)[off_diagonal].mean()), "sentences": len(z)}

    def metrics(self, entry, mode) -> dict[str, float]:
        return {"cohesion_score": entry["mean_cosine"]}


def naive_cohesion(encoder: SentenceEncoder, sentences: list[str]) -> float:
    vectors = [F.normalize(v, dim=0) for v in encoder.encode(sentences)]
    cosines = [float(vectors[i] @ vectors[j]) for i in range(len(vectors)) for j in range(len(vectors)) if i != j]
    return 100 * sum(cosines) / len(cosines)


@pytest.fixture
def cohesion_sentences(corpus_file):
    sentences = corpus_file.read_text(encoding="utf-8").splitlines()[:12]
    spec = EvaluatorSpec(
        name="Cohesion",
        short_name="cohesion",
        kind=CohesionEvaluator,
        load=lambda split, data_dir, flag: CohesionEvaluator(sentences),
        main_metric="cohesion_score",
    )
    register_evaluator(spec)
    yield sentences
    EVALUATORS.pop("Cohesion")
    RESULT_KINDS.remove(CohesionEvaluator)


def test_a_registered_evaluator_is_logged_selects_the_best_and_shows_in_the_table_and_the_card(
    cohesion_sentences, tiny_model_dir, corpus_file, senteval_dir, tmp_path, capsys
):
    out = tmp_path / "run"
    argv = base_argv(tiny_model_dir, corpus_file, senteval_dir, out) + [
        "--eval_tasks", "stsb", "cohesion",
        "--metric_for_best_model", "cohesion_score", "--greater_is_better", "false",
    ]  # fmt: skip
    hncse.train.main(argv)
    printed = capsys.readouterr().out

    state = json.loads((out / "trainer_state.json").read_text())
    evals = [e for e in state["log_history"] if "eval_cohesion_score" in e]
    assert [e["step"] for e in evals[:4]] == [0, 1, 2, 3] and all("eval_stsb_spearman" in e for e in evals)
    best = min(evals[1:4], key=lambda e: e["eval_cohesion_score"])
    assert state["best_metric"] == best["eval_cohesion_score"]
    assert state["best_model_checkpoint"].endswith(f"checkpoint-{best['step']}")

    # The output folder holds the best checkpoint: its cohesion, computed naively, is the logged best.
    encoder = SentenceEncoder.from_pretrained(str(out))
    assert naive_cohesion(encoder.eval(), cohesion_sentences) == pytest.approx(best["eval_cohesion_score"], abs=1e-3)

    assert "| model | stsb | cohesion |" in printed and "Dev scores x100" in printed
    # The final evaluation is of the kept weights: the best step's scores again.
    final = f"| after training (best checkpoint) | {best['eval_stsb_spearman']:.2f} | "
    assert final + f"{best['eval_cohesion_score']:.2f} |" in printed
    card = (out / "README.md").read_text(encoding="utf-8")
    assert f"| eval_cohesion_score | {best['eval_cohesion_score']:.2f} |" in card


def test_an_unregistered_name_and_a_metric_no_set_produces_are_refused(cohesion_sentences, tiny_model_dir, tmp_path):
    from hncse.parser import parse_args
    from hncse.training.preflight import check_arguments

    common = ["--model_name_or_path", str(tiny_model_dir), "--train_file", "x.txt", "--output_dir", str(tmp_path)]
    with pytest.raises(ConfigError, match="--eval_tasks: unknown task 'coherence'; choose from .*cohesion"):
        check_arguments(*parse_args(common + ["--eval_tasks", "coherence"])[1:])
    with pytest.raises(ConfigError, match="choose one of cohesion_score"):
        check_arguments(*parse_args(common + ["--eval_tasks", "cohesion"])[1:])
    _, data_args, args = parse_args(common + ["--eval_tasks", "cohesion", "--metric_for_best_model", "cohesion_score"])
    assert check_arguments(data_args, args).dev_tasks == ["Cohesion"]
