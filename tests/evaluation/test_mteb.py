"""MTEB after training (hncse.evaluation.mteb_runner), offline: an MTEB STS task over a generated file of German
and English pairs runs on a tiny folder loaded as sentence-transformers loads it; its cosine Spearman equals ours
on the same pairs, and MTEB's own result files, the table and the card's `model-index` entries come out of it.

The tests that run MTEB skip where mteb is not installed (`pip install 'hncse[mteb]'`)."""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from transformers import BertConfig, BertModel, BertTokenizerFast

from hncse.errors import EvalConfigError, EvalDataError
from hncse.evaluation.mteb_runner import INSTALL_HINT, model_index_entries, mteb_table, mteb_tasks, run_mteb
from hncse.evaluation.sts import spearman
from hncse.modeling import SentenceEncoder

WORDS = {  # (subjects, verbs, objects): a sentence is one of each and a full stop
    "en": (["a man", "a woman", "a child", "the dog", "the cook"], ["plays", "eats", "holds", "carries", "cuts"],
           ["a guitar", "an apple", "a ball", "a box", "some bread"]),
    "de": (["ein Mann", "eine Frau", "ein Kind", "der Hund", "die Köchin"], ["spielt", "isst", "hält", "trägt",
           "schneidet"], ["eine Gitarre", "einen Apfel", "einen Ball", "eine Kiste", "etwas Brot"]),
}  # fmt: skip
PAIRS_PER_LANGUAGE = 15


def sts_pairs(language: str, rng: random.Random) -> list[tuple[str, str, float]]:
    """Pairs scored 0–5 by how many of subject, verb and object they share, with a little noise."""
    parts = WORDS[language]
    pairs = []
    while len(pairs) < PAIRS_PER_LANGUAGE:
        first = [rng.randrange(5) for _ in parts]
        second = [i if rng.random() < 0.5 else rng.randrange(5) for i in first]
        one, two = (" ".join(p[i] for p, i in zip(parts, ids)) + " ." for ids in (first, second))
        shared = sum(a == b for a, b in zip(first, second))
        score = min(5.0, max(0.0, shared * 5 / 3 + rng.uniform(-0.4, 0.4)))
        if one != two and (one, two) not in [(a, b) for a, b, _ in pairs]:
            pairs.append((one, two, round(score, 2)))
    return pairs


@pytest.fixture(scope="module", autouse=True)
def offline():
    """Offline in this process too: conftest sets HF_HUB_OFFLINE after huggingface_hub and datasets read it, and a
    Hub request would otherwise be retried for half a minute before it fails."""
    import datasets.config
    import huggingface_hub.constants

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        patch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def mteb():
    return pytest.importorskip("mteb", reason=f"needs mteb: {INSTALL_HINT}")


@pytest.fixture(scope="module")
def sts_file(tmp_path_factory) -> Path:
    """30 scored pairs, 15 German and 15 English, as a TSV: lang, sentence1, sentence2, score."""
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("mteb-sts") / "pairs.tsv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(["lang", "sentence1", "sentence2", "score"])
        for language in WORDS:
            writer.writerows([language, *pair] for pair in sts_pairs(language, rng))
    return path


def read_pairs(path: Path) -> dict[str, dict[str, list]]:
    columns: dict[str, dict[str, list]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            subset = columns.setdefault(row["lang"], {"sentence1": [], "sentence2": [], "score": []})
            for key in ("sentence1", "sentence2"):
                subset[key].append(row[key])
            subset["score"].append(float(row["score"]))
    return columns


@pytest.fixture(scope="module")
def st_folder(tmp_path_factory, sts_file) -> Path:
    """A random 2-layer BERT whose cased word-level vocabulary covers the pairs (umlauts too), saved by hncse
    (mean pooling) as a sentence-transformers folder."""
    root = tmp_path_factory.mktemp("mteb-bert")
    words = {w for subset in read_pairs(sts_file).values() for s in subset["sentence1"] + subset["sentence2"]
             for w in s.split()}  # fmt: skip
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words)]
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(
        vocab=str(root / "vocab.txt"), do_lower_case=False, strip_accents=False, model_max_length=32
    )
    assert "[UNK]" not in tokenizer.tokenize("die Köchin hält einen Apfel .")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32, initializer_range=0.5)  # fmt: skip
    BertModel(config).save_pretrained(root / "bert")
    tokenizer.save_pretrained(root / "bert")
    folder = root / "tiny-hncse"
    SentenceEncoder.from_pretrained(str(root / "bert"), pooler_type="avg").save_pretrained(str(folder))
    return folder


