"""HNCSE's objectives as sentence-transformers losses: on a fixed batch, seed and dropout state they give our
trainer's loss and gradients; 3-step `SentenceTransformerTrainer` runs with every objective on sentences and on
triplets; the cached variant equals the uncached one; the model card describes and cites them; 2 gloo processes × N
through sentence-transformers' trainer take the step of 1 process × 2N."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from launch_output import launch_failure

from hncse.distributed import LocalBatch
from hncse.errors import ConfigError
from hncse.modeling import SentenceEncoder
from hncse.st_losses import CachedHNCSELoss, HNCSELoss
from hncse.training.views import objective_loss, stacked_features

OBJECTIVES = ["simcse", "pm", "hnm", "hybrid", "hybrid_sum"]
PARAMS = {"pm_theta": 1.0, "hnm_k": 4, "hnm_s": 5, "hard_negative_weight": 0.0}
SENTENCES = ["a man is playing a guitar .", "a woman is slicing an onion .", "the cat sits on the mat .",
             "two dogs run in the park .", "a child is riding a horse .", "someone is cooking food ."]  # fmt: skip
TRIPLETS = [(s, " ".join(s.split()[:3]), SENTENCES[(i + 1) % len(SENTENCES)]) for i, s in enumerate(SENTENCES)]


@pytest.fixture(scope="module")
def folder(tiny_model_dir, tmp_path_factory):
    """The tiny model saved with mean pooling: sentence-transformers reads it as Transformer → Pooling (mean)."""
    path = tmp_path_factory.mktemp("st-folder")
    SentenceEncoder.from_pretrained(str(tiny_model_dir), pooler_type="avg", hidden_dropout_prob=0.2).save_pretrained(
        str(path)
    )
    return path


def st_model(folder):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu")
    model.train()
    return model


def loss_for(objective, model, cls=HNCSELoss, **extra):
    return cls(model, objective, seed=3, **{k: v for k, v in PARAMS.items() if k in fields(objective)}, **extra)


def fields(objective):
    import dataclasses

    from hncse.losses import get_objective

    return {f.name for f in dataclasses.fields(get_objective(objective).params)}


def grads(named_parameters, prefixes=("encoder.",)):
    """Gradients by the transformer's own parameter names (the wrapper's prefixes removed)."""
    out = {}
    for name, param in named_parameters:
        if param.grad is not None:
            for prefix in prefixes:
                name = name.removeprefix(prefix)
            out[name] = param.grad.clone()
    return out


ST_PREFIXES = ("0.model.", "0.auto_model.")  # sentence-transformers 6 / 5 name the Transformer's model so


@pytest.mark.parametrize("shape", ["sentences", "triplets"])
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_the_loss_and_gradients_equal_our_trainers(folder, objective, shape):
    model = st_model(folder)
    rows = SENTENCES if shape == "sentences" else TRIPLETS
    columns = [[r] for r in rows] if shape == "sentences" else rows
    st_features = [model.preprocess([row[c] for row in columns]) for c in range(len(columns[0]))]

    torch.manual_seed(11)  # the dropout state
    loss = loss_for(objective, model)(st_features, None)
    loss.backward()
    ours_st = grads(model.named_parameters(), ST_PREFIXES)

    encoder = SentenceEncoder.from_pretrained(str(folder), hidden_dropout_prob=0.2).train()
    tokenizer = encoder.tokenizer
    if shape == "sentences":
        inputs = dict(tokenizer(SENTENCES, padding=True, return_tensors="pt"))  # what DataCollatorWithPadding gives
    else:
        flat = tokenizer([s for row in rows for s in row], padding=True, return_tensors="pt")
        inputs = {k: v.view(len(rows), 3, -1) for k, v in flat.items()}  # what ColumnsCollator gives
    features, count = stacked_features(inputs)
    torch.manual_seed(11)
    reference, _ = objective_loss(loss_for(objective, model).objective, encoder(**features), count, LocalBatch())
    reference.backward()
    trainer_side = grads(encoder.named_parameters())

    torch.testing.assert_close(loss.detach(), reference.detach(), atol=1e-6, rtol=1e-6)
    assert ours_st.keys() == trainer_side.keys() and len(ours_st) > 10
    for name, value in trainer_side.items():
        torch.testing.assert_close(ours_st[name], value, atol=1e-6, rtol=1e-5, msg=name)


@pytest.mark.parametrize("objective", ["simcse", "hnm", "hybrid_sum"])
def test_the_cached_loss_equals_the_uncached_one(folder, objective):
    model = st_model(folder)
    st_features = [model.preprocess([row[c] for row in TRIPLETS]) for c in range(3)]
    uncached = loss_for(objective, model)
    features, columns = uncached.stacked(st_features)
    torch.manual_seed(5)  # the uncached step with the dropout masks of mini-batches of 4
    pieces = [model({k: v[i : i + 4] for k, v in features.items()})["sentence_embedding"] for i in range(0, 18, 4)]
    reference, _ = objective_loss(uncached.objective, torch.cat(pieces), columns, LocalBatch())
    reference.backward()
    expected = grads(model.named_parameters(), ST_PREFIXES)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(5)
    loss = loss_for(objective, model, CachedHNCSELoss, mini_batch_size=4)(st_features, None)
    loss.backward()
    torch.testing.assert_close(loss.detach(), reference.detach(), atol=1e-6, rtol=1e-6)
    for name, value in expected.items():
        got = grads(model.named_parameters(), ST_PREFIXES)[name]
        torch.testing.assert_close(got, value, atol=1e-5, rtol=1e-4, msg=name)


def test_parameters_are_checked_like_the_flags(folder):
    model = st_model(folder)
    with pytest.raises(ConfigError, match="--hnm_k must be ≥ 2"):
        HNCSELoss(model, "hnm", hnm_k=1)
    with pytest.raises(TypeError, match="has no parameter hnm_k"):
        HNCSELoss(model, "simcse", hnm_k=4)
    with pytest.raises(ConfigError, match="objective: unknown value 'nope'"):
        HNCSELoss(model, "nope")


@pytest.mark.parametrize("shape", ["sentences", "triplets"])
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_three_steps_of_sentence_transformers_trainer(folder, tmp_path, objective, shape):
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    model = st_model(folder)
    rows = SENTENCES * 4
    data = {"text": rows} if shape == "sentences" else {
        "anchor": [r[0] for r in TRIPLETS * 4], "positive": [r[1] for r in TRIPLETS * 4],
        "negative": [r[2] for r in TRIPLETS * 4],
    }  # fmt: skip
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "run"), per_device_train_batch_size=6, max_steps=3, learning_rate=1e-3,
        logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, seed=1, disable_tqdm=True,
    )  # fmt: skip
    dataset, loss = Dataset.from_dict(data), loss_for(objective, model)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
    trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())
    assert "sim_positive" in loss.last_statistics and "sim_hardest_negative" in loss.last_statistics
    if objective == "hybrid_sum" and shape == "triplets":  # the card describes the loss and cites HNCSE
        model.save_pretrained(str(tmp_path / "saved"))
        card = (tmp_path / "saved" / "README.md").read_text(encoding="utf-8")
        assert "HNCSELoss" in card and '"hnm_k": 4' in card and "2411.12156" in card


GLOBAL_BATCH_OBJECTIVES = ["simcse", "pm", "hybrid_sum"]
WORKER = r"""
import json, os, sys
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from hncse.st_losses import HNCSELoss

