"""--prompt: put before every training and evaluation sentence, saved as the sentence-transformers default prompt
(so that `SentenceTransformer(path).encode` applies it and gives hncse's vectors), its tokens left out of mean
pooling with --prompt_in_pooling false (sentence-transformers' include_prompt)."""

from __future__ import annotations

import json

import pytest
import torch
from datasets import Dataset

import hncse.train
from hncse.data import tokenize_sentences
from hncse.data.streaming import TokenizingCollator
from hncse.modeling import SentenceEncoder

PROMPT = "the man says : "
SENTENCES = ["a woman is playing a flute .", "two dogs run", "a man is slicing an onion and a woman is playing ."]


CASES = [("bert", "avg", False), ("bert", "avg", True), ("llama", "lasttoken", False), ("qwen3", "avg", False)]


@pytest.mark.parametrize(("family", "pooler", "in_pooling"), CASES)
def test_the_saved_prompt_gives_hncse_s_vectors_in_sentence_transformers(
    family, pooler, in_pooling, tiny_model_dir, decoder_dirs, tmp_path
):
    from sentence_transformers import SentenceTransformer

    folder = tiny_model_dir if family == "bert" else decoder_dirs[family]
    encoder = SentenceEncoder.from_pretrained(
        str(folder), pooler_type=pooler, prompt=PROMPT, prompt_in_pooling=in_pooling
    )
    ours = encoder.encode(SENTENCES, batch_size=3)
    plain = SentenceEncoder.from_pretrained(str(folder), pooler_type=pooler).encode(SENTENCES, batch_size=3)
    assert (ours - plain).abs().max() > 1e-3  # the prompt changes the vectors
    encoder.save_pretrained(str(tmp_path / "saved"))
    st_config = json.loads((tmp_path / "saved" / "config_sentence_transformers.json").read_text())
    assert st_config["prompts"] == {"default": PROMPT} and st_config["default_prompt_name"] == "default"
    assert json.loads((tmp_path / "saved" / "1_Pooling" / "config.json").read_text())["include_prompt"] is in_pooling
    st = SentenceTransformer(str(tmp_path / "saved"), device="cpu")
    theirs = st.encode(SENTENCES, batch_size=3, convert_to_tensor=True)
    assert torch.nn.functional.cosine_similarity(theirs, ours).min() >= 0.9999
    again = SentenceEncoder.from_pretrained(str(tmp_path / "saved"))
    assert (again.prompt, again.prompt_in_pooling) == (PROMPT, in_pooling)
    torch.testing.assert_close(again.encode(SENTENCES, batch_size=3), ours, atol=1e-5, rtol=1e-4)


def test_training_sentences_get_the_prompt(tiny_model_dir, corpus_file, senteval_dir, tmp_path):
    encoder = SentenceEncoder.from_pretrained(str(tiny_model_dir))
    tokenizer = encoder.tokenizer
    prompt_ids = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    rows = tokenize_sentences(Dataset.from_dict({"text": SENTENCES}), tokenizer, 16, prompt=PROMPT)
    assert all(ids[1 : 1 + len(prompt_ids)] == prompt_ids for ids in rows["input_ids"])  # after [CLS]
    batch = TokenizingCollator(tokenizer, 16, prompt=PROMPT)([{"text": s} for s in SENTENCES])  # --streaming
    assert batch["input_ids"][:, 1 : 1 + len(prompt_ids)].tolist() == [prompt_ids] * len(SENTENCES)

    from sentence_transformers import SentenceTransformer

    out = tmp_path / "run"
    hncse.train.main(
        ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(corpus_file), "--senteval_dir",
         str(senteval_dir), "--output_dir", str(out), "--per_device_train_batch_size", "8", "--max_steps", "2",
         "--eval_steps", "2", "--save_steps", "2", "--pooler_type", "avg", "--prompt", PROMPT,
         "--prompt_in_pooling", "false", "--disable_tqdm", "true", "--dataloader_pin_memory", "false"]
    )  # fmt: skip
    settings = json.loads((out / "run_config.json").read_text())
    assert settings["prompt"] == PROMPT and settings["prompt_in_pooling"] is False
    ours = SentenceEncoder.from_pretrained(str(out)).encode(SENTENCES)
    theirs = SentenceTransformer(str(out), device="cpu").encode(SENTENCES, convert_to_tensor=True)
    assert torch.nn.functional.cosine_similarity(theirs, ours).min() >= 0.9999
    # Trained on from that folder, --prompt_in_pooling alone (no --prompt) applies to the folder's prompt.
    again = tmp_path / "again"
    hncse.train.main(
        ["--model_name_or_path", str(out), "--train_file", str(corpus_file), "--output_dir", str(again),
         "--per_device_train_batch_size", "8", "--max_steps", "1", "--eval_strategy", "no",
         "--load_best_model_at_end", "false", "--prompt_in_pooling", "true", "--disable_tqdm", "true",
         "--dataloader_pin_memory", "false"]
    )  # fmt: skip
    saved = json.loads((again / "hncse_config.json").read_text())
    assert (saved["prompt"], saved["prompt_in_pooling"]) == (PROMPT, True)
