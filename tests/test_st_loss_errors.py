"""`HNCSELoss` (the objectives as sentence-transformers losses) on a model that diverges: NaN or infinite embeddings,
or a loss that overflows, stop training with one `TrainingDivergedError` line naming the batch, before that batch's
gradients reach the weights; evaluation losses are left to the Trainer."""

from __future__ import annotations

import pytest
import torch

from hncse.errors import TrainingDivergedError
from hncse.modeling import SentenceEncoder
from hncse.st_losses import CachedHNCSELoss, HNCSELoss

SENTENCES = ["a man is playing a guitar .", "a woman is slicing an onion .", "the cat sits on the mat .",
             "two dogs run in the park .", "a child is riding a horse .", "someone is cooking food ."]  # fmt: skip
PARAMS = {"simcse": {}, "pm": {"pm_theta": 1.0}, "hnm": {"hnm_k": 4, "hnm_s": 5}, "hybrid": {"hnm_k": 4, "hnm_s": 5},
          "hybrid_sum": {"hnm_k": 4, "hnm_s": 5}}  # fmt: skip


@pytest.fixture(scope="module")
def folder(tiny_model_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("st-folder")
    SentenceEncoder.from_pretrained(str(tiny_model_dir), pooler_type="avg").save_pretrained(str(path))
    return path


def st_model(folder):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu")
    model.train()
    return model


class NaNFrom:
    """A forward hook on the Pooling module: the embeddings are `value` from the `first`-th forward call on, and
    the weights at that call (those the previous steps left) are kept."""

    def __init__(self, model, first: int, value: float = float("nan")):
        self.model, self.first, self.value, self.calls, self.weights = model, first, value, 0, None
        model[1].register_forward_hook(self)

    def __call__(self, module, args, output):
        self.calls += 1
        if self.calls < self.first:
            return output
        if self.weights is None:
            self.weights = {n: p.detach().clone() for n, p in self.model.named_parameters()}
        output["sentence_embedding"] = output["sentence_embedding"] * 0 + self.value
        return output


@pytest.mark.parametrize("cls", [HNCSELoss, CachedHNCSELoss])
@pytest.mark.parametrize("objective", list(PARAMS))
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_embeddings_are_one_line_naming_the_batch(folder, objective, cls, value):
    model = st_model(folder)
    extra = {"mini_batch_size": 4} if cls is CachedHNCSELoss else {}
    loss_fn = cls(model, objective, **PARAMS[objective], **extra)
    features = [model.preprocess(SENTENCES)]
    loss_fn(features).backward()  # batch 1 is finite
    NaNFrom(model, first=1, value=value)
    with pytest.raises(TrainingDivergedError) as error:
        loss_fn(features)
    said = str(error.value)
    assert "\n" not in said and said.startswith(f"{cls.__name__}: the embeddings became non-finite (nan or inf")
    assert "in training batch 2; stopped before its update" in said and "lower the learning rate" in said


def test_a_loss_that_overflows_with_finite_embeddings_says_so(folder):
    model = st_model(folder)
    loss_fn = HNCSELoss(model, "simcse", temperature=1e-45)  # cosine / temperature overflows float32
    with pytest.raises(TrainingDivergedError, match=r"^HNCSELoss: the loss became nan with finite embeddings in "
                       r"training batch 1; .* \(raise temperature, "):  # fmt: skip
        loss_fn([model.preprocess(SENTENCES)])


def test_an_evaluation_loss_is_left_to_the_trainer(folder):
    model = st_model(folder)
    loss_fn = HNCSELoss(model, "simcse")
    NaNFrom(model, first=1)
    with torch.no_grad():
        assert torch.isnan(loss_fn([model.preprocess(SENTENCES)]))
    assert loss_fn.batches == 0


@pytest.mark.parametrize("cls", [HNCSELoss, CachedHNCSELoss])
def test_sentence_transformers_trainer_stops_before_the_bad_update(folder, tmp_path, cls):
    """The embeddings turn NaN at the 3rd step: the Trainer stops there with the weights of step 2, instead of
    logging the mean of the finite losses while NaN gradients overwrite the weights."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    model = st_model(folder)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "run"), per_device_train_batch_size=6, max_steps=5, learning_rate=1e-3,
        logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, seed=1, disable_tqdm=True,
    )  # fmt: skip
    extra = {"mini_batch_size": 6} if cls is CachedHNCSELoss else {}
    loss_fn = cls(model, "hybrid_sum", **PARAMS["hybrid_sum"], **extra)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    # the cached loss runs the Pooling twice for each of its 2 mini-batches a step (first pass, replay)
    poison = NaNFrom(model, first=3 if cls is HNCSELoss else 2 * 2 * 2 + 1)
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=Dataset.from_dict({"text": SENTENCES * 5}), loss=loss_fn
    )
    with pytest.raises(TrainingDivergedError, match="the embeddings became non-finite .* in training batch 3;"):
        trainer.train()
    assert trainer.state.global_step == 2
    assert any(not torch.equal(before[n], poison.weights[n]) for n in before)  # steps 1 and 2 trained
    for name, param in model.named_parameters():
        assert torch.equal(param.detach(), poison.weights[name]), name  # step 3 applied nothing
