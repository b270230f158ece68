"""Training on labelled triplets end to end: a 3-step run from a triplet CSV for every objective, the folder it
writes (sentence-transformers loads it with the head kept at inference), the cached step on triplets, and the
refusals that depend on the data's shape."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_run import base_argv

import hncse.train
from hncse.distributed import LocalBatch
from hncse.errors import ConfigError
from hncse.losses import HardNegativeMixingLoss, HybridLoss, HybridSumLoss, PositiveMixingLoss, SimCSELoss
from hncse.modeling import SentenceEncoder
from hncse.training.cached_contrastive import cached_contrastive_loss
from hncse.training.views import objective_loss, stacked_features

SUPERVISED = ["--pooler_type", "cls", "--mlp_only_train", "false"]  # SimCSE's supervised models keep the head


def test_three_step_supervised_run_from_a_triplet_csv(tiny_model_dir, triplet_file, senteval_dir, tmp_path, capsys):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "sup"
    argv = base_argv(tiny_model_dir, triplet_file, senteval_dir, out) + SUPERVISED + ["--hard_negative_weight", "0.5"]
    hncse.train.main(argv)
    printed = capsys.readouterr().out
    assert "training data: triplets (anchor: sent0, positive: sent1, hard negative: hard_neg)" in printed
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert all(e["sim_hardest_negative"] >= e["sim_negative"] for e in state["log_history"] if "loss" in e)
    run_config = json.loads((out / "run_config.json").read_text())
    assert run_config["hard_negative_weight"] == 0.5 and run_config["negative_columns"] is None
    card = (out / "README.md").read_text()
    assert "trained on labelled triplets" in card and "64 triplets" in card
    assert "| hard_negative_weight | 0.5 |" in card

    # sentence-transformers: the [CLS] vector through the Dense+tanh head, as our encoder at inference
    sentences = ["a man is playing a guitar .", "two dogs run in the park .", "the cat sits on the mat ."]
    ours = SentenceEncoder.from_pretrained(str(out))
    assert ours.uses_mlp_at_inference
    st = SentenceTransformer(str(out), device="cpu")
    assert [type(m).__name__ for m in st] == ["Transformer", "Pooling", "Dense"]
    st_vectors = st.encode(sentences, convert_to_tensor=True)
    torch.testing.assert_close(st_vectors, ours.encode(sentences), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("objective", ["pm", "hnm", "hybrid", "hybrid_sum"])
def test_each_hncse_objective_trains_on_triplets(tiny_model_dir, triplet_file, senteval_dir, tmp_path, objective):
    out = tmp_path / objective
    argv = base_argv(tiny_model_dir, triplet_file, senteval_dir, out) + SUPERVISED
    argv += ["--objective", objective, "--max_steps", "2", "--eval_strategy", "no", "--hnm_k", "4", "--hnm_s", "4"]
    argv += ["--pm_theta", "0.5", "--load_best_model_at_end", "false"]
    hncse.train.main(argv)
    logs = [e for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert len(logs) == 2 and all(torch.isfinite(torch.tensor(e["loss"])) for e in logs)
    if objective != "pm":
        assert all("sim_synthetic" in e for e in logs)


def test_pairs_from_a_triplet_file_and_the_shape_is_part_of_the_run(
    tiny_model_dir, triplet_file, senteval_dir, tmp_path, capsys
):
    out = tmp_path / "pairs"
    argv = base_argv(tiny_model_dir, triplet_file, senteval_dir, out) + ["--eval_strategy", "no", "--max_steps", "1"]
    argv += ["--load_best_model_at_end", "false"]
    hncse.train.main(argv + ["--anchor_column", "sent0", "--positive_column", "sent1"])
    assert "training data: pairs (anchor: sent0, positive: sent1)" in capsys.readouterr().out
    # the same folder with the triplets is another run
    with pytest.raises(ConfigError, match="anchor_column: 'sent0' → None"):
        hncse.train.main(argv + ["--max_steps", "2"])


def test_hard_negative_weight_needs_given_negatives(tiny_model_dir, corpus_file, senteval_dir, tmp_path):
    argv = base_argv(tiny_model_dir, corpus_file, senteval_dir, tmp_path / "out") + ["--hard_negative_weight", "1"]
    with pytest.raises(ConfigError, match=r"^--hard_negative_weight 1.0 weighs given hard negatives, and the data"):
        hncse.train.main(argv)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("checkpoint-*"))


class SentencesOnly(torch.nn.Module):
    """A plug-in objective written for sentences alone: its forward takes no `negatives`."""

    def __init__(self, temperature: float):
        super().__init__()
        self.temperature = temperature

    @classmethod
    def from_params(cls, params, seed=None):
        return cls(params.temperature)

    def forward(self, z1, z2, exchange=LocalBatch()):
        return SimCSELoss(self.temperature)(z1, z2, exchange=exchange)

    def get_config_dict(self):
        return {"objective": "sentences_only", "temperature": self.temperature}


def test_an_objective_without_negatives_is_refused_on_triplets(tiny_model_dir, triplet_file, senteval_dir, tmp_path):
    from hncse.losses import ContrastiveParams, Objective, register, unregister
    from hncse.losses.common import SIMILARITY_STATISTICS

    register(Objective("sentences_only", SentencesOnly, ContrastiveParams, SIMILARITY_STATISTICS, "test"))
    try:
        argv = base_argv(tiny_model_dir, triplet_file, senteval_dir, tmp_path / "out")
        argv += ["--objective", "sentences_only", "--eval_strategy", "no", "--load_best_model_at_end", "false"]
        with pytest.raises(ConfigError, match="--objective sentences_only takes no given hard negatives"):
            hncse.train.main(argv)
        hncse.train.main(argv + ["--anchor_column", "sent0", "--positive_column", "sent1", "--max_steps", "1"])
    finally:
        unregister("sentences_only")


def make_loss(objective: str):
    pm = PositiveMixingLoss(theta=1.0, ratio_grid_size=4, hard_negative_weight=0.2)
    hnm = HardNegativeMixingLoss(k=4, s=5, seed=3, hard_negative_weight=0.2)
    return {
        "simcse": SimCSELoss(hard_negative_weight=0.2),
        "pm": pm,
        "hnm": hnm,
        "hybrid": HybridLoss(pm, hnm),
        "hybrid_sum": HybridSumLoss(pm, hnm),
    }[objective]


@pytest.mark.parametrize("objective", ["simcse", "pm", "hnm", "hybrid", "hybrid_sum"])
def test_cached_step_on_triplets_equals_the_uncached_step(tiny_model_dir, triplet_file, objective):
    import csv

    encoder = SentenceEncoder.from_pretrained(str(tiny_model_dir), pooler_type="cls", hidden_dropout_prob=0.3)
    encoder.train()
    with open(triplet_file, encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:7]  # 6 triplets: 18 sentences
    batch = encoder.tokenizer([s for row in rows for s in row], padding=True, truncation=True, max_length=12)
    inputs = {k: torch.tensor(v).view(6, 3, -1) for k, v in batch.items()}  # (N, C, L), as ColumnsCollator gives
    features, columns = stacked_features(inputs)
    assert columns == 3 and features["input_ids"].shape[0] == 18
    mini = 5  # mini-batches 5, 5, 5, 3: anchors, positives and negatives spread over them

    torch.manual_seed(7)
    pieces = [encoder(**{k: v[i : i + mini] for k, v in features.items()}) for i in range(0, 18, mini)]
    reference, _ = objective_loss(make_loss(objective), torch.cat(pieces), columns, LocalBatch())
    reference.backward()
    expected = {n: p.grad.clone() for n, p in encoder.named_parameters() if p.grad is not None}
    encoder.zero_grad(set_to_none=True)

    torch.manual_seed(7)
    loss, _ = cached_contrastive_loss(encoder, features, make_loss(objective), mini, LocalBatch(), columns=columns)
    loss.backward()
    torch.testing.assert_close(loss.detach(), reference.detach(), atol=1e-6, rtol=1e-6)
    got = {n: p.grad for n, p in encoder.named_parameters() if p.grad is not None}
    assert got.keys() == expected.keys() and len(got) > 10
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-4, msg=name)
