"""Poolers against a naive computation, the MLP head's train/eval switch, and the saved folder in other libraries."""

import json
import os

import numpy as np
import pytest
import torch
from transformers import AutoModel

from hncse.modeling import SentenceEncoder
from hncse.modeling.pooling import POOLER_TYPES

SENTENCES = [
    "a man is playing a guitar .",
    "the cat sat on the mat",
    "two dogs run",
    "a woman is slicing an onion and a man is playing a flute .",
]


def naive_pool(pooler_type, hidden_states, mask):
    """Per sentence, per token loops: mean of the chosen layer(s) over the real tokens, or the first token."""
    layers = {"avg": [-1], "avg_top2": [-1, -2], "avg_first_last": [1, -1]}
    out = []
    for b in range(mask.shape[0]):
        if pooler_type in ("cls", "cls_before_pooler"):
            out.append(hidden_states[-1][b, 0])
            continue
        if pooler_type == "lasttoken":  # the last position whose mask is 1
            out.append(hidden_states[-1][b, max(t for t in range(mask.shape[1]) if mask[b, t])])
            continue
        total, count = 0, 0
        for t in range(mask.shape[1]):
            if mask[b, t]:
                total = total + sum(hidden_states[layer][b, t] for layer in layers[pooler_type]) / len(
                    layers[pooler_type]
                )
                count += 1
        out.append(total / count)
    return torch.stack(out)


@pytest.fixture()
def encoder_factory(tiny_model_dir):
    def make(pooler_type, mlp_only_train=True):
        torch.manual_seed(1)
        return SentenceEncoder.from_pretrained(
            str(tiny_model_dir), pooler_type=pooler_type, mlp_only_train=mlp_only_train
        )

    return make


@pytest.mark.parametrize("pooler_type", POOLER_TYPES)
def test_pooler_matches_naive(encoder_factory, pooler_type):
    model = encoder_factory(pooler_type).eval()
    batch = model.tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        got = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        hidden = model.encoder(**batch, output_hidden_states=True).hidden_states
    assert got.shape == (len(SENTENCES), 32)
    torch.testing.assert_close(got, naive_pool(pooler_type, hidden, batch["attention_mask"]), atol=1e-5, rtol=1e-5)


def test_mlp_head_only_in_training_by_default(encoder_factory):
    model = encoder_factory("cls")
    batch = model.tokenizer(SENTENCES, padding=True, return_tensors="pt")
    model.encoder.eval()  # no dropout, so only the head differs between the two calls
    model.train()
    model.encoder.eval()
    with torch.no_grad():
        trained = model(batch["input_ids"], batch["attention_mask"])
        cls_state = model.encoder(**batch).last_hidden_state[:, 0]
        torch.testing.assert_close(trained, torch.tanh(model.mlp[0](cls_state)))
        model.eval()
        torch.testing.assert_close(model(batch["input_ids"], batch["attention_mask"]), cls_state)


def test_mlp_at_inference_when_asked(encoder_factory):
    model = encoder_factory("cls", mlp_only_train=False).eval()
    batch = model.tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        cls_state = model.encoder(**batch).last_hidden_state[:, 0]
        torch.testing.assert_close(
            model(batch["input_ids"], batch["attention_mask"]), torch.tanh(model.mlp[0](cls_state))
        )


def test_no_mlp_for_other_poolers_and_encoder_pooler_frozen(encoder_factory):
    assert encoder_factory("avg").mlp is None
    model = encoder_factory("cls")
    frozen = [n for n, p in model.encoder.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith("pooler.") for n in frozen)


def test_encode_keeps_input_order_and_batching_does_not_change_results(encoder_factory):
    model = encoder_factory("avg")
    one_by_one = torch.cat([model.encode([s]) for s in SENTENCES])
    batched = model.encode(SENTENCES, batch_size=3)
    torch.testing.assert_close(batched, one_by_one, atol=1e-5, rtol=1e-5)
    assert model.training  # encode restores the mode it found


