"""run_hncse.py on tiny random decoders: the trained folder attends as training did (causal by default, both ways
with --bidirectional true) and loads in sentence-transformers with hncse's vectors; a decoder as released (no
dropout) is refused for unsupervised training before anything loads."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_run import base_argv
from transformers import AutoModel, AutoTokenizer

import hncse.train
from hncse.errors import ConfigError
from hncse.modeling import SentenceEncoder
from hncse.parser import parse_args

SENTENCES = ["the city is old", "a man is playing a guitar .", "two dogs run in the park ."]


def prefix_gap(folder) -> float:
    model, tokenizer = AutoModel.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    ids = tokenizer("the city is old", add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return (
            (model(input_ids=ids).last_hidden_state[0, :2] - model(input_ids=ids[:, :2]).last_hidden_state[0])
            .abs()
            .max()
            .item()
        )


@pytest.mark.parametrize(("family", "bidirectional"), [("llama", "false"), ("qwen3", "true")])
def test_a_trained_decoder_folder_attends_as_it_trained(
    decoder_dirs, corpus_file, senteval_dir, tmp_path, family, bidirectional
):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "run"
    argv = base_argv(decoder_dirs[family], corpus_file, senteval_dir, out)
    hncse.train.main([*argv, "--dropout", "0.1", "--bidirectional", bidirectional, "--max_steps", "2"])
    settings = json.loads((out / "run_config.json").read_text())
    assert settings["dropout"] == 0.1 and settings["bidirectional"] is (bidirectional == "true")
    config = json.loads((out / "config.json").read_text())
    assert config["attention_dropout"] == 0.1
    if bidirectional == "true":
        assert config["is_causal"] is False and prefix_gap(out) > 1e-3
    else:
        assert config.get("is_causal", True) is True and prefix_gap(out) < 1e-5
    assert json.loads((out / "hncse_config.json").read_text())["pooler_type"] == "lasttoken"
    ours = SentenceEncoder.from_pretrained(str(out)).encode(SENTENCES)
    theirs = SentenceTransformer(str(out), device="cpu").encode(SENTENCES, convert_to_tensor=True)
    assert torch.nn.functional.cosine_similarity(ours, theirs).min() >= 0.9999


def test_a_decoder_without_dropout_is_refused_before_anything_loads(
    decoder_dirs, corpus_file, senteval_dir, tmp_path, monkeypatch
):
    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(SentenceEncoder, "from_pretrained", no_loading)
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"has no dropout .* set --dropout, e\.g\. --dropout 0\.1"):
        hncse.train.main(base_argv(decoder_dirs["llama"], corpus_file, senteval_dir, out))
    assert not out.exists()


def test_the_llm_config_trains_as_written_on_a_tiny_qwen3(decoder_dirs, corpus_file, senteval_dir, tmp_path):
    """configs/llm's settings (LoRA, bidirectional, dropout, bf16, activation checkpointing, hybrid_sum) hold
    together: 2 steps with only the model, data and size swapped for the tiny ones."""
    from tiny_run import REPO

    config = f"{REPO}/configs/llm/qwen3-0.6b-lora-hybrid_sum.yaml"
    model_args, _, args = parse_args([config])
    assert model_args.model_name_or_path == "Qwen/Qwen3-0.6B" and model_args.lora_r == 16 and args.bf16
    out = tmp_path / "llm"
    hncse.train.main(
        [config, "--model_name_or_path", str(decoder_dirs["qwen3"]), "--train_file", str(corpus_file),
         "--senteval_dir", str(senteval_dir), "--output_dir", str(out), "--max_steps", "2", "--eval_steps", "2",
         "--save_steps", "2", "--per_device_train_batch_size", "8", "--max_seq_length", "16", "--hnm_k", "4",
         "--disable_tqdm", "true", "--dataloader_pin_memory", "false"]
    )  # fmt: skip
    saved = json.loads((out / "config.json").read_text())
    assert saved["is_causal"] is False and saved["attention_dropout"] == 0.1
    assert json.loads((out / "run_config.json").read_text())["lora_r"] == 16
