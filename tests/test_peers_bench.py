"""bench.results.peers, the peers of the ablation's hncse rows in sentence-transformers' trainer, end to end on the
tiny random BERT (2 steps, offline): the record's fields, the loss options reaching the loss object, the schedule
copied from hncse's config, the training order checked against hncse's sampler, the table, and a rerun that skips a
finished run. The head row's Dense starts from the weights hncse's head gets under the same seed, and the batches hold
the token ids hncse's tokenisation and collator give."""

from __future__ import annotations

import json

import pytest
import torch
from datasets import Dataset
from transformers import DataCollatorWithPadding, set_seed

import bench.results.peers as peers
from hncse.data import tokenize_sentences
from hncse.modeling import SentenceEncoder

FEATURES = ("input_ids", "attention_mask", "token_type_ids")


@pytest.fixture
def argv(tiny_model_dir, corpus_file, senteval_dir, tmp_path):
    return [
        "--seeds", "7", "--max_train_samples", "16", "--batch_size", "8", "--max_seq_length", "16",
        "--model", str(tiny_model_dir), "--corpus", str(corpus_file), "--senteval", str(senteval_dir),
        "--results", str(tmp_path / "peers.jsonl"), "--ablation_results", str(tmp_path / "ablation.jsonl"),
        "--doc", str(tmp_path / "results.md"),
    ]  # fmt: skip


def test_a_peer_row_trains_scores_and_is_skipped_when_run_again(argv, tmp_path, monkeypatch):
    (tmp_path / "results.md").write_text(
        "# Results\n\n<!-- peers:start -->\nstale table\n<!-- peers:end -->\n\nafter\n"
    )
    hncse_row = {"objective": "simcse", "seed": 7, "stsb_dev": 50.0, "sickr_dev": 40.0, "train_seconds": 1.0,
                 "max_train_samples": 16}  # fmt: skip
    (tmp_path / "ablation.jsonl").write_text(json.dumps(hncse_row) + "\n")
    losses = []
    build_loss = peers.build_loss
    monkeypatch.setattr(peers, "build_loss", lambda *a: losses.append(build_loss(*a)) or losses[-1])

    peers.main([*argv, "--rows", "mnrl_hardness9"])

    (loss,) = losses
    assert type(loss).__name__ == "MultipleNegativesRankingLoss"
    assert loss.hardness_mode == "in_batch_negatives" and loss.hardness_strength == 9.0
    (record,) = [json.loads(line) for line in (tmp_path / "peers.jsonl").read_text().splitlines()]
    assert record["row"] == "mnrl_hardness9" and record["seed"] == 7 and record["steps"] == 2  # 16 sentences of 8
    assert record["loss_config"]["hardness_mode"] == "in_batch_negatives"
    assert record["loss_config"]["hardness_strength"] == 9.0 and record["loss_config"]["scale"] == 20.0
    assert record["modules"] == ["Transformer", "Pooling"] and record["scored_pooler"] == "cls_before_pooler"
    assert record["order_as_hncse"] is True  # the batches hncse's trainer draws with this seed
    assert record["train_max_seq_length"] == 16 and record["eval_max_seq_length"] == 64  # the tiny model's limit
    schedule = record["schedule"]
    assert schedule["learning_rate"] == 3e-5 and schedule["lr_scheduler_type"] == "linear"
    assert schedule["warmup_steps"] == 0 and schedule["weight_decay"] == 0.0 and schedule["seed"] == 7
    assert schedule["per_device_train_batch_size"] == 8 and schedule["dataloader_drop_last"] is True
    for key in ("stsb_dev", "sickr_dev"):
        assert -100.0 <= record[key] <= 100.0
    assert record["max_train_samples"] == 16 and record["train_logs"] == []  # logged every 10 steps, as hncse
    doc = (tmp_path / "results.md").read_text()
    assert "stale table" not in doc and doc.endswith("<!-- peers:end -->\n\nafter\n")
    assert "`python -m bench.results.peers --seeds 7 --rows mnrl_hardness9 --max_train_samples 16`" in doc
    assert "| MNRL hardness 9 (ST trainer) | cls | 1 |" in doc
    assert "| hncse simcse (HNCSETrainer, bench.results.ablation) | cls + head | 1 | 50.00 | 40.00 |" in doc

    def no_training(*args):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(peers, "train_one", no_training)
    peers.main([*argv, "--rows", "mnrl_hardness9"])
    assert len((tmp_path / "peers.jsonl").read_text().splitlines()) == 1
    assert (tmp_path / "results.md").read_text() == doc


def test_the_head_the_tokens_and_the_hncse_losses_are_hncse_s(tiny_model_dir, corpus_file):
    model, eval_length = peers.build_model(str(tiny_model_dir), 5, 16, head=True)
    assert [type(m).__name__ for m in model] == ["Transformer", "Pooling", "Dense"] and eval_length == 64
    assert model.max_seq_length == 16 and model[1].pooling_mode == "cls"
    set_seed(5)  # as build_model and bench.results.ablation do before building the model
    reference = SentenceEncoder.from_pretrained(str(tiny_model_dir), pooler_type="cls", mlp_only_train=True)
    assert torch.equal(model[2].linear.weight, reference.mlp[0].weight)
    assert torch.equal(model[2].linear.bias, reference.mlp[0].bias)
    assert isinstance(model[2].activation_function, torch.nn.Tanh)
    # The same token ids as hncse's training batches: its tokenisation (truncated) and collator (padded).
    sentences = corpus_file.read_text(encoding="utf-8").splitlines()[:8]
    data = tokenize_sentences(Dataset.from_dict({"text": sentences}), reference.tokenizer, 16)
    ours = DataCollatorWithPadding(reference.tokenizer)([{k: row[k] for k in FEATURES} for row in data])
    theirs = model.preprocess(sentences)
    assert all(torch.equal(ours[k], theirs[k]) for k in FEATURES)
    loss = peers.build_loss(peers.ROWS["hncse_hybrid_sum"], model, 5)
    assert type(loss).__name__ == "HNCSELoss" and loss.spec.name == "hybrid_sum"
    assert loss.get_config_dict()["objective"] == "hybrid_sum"
    plain = peers.build_loss(peers.ROWS["mnrl"], model, 5)
    assert plain.hardness_mode is None and plain.scale == 20.0