def local_sts_task(mteb, path: Path, name: str = "LocalSTS"):
    """An MTEB STS task (German and English subsets) whose data is the file: nothing comes from the Hub."""
    from datasets import Dataset, DatasetDict
    from mteb.abstasks import AbsTaskSTS

    class LocalSTS(AbsTaskSTS):
        metadata = mteb.TaskMetadata(
            name=name,
            description="Generated German and English sentence pairs scored 0-5.",
            dataset={"path": "local/generated-sts", "revision": "1"},
            type="STS",
            category="t2t",
            eval_splits=["test"],
            eval_langs={"de": ["deu-Latn"], "en": ["eng-Latn"]},
            main_score="cosine_spearman",
        )
        min_score, max_score = 0, 5

        def load_data(self, num_proc=None, **kwargs):
            self.dataset = {
                lang: DatasetDict({"test": Dataset.from_dict(cols)}) for lang, cols in read_pairs(path).items()
            }
            self.data_loaded = True

    return LocalSTS()


@pytest.fixture(scope="module")
def mteb_run(mteb, st_folder, sts_file, tmp_path_factory):
    output = tmp_path_factory.mktemp("mteb-results")
    return run_mteb(str(st_folder), [local_sts_task(mteb, sts_file)], str(output), batch_size=8, device="cpu")


def test_mteb_cosine_spearman_equals_ours(mteb_run, st_folder, sts_file):
    encoder = SentenceEncoder.from_pretrained(str(st_folder))
    scores = mteb_run["tasks"]["LocalSTS"]["scores"]["test"]
    assert set(scores) == {"de", "en"}
    for language, pairs in read_pairs(sts_file).items():
        u = F.normalize(encoder.encode(pairs["sentence1"]), dim=-1)
        v = F.normalize(encoder.encode(pairs["sentence2"]), dim=-1)
        ours = spearman((u * v).sum(dim=-1).double().numpy(), np.array(pairs["score"]))
        assert 100 * scores[language]["main_score"] == pytest.approx(ours, abs=0.01)
        assert scores[language]["main_score"] == scores[language]["cosine_spearman"]


def test_mtebs_result_files_are_in_the_output_folder(mteb_run, st_folder):
    task = mteb_run["tasks"]["LocalSTS"]
    expected = Path(mteb_run["output_folder"], "results", st_folder.name, "no_revision_available", "LocalSTS.json")
    assert Path(task["file"]) == expected and (expected.parent / "model_meta.json").is_file()
    on_disk = json.loads(expected.read_text(encoding="utf-8"))
    on_disk = {s["hf_subset"]: s["main_score"] for s in on_disk["scores"]["test"]}  # MTEB writes 6 decimals
    ours = {subset: scores["main_score"] for subset, scores in task["scores"]["test"].items()}
    assert on_disk == pytest.approx(ours, abs=1e-6)
    json.dumps(mteb_run)  # the returned results go into the evaluation's JSON as they are


def test_table_and_model_index_entries(mteb_run):
    scores = mteb_run["tasks"]["LocalSTS"]["scores"]["test"]
    table = mteb_table(mteb_run)
    print(table)
    for subset in ("de", "en"):
        assert (
            f"| LocalSTS | STS | test | {subset} | cosine_spearman | {100 * scores[subset]['main_score']:.2f} |"
            in table
        )
    assert "| test | mean |" in table

    entries = model_index_entries(mteb_run)
    assert [e["dataset"]["config"] for e in entries] == ["de", "en"]
    for entry in entries:
        assert entry["task"] == {"type": "semantic-similarity", "name": "STS"}
        subset = entry["dataset"]["config"]
        assert entry["dataset"] == {"name": f"MTEB LocalSTS ({subset})", "type": "local/generated-sts",
                                    "config": subset, "split": "test", "revision": "1"}  # fmt: skip
        assert entry["metrics"][0] == {"type": "cosine_spearman", "value": round(scores[subset]["main_score"], 4)}
        assert all(set(m) == {"type", "value"} for m in entry["metrics"])
    card = yaml.safe_load(yaml.safe_dump({"model-index": [{"name": "tiny-hncse", "results": entries}]}))
    assert card["model-index"][0]["results"] == entries


