"""Every transformers family hncse trains, as tiny random models: 2 training steps, then the saved folder in
sentence-transformers gives hncse's vectors (batches with padding). Encoders share the tiny BERT's WordPiece
vocabulary; decoders are tests/tiny_decoders.py's. An encoder-decoder model is refused with one line."""

from __future__ import annotations

import shutil

import pytest
import torch
from transformers import (
    AutoModel,
    AutoTokenizer,
    BertConfig,
    DebertaV2Config,
    ElectraConfig,
    ModernBertConfig,
    MPNetConfig,
    RobertaConfig,
    T5Config,
    XLMRobertaConfig,
)

import hncse.train
from hncse.errors import ConfigError
from hncse.modeling import SentenceEncoder

SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
ENCODERS = {
    "bert": lambda: BertConfig(max_position_embeddings=64, **SIZES),
    "roberta": lambda: RobertaConfig(max_position_embeddings=66, pad_token_id=0, **SIZES),  # positions from 2
    "xlm-roberta": lambda: XLMRobertaConfig(max_position_embeddings=66, pad_token_id=0, **SIZES),
    "deberta-v2": lambda: DebertaV2Config(max_position_embeddings=64, pad_token_id=0, **SIZES),
    "electra": lambda: ElectraConfig(embedding_size=16, max_position_embeddings=64, pad_token_id=0, **SIZES),
    "mpnet": lambda: MPNetConfig(max_position_embeddings=66, pad_token_id=0, **SIZES),
    "modernbert": lambda: ModernBertConfig(
        max_position_embeddings=64, pad_token_id=0, global_attn_every_n_layers=2, local_attention=16,
        attention_dropout=0.1, **SIZES,
    ),
}  # fmt: skip
DECODERS = ("llama", "qwen3", "mistral")
SENTENCES = ["a man is playing a guitar .", "two dogs run", "a woman is slicing an onion and a man is playing ."]


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory, tiny_model_dir, decoder_dirs):
    root = tmp_path_factory.mktemp("families")
    folders = dict(decoder_dirs)
    for family, make in ENCODERS.items():
        folder = root / family
        torch.manual_seed(0)
        config = make()
        config.vocab_size = AutoTokenizer.from_pretrained(tiny_model_dir).vocab_size
        AutoModel.from_config(config).save_pretrained(folder)
        for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            if (tiny_model_dir / name).exists():
                shutil.copy(tiny_model_dir / name, folder / name)
        folders[family] = folder
    return folders


@pytest.mark.parametrize("family", [*ENCODERS, *DECODERS])
def test_each_family_trains_and_loads_in_sentence_transformers(family, family_dirs, corpus_file, tmp_path):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / family
    argv = [
        "--model_name_or_path", str(family_dirs[family]), "--train_file", str(corpus_file), "--output_dir", str(out),
        "--per_device_train_batch_size", "8", "--max_seq_length", "16", "--max_steps", "2", "--eval_strategy", "no",
        "--load_best_model_at_end", "false", "--save_strategy", "no", "--dataloader_pin_memory", "false",
        "--disable_tqdm", "true", "--learning_rate", "1e-3", "--dropout", "0.1",
    ]  # fmt: skip
    hncse.train.main(argv)
    ours = SentenceEncoder.from_pretrained(str(out)).encode(SENTENCES, batch_size=3)
    theirs = SentenceTransformer(str(out), device="cpu").encode(SENTENCES, batch_size=3, convert_to_tensor=True)
    assert torch.nn.functional.cosine_similarity(ours, theirs).min() >= 0.9999
    trained = AutoModel.from_pretrained(out).state_dict()
    start = AutoModel.from_pretrained(family_dirs[family]).state_dict()
    assert any(not torch.equal(trained[k], start[k]) for k in start if k in trained)  # it trained


def test_an_encoder_decoder_model_is_refused(tmp_path, tiny_model_dir):
    folder = tmp_path / "t5"
    AutoModel.from_config(T5Config(d_model=32, d_ff=64, num_layers=1, num_heads=2, vocab_size=64)).save_pretrained(
        folder
    )
    with pytest.raises(ConfigError, match=r"an encoder-decoder model \(t5\); hncse trains encoder-only"):
        SentenceEncoder.from_pretrained(str(folder))
