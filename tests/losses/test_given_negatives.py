"""Every objective with given hard negatives (triplets, docs/method.md §9) against the naive per-row versions:
values and gradients in float64, for one and two negatives per row, with and without hard_negative_weight."""

import pytest
import torch
from naive_losses import assert_same, draws, hnm_loss, info_nce, pm_positives, pm_ratio_search, with_given

from hncse.losses import HardNegativeMixingLoss, HybridLoss, HybridSumLoss, PositiveMixingLoss, SimCSELoss

THETA, W1, W2, TAU = 0.1, 1.0, 0.5, 0.05


def triplets(n, d, per_row, seed):
    """Anchors, positives near them and given negatives nearer still for some rows (so that they are the hardest
    negatives and PM's cases A and C occur); float64, requiring gradients."""
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, dtype=torch.float64, generator=g)
    z2 = z1 + 0.8 * torch.randn(n, d, dtype=torch.float64, generator=g)
    negatives = z1[:, None] + torch.rand(n, per_row, 1, generator=g, dtype=torch.float64) * 4.0 * torch.randn(
        n, per_row, d, dtype=torch.float64, generator=g
    )
    return z1.requires_grad_(), z2.requires_grad_(), negatives.requires_grad_()


CASES = [(6, 5, 1, 0, 0.0), (8, 6, 2, 1, 0.0), (7, 4, 1, 2, 0.7), (5, 8, 3, 3, -0.4)]
IDS = [f"n{n}-d{d}-K{k}-w{w}" for n, d, k, _, w in CASES]


@pytest.mark.parametrize("n,d,per_row,seed,weight", CASES, ids=IDS)
def test_simcse_with_given_negatives_matches_naive(n, d, per_row, seed, weight):
    z1, z2, negatives = triplets(n, d, per_row, seed)
    loss, stats = SimCSELoss(TAU, hard_negative_weight=weight)(z1, z2, negatives=negatives)
    naive = info_nce(z1, z2, TAU, negatives=negatives, weight=weight)
    assert_same(loss, naive, (z1, z2, negatives))
    assert stats["sim_hardest_negative"] >= stats["sim_negative"]


@pytest.mark.parametrize("n,d,per_row,seed,weight", CASES, ids=IDS)
@pytest.mark.parametrize("detach", [True, False])
def test_pm_with_given_negatives_matches_naive(n, d, per_row, seed, weight, detach):
    z1, z2, negatives = triplets(n, d, per_row, seed)
    module = PositiveMixingLoss(TAU, 0.5, W1, W2, detach_coefficients=detach, hard_negative_weight=weight)
    loss, _ = module(z1, z2, negatives=negatives)
    mixed, _ = pm_positives(z1, with_given(z2, negatives), 0.5, W1, W2, detach)
    assert_same(loss, info_nce(z1, mixed, TAU, negatives=negatives, weight=weight), (z1, z2, negatives))


def test_pm_mixes_with_a_given_negative_when_it_is_the_hardest():
    z1, z2, negatives = triplets(8, 6, 2, 1)
    mixed = PositiveMixingLoss(TAU, 0.5).mix(z1, z2, negatives=negatives)
    given = mixed.hardest >= 8  # the hardest negative's column is one of the given negatives
    assert given.any() and (~given).any()
    assert set(mixed.case.tolist()) >= {0, 2}  # cases A and C both occur in this batch


def test_pm_ratio_search_with_given_negatives_matches_naive():
    grid = [0.0, 0.25, 0.5, 0.75, 1.0]
    searched = 0
    for seed in range(6):
        z1, z2, negatives = triplets(8, 6, 2, 20 + seed)
        module = PositiveMixingLoss(TAU, 0.5, W1, W2, ratio_grid_size=len(grid))
        expected = pm_ratio_search(z1, z2, 0.5, grid, negatives)
        searched += expected is not None
        expected = W2 / W1 if expected is None else expected
        loss, stats = module(z1, z2, negatives=negatives)
        assert stats["pm_ratio"].item() == pytest.approx(expected)
        mixed, _ = pm_positives(z1, with_given(z2, negatives), 0.5, W1, W2, ratio=expected)
        assert_same(loss, info_nce(z1, mixed, TAU, negatives=negatives), (z1, z2, negatives))
    assert searched >= 2