def test_unknown_task_is_one_line_with_close_names(mteb, st_folder, tmp_path):
    with pytest.raises(EvalConfigError, match=r"--mteb: unknown MTEB task or benchmark 'STS12x'; did you mean STS12"):
        run_mteb(str(st_folder), ["STS12x"], str(tmp_path))
    assert [t.metadata.name for t in mteb_tasks(["sts12"])] == ["STS12"]  # case aside, the name is taken


def test_data_that_cannot_be_had_offline_names_the_task(mteb, st_folder, tmp_path):
    from mteb.abstasks import AbsTaskSTS

    class HubOnlySTS(AbsTaskSTS):  # MTEB's own loading: datasets.load_dataset from the Hub
        metadata = mteb.TaskMetadata(
            name="HubOnlySTS",
            description="Its data would come from the Hub.",
            dataset={"path": "hncse-tests/no-such-sts", "revision": "0" * 40},
            type="STS",
            eval_langs=["eng-Latn"],
            main_score="cosine_spearman",
        )

    with pytest.raises(EvalDataError, match=r"MTEB task HubOnlySTS's data \(hncse-tests/no-such-sts\)"):
        run_mteb(str(st_folder), [HubOnlySTS()], str(tmp_path))


def test_without_mteb_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mteb", None)  # `import mteb` raises ImportError
    with pytest.raises(EvalConfigError, match=r"pip install 'hncse\[mteb\]'"):
        run_mteb(str(tmp_path), ["STS12"], str(tmp_path))


def test_the_runner_imports_mteb_only_when_it_runs():
    """The CLI imports the runner whether or not mteb is installed: no module-level import of mteb (nor of
    sentence-transformers, another optional extra)."""
    import ast

    import hncse.evaluation.mteb_runner as runner

    tree = ast.parse(Path(runner.__file__).read_text(encoding="utf-8"))
    top = [a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names]
    top += [n.module for n in tree.body if isinstance(n, ast.ImportFrom)]
    assert not [m for m in top if m.split(".")[0] in ("mteb", "sentence_transformers")], top


@pytest.fixture
def carded_folder(st_folder, tmp_path):
    """The tiny folder with a card as run_hncse.py writes it: a YAML header whose model-index holds a dev entry."""
    import shutil

    from hncse.training.model_card import model_index

    folder = tmp_path / "tiny-hncse"
    shutil.copytree(st_folder, folder)
    metadata = {"library_name": "sentence-transformers", "model-index": model_index(
        "tiny-hncse", {"eval_stsb_spearman": 81.5}, None)}  # fmt: skip
    header = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True).strip()
    (folder / "README.md").write_text(f"---\n{header}\n---\n\n# tiny-hncse\n\n## Usage\n\nLoad it.\n", "utf-8")
    return folder


def per_language_files(sts_file: Path, folder: Path) -> list[str]:
    """The German and the English pairs as two STS files (sentence1, sentence2, score) for --sts_files."""
    paths = []
    for language, pairs in read_pairs(sts_file).items():
        path = folder / f"{language}.tsv"
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, delimiter="\t")
            writer.writerow(["sentence1", "sentence2", "score"])
            writer.writerows(zip(pairs["sentence1"], pairs["sentence2"], pairs["score"]))
        paths.append(str(path))
    return paths


