"""SentEval's transfer protocol: logistic regression on frozen sentence embeddings, with its model selection.

SentEval (with `usepytorch`, as SimCSE runs it) trains each classifier as a linear layer with Adam or RMSprop,
L2 weight decay chosen from {1e-5, 1e-4, 1e-3, 1e-2}, mini-batches, and early stopping on held-out accuracy
(checked every `epoch_size` passes; training stops after `tenacity` + 1 checks without a new best — the
count is never reset — or `max_epoch` passes; the best state is kept). Model selection:

- "cv" (MR, CR, SUBJ, MPQA): k outer folds; in each, the regulariser with the best mean accuracy over k inner
  folds is retrained on the outer training part (5 % held out for early stopping) and tested on the outer fold.
- "kfold" (TREC, MRPC): the regulariser is chosen by k-fold cross-validation on train, then retrained on all of
  train (5 % held out) and tested on test.
- "split" (SST-2): one classifier per regulariser, early-stopped on dev; the best on dev is tested.

SentEval fits these few hundred classifiers one after another. Here every classifier of a stage trains at once
as one batched linear model (weights (M, C, d), each model drawing its own mini-batches from its own rows), so
the whole suite costs about as much as a few sequential fits. Folds are stratified and seeded (1111, as
SentEval), though not drawn by scikit-learn, so fold membership — and the second decimal — differ from SentEval.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from hncse.evaluation.embedding_cache import EmbeddingLookup
from hncse.evaluation.evaluator import Evaluator, EvaluatorSpec
from hncse.evaluation.senteval_data import SHORT_NAMES, TRANSFER_TASKS, ClassificationTask, load_transfer_task

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassifierProtocol:
    """SentEval's classifier settings; SimCSE's "test" and "fasttest" parameter sets are in PROTOCOLS."""

    optimizer: str  # "adam" (lr 1e-3) or "rmsprop" (lr 1e-2): torch's defaults, as SentEval uses them
    batch_size: int
    tenacity: int
    epoch_size: int
    kfold: int
    max_epoch: int = 200
    seed: int = 1111
    l2_regs: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2)
    validation_split: float = 0.05


PROTOCOLS = {
    "test": ClassifierProtocol("adam", batch_size=64, tenacity=5, epoch_size=4, kfold=10),
    "fasttest": ClassifierProtocol("rmsprop", batch_size=128, tenacity=3, epoch_size=2, kfold=5),
}
PROTOCOLS["dev"] = PROTOCOLS["fasttest"]


def stratified_folds(labels: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """Fold id (0…k-1) per sample: each class is shuffled and dealt round-robin, continuing where the previous
    class stopped, so every fold holds ⌊n_c/k⌋ or ⌈n_c/k⌉ of each class and the fold sizes differ by at most 1."""
    folds = torch.empty(len(labels), dtype=torch.long)
    offset = 0
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).squeeze(1)
        members = members[torch.randperm(len(members), generator=generator)]
        folds[members] = (offset + torch.arange(len(members))) % k
        offset += len(members)
    return folds


def _pad(rows: list[Tensor]) -> tuple[Tensor, Tensor]:
    lengths = torch.tensor([len(r) for r in rows])
    padded = torch.zeros(len(rows), int(lengths.max()), dtype=torch.long)
    for m, r in enumerate(rows):
        padded[m, : len(r)] = r
    return padded, lengths


class BatchedLinearClassifiers:
    """M softmax-regression models trained side by side; model m sees only the rows `train_rows[m]`."""

    def __init__(self, dim: int, num_classes: int, l2: Tensor, protocol: ClassifierProtocol, generator):
        m = len(l2)
        bound = 1.0 / math.sqrt(dim)  # nn.Linear's default initialisation
        self.weight = (torch.rand(m, num_classes, dim, generator=generator) * 2 - 1) * bound
        self.bias = (torch.rand(m, num_classes, generator=generator) * 2 - 1) * bound
        self.l2 = l2.float()
        self.protocol = protocol
        self.steps = torch.zeros(m)
        self.state = [torch.zeros_like(self.weight), torch.zeros_like(self.bias)]  # exp_avg_sq (both optimisers)
        self.momentum = [torch.zeros_like(self.weight), torch.zeros_like(self.bias)]  # exp_avg (Adam)

    def logits(self, x: Tensor) -> Tensor:  # x (M, B, d) → (M, B, C)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))

    def step(self, x: Tensor, y: Tensor, valid: Tensor, update: Tensor) -> None:
        """One optimiser step of the mean cross-entropy over each model's valid rows; models not in `update`
        (no rows in this mini-batch, or stopped) are left exactly as they were."""
        probs = torch.softmax(self.logits(x), dim=-1)
        probs.scatter_add_(2, y.unsqueeze(-1), -torch.ones_like(probs[..., :1]))  # dL/dlogits ∝ p − onehot
        count = valid.sum(1, keepdim=True).clamp(min=1)
        grad_logits = probs * (valid / count).unsqueeze(-1)
        grads = [torch.bmm(grad_logits.transpose(1, 2), x), grad_logits.sum(1)]
        mask = update.float()
        self.steps += mask
        for i, (param, grad) in enumerate(zip((self.weight, self.bias), grads)):
            shape = (-1,) + (1,) * (param.dim() - 1)
            keep = mask.view(shape)
            grad = grad + self.l2.view(shape) * param  # SentEval's weight_decay: L2 added to the gradient
            if self.protocol.optimizer == "adam":
                beta1, beta2, lr, eps = 0.9, 0.999, 1e-3, 1e-8
                self.momentum[i] += keep * (1 - beta1) * (grad - self.momentum[i])
                self.state[i] += keep * (1 - beta2) * (grad * grad - self.state[i])
                t = self.steps.clamp(min=1).view(shape)
                denom = (self.state[i] / (1 - beta2**t)).sqrt() + eps
                param -= keep * (lr / (1 - beta1**t)) * self.momentum[i] / denom
            elif self.protocol.optimizer == "rmsprop":
                alpha, lr, eps = 0.99, 1e-2, 1e-8
                self.state[i] += keep * (1 - alpha) * (grad * grad - self.state[i])
                param -= keep * lr * grad / (self.state[i].sqrt() + eps)
            else:
                raise ValueError(f"unknown optimizer {self.protocol.optimizer!r}; choose adam or rmsprop")

    def accuracy(self, features: Tensor, labels: Tensor, rows: Tensor, lengths: Tensor, chunk: int = 4096) -> Tensor:
        """Accuracy of every model on its own rows (padded (M, L) with `lengths`)."""
        correct = torch.zeros(len(rows))
        for start in range(0, rows.shape[1], chunk):
            r = rows[:, start : start + chunk]
            valid = (start + torch.arange(r.shape[1])) < lengths.unsqueeze(1)
            hit = self.logits(features[r]).argmax(-1) == labels[r]
            correct += (hit & valid).sum(1)
        return correct / lengths.clamp(min=1)

    def select(self, keep: Tensor) -> None:
        for name in ("weight", "bias", "l2", "steps"):
            setattr(self, name, getattr(self, name)[keep])
        self.state = [s[keep] for s in self.state]
        self.momentum = [s[keep] for s in self.momentum]


def fit_classifiers(
    features: Tensor,
    labels: Tensor,
    train_rows: list[Tensor],
    dev_rows: list[Tensor],
    l2: list[float],
    num_classes: int,
    protocol: ClassifierProtocol,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor, Tensor]:
    """Train one classifier per (train_rows[m], dev_rows[m], l2[m]) with SentEval's early stopping.

    Returns the best dev accuracy per model and the weights (M, C, d) and biases (M, C) of that best state.
    """
    m_total = len(train_rows)
    models = BatchedLinearClassifiers(features.shape[1], num_classes, torch.tensor(l2), protocol, generator)
    train, train_len = _pad(train_rows)
    dev, dev_len = _pad(dev_rows)
    best_acc = torch.full((m_total,), -1.0)
    best_weight, best_bias = models.weight.clone(), models.bias.clone()
    misses = torch.zeros(m_total, dtype=torch.long)
    ids = torch.arange(m_total)  # the original index of each model still training
    batch = protocol.batch_size
    epoch = 0
    while len(ids) and epoch <= protocol.max_epoch:
        for _ in range(protocol.epoch_size):
            keys = torch.rand(train.shape, generator=generator)
            keys[torch.arange(train.shape[1]) >= train_len.unsqueeze(1)] = 2.0  # padding sorts last
            order = train.gather(1, keys.argsort(dim=1))
            for start in range(0, int(train_len.max()), batch):
                rows = order[:, start : start + batch]
                valid = (start + torch.arange(rows.shape[1])) < train_len.unsqueeze(1)
                models.step(features[rows], labels[rows], valid.float(), valid.any(1))
        epoch += protocol.epoch_size
        acc = models.accuracy(features, labels, dev, dev_len)
        improved = acc > best_acc[ids]
        best_acc[ids[improved]] = acc[improved]
        best_weight[ids[improved]] = models.weight[improved]
        best_bias[ids[improved]] = models.bias[improved]
        stop = ~improved & (misses[ids] >= protocol.tenacity)
        misses[ids[~improved]] += 1
        if stop.any():
            keep = ~stop
            ids, train, train_len, dev, dev_len = ids[keep], train[keep], train_len[keep], dev[keep], dev_len[keep]
            models.select(keep)
    return best_acc, best_weight, best_bias


def _predict(features: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    return (features @ weight.T + bias).argmax(-1)


def _split_off_validation(rows: Tensor, fraction: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """SentEval's `validation_split`: a random `fraction` of the training rows held out for early stopping."""
    perm = rows[torch.randperm(len(rows), generator=generator)]
    n_dev = int(fraction * len(rows))
    return perm[n_dev:], perm[:n_dev]


