"""InfoNCE against a deliberately naive per-row implementation (docs/method.md §1 read literally)."""

import math

import pytest
import torch

from hncse.losses import SimCSELoss, info_nce_loss


def naive_info_nce(z1, z2, temperature):
    """For each anchor i: -log( exp(cos(z1_i, z2_i)/τ) / Σ_j exp(cos(z1_i, z2_j)/τ) ), averaged over i."""
    n = z1.shape[0]
    total = 0.0
    for i in range(n):
        logits = []
        for j in range(n):
            cos = torch.dot(z1[i], z2[j]) / (torch.linalg.norm(z1[i]) * torch.linalg.norm(z2[j]))
            logits.append(cos / temperature)
        logits = torch.stack(logits)
        total = total - (logits[i] - torch.logsumexp(logits, dim=0))
    return total / n


@pytest.mark.parametrize("n,d,temperature", [(2, 3, 0.05), (5, 8, 0.05), (16, 32, 0.1), (7, 4, 1.0)])
def test_info_nce_matches_naive_values_and_gradients(n, d, temperature):
    g = torch.Generator().manual_seed(n * 100 + d)
    z1 = torch.randn(n, d, dtype=torch.float64, generator=g, requires_grad=True)
    z2 = torch.randn(n, d, dtype=torch.float64, generator=g, requires_grad=True)
    loss, _ = info_nce_loss(z1, z2, temperature)
    grads = torch.autograd.grad(loss, (z1, z2))

    a1, a2 = z1.detach().clone().requires_grad_(), z2.detach().clone().requires_grad_()
    expected = naive_info_nce(a1, a2, temperature)
    expected_grads = torch.autograd.grad(expected, (a1, a2))

    assert loss.dtype == torch.float64
    torch.testing.assert_close(loss, expected, atol=1e-10, rtol=1e-10)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


def test_identical_views_and_orthogonal_negatives_give_known_loss():
    # cos = 1 on the diagonal, 0 elsewhere: loss = -log(e^{1/τ} / (e^{1/τ} + (N-1)))
    z = torch.eye(4, dtype=torch.float64)
    loss, stats = info_nce_loss(z, z, 0.5)
    assert loss.item() == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + 3)))
    assert stats["sim_positive"].item() == pytest.approx(1.0)
    assert stats["sim_negative"].item() == pytest.approx(0.0)


def test_low_precision_inputs_give_float32_logits():
    z1 = torch.randn(8, 16).to(torch.bfloat16).requires_grad_()
    z2 = torch.randn(8, 16).to(torch.bfloat16).requires_grad_()
    loss, _ = SimCSELoss(0.05)(z1, z2)
    assert loss.dtype == torch.float32
    loss.backward()
    assert z1.grad.dtype == torch.bfloat16 and torch.isfinite(z1.grad.float()).all()


def test_loss_is_scale_invariant():
    z1, z2 = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, 5, dtype=torch.float64)
    a, _ = info_nce_loss(z1, z2)
    b, _ = info_nce_loss(3.0 * z1, 0.5 * z2)
    torch.testing.assert_close(a, b)


def test_errors():
    with pytest.raises(ValueError, match="at least 2"):
        info_nce_loss(torch.randn(1, 4), torch.randn(1, 4))
    with pytest.raises(ValueError, match="are not all candidates"):
        info_nce_loss(torch.randn(3, 4), torch.randn(2, 4))
    with pytest.raises(ValueError, match="expected"):
        info_nce_loss(torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(ValueError, match="temperature"):
        SimCSELoss(0.0)


@pytest.mark.parametrize("n, m, offset", [(5, 5, 0), (3, 9, 4), (4, 8, 0)])
def test_per_anchor_and_mean_similarities_match_naive_loops(n, m, offset):
    """Row i's positive is column offset + i (its view in a gathered global batch); every other column is a
    negative. These feed the logged statistics, training_curves.png and bench.results.ablation's similarity probes."""
    from hncse.losses.common import hardest_negative_similarities, positive_similarities, similarity_stats

    g = torch.Generator().manual_seed(n * 10 + m)
    sim = torch.rand(n, m, dtype=torch.float64, generator=g) * 2 - 1
    positive = [sim[i, offset + i] for i in range(n)]
    hardest = [max(sim[i, j] for j in range(m) if j != offset + i) for i in range(n)]
    negatives = [sim[i, j] for i in range(n) for j in range(m) if j != offset + i]

    torch.testing.assert_close(positive_similarities(sim, offset), torch.stack(positive))
    torch.testing.assert_close(hardest_negative_similarities(sim, offset), torch.stack(hardest))
    stats = similarity_stats(sim, offset)
    torch.testing.assert_close(stats["sim_positive"], sum(positive) / n)
    torch.testing.assert_close(stats["sim_hardest_negative"], sum(hardest) / n)
    torch.testing.assert_close(stats["sim_negative"], sum(negatives) / len(negatives))