def test_the_cli_runs_mteb_beside_sts_files_and_adds_it_to_the_card(
    mteb, carded_folder, sts_file, tmp_path, monkeypatch, capsys
):
    """`python -m hncse.evaluate FOLDER --sts_files de.tsv en.tsv --mteb LocalSTS --mteb_to_card`: MTEB's score of
    each subset equals hncse's on the same pairs, MTEB's files are in --mteb_output_folder, the JSON holds both, the
    table is printed, and the card gets the model-index entries and a section (replaced, not repeated, when run
    again) while keeping its own entries."""
    import hncse.evaluation.cli as cli

    task = local_sts_task(mteb, sts_file)
    resolved = []
    monkeypatch.setattr(cli, "mteb_tasks", lambda names, flag="--mteb": resolved.append(names) or [task])
    output = tmp_path / "r.json"
    argv = [str(carded_folder), "--sts_files", *per_language_files(sts_file, tmp_path), "--mteb", "LocalSTS",
            "--mteb_output_folder", str(tmp_path / "mteb"), "--mteb_to_card", "--output_json", str(output),
            "--device", "cpu", "--batch_size", "8"]  # fmt: skip
    results = cli.main(argv)

    assert resolved == [["LocalSTS"]]
    on_disk = json.loads(output.read_text(encoding="utf-8"))
    assert on_disk == json.loads(json.dumps(results)) and on_disk["task_set"] == "sts_files"
    mteb_scores = on_disk["mteb"]["tasks"]["LocalSTS"]["scores"]["test"]
    for language in ("de", "en"):
        assert 100 * mteb_scores[language]["main_score"] == pytest.approx(
            on_disk["sts_files"][language]["spearman"], abs=0.01
        )
    assert Path(on_disk["mteb"]["tasks"]["LocalSTS"]["file"]).is_relative_to(tmp_path / "mteb" / "results")
    printed = capsys.readouterr().out
    assert "| LocalSTS | STS | test | de | cosine_spearman |" in printed and "| STS file |" in printed

    def card():
        text = (carded_folder / "README.md").read_text(encoding="utf-8")
        return text, yaml.safe_load(text.split("---\n")[1])

    text, metadata = card()
    (index,) = metadata["model-index"]
    assert index["name"] == "tiny-hncse"
    from hncse.training.model_card import model_index

    (own,) = model_index("tiny-hncse", {"eval_stsb_spearman": 81.5}, None)[0]["results"]
    assert index["results"] == [own, *model_index_entries(on_disk["mteb"])]  # the card's own entry kept, first
    assert text.index("## MTEB results") < text.index("## Usage") and "--mteb LocalSTS" in text

    cli.main(argv)  # again: the entries and the section are replaced, not added twice
    again, metadata_again = card()
    assert again.count("## MTEB results") == 1 and len(metadata_again["model-index"][0]["results"]) == 3
    assert metadata_again == metadata


def test_mteb_arguments_are_checked_before_anything_loads(mteb, st_folder, tmp_path, monkeypatch):
    import hncse.evaluation.cli as cli

    def loaded(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(cli.SentenceEncoder, "from_pretrained", loaded)
    monkeypatch.setattr(cli, "run_mteb", loaded)
    cases = {
        (str(st_folder), "--mteb_to_card"): r"--mteb_to_card adds MTEB's scores to the card: it needs --mteb",
        (str(st_folder), "--mteb", "STS12", "--pooler", "cls"): r"--pooler cls: --mteb scores the folder as",
        (str(st_folder), "--mteb", "STS12", "--bf16"): r"--bf16: --mteb runs the model as sentence-transformers",
        (str(st_folder), "--mteb", "STS12", "--mteb_to_card"): rf"--mteb_to_card: {st_folder} has no README.md",
        ("user/model", "--mteb", "STS12", "--mteb_to_card"): r"--mteb_to_card: user/model is not a local folder",
        (str(st_folder), "--mteb", "STS12x"): r"--mteb: unknown MTEB task or benchmark 'STS12x'",
    }
    for argv, message in cases.items():
        with pytest.raises(EvalConfigError, match=message):
            cli.main([*argv, "--output_json", str(tmp_path / "r.json")])
    assert not (tmp_path / "r.json").exists()
