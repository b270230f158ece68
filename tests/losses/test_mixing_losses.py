"""PM, HNM, hybrid and hybrid_sum against the naive per-row versions: values and gradients in float64."""

import logging
import math

import pytest
import torch
from naive_losses import assert_same, draws, hnm_loss, info_nce, pm_positives, pm_ratio_search

from hncse.losses import HardNegativeMixingLoss, HybridLoss, HybridSumLoss, PositiveMixingLoss

THETA, W1, W2, TAU = 0.1, 1.0, 0.5, 0.05


def unit(degrees, scale=1.0):
    r = math.radians(degrees)
    return [scale * math.cos(r), scale * math.sin(r)]


def batch_from_angles(anchors, views, scales=None):
    """2-D vectors at the given angles (scaled, to check that only directions matter); float64, requires grad."""
    scales = scales or [1.0] * len(views)
    z1 = torch.tensor([unit(a, 1.0 + 0.3 * i) for i, a in enumerate(anchors)], dtype=torch.float64)
    z2 = torch.tensor([unit(a, s) for a, s in zip(views, scales)], dtype=torch.float64)
    return z1.requires_grad_(), z2.requires_grad_()


# Anchor 0's case is fixed by the angles: p = cos(view_0), n = cos(closest other view).
CASE_BATCHES = {
    "A": ([0, 150, 260], [10, 20, 200]),  # p .985, n .940: (p-n)/p = .046 ≤ θ
    "B": ([0, 150, 260], [10, 80, 200]),  # p .985, n .174: clearly ahead
    "C": ([0, 150, 260], [30, 10, 200]),  # p .866 < n .985
    "p<=0": ([0, 150, 260], [100, 120, 180]),  # p -.17 > n -.5, but p ≤ 0: not case A
    "p+n=0": ([0, 150, 260], [120, 60, 200]),  # p = -.5 ≤ n = .5: case C with p + n = 0 (guarded)
}
EXPECTED_CASE = {"A": 0, "B": 1, "C": 2, "p<=0": 1, "p+n=0": 2}


def random_batch(n, d, seed, duplicate=False):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, dtype=torch.float64, generator=g)
    z2 = z1 + 0.8 * torch.randn(n, d, dtype=torch.float64, generator=g)  # positives near anchors, all cases occur
    if duplicate:  # the same sentence twice in the batch: duplicate anchors and views, tied similarities
        z1[1], z2[1] = z1[0], z2[0]
        z2[3] = z2[2]
    return z1.requires_grad_(), z2.requires_grad_()


@pytest.mark.parametrize("name", list(CASE_BATCHES))
@pytest.mark.parametrize("detach", [True, False])
def test_pm_each_case_matches_naive(name, detach):
    z1, z2 = batch_from_angles(*CASE_BATCHES[name], scales=[1.0, 2.0, 0.5])
    module = PositiveMixingLoss(TAU, THETA, W1, W2, detach_coefficients=detach)
    mixed = module.mix(z1, z2)
    assert mixed.case[0].item() == EXPECTED_CASE[name]
    loss, stats = module(z1, z2)
    naive_z2, cases = pm_positives(z1, z2, THETA, W1, W2, detach_coefficients=detach)
    assert cases[0] == "ABC"[EXPECTED_CASE[name]]
    assert [("ABC"[c]) for c in mixed.case.tolist()] == cases
    assert stats["pm_case_a"] + stats["pm_case_b"] + stats["pm_case_c"] == pytest.approx(1.0)
    assert_same(loss, info_nce(z1, naive_z2, TAU), (z1, z2))


@pytest.mark.parametrize(
    "n,d,seed,duplicate", [(2, 4, 0, False), (3, 5, 1, False), (8, 16, 2, False), (8, 6, 3, True)]
)
@pytest.mark.parametrize("detach", [True, False])
def test_pm_random_batches_match_naive(n, d, seed, duplicate, detach):
    z1, z2 = random_batch(n, d, seed, duplicate)
    loss, _ = PositiveMixingLoss(TAU, THETA, W1, W2, detach_coefficients=detach)(z1, z2)
    naive_z2, _ = pm_positives(z1, z2, THETA, W1, W2, detach_coefficients=detach)
    assert_same(loss, info_nce(z1, naive_z2, TAU), (z1, z2))


