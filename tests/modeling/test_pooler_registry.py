"""The pooler registry: a pooler defined in this file alone (max over the sentence's tokens, sentence-transformers'
`max` mode) is accepted by the encoder, its saved folder, the loaders, training and the model card."""

from __future__ import annotations

import json
import re

import pytest
import torch
from tiny_run import base_argv

from hncse.modeling import POOLERS, Pooler, SentenceEncoder, get_pooler, register_pooler, unregister_pooler
from hncse.train import main
from hncse.training.model_card import plain_transformers_usage

SENTENCES = ["a man is playing a guitar .", "two dogs run", "a woman is slicing an onion and a man is playing ."]
BUILTINS = "cls, cls_before_pooler, avg, avg_top2, avg_first_last, lasttoken"


def max_over_tokens(attention_mask, last_hidden_state, hidden_states=None):
    """Each feature's largest value over the sentence's tokens, padding left out."""
    padding = attention_mask.unsqueeze(-1) == 0
    return last_hidden_state.masked_fill(padding, float("-inf")).max(dim=1).values


TOY = Pooler(
    name="toy",
    pool=max_over_tokens,
    st_mode="max",
    card_words="the largest value of each feature over the token states",
    card_code=(
        'padding = batch["attention_mask"].unsqueeze(-1) == 0',
        'embeddings = outputs.last_hidden_state.masked_fill(padding, float("-inf")).max(dim=1).values',
    ),
)


@pytest.fixture
def toy():
    register_pooler(TOY)
    yield TOY
    unregister_pooler(TOY.name)


def test_the_encoder_pools_with_it_and_its_folder_loads_everywhere(toy, tiny_model_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = SentenceEncoder.from_pretrained(str(tiny_model_dir), pooler_type="toy").eval()
    assert model.mlp is None
    batch = model.tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        got = model(**batch)
        states = model.encoder(**batch).last_hidden_state
    mask = batch["attention_mask"].bool()
    naive = torch.stack([states[b, mask[b]].max(dim=0).values for b in range(len(SENTENCES))])  # per sentence
    torch.testing.assert_close(got, naive)

    saved = tmp_path / "saved"
    model.save_pretrained(str(saved))
    pooling = json.loads((saved / "1_Pooling" / "config.json").read_text())
    assert [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v] == ["pooling_mode_max_tokens"]
    expected = model.encode(SENTENCES)
    vectors = SentenceTransformer(str(saved), device="cpu").encode(SENTENCES, convert_to_tensor=True)
    torch.testing.assert_close(vectors.cpu(), expected, atol=1e-5, rtol=1e-4)
    again = SentenceEncoder.from_pretrained(str(saved))
    assert again.pooler_type == "toy"
    torch.testing.assert_close(again.encode(SENTENCES), expected)

    namespace = {}
    exec("\n".join(plain_transformers_usage(str(saved), "toy", False, 64)), namespace)
    torch.testing.assert_close(
        namespace["embeddings"], model.encode(namespace["sentences"], normalize=True), atol=1e-5, rtol=1e-4
    )
    (saved / "hncse_config.json").unlink()  # a plain sentence-transformers folder with max pooling: the toy pooler
    assert SentenceEncoder.from_pretrained(str(saved)).pooler_type == "toy"


def test_an_unregistered_pooler_is_gone(tiny_model_dir):
    register_pooler(TOY)
    with pytest.raises(ValueError, match="a pooler named 'toy' is already registered"):
        register_pooler(TOY)
    unregister_pooler("toy")
    assert "toy" not in POOLERS
    with pytest.raises(ValueError, match=re.escape(f"unknown pooler_type 'toy'; choose one of {BUILTINS}")):
        get_pooler("toy")
    with pytest.raises(ValueError, match=re.escape(f"pooler_type: unknown value 'toy'; choose one of {BUILTINS}")):
        SentenceEncoder.from_pretrained(str(tiny_model_dir), pooler_type="toy")


def test_two_step_run_with_it_writes_a_folder_and_card(toy, tiny_model_dir, corpus_file, senteval_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "toy-run"
    main([*base_argv(tiny_model_dir, corpus_file, senteval_dir, out), "--pooler_type", "toy", "--max_steps", "2"])
    assert json.loads((out / "hncse_config.json").read_text())["pooler_type"] == "toy"
    ours = SentenceEncoder.from_pretrained(str(out))
    assert ours.pooler_type == "toy"
    expected = ours.encode(SENTENCES)
    vectors = SentenceTransformer(str(out), device="cpu").encode(SENTENCES, convert_to_tensor=True)
    torch.testing.assert_close(vectors.cpu(), expected, atol=1e-5, rtol=1e-4)

    card = (out / "README.md").read_text(encoding="utf-8")
    assert f"a 32-dimensional vector ({TOY.card_words}) whose cosine similarity" in card
    assert "| pooler_type | toy |" in card
    plain = re.findall(r"```python\n(.*?)```", card, flags=re.S)[-1]  # with transformers alone
    assert "\n".join(TOY.card_code) in plain
    namespace = {}
    exec(plain.replace("print(", "(lambda *a: None)("), namespace)
    sentences = namespace["sentences"]
    torch.testing.assert_close(namespace["embeddings"], ours.encode(sentences, normalize=True), atol=1e-5, rtol=1e-4)