@pytest.mark.parametrize("n,d,per_row,seed,weight", CASES, ids=IDS)
@pytest.mark.parametrize("detach", [False, True])
def test_hnm_with_given_negatives_matches_naive(n, d, per_row, seed, weight, detach):
    z1, z2, negatives = triplets(n, d, per_row, seed)
    k, s = 5, 7
    module = HardNegativeMixingLoss(TAU, k, s, 0.3, detach, seed, hard_negative_weight=weight)
    loss, _ = module(z1, z2, negatives=negatives)
    naive = hnm_loss(z1, z2, k, 0.3, TAU, draws(n, k, s, seed), detach, negatives, weight)
    assert_same(loss, naive, (z1, z2, negatives))


def test_hnm_mixes_given_negatives_into_synthetic_ones():
    """With K given negatives that are the hardest, k = K makes every synthetic negative a mix of given ones: the
    loss then depends on the given negatives through the synthetic ones too."""
    z1, z2, _ = triplets(4, 3, 2, 5)
    negatives = (z1.detach()[:, None] + 0.01 * torch.randn(4, 2, 3, dtype=torch.float64)).requires_grad_()

    def loss(detach):
        module = HardNegativeMixingLoss(TAU, k=2, s=3, seed=0, detach_synthetic=detach)
        return module(z1, z2, negatives=negatives)[0]

    naive = hnm_loss(z1, z2, 2, 0.5, TAU, draws(4, 2, 3, 0), negatives=negatives)
    assert_same(loss(False), naive, (z1, z2, negatives))
    assert not torch.allclose(loss(False), SimCSELoss(TAU)(z1, z2, negatives=negatives)[0])
    grad_full = torch.autograd.grad(loss(False), negatives)[0]
    grad_detached = torch.autograd.grad(loss(True), negatives)[0]
    assert not torch.allclose(grad_full, grad_detached)


@pytest.mark.parametrize("n,d,per_row,seed,weight", CASES, ids=IDS)
def test_hybrid_with_given_negatives_matches_naive(n, d, per_row, seed, weight):
    z1, z2, negatives = triplets(n, d, per_row, seed)
    pm = PositiveMixingLoss(TAU, 0.5, W1, W2, hard_negative_weight=weight)
    hnm = HardNegativeMixingLoss(TAU, k=4, s=6, seed=seed, hard_negative_weight=weight)
    loss, _ = HybridLoss(pm, hnm)(z1, z2, negatives=negatives)
    mixed, _ = pm_positives(z1, with_given(z2, negatives), 0.5, W1, W2)
    naive = hnm_loss(z1, mixed, 4, 0.5, TAU, draws(n, 4, 6, seed), negatives=negatives, weight=weight)
    assert_same(loss, naive, (z1, z2, negatives))


@pytest.mark.parametrize("n,d,per_row,seed,weight", CASES, ids=IDS)
def test_hybrid_sum_with_given_negatives_matches_naive(n, d, per_row, seed, weight):
    z1, z2, negatives = triplets(n, d, per_row, seed)
    pm = PositiveMixingLoss(TAU, 0.5, W1, W2, hard_negative_weight=weight)
    hnm = HardNegativeMixingLoss(TAU, k=4, s=6, seed=seed, hard_negative_weight=weight)
    loss, stats = HybridSumLoss(pm, hnm, 0.5)(z1, z2, negatives=negatives)
    mixed, _ = pm_positives(z1, with_given(z2, negatives), 0.5, W1, W2)
    pm_naive = info_nce(z1, mixed, TAU, negatives=negatives, weight=weight)
    hnm_naive = hnm_loss(z1, z2, 4, 0.5, TAU, draws(n, 4, 6, seed), negatives=negatives, weight=weight)
    assert_same(loss, pm_naive + 0.5 * hnm_naive, (z1, z2, negatives))
    assert stats["loss_pm"].item() == pytest.approx(pm_naive.item())


def test_negatives_of_the_wrong_shape_are_refused():
    z1, z2, negatives = triplets(4, 3, 2, 0)
    with pytest.raises(ValueError, match=r"expected \(N, K, d\) negatives"):
        SimCSELoss()(z1, z2, negatives=negatives[:3])
    with pytest.raises(ValueError, match=r"expected \(N, K, d\) negatives"):
        SimCSELoss()(z1, z2, negatives=negatives[:, 0])