def test_pm_cases_all_occur_in_the_random_batches():
    seen = set()
    for n, d, seed in [(8, 16, 2), (8, 6, 3), (16, 8, 4)]:
        seen.update(PositiveMixingLoss(TAU, THETA).mix(*random_batch(n, d, seed)).case.tolist())
    assert seen == {0, 1, 2}


def test_pm_hardest_negative_tie_takes_the_first_index():
    z1, z2 = batch_from_angles([0, 150, 260, 300], [10, 20, 20, 200])  # views 1 and 2 tie for anchor 0
    mixed = PositiveMixingLoss(TAU, THETA).mix(z1, z2)
    assert mixed.hardest[0].item() == 1 and mixed.case[0].item() == 0


def test_pm_ratio_search_matches_naive():
    grid = [0.0, 0.25, 0.5, 0.75, 1.0]
    searched = 0
    for seed in range(8):
        z1, z2 = random_batch(8, 6, 10 + seed)
        module = PositiveMixingLoss(TAU, THETA, W1, W2, ratio_grid_size=len(grid))
        mixed = module.mix(z1, z2)
        expected_ratio = pm_ratio_search(z1, z2, THETA, grid)
        if expected_ratio is None:
            expected_ratio = W2 / W1
        else:
            searched += 1
        assert mixed.ratio.item() == pytest.approx(expected_ratio)
        loss, stats = module(z1, z2)
        assert stats["pm_ratio"].item() == pytest.approx(expected_ratio)
        naive_z2, _ = pm_positives(z1, z2, THETA, W1, W2, ratio=expected_ratio)
        assert_same(loss, info_nce(z1, naive_z2, TAU), (z1, z2))
    assert searched >= 2


@pytest.mark.parametrize(
    "n,d,k,s,seed,duplicate",
    [(3, 4, 10, 5, 0, False), (6, 5, 4, 7, 1, False), (12, 8, 10, 40, 2, False), (8, 6, 5, 9, 3, True)],
)
@pytest.mark.parametrize("detach", [False, True])
def test_hnm_matches_naive(n, d, k, s, seed, duplicate, detach):
    z1, z2 = random_batch(n, d, seed, duplicate)
    module = HardNegativeMixingLoss(TAU, k=k, s=s, alpha=0.3, detach_synthetic=detach, seed=seed)
    loss, stats = module(z1, z2)
    k_eff = min(k, n - 1)
    naive = hnm_loss(z1, z2, k_eff, 0.3, TAU, draws(n, k_eff, s, seed), detach)
    assert_same(loss, naive, (z1, z2))
    assert -1.0 <= stats["sim_synthetic"].item() <= 1.0


def test_hnm_ties_are_broken_by_index():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]], dtype=torch.float64, requires_grad=True)
    z2 = torch.tensor([[1.0, 0.1], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]], dtype=torch.float64, requires_grad=True)
    module = HardNegativeMixingLoss(TAU, k=2, s=6, seed=5)
    loss, _ = module(z1, z2)
    assert_same(loss, hnm_loss(z1, z2, 2, 0.5, TAU, draws(4, 2, 6, 5)), (z1, z2))


@pytest.mark.parametrize("n,d,seed,duplicate", [(3, 4, 0, False), (8, 6, 1, False), (10, 8, 2, True)])
def test_hybrid_matches_naive(n, d, seed, duplicate):
    z1, z2 = random_batch(n, d, seed, duplicate)
    pm = PositiveMixingLoss(TAU, THETA, W1, W2)
    loss, stats = HybridLoss(pm, HardNegativeMixingLoss(TAU, k=5, s=8, seed=seed))(z1, z2)
    mixed, _ = pm_positives(z1, z2, THETA, W1, W2)
    k = min(5, n - 1)
    assert_same(loss, hnm_loss(z1, mixed, k, 0.5, TAU, draws(n, k, 8, seed)), (z1, z2))
    assert {"pm_case_a", "sim_synthetic", "sim_hardest_negative"} <= stats.keys()


