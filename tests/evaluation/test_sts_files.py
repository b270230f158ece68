"""Your own STS sets (`--sts_files`): the same number as sentence-transformers' evaluator in every format and
language, one-line refusals before anything is written, and, in training, a dev set like SentEval's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import huggingface_hub.constants
import pandas as pd
import pytest
from hub_standin import HubStandIn, hub_constants
from tiny_run import base_argv
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

import hncse.train
from hncse.errors import DataError, EvalConfigError, HNCSEError
from hncse.evaluation import cli as evaluate_cli
from hncse.evaluation import dev_metric_spec, dev_metrics_in, load_sts_files, parse_sts_files
from hncse.evaluation.senteval_data import load_sts_task
from hncse.modeling import SentenceEncoder

FORMATS = ("csv", "tsv", "jsonl", "parquet")


def write_pairs(path: Path, frame: pd.DataFrame) -> Path:
    """`frame` in the format its ending says, as a user would write it with pandas."""
    suffix = path.suffix
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(path)
    return path


def sts_frame(senteval_dir, scale: float = 1.0) -> pd.DataFrame:
    """STS-B dev pairs of the test fixtures (the tiny model knows every word), gold scores times `scale`."""
    pairs = load_sts_task("STSBenchmark", str(senteval_dir), "dev").subsets[0]
    return pd.DataFrame({"sentence1": pairs.sentences1, "sentence2": pairs.sentences2, "score": pairs.scores * scale})


def st_spearman(model_dir: Path, frame: pd.DataFrame) -> float:
    """sentence-transformers' own number, ×100: its evaluator on the folder as SentenceTransformer loads it."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    evaluator = EmbeddingSimilarityEvaluator(
        list(frame.sentence1), list(frame.sentence2), list(frame.score), main_similarity="cosine", write_csv=False
    )
    return evaluator(SentenceTransformer(str(model_dir), device="cpu"))["spearman_cosine"] * 100