@pytest.mark.parametrize(
    "pooler_type,mlp_only_train",
    [
        ("cls", True),
        ("cls", False),
        ("cls_before_pooler", True),
        ("avg", True),
        ("avg_top2", True),
        ("avg_first_last", True),
    ],
)
def test_saved_folder_gives_same_embeddings_in_sentence_transformers(
    encoder_factory, tmp_path, pooler_type, mlp_only_train
):
    from sentence_transformers import SentenceTransformer

    model = encoder_factory(pooler_type, mlp_only_train)
    if model.mlp is not None:
        torch.nn.init.normal_(model.mlp[0].weight)  # make sure a missing head would show
    model.save_pretrained(str(tmp_path))
    ours = model.encode(SENTENCES)
    st = SentenceTransformer(str(tmp_path), device="cpu")
    theirs = st.encode(SENTENCES, convert_to_tensor=True)
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-4)

    reloaded = SentenceEncoder.from_pretrained(str(tmp_path))
    assert (reloaded.pooler_type, reloaded.mlp_only_train) == (pooler_type, mlp_only_train)
    torch.testing.assert_close(reloaded.encode(SENTENCES), ours, atol=1e-6, rtol=1e-6)
    if reloaded.mlp is not None:
        torch.testing.assert_close(reloaded.mlp[0].weight, model.mlp[0].weight)


def test_saved_folder_is_a_plain_transformers_checkpoint(encoder_factory, tmp_path):
    model = encoder_factory("cls")
    model.save_pretrained(str(tmp_path))
    assert (tmp_path / "model.safetensors").is_file() and not (tmp_path / "pytorch_model.bin").exists()
    loaded = AutoModel.from_pretrained(str(tmp_path)).eval()
    batch = model.tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        cls_state = loaded(**batch).last_hidden_state[:, 0]
    torch.testing.assert_close(model.encode(SENTENCES), cls_state, atol=1e-5, rtol=1e-5)
    assert json.loads((tmp_path / "hncse_config.json").read_text())["pooler_type"] == "cls"


def test_unknown_pooler_is_rejected(tiny_model_dir):
    with pytest.raises(ValueError, match="pooler_type"):
        SentenceEncoder.from_pretrained(str(tiny_model_dir), pooler_type="max")


def test_unreachable_model_gives_one_line_error():
    from hncse.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError) as info:
        SentenceEncoder.from_pretrained("no-such-org/no-such-model-hncse")
    message = str(info.value)
    assert "\n" not in message and "no-such-org/no-such-model-hncse" in message and "local folder" in message
    with pytest.raises(ModelNotFoundError, match="^model_name_or_path: no such folder: ./does/not/exist$"):
        SentenceEncoder.from_pretrained("./does/not/exist")
    # hncse-evaluate's positional MODEL: the line names it as its usage line does, without run_hncse.py's flag
    with pytest.raises(ModelNotFoundError, match="^model: cannot load 'no-such-org/x'.* instead$"):
        SentenceEncoder.from_pretrained("no-such-org/x", argument="model")


def test_activation_checkpointing_gives_the_same_gradients(tiny_model_dir):
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(3)
        model = SentenceEncoder.from_pretrained(
            str(tiny_model_dir), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
        )
        if checkpointing:
            model.activation_checkpointing_enable()
        model.train()
        batch = model.tokenizer(SENTENCES, padding=True, return_tensors="pt")
        model(batch["input_ids"], batch["attention_mask"]).pow(2).sum().backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and "encoder.embeddings.word_embeddings.weight" in grads[1]
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-5)


def test_hub_id_of_a_packaged_model_resolves_to_its_folder():
    from hncse.modeling.resolve import resolve_model_path

    folder = resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")
    assert folder != "sentence-transformers/all-MiniLM-L6-v2"
    assert all(os.path.isfile(os.path.join(folder, name)) for name in ("config.json", "model.safetensors"))
    assert resolve_model_path("some-org/some-model") == "some-org/some-model"