folder, out, objectives, batch = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
rows = json.loads(sys.argv[5])
data = Dataset.from_dict({name: [r[i] for r in rows] for i, name in enumerate(("anchor", "positive", "negative"))})
for objective in objectives:  # one launch for all: each objective starts from the saved folder
    model = SentenceTransformer(folder, device="cpu")
    args = SentenceTransformerTrainingArguments(
        output_dir=out, per_device_train_batch_size=batch, max_steps=1, learning_rate=0.1, optim="sgd",
        save_strategy="no", report_to="none", use_cpu=True, seed=1, disable_tqdm=True, logging_steps=1,
        dataloader_drop_last=True,
    )
    params = {"hnm_k": 2, "hnm_s": 3} if objective in ("hnm", "hybrid_sum") else {}  # k = 2: one pair, order-free
    loss = HNCSELoss(model, objective, gather_across_devices=True, **params)
    SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=loss).train()
    if int(os.environ.get("RANK", "0")) == 0:
        torch.save({n: p.detach() for n, p in model.named_parameters()}, os.path.join(out, f"{objective}.pt"))
if torch.distributed.is_initialized():  # leave the group together: exiting with it open can abort a process
    torch.distributed.barrier()  # in its communication threads' teardown ("terminate called without an active
    torch.distributed.destroy_process_group()  # exception", seen on busy CPUs; as run_hncse.py does)