@pytest.fixture(scope="module")
def saved_model(tiny_model_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("st-model")
    SentenceEncoder.from_pretrained(str(tiny_model_dir), pooler_type="avg").save_pretrained(folder)
    return folder


# ---- names ----------------------------------------------------------------------------------------------------------


def test_names_are_the_stem_or_the_last_path_part_made_unique(tmp_path):
    def names(*entries):
        return [source.name for source in parse_sts_files(list(entries))]

    assert names("my_dev.csv") == ["my_dev"]
    assert names("de/dev.csv", "fr/dev.csv") == ["de_dev", "fr_dev"]
    assert names("dev.csv", "dev.jsonl") == ["dev_csv", "dev_jsonl"]
    # A registered set's name (stsb) is never reused: the metric keys would mean two things.
    assert names("sentence-transformers/stsb@validation") == ["stsb_validation"]
    assert names("mteb/sts22-crosslingual-sts:de@test", "mteb/sts22-crosslingual-sts:fr@test") == [
        "sts22_crosslingual_sts_de",
        "sts22_crosslingual_sts_fr",
    ]
    source = parse_sts_files(["mteb/sts22-crosslingual-sts:de@test"])[0]
    assert (source.dataset, source.config, source.split, source.path) == (
        "mteb/sts22-crosslingual-sts",
        "de",
        "test",
        None,
    )
    assert dev_metric_spec("eval_my_dev_spearman").name == "my_dev"
    assert dev_metrics_in(["eval_my_dev_spearman", "eval_my_dev_pearson", "eval_loss"]) == ["eval_my_dev_spearman"]


# ---- the number -----------------------------------------------------------------------------------------------------


def test_every_format_gives_sentence_transformers_number(saved_model, senteval_dir, tmp_path, capsys):
    frame = sts_frame(senteval_dir, scale=20.0)  # any score scale
    files = [write_pairs(tmp_path / f"pairs.{suffix}", frame) for suffix in FORMATS]
    output = tmp_path / "r.json"
    evaluate_cli.main([str(saved_model), "--sts_files", *map(str, files), "--output_json", str(output)])
    results = json.loads(output.read_text())
    theirs = st_spearman(saved_model, frame)
    entries = results["sts_files"]
    assert list(entries) == [f"pairs_{suffix}" for suffix in FORMATS]
    for entry in entries.values():
        assert entry["pairs"] == len(frame) and entry["spearman"] == pytest.approx(theirs, abs=0.01)
    assert "sts" not in results and "alignment" not in results  # only the files were asked for
    assert "| pairs_csv | " in capsys.readouterr().out


def test_real_pairs_in_every_format_give_sentence_transformers_number(real_data, saved_model, tmp_path):
    frame = sts_frame(real_data / "senteval")  # the 1,500 pairs of the real STS-B dev set
    files = [write_pairs(tmp_path / f"stsb_dev.{suffix}", frame) for suffix in FORMATS]
    sources = parse_sts_files(list(map(str, files)))
    evaluators = load_sts_files(sources, None, "test")
    encoder = SentenceEncoder.from_pretrained(str(saved_model)).eval()
    from hncse.evaluation import load_suite, run_suite

    results = run_suite(encoder, load_suite([], "test", None, extra=evaluators))
    theirs = st_spearman(saved_model, frame)
    assert len(frame) == 1500
    for entry in results["sts_files"].values():
        assert entry["spearman"] == pytest.approx(theirs, abs=0.01)


def multilingual_model(tmp_path: Path, sentences: list[str]) -> Path:
    """A random BERT with a WordPiece vocabulary trained by `tokenizers` on German and Chinese text (Chinese
    characters split one by one, as BERT's multilingual tokenizer does): no English, no BERT vocabulary."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from tokenizers.trainers import WordPieceTrainer

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False, handle_chinese_chars=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(sentences, WordPieceTrainer(vocab_size=400, special_tokens=special))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=64,
    )  # fmt: skip
    folder = tmp_path / "multilingual"
    wrapped.save_pretrained(folder)
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, initializer_range=0.5,
    )  # fmt: skip
    BertModel(config).save_pretrained(folder)
    st_folder = tmp_path / "multilingual-st"
    SentenceEncoder.from_pretrained(str(folder), pooler_type="avg").save_pretrained(st_folder)
    return st_folder


GERMAN_CHINESE = [
    ("Ein Mann spielt Gitarre.", "Ein Mann spielt ein Instrument.", 4.2),
    ("Eine Frau schneidet eine Zwiebel.", "Eine Frau schneidet Gemüse.", 3.8),
    ("Zwei Hunde laufen im Park.", "Die Katze schläft auf dem Sofa.", 0.4),
    ("Der Zug fährt nach München.", "Ein Zug fährt in Richtung München.", 4.6),
    ("Das Wetter ist heute schön.", "Es regnet seit Stunden.", 1.1),
    ("Kinder spielen Fußball auf der Straße.", "Kinder spielen draußen.", 3.0),
    ("一个男人在弹吉他。", "一个人在演奏乐器。", 4.0),
    ("一只猫在沙发上睡觉。", "两只狗在公园里跑。", 0.5),
    ("今天天气很好。", "今天是晴天。", 4.4),
    ("她在厨房里做饭。", "他在图书馆看书。", 0.9),
    ("火车开往北京。", "一列火车驶向北京。", 4.7),
    ("学生们在教室里学习。", "孩子们在学校上课。", 3.5),
]


def test_german_and_chinese_pairs_with_their_own_tokenizer(tmp_path):
    frame = pd.DataFrame(GERMAN_CHINESE, columns=["satz_a", "satz_b", "ähnlichkeit"])
    model = multilingual_model(tmp_path, [s for pair in GERMAN_CHINESE for s in pair[:2]])
    path = write_pairs(tmp_path / "dev_de_zh.jsonl", frame)
    output = tmp_path / "r.json"
    evaluate_cli.main(
        [str(model), "--sts_files", str(path), "--sts_columns", "satz_a", "satz_b", "ähnlichkeit",
         "--output_json", str(output)]
    )  # fmt: skip
    entry = json.loads(output.read_text())["sts_files"]["dev_de_zh"]
    renamed = frame.rename(columns={"satz_a": "sentence1", "satz_b": "sentence2", "ähnlichkeit": "score"})
    assert entry["spearman"] == pytest.approx(st_spearman(model, renamed), abs=0.01)
    assert entry["pairs"] == len(GERMAN_CHINESE) and entry["columns"] == ["satz_a", "satz_b", "ähnlichkeit"]


# ---- bad input ------------------------------------------------------------------------------------------------------


def bad_file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "name, text, columns, message",
    [
        ("cols.csv", "s1,s2,score\na b,c d,1\ne f,g h,2\n", None,
         r"cols.csv: no column 'sentence1', 'sentence2'; its columns are \['s1', 's2', 'score'\]"),
        ("word.csv", "sentence1,sentence2,score\na b,c d,1\ne f,g h,high\ni j,k l,3\n", None,
         r"word.csv:3: 'score' is 'high', not a number"),
        ("word.jsonl", '{"sentence1": "a", "sentence2": "b", "score": 1}\n\n{"sentence1": "c", "sentence2": "d", '
         '"score": null}\n', None, r"word.jsonl:3: 'score' is not a number"),
        ("one.csv", "sentence1,sentence2,score\na b,c d,1\n", None, r"one.csv: 1 pair\(s\); a correlation needs"),
        ("flat.tsv", "sentence1\tsentence2\tscore\na\tb\t3\nc\td\t3\ne\tf\t3\n", None,
         r"flat.tsv: every 'score' is 3; Spearman is undefined for a constant score"),
        ("empty.csv", 'sentence1,sentence2,score\na b,c d,1\n"",g h,2\n', None,
         r"empty.csv:3: empty 'sentence1': every pair needs two sentences"),
        ("named.csv", "a,b,c\nx,y,1\nz,w,2\n", ["a", "b", "b"], r"--sts_columns takes three different column names"),
        # a sentence that opens a quote and never closes it would swallow the pairs after it
        ("stray.csv", 'sentence1,sentence2,score\n"a b,c d,1\ne f,g h,2\ni j,k l,3\n', None,
         r"stray.csv:2: a quoted field is never closed \(it runs on to the end of the file\)"),
        ("dup.csv", "sentence1,sentence2,score,score\na,b,1,5\nc,d,2,4\n", None,
         r"dup.csv:1: column 'score' is named twice in the header \(columns 3 and 4\)"),
        ("wide.tsv", "sentence1\tsentence2\tscore\na\tb\t1\nc\td\te\t2\n", None,
         r"wide.tsv:3: 4 fields, but the header names 3"),
        ("bad.jsonl", '{"sentence1": "a", "sentence2": "b", "score": 1}\n{"sentence1": "c", "sentence2": "d" '
         '"score": 2}\n', None, r"bad.jsonl:2: not valid JSON \(Expecting ',' delimiter at column 37\)"),
        ("text.parquet", "sentence1,sentence2,score\na,b,1\nc,d,2\n", None,
         r"text.parquet: not a valid parquet file \(it does not start like one"),
    ],
)  # fmt: skip
def test_bad_files_are_refused_with_one_line(tmp_path, name, text, columns, message):
    path = bad_file(tmp_path, name, text)
    with pytest.raises((DataError, EvalConfigError)) as refused:
        load_sts_files(parse_sts_files([str(path)]), columns, "dev")
    assert re.search(message, str(refused.value)) and "\n" not in str(refused.value), str(refused.value)


def test_a_tsv_reads_stray_quotes_as_text(tmp_path):
    """A TSV of pairs with quotes in its sentences (STS-B's own files are read so): every pair, quotes kept."""
    first, second = ['"He said, hi', "c d", 'She said "no".'], ["a b", '"quoted" start', "e f"]
    text = "".join(f"{a}\t{b}\t{i}\n" for i, (a, b) in enumerate(zip(first, second)))
    path = bad_file(tmp_path, "quotes.tsv", "sentence1\tsentence2\tscore\n" + text)
    (evaluator,) = load_sts_files(parse_sts_files([str(path)]), None, "dev")
    assert evaluator.pairs.sentences1 == first and evaluator.pairs.sentences2 == second


def test_the_same_file_twice_and_a_bad_hub_id_are_refused(tmp_path):
    path = bad_file(tmp_path, "dev.csv", "sentence1,sentence2,score\na,b,1\nc,d,2\n")
    with pytest.raises(EvalConfigError, match=r"--sts_files: .*dev.csv is given twice"):
        parse_sts_files([str(path), str(tmp_path / "." / "dev.csv")])
    with pytest.raises(EvalConfigError, match=r"a Hub dataset is name\[:config\]\[@split\]"):
        parse_sts_files(["owner/name:a:b"])
    with pytest.raises(DataError, match=r"missing.csv: no such file \(--sts_files\)"):
        load_sts_files(parse_sts_files([str(tmp_path / "missing.csv")]), None, "dev")


def test_a_bad_dev_file_stops_the_run_before_a_model_loads_or_anything_is_written(
    tiny_model_dir, corpus_file, senteval_dir, tmp_path, monkeypatch
):
    bad = bad_file(tmp_path, "dev.csv", "sentence1,sentence2,score\na b,c d,1\ne f,g h,oops\n")
    monkeypatch.setattr(SentenceEncoder, "from_pretrained", lambda *a, **k: pytest.fail("a model was loaded"))
    out = tmp_path / "run"
    with pytest.raises(HNCSEError, match=r"dev.csv:3: 'score' is 'oops', not a number"):
        hncse.train.main(base_argv(tiny_model_dir, corpus_file, senteval_dir, out) + ["--sts_files", str(bad)])
    assert not out.exists()


# ---- Hub datasets ---------------------------------------------------------------------------------------------------


@pytest.fixture
def hub_sts(tmp_path, monkeypatch, senteval_dir):
    """A Hub dataset repository `someone/sts-small` with validation and test splits, served by the stand-in."""
    frame = sts_frame(senteval_dir)
    with HubStandIn() as standin:
        for split, rows in (("validation", frame.iloc[::2]), ("test", frame.iloc[1::2])):
            standin.add_dataset_file("someone/sts-small", f"{split}.csv", rows.to_csv(index=False).encode())
        for name, value in hub_constants(standin).items():
            monkeypatch.setattr(huggingface_hub.constants, name, value)
        home = tmp_path / "hf-home"
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(home / "hub"))
        monkeypatch.setenv("HF_HOME", str(home))
        monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
        monkeypatch.setenv("HF_ENDPOINT", standin.endpoint)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setattr("datasets.config.HF_DATASETS_CACHE", home / "datasets")
        monkeypatch.setattr("datasets.config.HF_ENDPOINT", standin.endpoint)  # read at import, like the hub's
        monkeypatch.setattr(
            "datasets.config.HUB_DATASETS_URL", standin.endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}"
        )
        monkeypatch.setattr("datasets.config.HF_HUB_OFFLINE", False)
        yield frame


