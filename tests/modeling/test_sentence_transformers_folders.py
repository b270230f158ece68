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


# ---- one embedding per folder: hncse_config.json and the sentence-transformers files agree, or it is refused ----

FOLDER_SETTINGS = [("cls", True), ("cls", False), ("cls_before_pooler", True), ("avg", True), ("avg_top2", True),
                   ("avg_first_last", True)]  # fmt: skip


@pytest.fixture(scope="module")
def saved_folders(tiny_model_dir, tmp_path_factory):
    """The tiny model saved by hncse with each pooler (and the MLP head in the embedding), and the vectors of the
    model that saved it."""
    root = tmp_path_factory.mktemp("hncse-saved")
    folders = {}
    for pooler, mlp_only_train in FOLDER_SETTINGS:
        torch.manual_seed(0)
        model = SentenceEncoder.from_pretrained(str(tiny_model_dir), pooler_type=pooler, mlp_only_train=mlp_only_train)
        folder = root / f"{pooler}-{mlp_only_train}"
        model.save_pretrained(str(folder))
        folders[pooler, mlp_only_train] = folder, model.encode(SENTENCES)
    return folders


def agree(ours, theirs):
    assert ours.shape == theirs.shape
    assert torch.nn.functional.cosine_similarity(ours, theirs).min() > 0.9999


@pytest.mark.parametrize("pooler,mlp_only_train", FOLDER_SETTINGS)
def test_a_folder_hncse_saved_loads_as_it_did_and_as_sentence_transformers_does(saved_folders, pooler, mlp_only_train):
    folder, vectors = saved_folders[pooler, mlp_only_train]
    again = SentenceEncoder.from_pretrained(str(folder))
    assert (again.pooler_type, again.mlp_only_train) == (pooler, mlp_only_train)
    assert again.sentence_transformers_modules == []
    torch.testing.assert_close(again.encode(SENTENCES), vectors, atol=0, rtol=0)
    agree(again.encode(SENTENCES), st_encode(folder).cpu())


def read_json(path):
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(path, obj):
    path.write_text(json.dumps(obj), encoding="utf-8")


def mean_pooling(copy):
    config = read_json(copy / "1_Pooling" / "config.json")
    write_json(copy / "1_Pooling" / "config.json", {**config, "pooling_mode_cls_token": False,
                                                    "pooling_mode_mean_tokens": True})  # fmt: skip


def added_dense(copy):
    from safetensors.torch import save_file

    modules = read_json(copy / "modules.json")
    (copy / "2_Dense").mkdir()
    write_json(copy / "2_Dense" / "config.json", {"in_features": 32, "out_features": 8, "bias": True,
               "activation_function": "torch.nn.modules.linear.Identity"})  # fmt: skip
    torch.manual_seed(1)
    save_file(
        {"linear.weight": torch.randn(8, 32), "linear.bias": torch.randn(8)}, copy / "2_Dense" / "model.safetensors"
    )
    write_json(copy / "modules.json", modules + [{"idx": 2, "name": "2", "path": "2_Dense",
                                                  "type": "sentence_transformers.models.Dense"}])  # fmt: skip


def added_normalize(copy):
    modules = read_json(copy / "modules.json")
    write_json(copy / "modules.json", modules + [{"idx": 2, "name": "2", "path": "2_Normalize",
                                                  "type": "sentence_transformers.models.Normalize"}])  # fmt: skip


def dropped_head(copy):
    write_json(copy / "modules.json", read_json(copy / "modules.json")[:2])


def other_head_weights(copy):
    from safetensors.torch import load_file, save_file

    state = load_file(copy / "2_Dense" / "model.safetensors")
    save_file({**state, "linear.bias": state["linear.bias"] + 1.0}, copy / "2_Dense" / "model.safetensors")


def other_layer_weights(copy):
    from safetensors.torch import save_file

    save_file({"layer_weights": torch.tensor([1.0, 3.0])}, copy / "1_WeightedLayerPooling" / "model.safetensors")


def shorter(copy):
    write_json(copy / "sentence_bert_config.json", {**read_json(copy / "sentence_bert_config.json"),
                                                    "max_seq_length": 5})  # fmt: skip


def a_prompt(copy):
    write_json(
        copy / "config_sentence_transformers.json", {"prompts": {"query": "the "}, "default_prompt_name": "query"}
    )


