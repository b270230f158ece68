"""Cached contrastive step (--mini_batch_size): same loss and gradients as the uncached step, dropout included."""

from __future__ import annotations

import json

import pytest
import torch

import hncse.train
from hncse.distributed import LocalBatch
from hncse.losses import HardNegativeMixingLoss, HybridLoss, PositiveMixingLoss, SimCSELoss
from hncse.modeling import SentenceEncoder
from hncse.training.cached_contrastive import cached_contrastive_loss

SENTENCES = [
    "a man is playing a guitar .",
    "a woman is slicing an onion .",
    "the cat sits on the mat .",
    "two dogs run in the park .",
    "a child is riding a horse .",
    "someone is cooking food .",
    "a man plays an instrument .",
    "the sun is shining .",
]


def make_loss(objective: str):
    pm = PositiveMixingLoss(theta=1.0, ratio_grid_size=4)
    hnm = HardNegativeMixingLoss(k=4, s=5, seed=3)
    return {"simcse": SimCSELoss(), "pm": pm, "hnm": hnm, "hybrid": HybridLoss(pm, hnm)}[objective]


def doubled_batch(encoder) -> dict[str, torch.Tensor]:
    batch = encoder.tokenizer(SENTENCES, padding=True, return_tensors="pt")
    return {k: torch.cat([v, v]) for k, v in batch.items()}


def gradients(encoder) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in encoder.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("objective", ["simcse", "pm", "hnm", "hybrid"])
def test_cached_step_equals_the_uncached_step_with_the_same_dropout(tiny_model_dir, objective):
    encoder = SentenceEncoder.from_pretrained(str(tiny_model_dir), pooler_type="cls", hidden_dropout_prob=0.3)
    encoder.train()
    features = doubled_batch(encoder)
    mini = 5  # 16 rows → mini-batches of 5, 5, 5, 1; the two views of a sentence land in different ones

    torch.manual_seed(123)
    pieces = [encoder(**{k: v[i : i + mini] for k, v in features.items()}) for i in range(0, 16, mini)]
    z1, z2 = torch.cat(pieces).chunk(2)
    reference, _ = make_loss(objective)(z1, z2)
    (0.5 * reference).backward()  # 0.5: a gradient-accumulation scale must flow through the cache as well
    expected = gradients(encoder)
    expected_rng = torch.get_rng_state()
    encoder.zero_grad(set_to_none=True)

    torch.manual_seed(123)
    loss, _ = cached_contrastive_loss(encoder, features, make_loss(objective), mini, LocalBatch())
    (0.5 * loss).backward()
    torch.testing.assert_close(loss.detach(), reference.detach(), atol=1e-6, rtol=1e-6)
    got = gradients(encoder)
    assert got.keys() == expected.keys() and len(got) > 10
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-4, msg=name)
    assert torch.equal(torch.get_rng_state(), expected_rng)  # the random stream continues as without caching


def test_without_dropout_it_equals_one_forward_over_the_whole_batch(tiny_model_dir):
    encoder = SentenceEncoder.from_pretrained(
        str(tiny_model_dir), pooler_type="cls", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    encoder.train()
    features = doubled_batch(encoder)
    z1, z2 = encoder(**features).chunk(2)
    reference, _ = make_loss("hybrid")(z1, z2)
    reference.backward()
    expected = gradients(encoder)
    encoder.zero_grad(set_to_none=True)
    loss, _ = cached_contrastive_loss(encoder, features, make_loss("hybrid"), 3, LocalBatch())
    loss.backward()
    torch.testing.assert_close(loss.detach(), reference.detach(), atol=1e-5, rtol=1e-5)
    for name, grad in gradients(encoder).items():
        torch.testing.assert_close(grad, expected[name], atol=1e-5, rtol=1e-4, msg=name)


def test_training_with_mini_batches_accumulation_and_checkpointing(tiny_model_dir, corpus_file, tmp_path):
    out = tmp_path / "cached"
    argv = [
        "--model_name_or_path", str(tiny_model_dir), "--train_file", str(corpus_file), "--output_dir", str(out),
        "--per_device_train_batch_size", "16", "--mini_batch_size", "8", "--max_steps", "3", "--logging_steps", "1",
        "--eval_strategy", "no", "--load_best_model_at_end", "false", "--objective", "hnm", "--hnm_k", "4",
        "--dataloader_pin_memory", "false", "--disable_tqdm", "true", "--gradient_accumulation_steps", "2",
        "--activation_checkpointing", "true",  # recomputation inside the replayed mini-batches
    ]  # fmt: skip
    hncse.train.main(argv)
    losses = [e["loss"] for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert len(losses) == 3 and all(0 < loss < 20 for loss in losses)


def test_mini_batch_size_must_be_positive(tiny_model_dir, corpus_file, tmp_path):
    from hncse.errors import ConfigError

    with pytest.raises(ConfigError, match="--mini_batch_size must be ≥ 1"):
        hncse.train.main(["--train_file", str(corpus_file), "--output_dir", str(tmp_path), "--mini_batch_size", "0"])


@pytest.mark.parametrize("flag", ["--activation_checkpointing", "--gradient_checkpointing"])
def test_either_checkpointing_flag_turns_it_on_in_training(flag, tiny_model_dir, corpus_file, tmp_path, monkeypatch):
    """transformers 5.23 renamed --gradient_checkpointing to --activation_checkpointing: both names work on every
    supported release (the config adds the new one before 5.23), and the encoder recomputes its layers."""
    from hncse.modeling import SentenceEncoder

    checkpointing = []
    enable = SentenceEncoder.activation_checkpointing_enable

    def recorded(self, *args, **kwargs):
        enable(self, *args, **kwargs)
        checkpointing.append(self.encoder.is_gradient_checkpointing)

    monkeypatch.setattr(SentenceEncoder, "activation_checkpointing_enable", recorded)
    argv = [
        "--model_name_or_path", str(tiny_model_dir), "--train_file", str(corpus_file), "--output_dir", str(tmp_path),
        "--per_device_train_batch_size", "8", "--max_steps", "1", "--eval_strategy", "no",
        "--load_best_model_at_end", "false", "--dataloader_pin_memory", "false", "--disable_tqdm", "true",
        flag, "true",
    ]  # fmt: skip
    hncse.train.main(argv)
    assert checkpointing == [True]