def _score(acc: Tensor) -> float:
    return round(100 * float(acc), 2)


def _best_reg(scores: list[float]) -> int:
    return int(np.argmax(scores))  # first maximum, as SentEval's np.argmax


def evaluate_cv(features: Tensor, labels: Tensor, num_classes: int, protocol: ClassifierProtocol) -> dict:
    """MR, CR, SUBJ, MPQA: nested k-fold (SentEval's InnerKFoldClassifier)."""
    g = torch.Generator().manual_seed(protocol.seed)
    k, regs = protocol.kfold, list(protocol.l2_regs)
    outer = stratified_folds(labels, k, g)
    train_rows, dev_rows, l2 = [], [], []
    for o in range(k):
        outer_train = torch.nonzero(outer != o).squeeze(1)
        inner = stratified_folds(labels[outer_train], k, torch.Generator().manual_seed(protocol.seed))
        for reg in regs:
            for i in range(k):
                train_rows.append(outer_train[inner != i])
                dev_rows.append(outer_train[inner == i])
                l2.append(reg)
    acc, _, _ = fit_classifiers(features, labels, train_rows, dev_rows, l2, num_classes, protocol, g)
    fold_scores = (100 * acc.view(k, len(regs), k).mean(2)).double()
    fold_scores = torch.round(fold_scores * 100) / 100
    chosen = [_best_reg(fold_scores[o].tolist()) for o in range(k)]
    dev_results = [float(fold_scores[o, chosen[o]]) for o in range(k)]

    final_train, final_dev, final_l2 = [], [], []
    for o in range(k):
        rows, held_out = _split_off_validation(torch.nonzero(outer != o).squeeze(1), protocol.validation_split, g)
        final_train.append(rows)
        final_dev.append(held_out)
        final_l2.append(regs[chosen[o]])
    _, weight, bias = fit_classifiers(features, labels, final_train, final_dev, final_l2, num_classes, protocol, g)
    test_results = []
    for o in range(k):
        test = torch.nonzero(outer == o).squeeze(1)
        test_results.append(_score((_predict(features[test], weight[o], bias[o]) == labels[test]).float().mean()))
    return {
        "devacc": round(float(np.mean(dev_results)), 2),
        "acc": round(float(np.mean(test_results)), 2),
        "l2": [regs[c] for c in chosen],
        "n": len(labels),
    }


