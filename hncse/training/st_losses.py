"""HNCSE's objectives as sentence-transformers losses, for `SentenceTransformerTrainer`.

    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from hncse.st_losses import HNCSELoss

    model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
    loss = HNCSELoss(model, objective="hybrid_sum", hnm_k=10)
    SentenceTransformerTrainer(model=model, train_dataset=dataset, loss=loss).train()

The dataset's columns are what a row is: one column → unlabelled sentences, each encoded twice (two dropout views,
unsupervised SimCSE / HNCSE); two → (anchor, positive) pairs; three or more → (anchor, positive, hard negatives…).
Every column of a batch is encoded in one forward pass, stacked column by column, as `HNCSETrainer` does, and the
objective is the registered one (`hncse.losses`): the same tensor functions, not a second implementation.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hncse.citations import HNCSE_BIBTEX
from hncse.distributed import batch_exchange
from hncse.errors import TrainingDivergedError
from hncse.losses import get_objective
from hncse.training.cached_contrastive import average_gradients, cached_contrastive_loss
from hncse.training.views import objective_loss


def stacked_columns(
    sentence_features: Iterable[dict[str, Tensor]], pad_token_id: int = 0
) -> tuple[dict[str, Tensor], int]:
    """(one feature batch holding every column's rows, column after column, right-padded to the longest; the number
    of columns C). One column is repeated: its two dropout views."""
    columns = list(sentence_features)
    if not columns:
        raise ValueError("HNCSELoss got no text column: the dataset needs one (sentences) or more (pairs, triplets)")
    rows = [column["input_ids"].shape[0] for column in columns]
    if len(set(rows)) > 1:
        raise ValueError(f"HNCSELoss got columns of different lengths {rows}: each row needs every column")
    if len(columns) == 1:
        columns = columns * 2
    keys = [k for k in columns[0] if isinstance(columns[0][k], Tensor) and columns[0][k].dim() == 2]
    length = max(column["input_ids"].shape[1] for column in columns)
    stacked = {}
    for key in keys:
        pad = pad_token_id if key == "input_ids" else 0
        stacked[key] = torch.cat([F.pad(c[key], (0, length - c[key].shape[1]), value=pad) for c in columns])
    return stacked, len(columns)


class HNCSELoss(nn.Module):
    """An hncse objective (`simcse`, `pm`, `hnm`, `hybrid`, `hybrid_sum`, or a registered plug-in) as a
    sentence-transformers loss.

    Args:
        model: the `SentenceTransformer` being trained.
        objective: the registered objective's name.
        gather_across_devices: with several processes, score every anchor against the global batch's candidates
            and mine PM/HNM negatives over it (gathered with gradients), as sentence-transformers' own losses do
            with this flag.
        seed: seed of HNM's pair sampler (default: the objective's own, 42).
        **params: the objective's hyper-parameters by their flag names (`temperature`, `pm_theta`, `hnm_k`,
            `hybrid_lambda`, `hard_negative_weight`, …); the others keep their defaults. Validated as the flags are.

    The objective's statistics of the last step (similarities, PM cases, …) are in `last_statistics`.
    """

    def __init__(
        self,
        model: nn.Module,
        objective: str = "hybrid_sum",
        gather_across_devices: bool = False,
        seed: int | None = None,
        **params,
    ):
        super().__init__()
        self.model = model
        self.spec = get_objective(objective, flag="objective")
        known = {f.name for f in dataclasses.fields(self.spec.params) if f.init}
        unknown = sorted(set(params) - known)
        if unknown:
            raise TypeError(f"objective {objective!r} has no parameter {', '.join(unknown)} (it has {sorted(known)})")
        self.params = self.spec.params(**params)
        self.objective = self.spec.loss.from_params(self.params, seed=seed)
        self.gather_across_devices = gather_across_devices
        self.last_statistics: dict[str, Tensor] = {}
        self.batches = 0  # training batches seen, for the step a divergence names (`stop_if_diverged`)

    def exchange(self):
        return batch_exchange(self.gather_across_devices)

    @property
    def unwrapped_model(self) -> nn.Module:
        """The SentenceTransformer, whether or not the trainer wrapped it for DDP."""
        return self.model.module if isinstance(self.model, nn.parallel.DistributedDataParallel) else self.model

    def stacked(self, sentence_features: Iterable[dict[str, Tensor]]) -> tuple[dict[str, Tensor], int]:
        tokenizer = getattr(self.unwrapped_model, "tokenizer", None)
        pad_token_id = getattr(tokenizer, "pad_token_id", None)
        return stacked_columns(sentence_features, pad_token_id if pad_token_id is not None else 0)

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        features, columns = self.stacked(sentence_features)
        embeddings = self.model(features)["sentence_embedding"]  # (C·N, d)
        loss, stats = objective_loss(self.objective, embeddings, columns, self.exchange())
        self.last_statistics = {name: value.detach() for name, value in stats.items()}
        self.stop_if_diverged(loss, lambda: bool(torch.isfinite(embeddings.detach()).all()))
        return loss

    def stop_if_diverged(self, loss: Tensor, embeddings_finite: Callable[[], bool]) -> None:
        """A NaN or infinite loss stops training with one line before its gradients reach the weights.

        The Trainer reads every step's loss on the host anyway (`logging_nan_inf_filter`, on by default, which
        would leave a NaN step out of the logged mean while its update still turned the weights into NaN); this
        reads the same scalar one backward pass earlier, and looks at the embeddings only once it is bad.
        `batches` counts the calls with gradients (training batches, gradient accumulation's micro-batches)."""
        if not torch.is_grad_enabled():
            return  # an evaluation loss: the Trainer reports it; training is what must not go on
        self.batches += 1
        if bool(torch.isfinite(loss.detach()).all()):
            return
        value = loss.detach().float().item()
        if embeddings_finite():
            what = f"the loss became {value} with finite embeddings"
            fix = "raise temperature, lower the learning rate, or train in float32 or bf16 rather than fp16"
        else:
            what = "the embeddings became non-finite (nan or inf: the model's output)"
            fix = "lower the learning rate, train in float32 or bf16 rather than fp16, or check the model's weights"
        raise TrainingDivergedError(
            f"{type(self).__name__}: {what} in training batch {self.batches}; stopped before its update, so the "
            f"weights and saved checkpoints are from before it ({fix})"
        )

    def get_config_dict(self) -> dict:
        return {**self.objective.get_config_dict(), "gather_across_devices": self.gather_across_devices}

    @property
    def citation(self) -> str:
        return "\n\n".join(dict.fromkeys([HNCSE_BIBTEX, *self.spec.citations]))


class CachedHNCSELoss(HNCSELoss):
    """`HNCSELoss` with the cached step (GradCache): the batch is encoded `mini_batch_size` rows at a time without
    graphs, the objective runs on the whole batch, and each mini-batch is encoded again in the backward pass with
    its dropout replayed. Memory of one mini-batch, the loss and gradients of the whole batch.
    """

    def __init__(self, model: nn.Module, objective: str = "hybrid_sum", mini_batch_size: int = 32, **kwargs):
        super().__init__(model, objective, **kwargs)
        if mini_batch_size < 1:
            raise ValueError(f"mini_batch_size must be ≥ 1, got {mini_batch_size}")
        self.mini_batch_size = mini_batch_size

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        features, columns = self.stacked(sentence_features)
        encoder = self.unwrapped_model

        finite = []  # per mini-batch of the first pass, on the device: read only if the loss is not finite

        def encode(**batch: Tensor) -> Tensor:
            embeddings = encoder(batch)["sentence_embedding"]
            if not torch.is_grad_enabled():
                finite.append(torch.isfinite(embeddings).all())
            return embeddings

        average = None  # the mini-batch passes bypass DDP's reducer: the gradients are averaged here
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            average = functools.partial(average_gradients, encoder)
        loss, stats = cached_contrastive_loss(
            encode, features, self.objective, self.mini_batch_size, self.exchange(), average, columns
        )
        self.last_statistics = {name: value.detach() for name, value in stats.items()}
        self.stop_if_diverged(loss, lambda: bool(torch.stack(finite).all()))
        return loss

    def get_config_dict(self) -> dict:
        return {**super().get_config_dict(), "mini_batch_size": self.mini_batch_size}