def test_a_hub_dataset_is_read_from_the_split_asked_or_the_suites(hub_sts, saved_model):
    dev, test, named = load_sts_files(parse_sts_files(["someone/sts-small"]), None, "dev") + load_sts_files(
        parse_sts_files(["someone/sts-small", "someone/sts-small@validation"]), None, "test"
    )
    assert (dev.name, dev.origin["split"], len(dev.pairs)) == ("sts_small", "validation", len(hub_sts.iloc[::2]))
    assert (test.origin["split"], len(test.pairs)) == ("test", len(hub_sts.iloc[1::2]))
    assert named.name == "sts_small_validation" and named.pairs.sentences1 == dev.pairs.sentences1
    with pytest.raises(DataError, match=r"--sts_files someone/sts-small: cannot be loaded"):
        load_sts_files(parse_sts_files(["someone/sts-small@train"]), None, "dev")


# ---- in training ----------------------------------------------------------------------------------------------------


def test_a_run_keeps_the_checkpoint_best_on_its_own_dev_file_and_shows_it_everywhere(
    tiny_model_dir, corpus_file, senteval_dir, tmp_path, capsys
):
    from hncse.plots.training_curves import dev_metrics

    frame = sts_frame(senteval_dir)
    dev = write_pairs(tmp_path / "my_dev.csv", frame.iloc[::2])
    test = write_pairs(tmp_path / "my_test.jsonl", frame.iloc[1::2])
    out = tmp_path / "run"
    argv = base_argv(tiny_model_dir, corpus_file, senteval_dir, out) + [
        "--eval_tasks", "none", "--sts_files", str(dev), "--metric_for_best_model", "eval_my_dev_spearman",
        "--do_predict", "--predict_task_set", "none", "--predict_sts_files", str(test),
    ]  # fmt: skip
    hncse.train.main(argv)
    printed = capsys.readouterr().out

    state = json.loads((out / "trainer_state.json").read_text())
    evals = [e for e in state["log_history"] if "eval_my_dev_spearman" in e]
    assert [e["step"] for e in evals[:4]] == [0, 1, 2, 3] and not any("eval_stsb_spearman" in e for e in evals)
    best = max(evals[1:4], key=lambda e: e["eval_my_dev_spearman"])
    assert state["best_metric"] == best["eval_my_dev_spearman"]
    assert state["best_model_checkpoint"].endswith(f"checkpoint-{best['step']}")

    # The folder holds the best checkpoint: scored again by sentence-transformers, the logged best.
    assert st_spearman(out, frame.iloc[::2]) == pytest.approx(best["eval_my_dev_spearman"], abs=0.01)
    assert "| model | my_dev |" in printed and "STS dev Spearman x100" in printed
    assert f"| after training (best checkpoint) | {best['eval_my_dev_spearman']:.2f} |" in printed
    assert dev_metrics(state["log_history"]) == ["eval_my_dev_spearman"]  # what the curves draw
    assert (out / "training_curves.png").is_file() or "matplotlib" not in printed

    # The test file: its row in senteval_results.json, the printed table and the card's model-index.
    results = json.loads((out / "senteval_results.json").read_text())
    entry = results["sts_files"]["my_test"]
    assert entry["spearman"] == pytest.approx(st_spearman(out, frame.iloc[1::2]), abs=0.01)
    assert f"| my_test | {entry['pairs']} | {entry['spearman']:.2f} |" in printed
    card = (out / "README.md").read_text(encoding="utf-8")
    assert f"| eval_my_dev_spearman | {best['eval_my_dev_spearman']:.2f} |" in card
    index = card.split("model-index:")[1].split("\n---")[0]
    assert "name: my_test" in index and f"value: {round(entry['spearman'] / 100, 4)}" in index