def evaluate_kfold(
    train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, num_classes: int, protocol: ClassifierProtocol
) -> dict:
    """TREC, MRPC: k-fold on train picks the regulariser, then train on all of train and test (KFoldClassifier)."""
    g = torch.Generator().manual_seed(protocol.seed)
    k, regs = protocol.kfold, list(protocol.l2_regs)
    folds = stratified_folds(train_y, k, g)
    train_rows = [torch.nonzero(folds != i).squeeze(1) for _ in regs for i in range(k)]
    dev_rows = [torch.nonzero(folds == i).squeeze(1) for _ in regs for i in range(k)]
    l2 = [reg for reg in regs for _ in range(k)]
    acc, _, _ = fit_classifiers(train_x, train_y, train_rows, dev_rows, l2, num_classes, protocol, g)
    scores = [_score(a) for a in acc.view(len(regs), k).mean(1)]
    best = _best_reg(scores)
    rows, held_out = _split_off_validation(torch.arange(len(train_y)), protocol.validation_split, g)
    _, weight, bias = fit_classifiers(train_x, train_y, [rows], [held_out], [regs[best]], num_classes, protocol, g)
    predictions = _predict(test_x, weight[0], bias[0])
    return {
        "devacc": scores[best],
        "acc": _score((predictions == test_y).float().mean()),
        "l2": regs[best],
        "predictions": predictions,
        "ntrain": len(train_y),
        "ntest": len(test_y),
    }


