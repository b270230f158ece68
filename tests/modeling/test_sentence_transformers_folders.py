"""Sentence-transformers folders both ways: `SentenceEncoder.from_pretrained` honours every module that changes the
vectors (WeightedLayerPooling, Dense, Normalize) or refuses with one line, and the folder it saves computes the
same vectors in sentence-transformers."""

from __future__ import annotations

import json

import pytest
import torch

from hncse.errors import ModelNotFoundError
from hncse.modeling import SentenceEncoder
from hncse.modeling.resolve import resolve_model_path

SENTENCES = ["a man is playing a guitar .", "a woman is slicing an onion .", "the cat sits on the mat .",
             "two dogs run in the park .", "someone is cooking food ."]  # fmt: skip
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def st_encode(path, normalize=False):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu").encode(
        SENTENCES, convert_to_tensor=True, normalize_embeddings=normalize
    )


@pytest.mark.parametrize("normalize", [False, True])
def test_the_bundled_model_gives_sentence_transformers_vectors(normalize):
    """all-MiniLM-L6-v2 is Transformer → Pooling (mean) → Normalize: its vectors have norm 1."""
    path = resolve_model_path(MINILM)
    ours = SentenceEncoder.from_pretrained(MINILM)
    assert (ours.pooler_type, ours.sentence_transformers_modules) == ("avg", ["Normalize"])
    vectors = ours.encode(SENTENCES, normalize=normalize)
    torch.testing.assert_close(vectors, st_encode(path, normalize), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(vectors.norm(dim=-1), torch.ones(len(SENTENCES)), atol=1e-5, rtol=0)


def test_another_pooler_leaves_the_folders_modules_out():
    ours = SentenceEncoder.from_pretrained(MINILM, pooler_type="cls_before_pooler")
    assert ours.sentence_transformers_modules == [] and ours.max_seq_length == 256
    assert not torch.allclose(ours.encode(SENTENCES[:1]).norm(), torch.tensor(1.0))


@pytest.fixture(scope="module")
def st_pipeline(tiny_model_dir, tmp_path_factory):
    """A folder sentence-transformers wrote: Transformer → WeightedLayerPooling → Pooling (mean) → Dense (tanh) →
    Dense (identity, to another size) → Normalize, with random module weights."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Dense, Normalize, Pooling, Transformer, WeightedLayerPooling

    torch.manual_seed(0)
    transformer = Transformer(str(tiny_model_dir), max_seq_length=24, config_kwargs={"output_hidden_states": True})
    width = transformer.auto_model.config.hidden_size
    layers = transformer.auto_model.config.num_hidden_layers
    mix = WeightedLayerPooling(width, num_hidden_layers=layers, layer_start=1)
    with torch.no_grad():
        mix.layer_weights.copy_(torch.rand(layers))
    modules = [transformer, mix, Pooling(width, "mean"), Dense(width, 16, activation_function=torch.nn.Tanh()),
               Dense(16, 8, activation_function=torch.nn.Identity()), Normalize()]  # fmt: skip
    path = tmp_path_factory.mktemp("st-pipeline")
    SentenceTransformer(modules=modules, device="cpu").save(str(path))
    return path


def test_a_pipeline_of_modules_loads_and_saves_faithfully(st_pipeline, tmp_path):
    expected = st_encode(st_pipeline)
    ours = SentenceEncoder.from_pretrained(str(st_pipeline))
    assert ours.sentence_transformers_modules == ["WeightedLayerPooling", "Dense", "Dense", "Normalize"]
    assert ours.embedding_dim == 8 and ours.max_seq_length == 24
    torch.testing.assert_close(ours.encode(SENTENCES), expected, atol=1e-5, rtol=1e-4)

    ours.save_pretrained(str(tmp_path / "saved"))  # and back: sentence-transformers and hncse read the same vectors
    torch.testing.assert_close(st_encode(tmp_path / "saved"), expected, atol=1e-5, rtol=1e-4)
    again = SentenceEncoder.from_pretrained(str(tmp_path / "saved"))
    torch.testing.assert_close(again.encode(SENTENCES), expected, atol=1e-5, rtol=1e-4)
    # a training step changes the modules' weights too, and a checkpoint restores them
    ours.train()
    batch = ours.tokenizer(SENTENCES, padding=True, return_tensors="pt")
    ours(**batch).sum().backward()
    assert ours.layer_weights.grad is not None and ours.dense[0].linear.weight.grad is not None
    with torch.no_grad():
        ours.dense[1].linear.weight.add_(0.5)
        ours.layer_weights.add_(0.5)
    ours.save_pretrained(str(tmp_path / "checkpoint"))
    again.load_weights(str(tmp_path / "checkpoint"))
    torch.testing.assert_close(again.encode(SENTENCES), ours.encode(SENTENCES), atol=1e-6, rtol=1e-5)


def test_the_card_of_such_a_model_sends_readers_to_the_loaders(st_pipeline):
    from hncse.training.model_card import usage_section

    ours = SentenceEncoder.from_pretrained(str(st_pipeline))
    lines = "\n".join(usage_section("me/model", ours.pooler_type, False, 24, ours.sentence_transformers_modules))
    assert "With transformers alone" not in lines and "(WeightedLayerPooling, Dense, Dense, Normalize)" in lines


def rewrite_modules(folder, tmp_path, change):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    modules = json.loads((copy / "modules.json").read_text())
    change(copy, modules)
    (copy / "modules.json").write_text(json.dumps(modules))
    return copy


@pytest.mark.parametrize(
    "case,message",
    [
        ("LayerNorm", "its sentence-transformers module LayerNorm (3_LayerNorm) is one SentenceEncoder does not"),
        ("max pooling", "its Pooling module uses max pooling; SentenceEncoder reproduces"),
        ("activation", "uses the activation torch.nn.modules.activation.Softplus, which SentenceEncoder does not"),
        ("order", "come in the order Transformer → WeightedLayerPooling → Pooling → Normalize → Dense"),
    ],
)
def test_an_unsupported_module_is_refused_in_one_line(st_pipeline, tmp_path, case, message):
    def change(copy, modules):
        if case == "LayerNorm":
            modules.insert(3, {"idx": 3, "name": "3", "path": "3_LayerNorm",
                               "type": "sentence_transformers.models.LayerNorm"})  # fmt: skip
        elif case == "max pooling":
            config = json.loads((copy / "2_Pooling" / "config.json").read_text())
            config["pooling_mode"] = "max"
            (copy / "2_Pooling" / "config.json").write_text(json.dumps(config))
        elif case == "activation":
            config = json.loads((copy / "3_Dense" / "config.json").read_text())
            config["activation_function"] = "torch.nn.modules.activation.Softplus"
            (copy / "3_Dense" / "config.json").write_text(json.dumps(config))
        else:
            modules[3], modules[5] = modules[5], modules[3]
            del modules[4]

    folder = rewrite_modules(st_pipeline, tmp_path, change)
    with pytest.raises(ModelNotFoundError) as error:
        SentenceEncoder.from_pretrained(str(folder))
    assert message in str(error.value) and "\n" not in str(error.value)
    SentenceEncoder.from_pretrained(str(folder), pooler_type="cls")  # another pooler: the modules do not apply