def test_own_dev_files_beside_senteval_sets_and_the_metric_check(tiny_model_dir, corpus_file, senteval_dir, tmp_path):
    from hncse.parser import parse_args
    from hncse.training.preflight import check_arguments

    common = ["--model_name_or_path", str(tiny_model_dir), "--train_file", str(corpus_file), "--output_dir",
              str(tmp_path / "o")]  # fmt: skip
    wrong = parse_args(common + ["--sts_files", "dev.csv", "--metric_for_best_model", "eval_de_spearman"])
    with pytest.raises(
        HNCSEError,
        match=r"--metric_for_best_model 'eval_de_spearman' is not produced by --eval_tasks stsb sickr and "
        r"--sts_files dev.csv; choose one of avg_sts, dev_spearman, sickr_spearman, stsb_spearman$",
    ):
        check_arguments(*wrong[1:])
    with pytest.raises(HNCSEError, match=r"--eval_tasks none and no --sts_files: no dev set"):
        check_arguments(*parse_args(common + ["--eval_tasks", "none"])[1:])
    _, data_args, args = parse_args(
        common + ["--sts_files", "dev.csv", "--metric_for_best_model", "eval_dev_spearman"]
    )
    evaluation = check_arguments(data_args, args)
    assert evaluation.dev_tasks == ["STSBenchmark", "SICKRelatedness"] and evaluation.dev_sts_files[0].name == "dev"
