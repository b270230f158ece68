"""The model card: Hub metadata that huggingface_hub parses, model-index values, and usage code that runs."""

import json
import re
import shutil

import huggingface_hub
import pytest
import torch
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results
from tiny_run import base_argv

import hncse.train
from hncse.modeling import MLP_WEIGHTS_NAME, SentenceEncoder
from hncse.training.model_card import hub_dataset_id, model_index, plain_transformers_usage


def python_blocks(card: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", card, flags=re.S)


@pytest.mark.parametrize(
    "pooler_type, mlp_only_train",
    [("cls", True), ("cls", False), ("cls_before_pooler", True), ("avg", True), ("avg_top2", True),
     ("avg_first_last", True)],
)  # fmt: skip
def test_plain_transformers_snippet_gives_the_encoders_embeddings(
    tiny_model_dir, tmp_path, monkeypatch, pooler_type, mlp_only_train
):
    torch.manual_seed(3)
    model = SentenceEncoder.from_pretrained(
        str(tiny_model_dir), pooler_type=pooler_type, mlp_only_train=mlp_only_train
    )
    if model.mlp is not None:
        torch.nn.init.normal_(model.mlp[0].weight)  # a head left out of the snippet would show
    model.save_pretrained(str(tmp_path))
    # The snippet downloads the head from the Hub; here the "Hub" is the folder.
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo, name: f"{repo}/{name}")
    code = "\n".join(plain_transformers_usage(str(tmp_path), pooler_type, model.uses_mlp_at_inference, 64))
    assert (MLP_WEIGHTS_NAME in code) == (pooler_type == "cls" and not mlp_only_train)
    namespace = {}
    exec(code, namespace)
    expected = model.encode(namespace["sentences"], normalize=True)
    torch.testing.assert_close(namespace["embeddings"], expected, atol=1e-5, rtol=1e-4)


def test_model_index_is_what_the_hub_parses():
    senteval = {"sts": {"STS12": {"all": 70.123}, "SICKRelatedness": {"all": 80.0}}}
    dev = {"eval_stsb_spearman": 84.13, "eval_stsb_spearman_wmean": 1.0, "eval_mr_accuracy": 75.0}
    index = model_index("my-model", dev, senteval)
    _, results = model_index_to_eval_results(index)
    found = {(r.dataset_name, r.dataset_type, r.dataset_split, r.metric_type): r.metric_value for r in results}
    assert found == {
        ("STS-B validation", "mteb/stsbenchmark-sts", "validation", "spearman_cosine"): 0.8413,
        ("STS12 test", "mteb/sts12-sts", "test", "spearman_cosine"): 0.7012,
        ("SICK-R test", "mteb/sickr-sts", "test", "spearman_cosine"): 0.8,
    }
    assert model_index("my-model", {"eval_mr_accuracy": 75.0}, None) == []


def test_hub_dataset_is_named_only_when_the_corpus_came_from_the_hub(tmp_path):
    url = "https://huggingface.co/datasets/princeton-nlp/datasets-for-simcse/resolve/main/wiki1m_for_simcse.txt"
    assert hub_dataset_id(url, None) == "princeton-nlp/datasets-for-simcse"
    assert hub_dataset_id("hf://datasets/org/corpus@main/a.txt", None) == "org/corpus"
    assert hub_dataset_id(None, "org/corpus") == "org/corpus"
    assert hub_dataset_id(None, str(tmp_path)) is None and hub_dataset_id(str(tmp_path / "a.txt"), None) is None


def test_card_of_a_training_run(tiny_model_dir, corpus_file, senteval_dir, tmp_path):
    """The card's metadata, results and every usage snippet, executed against the folder it describes; the base
    model's licence, from its own card."""
    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    (base / "README.md").write_text("---\nlicense: mit\nlanguage: en\n---\n# a tiny model\n", encoding="utf-8")
    out = tmp_path / "run"
    hncse.train.main(base_argv(base, corpus_file, senteval_dir, out) + ["--objective", "hnm"])
    text = (out / "README.md").read_text(encoding="utf-8")
    card = ModelCard.load(out / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "sentence-transformers" and data["pipeline_tag"] == "sentence-similarity"
    assert {"hncse", "sentence-transformers", "hnm"} <= set(data["tags"])
    assert "base_model" not in data and "datasets" not in data  # a local model folder and a local corpus

    state = json.loads((out / "trainer_state.json").read_text())
    best_step = int(state["best_model_checkpoint"].rsplit("-", 1)[-1])
    best_eval = next(e for e in state["log_history"] if e.get("step") == best_step and "eval_stsb_spearman" in e)
    sts_b = next(r for r in card.data.eval_results if r.dataset_name == "STS-B validation")
    assert sts_b.metric_value == round(best_eval["eval_stsb_spearman"] / 100, 4)
    assert f"holds the weights of step {best_step} (the best checkpoint by stsb_spearman)" in text
    assert "| objective | hnm |" in text and "| hnm_k |" in text and "| global_batch_size | 8 |" in text
    assert "@article{liu2024hncse" in text and "@inproceedings{gao2021simcse" in text
    assert "author = {Liu, Wenxiao and Yang, Zihong and Li, Chaozhuo and Hong, Zijin" in text  # as on arXiv
    assert "- Base model's licence: `mit` (its model card's); this model derives from it." in text

    blocks = python_blocks(text)
    assert len(blocks) == 3 and all(str(out) in block for block in blocks)
    embeddings = []
    for block in blocks:
        namespace = {}
        exec(block.replace("print(", "(lambda *a: None)("), namespace)
        embeddings.append(torch.as_tensor(namespace["embeddings"]))
    sentences = ["A man is playing a guitar.", "Someone plays an instrument."]
    expected = SentenceEncoder.from_pretrained(str(out)).encode(sentences)
    torch.testing.assert_close(embeddings[0], expected, atol=1e-5, rtol=1e-4)  # sentence-transformers
    torch.testing.assert_close(embeddings[1], expected, atol=1e-6, rtol=1e-6)  # hncse
    normalized = torch.nn.functional.normalize(expected, dim=-1)
    torch.testing.assert_close(embeddings[2][:2], normalized, atol=1e-5, rtol=1e-4)  # transformers alone
