"""Negatives across processes: 2 processes × N sentences give the loss and gradients of 1 process × 2N.

Two gloo processes (CPU) each hold half of fixed float64 views; the objective gathers the second views (and
PM's mixed positives) from both, with gradients flowing back. Since DDP averages gradients over processes, the
reference is: mean of the two local losses = the single-process loss over 2N, and half of each process's
gradient on its own rows = the single-process gradient on those rows.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hncse.distributed import GlobalBatch, LocalBatch, batch_exchange
from hncse.losses import HardNegativeMixingLoss, HybridLoss, HybridSumLoss, PositiveMixingLoss, SimCSELoss

WORLD = 2
N, DIM = 6, 8


def make_loss(objective: str):
    # θ = 1 puts many anchors in case A; ratio searched; a weight on each anchor's own given negatives
    pm = PositiveMixingLoss(theta=1.0, ratio_grid_size=5, hard_negative_weight=0.3)
    hnm = HardNegativeMixingLoss(k=4, s=6, seed=7, hard_negative_weight=0.3)
    return {
        "simcse": SimCSELoss(hard_negative_weight=0.3),
        "pm": pm,
        "hnm": hnm,
        "hybrid": HybridLoss(pm, hnm),
        "hybrid_sum": HybridSumLoss(pm, hnm, 0.5),
    }[objective]


def views() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Anchors, positives and, for the triplet runs, two given hard negatives per row."""
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(WORLD * N, DIM, generator=g, dtype=torch.float64)
    z2 = z1 + 0.6 * torch.randn(WORLD * N, DIM, generator=g, dtype=torch.float64)  # positives close to anchors
    negatives = z1[:, None] + 0.9 * torch.randn(WORLD * N, 2, DIM, generator=g, dtype=torch.float64)
    return z1, z2, negatives


SHAPES = ("views", "triplets")  # without / with given hard negatives


def worker(rank: int, init_file: str, out_dir: str, objectives: list[str]) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        exchange = batch_exchange(True)
        assert isinstance(exchange, GlobalBatch)
        # batches of different sizes gather in rank order
        gathered, offset = exchange.gather(torch.full((rank + 2, 1), float(rank)))
        assert gathered.squeeze(1).tolist() == [0.0, 0.0, 1.0, 1.0, 1.0] and offset == 2 * rank
        z1_all, z2_all, negatives_all = views()
        rows = slice(rank * N, (rank + 1) * N)
        results = {}
        for objective, equal_sizes, shape in itertools.product(objectives, (False, True), SHAPES):
            z1 = z1_all[rows].clone().requires_grad_()
            z2 = z2_all[rows].clone().requires_grad_()
            negatives = negatives_all[rows].clone().requires_grad_() if shape == "triplets" else None
            exchange = batch_exchange(True, equal_sizes)
            loss, _ = make_loss(objective)(z1, z2, exchange=exchange, negatives=negatives)
            loss.backward()
            results[objective, equal_sizes, shape] = (loss.detach(), z1.grad, z2.grad, negatives_grad(negatives))
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