@pytest.mark.parametrize("weight", [0.0, 0.5, 2.0])
def test_hybrid_sum_matches_naive(weight):
    z1, z2 = random_batch(9, 6, 7)
    pm = PositiveMixingLoss(TAU, THETA, W1, W2)
    loss, stats = HybridSumLoss(pm, HardNegativeMixingLoss(TAU, k=4, s=6, seed=1), weight)(z1, z2)
    mixed, _ = pm_positives(z1, z2, THETA, W1, W2)
    naive = info_nce(z1, mixed, TAU) + weight * hnm_loss(z1, z2, 4, 0.5, TAU, draws(9, 4, 6, 1))
    assert_same(loss, naive, (z1, z2))
    assert stats["loss_pm"].item() == pytest.approx(info_nce(z1, mixed, TAU).item())


def test_hnm_is_deterministic_for_a_seed_and_varies_across_steps():
    z1, z2 = random_batch(12, 8, 0)
    a, b = HardNegativeMixingLoss(TAU, seed=3), HardNegativeMixingLoss(TAU, seed=3)
    first = a(z1, z2)[0]
    assert first.item() == b(z1, z2)[0].item()
    assert a(z1, z2)[0].item() != first.item()  # the generator advances: new pairs next step
    assert HardNegativeMixingLoss(TAU, seed=4)(z1, z2)[0].item() != first.item()


def test_small_batches_clamp_k_once_and_reject_impossible(caplog):
    module = HardNegativeMixingLoss(TAU, k=10, s=4)
    with caplog.at_level(logging.WARNING, logger="hncse.losses.hard_negative_mixing"):
        module(*random_batch(4, 3, 0))
        module(*random_batch(4, 3, 1))
    assert caplog.text.count("hnm_k=10 exceeds the 3 in-batch negatives: using k=3") == 1
    with pytest.raises(ValueError, match="at least 3 sentences"):
        module(*random_batch(2, 3, 0))
    for objective in (PositiveMixingLoss(TAU), HybridLoss(PositiveMixingLoss(TAU), HardNegativeMixingLoss(TAU))):
        with pytest.raises(ValueError, match="at least"):
            objective(*random_batch(1, 3, 0))


@pytest.mark.parametrize(
    "objective",
    [
        PositiveMixingLoss(TAU),
        HardNegativeMixingLoss(TAU),
        HybridLoss(PositiveMixingLoss(TAU), HardNegativeMixingLoss(TAU)),
        HybridSumLoss(PositiveMixingLoss(TAU), HardNegativeMixingLoss(TAU)),
    ],
)
def test_low_precision_views_give_float32_loss_and_finite_gradients(objective):
    z1 = torch.randn(16, 32).to(torch.bfloat16).requires_grad_()
    z2 = torch.randn(16, 32).to(torch.bfloat16).requires_grad_()
    loss, _ = objective(z1, z2)
    assert loss.dtype == torch.float32
    loss.backward()
    assert torch.isfinite(z1.grad.float()).all() and torch.isfinite(z2.grad.float()).all()


def test_hnm_sampler_state_restores_whatever_device_index_saved_it():
    """Each process draws on its own device (cuda:0, cuda:1, …): a state is keyed by the kind of device, and a
    state saved under an index (earlier versions) restores too, so every process continues its own sampler."""
    z1, z2 = torch.randn(8, 16, generator=torch.Generator().manual_seed(0)).chunk(2)
    loss = HardNegativeMixingLoss(k=3, s=4, seed=7)
    loss(z1, z2)
    state = loss.state_dict()
    expected_next = loss(z1, z2)[0]

    for saved in (state, {key: {"cpu:1": value["cpu"]} for key, value in state.items()}):
        resumed = HardNegativeMixingLoss(k=3, s=4, seed=7)
        resumed.load_state_dict(saved)
        assert torch.equal(resumed(z1, z2)[0], expected_next)