def evaluate_split(
    train_x: Tensor,
    train_y: Tensor,
    dev_x: Tensor,
    dev_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    num_classes: int,
    protocol: ClassifierProtocol,
) -> dict:
    """SST-2: one classifier per regulariser early-stopped on dev; the best on dev is tested (SplitClassifier)."""
    g = torch.Generator().manual_seed(protocol.seed)
    regs = list(protocol.l2_regs)
    features = torch.cat([train_x, dev_x])
    labels = torch.cat([train_y, dev_y])
    train_rows = [torch.arange(len(train_y))] * len(regs)
    dev_rows = [torch.arange(len(train_y), len(labels))] * len(regs)
    acc, weight, bias = fit_classifiers(features, labels, train_rows, dev_rows, regs, num_classes, protocol, g)
    scores = [_score(a) for a in acc]
    best = _best_reg(scores)
    return {
        "devacc": scores[best],
        "acc": _score((_predict(test_x, weight[best], bias[best]) == test_y).float().mean()),
        "l2": regs[best],
        "ndev": len(dev_y),
        "ntest": len(test_y),
    }


def pair_features(u: Tensor, v: Tensor, kind: str = "senteval") -> Tensor:
    """MRPC pair features. "senteval": [|u−v|, u*v], what SentEval's MRPC code (and so every published SimCSE
    table) uses; "full": [u, v, |u−v|, u*v], the InferSent-style features."""
    if kind == "senteval":
        return torch.cat([(u - v).abs(), u * v], dim=-1)
    if kind == "full":
        return torch.cat([u, v, (u - v).abs(), u * v], dim=-1)
    raise ValueError(f"mrpc_features: unknown value {kind!r}; choose senteval or full")


def f1_score(predictions: Tensor, labels: Tensor) -> float:
    tp = ((predictions == 1) & (labels == 1)).sum().item()
    fp = ((predictions == 1) & (labels == 0)).sum().item()
    fn = ((predictions == 0) & (labels == 1)).sum().item()
    return round(100 * 2 * tp / max(2 * tp + fp + fn, 1), 2)