def test_similarity_helper_matches_sentence_transformers_and_a_loop(encoder_factory, tmp_path):
    from sentence_transformers import SentenceTransformer

    from hncse import similarity

    model = encoder_factory("avg")
    model.save_pretrained(str(tmp_path))
    ours = model.encode(SENTENCES, normalize=True, convert_to_numpy=True)
    assert isinstance(ours, np.ndarray) and np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    st = SentenceTransformer(str(tmp_path), device="cpu")
    theirs = st.similarity(st.encode(SENTENCES[:2]), st.encode(SENTENCES))
    got = similarity(ours[:2], ours)
    assert got.shape == (2, len(SENTENCES))
    torch.testing.assert_close(got, theirs.float(), atol=1e-5, rtol=1e-4)
    loop = [[float(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v)) for v in ours] for u in ours[:2]]
    torch.testing.assert_close(got, torch.tensor(loop), atol=1e-6, rtol=1e-5)


def test_a_16_bit_folder_loads_and_resumes_with_float32_weights(tiny_model_dir, tmp_path):
    """A folder saved in bf16 (as ZeRO-3 saves, or a bf16 model from the Hub) gives float32 weights to train —
    encoder and head — equal to the stored values, both as a starting model and as a checkpoint resumed into a
    float32 model."""
    torch.manual_seed(0)
    source = SentenceEncoder.from_pretrained(str(tiny_model_dir), pooler_type="cls")
    source.to(torch.bfloat16).save_pretrained(str(tmp_path / "bf16"))
    stored = {k: v.float() for k, v in source.state_dict().items()}
    assert source.encoder.dtype == torch.bfloat16

    loaded = SentenceEncoder.from_pretrained(str(tmp_path / "bf16"))
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, stored[name]), name

    resumed = SentenceEncoder.from_pretrained(str(tiny_model_dir), pooler_type="cls")
    resumed.load_weights(str(tmp_path / "bf16"))
    assert {p.dtype for p in resumed.parameters()} == {torch.float32}
    for name, value in resumed.state_dict().items():
        assert torch.equal(value, stored[name]), name


def test_the_encoder_gets_the_mask_transformers_would_build(encoder_factory):
    """The (B, 1, L, L) mask handed to an SDPA encoder (so that it never asks the device whether there is
    padding) gives the embeddings of the (B, L) mask, padded batch or not."""
    from hncse.modeling.pooling import pool

    encoder = encoder_factory("avg")
    encoder.eval()
    assert encoder.encoder.config._attn_implementation == "sdpa"
    for sentences in (["a man is playing .", "a dog runs in the field with a ball ."], ["a man", "a dog"]):
        features = encoder.tokenizer(sentences, padding=True, return_tensors="pt")
        with torch.no_grad():
            ours = encoder(**features)
            own_mask = encoder.encoder(**features, return_dict=True).last_hidden_state
        torch.testing.assert_close(ours, pool("avg", features["attention_mask"], own_mask, None), atol=1e-6, rtol=0)


def test_a_damaged_hncse_config_is_one_line(tiny_model_dir, tmp_path):
    from hncse.errors import ModelNotFoundError

    folder = tmp_path / "saved"
    SentenceEncoder.from_pretrained(str(tiny_model_dir)).save_pretrained(str(folder))
    (folder / "hncse_config.json").write_text('{"pooler_type": "max"}', encoding="utf-8")
    with pytest.raises(ModelNotFoundError, match=r"hncse_config.json: pooler_type 'max' is not one of cls"):
        SentenceEncoder.from_pretrained(str(folder))
    (folder / "hncse_config.json").write_text('{"pooler_type": "cls",', encoding="utf-8")
    with pytest.raises(ModelNotFoundError, match=r"hncse_config.json: not readable JSON"):
        SentenceEncoder.from_pretrained(str(folder))
