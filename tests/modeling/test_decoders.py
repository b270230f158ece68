"""Decoder LLMs (tiny random Llama, Qwen3, Mistral): causal unless --bidirectional, in hncse's forward and in the
saved folder reloaded by AutoModel and SentenceTransformer; last-token pooling over an appended EOS that the saved
tokenizer appends too; a pad token when the tokenizer has none; --dropout; and one line for what cannot hold."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertConfig, T5Config

from hncse.errors import ConfigError
from hncse.modeling import SentenceEncoder
from hncse.modeling.attention import attention_mask_for, bidirectional_holds
from hncse.modeling.backbone import check_views_differ, prepare_config
from hncse.modeling.dropout import dropout_fields

SENTENCES = ["the city is old", "a man is playing a guitar .", "two dogs run", "a woman is slicing an onion ."]


def prefix_gap(model, tokenizer) -> float:
    """Largest change of the first two tokens' states when two more tokens follow: 0 for a causal model."""
    ids = tokenizer("the city is old", add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        whole = model(input_ids=ids).last_hidden_state[0, :2]
        prefix = model(input_ids=ids[:, :2]).last_hidden_state[0]
    return (whole - prefix).abs().max().item()


def naive_vectors(folder, pooler: str) -> torch.Tensor:
    """The saved folder in plain transformers, one sentence at a time (no padding): mean or last state."""
    model, tokenizer = AutoModel.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    out = []
    with torch.no_grad():
        for sentence in SENTENCES:
            states = model(**tokenizer(sentence, return_tensors="pt")).last_hidden_state[0]
            out.append(states.mean(dim=0) if pooler == "avg" else states[-1])
    return torch.stack(out)


@pytest.mark.parametrize("family", ["llama", "qwen3", "mistral"])
@pytest.mark.parametrize("bidirectional", [None, True])
def test_the_saved_folder_attends_as_training_did(decoder_dirs, family, bidirectional, tmp_path):
    encoder = SentenceEncoder.from_pretrained(str(decoder_dirs[family]), bidirectional=bidirectional).eval()
    assert encoder.pooler_type == "lasttoken"  # a decoder's default
    ours = encoder.encode(SENTENCES, batch_size=4)  # one batch, padded
    encoder.save_pretrained(str(tmp_path / "saved"))

    reloaded = AutoModel.from_pretrained(tmp_path / "saved").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "saved")
    saved_config = json.loads((tmp_path / "saved" / "config.json").read_text())
    if bidirectional:
        assert saved_config["is_causal"] is False and prefix_gap(reloaded, tokenizer) > 1e-3
    else:
        assert saved_config.get("is_causal", True) is True and prefix_gap(reloaded, tokenizer) < 1e-5
    torch.testing.assert_close(ours, naive_vectors(tmp_path / "saved", "lasttoken"), atol=1e-5, rtol=1e-4)

    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(tmp_path / "saved"), device="cpu")
    pooling = json.loads((tmp_path / "saved" / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_lasttoken"] is True and st[1].pooling_mode == "lasttoken"
    theirs = st.encode(SENTENCES, batch_size=4, convert_to_tensor=True)
    assert torch.nn.functional.cosine_similarity(theirs, ours).min() >= 0.9999


def test_eos_is_appended_and_the_saved_tokenizer_appends_it_too(decoder_dirs, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        encoder = SentenceEncoder.from_pretrained(str(decoder_dirs["llama"]))
    assert [r.message for r in caplog.records if "no pad token" in r.message] == [
        f"{decoder_dirs['llama']}: its tokenizer has no pad token; padding with its EOS token '</s>'"
    ]
    tokenizer = encoder.tokenizer
    ids = tokenizer("the city is old")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id and len(ids) == 6
    assert tokenizer.pad_token == "</s>" and tokenizer.padding_side == "right"
    encoder.save_pretrained(str(tmp_path / "saved"))
    again = AutoTokenizer.from_pretrained(tmp_path / "saved")
    assert again("the city is old")["input_ids"] == ids and again.pad_token == "</s>"
    assert again("the city is old", truncation=True, max_length=3)["input_ids"][-1] == tokenizer.eos_token_id
    qwen = SentenceEncoder.from_pretrained(str(decoder_dirs["qwen3"])).tokenizer  # no BOS: none is added
    assert qwen("the city")["input_ids"] == [*qwen("the city", add_special_tokens=False)["input_ids"], 2]
    mean = SentenceEncoder.from_pretrained(str(decoder_dirs["qwen3"]), pooler_type="avg").tokenizer
    assert mean("the city")["input_ids"][-1] != 2  # mean pooling: the sentence as the tokenizer gives it


def test_a_causal_mask_without_host_syncs_under_left_and_right_padding(decoder_dirs):
    """hncse's SDPA mask for a causal decoder equals the one transformers builds (where a row has real tokens), and
    the last-token vector does not depend on the padding side."""
    encoder = SentenceEncoder.from_pretrained(str(decoder_dirs["llama"])).eval()
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 1]])
    built = attention_mask_for(encoder.encoder.config, mask)
    naive = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    for b in range(2):
        for q in range(4):
            for k in range(4):
                naive[b, 0, q, k] = (k <= q and mask[b, k] == 1) or k == q
    assert torch.equal(built, naive)
    tokenizer = encoder.tokenizer
    vectors = {}
    for side in ("right", "left"):
        tokenizer.padding_side = side
        batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
        if side == "left":  # rotary positions from the first real token, as in a right-padded batch
            batch["position_ids"] = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            states = encoder.encoder(
                input_ids=batch["input_ids"],
                attention_mask=attention_mask_for(encoder.encoder.config, batch["attention_mask"]),
                **({"position_ids": batch["position_ids"]} if "position_ids" in batch else {}),
            ).last_hidden_state
        from hncse.modeling.pooling import pool

        vectors[side] = pool("lasttoken", batch["attention_mask"], states)
    torch.testing.assert_close(vectors["left"], vectors["right"], atol=1e-5, rtol=1e-4)