def evaluate_transfer_task(
    task: ClassificationTask, embed, protocol: ClassifierProtocol, mrpc_features: str = "senteval"
) -> dict:
    """Accuracy ×100 of a transfer task. `embed(list_of_sentences)` returns their embeddings (N, d) float32."""

    def split(name: str) -> tuple[Tensor, Tensor]:
        texts, labels = task.splits[name]
        if task.pairs:
            x = pair_features(embed([a for a, _ in texts]), embed([b for _, b in texts]), mrpc_features)
        else:
            x = embed(list(texts))
        return x.float(), torch.as_tensor(labels, dtype=torch.long)

    if task.protocol == "cv":
        x, y = split("train")
        return evaluate_cv(x, y, task.num_classes, protocol)
    if task.protocol == "kfold":
        (train_x, train_y), (test_x, test_y) = split("train"), split("test")
        result = evaluate_kfold(train_x, train_y, test_x, test_y, task.num_classes, protocol)
        predictions = result.pop("predictions")
        if task.num_classes == 2:
            result["f1"] = f1_score(predictions, test_y)
        return result
    (train_x, train_y), (dev_x, dev_y), (test_x, test_y) = split("train"), split("dev"), split("test")
    return evaluate_split(train_x, train_y, dev_x, dev_y, test_x, test_y, task.num_classes, protocol)


TRANSFER_TABLE_NAMES = {"SST2": "SST-2"}


def accuracy_key(mode: str) -> str:
    """Validation accuracy in dev mode (what training selects on), test accuracy otherwise."""
    return "devacc" if mode == "dev" else "acc"


class TransferEvaluator(Evaluator):
    """A SentEval transfer task: a classifier on the frozen embeddings, accuracy ×100 (`PROTOCOLS[mode]`)."""

    group, average_key, average_metric, position = "transfer", "transfer_avg", "avg_transfer", 1.0

    def __init__(self, task: ClassificationTask, short_name: str):
        super().__init__(task.name, short_name)
        self.task = task

    def sentences(self) -> list[str]:
        return self.task.sentences()

    def score(self, lookup: EmbeddingLookup, mode: str, options: dict) -> dict:
        start = time.time()
        entry = evaluate_transfer_task(self.task, lookup, PROTOCOLS[mode], options.get("mrpc_features", "senteval"))
        entry["seconds"] = round(time.time() - start, 2)
        logger.info("%s: %s (%.0f s)", self.name, entry[accuracy_key(mode)], time.time() - start)
        return entry

    def metrics(self, entry: dict, mode: str) -> dict[str, float]:
        return {f"{self.short_name}_accuracy": entry[accuracy_key(mode)]}

    def average_value(self, entry: dict, mode: str) -> float:
        return entry[accuracy_key(mode)]

    @classmethod
    def tables(cls, entries: dict[str, dict], results: dict) -> list[str]:
        key = accuracy_key(results.get("mode"))
        names = list(entries)
        header = "| transfer | " + " | ".join(TRANSFER_TABLE_NAMES.get(n, n) for n in names) + " | Avg. |"
        scores = [entries[n][key] for n in names]
        row = f"| {key} | " + " | ".join(f"{s:.2f}" for s in scores) + f" | {float(np.mean(scores)):.2f} |"
        return ["\n".join([header, "|---" * (len(names) + 2) + "|", row])]


def transfer_spec(task: str) -> EvaluatorSpec:
    def load(split: str, data_dir: str | None, flag: str) -> TransferEvaluator:
        return TransferEvaluator(load_transfer_task(task, data_dir, flag), SHORT_NAMES[task])

    return EvaluatorSpec(
        name=task,
        short_name=SHORT_NAMES[task],
        kind=TransferEvaluator,
        load=load,
        main_metric=f"{SHORT_NAMES[task]}_accuracy",
        table_name=TRANSFER_TABLE_NAMES.get(task, task),
        task_sets=("transfer",),
    )


SPECS = [transfer_spec(task) for task in TRANSFER_TASKS]
