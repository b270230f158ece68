"""The training order in flat memory: the same indices, in the same order, as accelerate's seedable sampler."""

from __future__ import annotations

import pytest
import torch
from accelerate.data_loader import SeedableRandomSampler

from hncse.training.sampler import PermutationSampler


@pytest.mark.parametrize("data_seed", [None, 1234])
def test_same_order_as_accelerates_seedable_sampler_epoch_after_epoch(data_seed):
    size = 70_001  # more than one slice of indices
    torch.manual_seed(42)  # what set_seed(--seed) leaves as torch's initial seed
    reference = SeedableRandomSampler(
        data_source=range(size), replacement=False, num_samples=None, generator=None, data_seed=data_seed
    )
    ours = PermutationSampler(size, data_seed)
    for _ in range(3):  # each finished pass moves both to the next epoch
        assert list(ours) == list(reference)
    reference.set_epoch(7)
    ours.set_epoch(7)
    assert list(ours) == list(reference) and len(ours) == size
    assert sorted(PermutationSampler(size, 5)) == list(range(size))


def test_the_trainer_uses_it_and_the_first_batch_is_unchanged(tiny_model_dir, corpus_file, tmp_path):
    from transformers import DataCollatorWithPadding, Trainer

    from hncse.data import load_sentences, tokenize_sentences
    from hncse.modeling import SentenceEncoder
    from hncse.parser import parse_args
    from hncse.training.trainer import HNCSETrainer

    _, _, args = parse_args(
        ["--train_file", str(corpus_file), "--output_dir", str(tmp_path), "--eval_strategy", "no",
         "--load_best_model_at_end", "false", "--per_device_train_batch_size", "8"]
    )  # fmt: skip
    model = SentenceEncoder.from_pretrained(str(tiny_model_dir))
    data = tokenize_sentences(load_sentences(train_file=str(corpus_file)), model.tokenizer, 16)
    data = data.remove_columns("num_tokens")
    collate = DataCollatorWithPadding(model.tokenizer)
    trainer = HNCSETrainer(model=model, args=args, train_dataset=data, data_collator=collate)
    loader = trainer.get_train_dataloader()
    assert isinstance(loader.batch_sampler.sampler, PermutationSampler)
    ours = [batch["input_ids"] for batch in loader][:3]

    stock = Trainer(model=model, args=args, train_dataset=data, data_collator=collate)
    stock_loader = stock.get_train_dataloader()
    assert isinstance(stock_loader.batch_sampler.sampler, SeedableRandomSampler)
    theirs = [batch["input_ids"] for batch in stock_loader][:3]
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