"""


@pytest.fixture(scope="module")
def global_batch_steps(folder, tmp_path_factory):
    """(the dropout-free folder's weights, {processes: {objective: weights after one step}}): 1 process × 8
    triplets and 2 gloo processes × 4, one torchrun launch each for all of GLOBAL_BATCH_OBJECTIVES."""
    from hncse.modeling import SentenceEncoder

    root = tmp_path_factory.mktemp("st-global-batch")
    plain = root / "no-dropout"
    SentenceEncoder.from_pretrained(
        str(folder), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    ).save_pretrained(str(plain))
    script = root / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    rows = json.dumps([list(t) for t in TRIPLETS + TRIPLETS[::-1][:2]])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    weights = {}
    for processes, batch in ((1, 8), (2, 4)):
        out = root / f"p{processes}"
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                   "--standalone", str(script), str(plain), str(out), json.dumps(GLOBAL_BATCH_OBJECTIVES),
                   str(batch), rows]  # fmt: skip
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, launch_failure(done)
        weights[processes] = {o: torch.load(out / f"{o}.pt") for o in GLOBAL_BATCH_OBJECTIVES}
    start = {name: p.detach() for name, p in st_model(plain).named_parameters()}
    return start, weights


@pytest.mark.parametrize("objective", GLOBAL_BATCH_OBJECTIVES)
def test_two_processes_take_the_step_of_one_with_the_global_batch(global_batch_steps, objective):
    """One step through SentenceTransformerTrainer: 2 gloo processes × 4 triplets (negatives gathered across
    processes) against 1 process × 8. The objectives are taken where the order of the global batch does not matter
    (HNM with k = 2 has one pair to draw); dropout is off."""
    start, weights = global_batch_steps
    moved = 0
    for name, value in weights[1][objective].items():
        torch.testing.assert_close(weights[2][objective][name], value, atol=1e-5, rtol=1e-4, msg=name)
        moved += not torch.equal(value, start[name])
    assert moved > 10


def test_the_documented_example_runs(folder, tmp_path, monkeypatch):
    """docs/sentence-transformers.md's example, on the tiny model and a small triplet set instead of the Hub's."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "sentence-transformers.md").read_text(encoding="utf-8")
    section = doc[doc.index("# In sentence-transformers' own trainer") :]
    start = section.index("```python\n") + len("```python\n")
    code = section[start : section.index("\n```", start)]
    replacements = {
        '"sentence-transformers/all-MiniLM-L6-v2"': repr(str(folder)),
        'load_dataset("sentence-transformers/all-nli", "triplet", split="train[:10000]")': "SMALL",
        "per_device_train_batch_size=64": "per_device_train_batch_size=6, use_cpu=True, report_to='none'",
    }
    for old, new in replacements.items():
        assert old in code, old
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    from datasets import Dataset

    small = Dataset.from_dict(
        {name: [r[i] for r in TRIPLETS * 2] for i, name in enumerate(("anchor", "positive", "negative"))}
    )
    exec(compile(code, "docs/sentence-transformers.md", "exec"), {"SMALL": small})
    assert (tmp_path / "outputs" / "st-hybrid_sum" / "final" / "README.md").is_file()


def test_the_documented_import_path_is_the_training_module():
    import hncse.st_losses
    import hncse.training.st_losses

    assert hncse.st_losses.HNCSELoss is hncse.training.st_losses.HNCSELoss
    assert hncse.st_losses.CachedHNCSELoss is hncse.training.st_losses.CachedHNCSELoss


def test_no_columns_or_ragged_columns_are_one_line():
    import torch

    from hncse.training.st_losses import stacked_columns

    with pytest.raises(ValueError, match="HNCSELoss got no text column"):
        stacked_columns([])
    column = {"input_ids": torch.ones(4, 3, dtype=torch.long), "attention_mask": torch.ones(4, 3, dtype=torch.long)}
    short = {k: v[:3] for k, v in column.items()}
    with pytest.raises(ValueError, match=r"HNCSELoss got columns of different lengths \[4, 3\]"):
        stacked_columns([column, short])