def test_dropout_sets_the_configs_own_fields():
    from transformers import LlamaConfig

    config = LlamaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    prepare_config(config, "llama", dropout=0.3)
    assert dropout_fields(config) == {"attention_dropout": 0.3}
    bert = BertConfig()
    prepare_config(bert, "bert", dropout=0.2)
    assert dropout_fields(bert) == {"hidden_dropout_prob": 0.2, "attention_probs_dropout_prob": 0.2}
    check_views_differ(config, "llama", unsupervised=True)
    released = LlamaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    with pytest.raises(ConfigError, match=r"llama \(llama\) has no dropout .*set --dropout"):
        check_views_differ(released, "llama", unsupervised=True)
    check_views_differ(released, "llama", unsupervised=False)  # pairs: the views are two sentences
    check_views_differ(released, "llama", unsupervised=True, extra_dropout=0.05)  # e.g. LoRA's dropout


def test_what_cannot_hold_is_one_line(decoder_dirs, tiny_model_dir):
    with pytest.raises(ConfigError, match=r"--pooler_type cls: .* is a causal decoder \(llama\), whose first token"):
        SentenceEncoder.from_pretrained(str(decoder_dirs["llama"]), pooler_type="cls")
    assert SentenceEncoder.from_pretrained(str(decoder_dirs["llama"]), pooler_type="cls", bidirectional=True)
    with pytest.raises(ConfigError, match=r"--bidirectional false: .* is an encoder \(bert\), which attends both"):
        SentenceEncoder.from_pretrained(str(tiny_model_dir), bidirectional=False)
    with pytest.raises(ConfigError, match=r"an encoder-decoder model \(t5\)"):
        prepare_config(T5Config(), "t5-small")
    assert bidirectional_holds(AutoConfigFor("qwen3"))


def AutoConfigFor(family):  # noqa: N802 (reads as the config it returns)
    from transformers import AutoConfig

    return AutoConfig.for_model(family, hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