EDITS = [
    ("cls_before_pooler", True, mean_pooling,
     "1_Pooling/config.json says mean pooling but hncse_config.json says cls_before_pooler"),
    ("cls_before_pooler", True, added_dense, "modules.json lists Transformer → Pooling → Dense but hncse_config.json "
     "(pooler cls_before_pooler) computes Transformer → Pooling"),
    ("avg", True, added_normalize, "modules.json lists Transformer → Pooling → Normalize but hncse_config.json"),
    ("cls", False, dropped_head, "modules.json lists Transformer → Pooling but hncse_config.json (pooler cls, "
     "mlp_only_train false) computes Transformer → Pooling → Dense"),
    ("cls", False, other_head_weights, "2_Dense's weights are not those of mlp_head.safetensors"),
    ("avg_top2", True, other_layer_weights,
     "1_WeightedLayerPooling weighs the layers from 1 by [1.0, 3.0] but hncse_config.json says pooler avg_top2"),
    ("avg", True, shorter, "sentence_bert_config.json says max_seq_length 5 but hncse_config.json says 64"),
    ("avg", True, a_prompt, "config_sentence_transformers.json's default prompt is 'the ' but hncse_config.json's "
     "prompt is none"),
]  # fmt: skip


@pytest.mark.parametrize("pooler,mlp_only_train,edit,message", EDITS, ids=[e[2].__name__ for e in EDITS])
def test_an_edited_sentence_transformers_file_is_refused_in_one_line(
    saved_folders, tmp_path, pooler, mlp_only_train, edit, message
):
    """What sentence-transformers loads changed and hncse_config.json did not: hncse refuses instead of scoring
    another function; deleting hncse_config.json, as the message says, gives sentence-transformers' vectors."""
    import shutil

    folder, vectors = saved_folders[pooler, mlp_only_train]
    copy = tmp_path / "edited"
    shutil.copytree(folder, copy)
    edit(copy)
    theirs = st_encode(copy).cpu()
    assert theirs.shape != vectors.shape or not torch.allclose(theirs, vectors, atol=1e-3)  # the edit matters
    with pytest.raises(ModelNotFoundError) as error:
        SentenceEncoder.from_pretrained(str(copy))
    said = str(error.value)
    assert message in said and "\n" not in said and said.startswith(str(copy)), said
    assert said.endswith("delete hncse_config.json to load the folder as sentence-transformers does, or undo the edit")
    SentenceEncoder.from_pretrained(str(copy), pooler_type="avg")  # a pooler of one's own: the folder's is not used

    (copy / "hncse_config.json").unlink()
    agree(SentenceEncoder.from_pretrained(str(copy)).encode(SENTENCES), theirs)


@pytest.mark.parametrize("edit", ["Normalize", "Dense"])
def test_an_edit_to_the_modules_hncse_reads_is_followed(st_pipeline, tmp_path, edit):
    """A folder saved from a sentence-transformers pipeline takes its WeightedLayerPooling, Dense and Normalize
    modules from the files themselves: dropping one changes both loaders alike."""
    SentenceEncoder.from_pretrained(str(st_pipeline)).save_pretrained(str(tmp_path / "saved"))
    modules = read_json(tmp_path / "saved" / "modules.json")
    last = max(i for i, m in enumerate(modules) if m["type"].endswith(edit))  # the Normalize, or the 16 → 8 Dense
    kept = modules[:last] + modules[last + 1 :]
    write_json(tmp_path / "saved" / "modules.json", kept)
    ours = SentenceEncoder.from_pretrained(str(tmp_path / "saved"))
    assert ours.sentence_transformers_modules == (
        ["WeightedLayerPooling", "Dense", "Dense"]
        if edit == "Normalize"
        else ["WeightedLayerPooling", "Dense", "Normalize"]
    )
    agree(ours.encode(SENTENCES), st_encode(tmp_path / "saved").cpu())


def test_unreadable_sentence_transformers_files_are_one_line(saved_folders, tmp_path):
    import shutil

    copy = tmp_path / "broken"
    shutil.copytree(saved_folders["avg", True][0], copy)
    (copy / "modules.json").write_text('[{"idx": 0,', encoding="utf-8")  # cut short
    with pytest.raises(ModelNotFoundError, match=r"modules\.json: not readable JSON \(") as error:
        SentenceEncoder.from_pretrained(str(copy))
    assert "\n" not in str(error.value)
    write_json(copy / "modules.json", {"0": "Transformer"})
    with pytest.raises(ModelNotFoundError, match=r"modules\.json: not a list of modules"):
        SentenceEncoder.from_pretrained(str(copy))
