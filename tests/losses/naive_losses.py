"""Deliberately naive per-row versions of the objectives: Python loops over anchors, docs/method.md read literally."""

from __future__ import annotations

import torch


def cos(a, b):
    return torch.dot(a, b) / (torch.linalg.norm(a) * torch.linalg.norm(b))


def with_given(z2, negatives):
    """Every anchor's candidates with given hard negatives (docs/method.md §9): the N positives (row i anchor i's),
    then row 0's K negatives, row 1's, …, as one (N + N·K, d) stack."""
    rows = [z2[j] for j in range(z2.shape[0])]
    if negatives is not None:
        for j in range(negatives.shape[0]):
            for k in range(negatives.shape[1]):
                rows.append(negatives[j, k])
    return torch.stack(rows)


def own_negative_columns(i, n, negatives):
    """The candidate columns of anchor i's own given negatives in `with_given`'s order."""
    if negatives is None:
        return []
    per_row = negatives.shape[1]
    return [n + i * per_row + k for k in range(per_row)]


def info_nce(z1, z2, temperature, extra=None, negatives=None, weight=0.0):
    """Mean over i of -log softmax(row_i)[i]; row_i = [cos(z1_i, c) / τ for every candidate c (z2's rows, then
    the given negatives)] + [e / τ for e in extra[i]], with `weight` added to anchor i's own given negatives."""
    n = z1.shape[0]
    candidates = with_given(z2, negatives)
    total = 0.0
    for i in range(n):
        row = [cos(z1[i], candidates[j]) / temperature for j in range(candidates.shape[0])]
        for j in own_negative_columns(i, n, negatives):
            row[j] = row[j] + weight
        if extra is not None:
            row += [e / temperature for e in extra[i]]
        logits = torch.stack(row)
        total = total - (logits[i] - torch.logsumexp(logits, dim=0))
    return total / n


def hardest(z1, z2, i):
    """(h(i), n_i): the first j ≠ i with the largest cos(z1_i, z2_j)."""
    best_j, best = None, None
    for j in range(z2.shape[0]):
        if j == i:
            continue
        c = cos(z1[i], z2[j])
        if best is None or c.item() > best.item():
            best_j, best = j, c
    return best_j, best


def pm_positives(z1, z2, theta, w1, w2, detach_coefficients=True, eps=1e-6, ratio=None):
    """ẑ2 row by row: cases A, B, C of docs/method.md §2 with its guards. Returns (ẑ2, cases as 'A'/'B'/'C').

    z2: the candidates, row i anchor i's positive (more rows than anchors: the given negatives, `with_given`)."""
    rows, cases = [], []
    for i in range(z1.shape[0]):
        p = cos(z1[i], z2[i])
        h, n = hardest(z1, z2, i)
        if p.item() > n.item():
            if p.item() > 0 and ((p - n) / p).item() <= theta:
                weight2 = w2 if ratio is None else w1 * ratio
                rows.append(w1 * z2[i] + weight2 * z2[h])
                cases.append("A")
            else:
                rows.append(z2[i])
                cases.append("B")
        else:
            pp, nn = (p.detach(), n.detach()) if detach_coefficients else (p, n)
            total = pp + nn
            if abs(total.item()) < eps:
                total = torch.tensor(-eps if total.item() < 0 else eps, dtype=z2.dtype)
            rows.append(pp / total * z2[i] + nn / total * z2[h])
            cases.append("C")
    return torch.stack(rows), cases


def pm_ratio_search(z1, z2, theta, grid, negatives=None):
    """The grid ratio minimising mean_i(S̃_ii − mean_{j≠i} S̃_ij) + mean_i #{j : S̃_ij > S̃_ii} (first on ties);
    None when no anchor is in case A (the ratio then changes nothing). S̃: against the mixed positives, then the
    given negatives."""
    n = z1.shape[0]
    candidates = with_given(z2, negatives)
    if "A" not in pm_positives(z1, candidates, theta, 1.0, 0.5)[1]:
        return None
    best_value, best_ratio = None, None
    for r in grid:
        mixed, _ = pm_positives(z1, candidates, theta, 1.0, r)
        columns = with_given(mixed, negatives)
        m = columns.shape[0]
        gap, rank = 0.0, 0
        for i in range(n):
            row = [cos(z1[i], columns[j]).item() for j in range(m)]
            gap += row[i] - sum(row[j] for j in range(m) if j != i) / (m - 1)
            rank += sum(1 for j in range(m) if row[j] > row[i])
        value = gap / n + rank / n
        if best_value is None or value < best_value:
            best_value, best_ratio = value, r
    return best_ratio


def top_k(z1, z2, i, k):
    """T_i: the k j ≠ i with the largest cos(z1_i, z2_j), larger first, lower index first on ties."""
    others = [j for j in range(z2.shape[0]) if j != i]
    return sorted(others, key=lambda j: (-cos(z1[i], z2[j]).item(), j))[:k]


def hnm_synthetic_sims(z1, z2, k, alpha, pick, detach=False):
    """cos(z1_i, g_i,m) for the pairs numbered pick[i][m] in the order (0,1), (0,2), …, (k-2, k-1)."""
    pairs = [(a, b) for a in range(k) for b in range(a + 1, k)]
    source = z2.detach() if detach else z2
    sims = []
    for i in range(z1.shape[0]):
        top = top_k(z1, z2, i, k)
        row = []
        for number in pick[i].tolist():
            a, b = pairs[number]
            g = alpha * source[top[a]] + (1 - alpha) * source[top[b]]
            g = g / torch.linalg.norm(g)
            row.append(cos(z1[i], g))
        sims.append(row)
    return sims


def hnm_loss(z1, z2, k, alpha, temperature, pick, detach=False, negatives=None, weight=0.0):
    """InfoNCE with each anchor's synthetic negatives, mixed from its k hardest candidates (given negatives too)."""
    extra = hnm_synthetic_sims(z1, with_given(z2, negatives), k, alpha, pick, detach)
    return info_nce(z1, z2, temperature, extra=extra, negatives=negatives, weight=weight)


def assert_same(loss, naive, inputs):
    """The loss and its gradients with respect to `inputs` equal the naive version's (float64 tolerances)."""
    grads = torch.autograd.grad(loss, inputs)
    naive_grads = torch.autograd.grad(naive, inputs)
    torch.testing.assert_close(loss, naive, atol=1e-8, rtol=1e-8)
    for got, want in zip(grads, naive_grads):
        torch.testing.assert_close(got, want, atol=1e-8, rtol=1e-7)


def draws(n, k, s, seed):
    """The pair numbers HNM's sampler draws first for a fresh generator with this seed (n anchors)."""
    return torch.randint(k * (k - 1) // 2, (n, s), generator=torch.Generator().manual_seed(seed))