OBJECTIVES = ["simcse", "pm", "hnm", "hybrid", "hybrid_sum"]


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("global-negatives")
    mp.spawn(worker, args=(str(out / "init"), str(out), OBJECTIVES), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


def negatives_grad(negatives):
    return None if negatives is None else negatives.grad


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("equal_sizes", [False, True], ids=["sizes exchanged", "equal sizes"])
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_two_processes_equal_one_process_with_the_global_batch(two_process_results, objective, equal_sizes, shape):
    z1_all, z2_all, negatives_all = views()
    z1, z2 = z1_all.clone().requires_grad_(), z2_all.clone().requires_grad_()
    negatives = negatives_all.clone().requires_grad_() if shape == "triplets" else None
    loss, _ = make_loss(objective)(z1, z2, exchange=LocalBatch(), negatives=negatives)
    loss.backward()
    losses = torch.stack([two_process_results[r][objective, equal_sizes, shape][0] for r in range(WORLD)])
    torch.testing.assert_close(losses.mean(), loss.detach(), atol=1e-5, rtol=0)
    for r in range(WORLD):
        _, g1, g2, g3 = two_process_results[r][objective, equal_sizes, shape]
        rows = slice(r * N, (r + 1) * N)
        torch.testing.assert_close(g1 / WORLD, z1.grad[rows], atol=1e-5, rtol=0)
        torch.testing.assert_close(g2 / WORLD, z2.grad[rows], atol=1e-5, rtol=0)
        if negatives is not None:  # the given negatives' gradients reach the process that holds them
            torch.testing.assert_close(g3 / WORLD, negatives.grad[rows], atol=1e-5, rtol=0)


def test_without_a_process_group_the_batch_is_local():
    assert isinstance(batch_exchange(True), LocalBatch) and isinstance(batch_exchange(False), LocalBatch)


SENTENCES = ["a man is playing a guitar .", "a woman is slicing an onion .", "the cat sits on the mat .",
             "two dogs run in the park .", "a child is riding a horse .", "someone is cooking food .",
             "a man plays an instrument .", "the sun is shining ."]  # fmt: skip


def tiny_encoder(model_dir: str):
    from hncse.modeling import SentenceEncoder

    encoder = SentenceEncoder.from_pretrained(
        model_dir, pooler_type="avg", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    return encoder.train()


def doubled(encoder, sentences):
    batch = encoder.tokenizer(sentences, padding="max_length", max_length=12, return_tensors="pt")
    return {k: torch.cat([v, v]) for k, v in batch.items()}


def cached_worker(rank: int, init_file: str, out_dir: str, model_dir: str) -> None:
    from hncse.training.cached_contrastive import average_gradients, cached_contrastive_loss

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        encoder = tiny_encoder(model_dir)
        half = len(SENTENCES) // WORLD
        features = doubled(encoder, SENTENCES[rank * half : (rank + 1) * half])
        loss, _ = cached_contrastive_loss(
            encoder, features, make_loss("hybrid"), 3, GlobalBatch(), lambda: average_gradients(encoder)
        )
        loss.backward()
        grads = {n: p.grad for n, p in encoder.named_parameters() if p.grad is not None}
        torch.save({"loss": loss.detach(), "grads": grads}, os.path.join(out_dir, f"cached{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_cached_step_on_two_processes_equals_one_process(tiny_model_dir, tmp_path):
    """--mini_batch_size with DDP: gathered negatives, mini-batch replay, then gradients averaged over processes."""
    mp.spawn(cached_worker, args=(str(tmp_path / "init"), str(tmp_path), str(tiny_model_dir)), nprocs=WORLD)
    results = [torch.load(tmp_path / f"cached{r}.pt") for r in range(WORLD)]
    encoder = tiny_encoder(str(tiny_model_dir))
    z1, z2 = encoder(**doubled(encoder, SENTENCES)).chunk(2)
    loss, _ = make_loss("hybrid")(z1, z2)
    loss.backward()
    torch.testing.assert_close(torch.stack([r["loss"] for r in results]).mean(), loss.detach(), atol=1e-5, rtol=0)
    for name, param in encoder.named_parameters():
        if param.grad is None:
            continue
        for r in range(WORLD):  # averaged, so every process holds the single-process gradient
            torch.testing.assert_close(results[r]["grads"][name], param.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_the_suite_sees_no_gpu():
    """On a machine with GPUs the tests still run on CPU: conftest hides CUDA devices from this process and from
    every process it starts (torchrun, DeepSpeed)."""
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "" and not torch.cuda.is_available()
    code = "import os, torch; print(repr(os.environ['CUDA_VISIBLE_DEVICES']), torch.cuda.device_count())"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert child.stdout.split() == ["''", "0"]
