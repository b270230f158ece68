"""The evaluation suite: SentEval's data and counts, STS aggregates, the transfer protocol, the CLI."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO
from fixture_data import write_senteval
from scipy.stats import spearmanr

from hncse import evaluate as evaluate_cli
from hncse.errors import EvalConfigError
from hncse.evaluation.alignment_uniformity import alignment, uniformity
from hncse.evaluation.embedding_cache import EmbeddingLookup
from hncse.evaluation.senteval_data import (
    STS_TASKS,
    STSPairs,
    STSTask,
    load_sts_task,
    load_transfer_task,
)
from hncse.evaluation.sts import evaluate_sts, score_sts_task, spearman
from hncse.evaluation.suite import flat_metrics, load_suite, resolve_tasks, run_suite
from hncse.evaluation.transfer import (
    PROTOCOLS,
    BatchedLinearClassifiers,
    evaluate_cv,
    evaluate_kfold,
    evaluate_split,
    stratified_folds,
)
from hncse.modeling import SentenceEncoder

# ---- data: SentEval's files, filtering and counts --------------------------------------------------------


def test_sts_pair_counts_are_senteval_s(real_data):
    senteval = str(real_data / "senteval")
    counts = {name: load_sts_task(name, senteval, "test") for name in STS_TASKS}
    pairs = {name: sum(len(p) for p in task.subsets) for name, task in counts.items()}
    assert pairs == {
        "STS12": 3108,
        "STS13": 1500,
        "STS14": 3750,
        "STS15": 3000,
        "STS16": 1186,
        "STSBenchmark": 1379,
        "SICKRelatedness": 4927,
    }
    sts15 = {p.name.split("/")[1]: len(p) for p in counts["STS15"].subsets}
    assert sts15 == {"answers-forums": 375, "answers-students": 750, "belief": 375, "headlines": 750, "images": 750}
    sts16 = {p.name.split("/")[1]: len(p) for p in counts["STS16"].subsets}
    assert sts16 == {
        "answer-answer": 254,
        "headlines": 249,
        "plagiarism": 230,
        "postediting": 244,
        "question-question": 209,
    }
    assert [p.name for p in counts["STS13"].subsets] == ["STS13/FNWN", "STS13/headlines", "STS13/OnWN"]  # no SMT
    assert len(load_sts_task("STSBenchmark", senteval, "dev").subsets[0]) == 1500
    assert len(load_sts_task("SICKRelatedness", senteval, "dev").subsets[0]) == 500


def test_transfer_sizes_are_senteval_s(real_data):
    senteval = str(real_data / "senteval")
    sizes = {name: load_transfer_task(name, senteval).sizes for name in ["MR", "CR", "SUBJ", "MPQA", "SST2"]}
    assert sizes == {
        "MR": {"train": 10662},
        "CR": {"train": 3775},
        "SUBJ": {"train": 10000},
        "MPQA": {"train": 10606},
        "SST2": {"train": 67349, "dev": 872, "test": 1821},
    }
    trec = load_transfer_task("TREC", senteval)
    assert trec.sizes == {"train": 5452, "test": 500} and set(trec.splits["train"][1].tolist()) == set(range(6))
    mrpc = load_transfer_task("MRPC", senteval)
    assert mrpc.sizes == {"train": 4076, "test": 1725}
    assert not mrpc.splits["train"][0][0][0].startswith("\ufeff")  # the BOM is not part of the first sentence


def test_loaders_count_what_the_files_hold(tmp_path):
    """SentEval's reading rules on a generated copy of its layout, counted by the generator as it wrote it: unscored
    STS15/16 lines dropped, STS13 without SMT, SICK's and MRPC's headers skipped, MRPC's byte-order mark removed."""
    written = write_senteval(tmp_path, pairs=9, dev_pairs=7, examples=13)
    for name in STS_TASKS:
        for split in ("train", "dev", "test") if name in ("STSBenchmark", "SICKRelatedness") else ("test",):
            task = load_sts_task(name, str(tmp_path), split)
            for pairs in task.subsets:
                key = pairs.name if name.startswith("STS1") else f"{name}/{split}"
                assert len(pairs) == len(pairs.sentences1) == len(pairs.sentences2) == written[key], key
                assert all(0 <= score <= 5 for score in pairs.scores) and "" not in pairs.sentences2
    sts15 = load_sts_task("STS15", str(tmp_path)).subsets[0]
    assert len((tmp_path / "STS" / "STS15-en-test" / "STS.input.answers-forums.txt").read_text().splitlines()) == 9
    assert len(sts15) == 6  # 3 of the 9 lines have an empty gold line
    assert [p.name for p in load_sts_task("STS13", str(tmp_path)).subsets] == [
        "STS13/FNWN", "STS13/headlines", "STS13/OnWN"
    ]  # fmt: skip
    assert (tmp_path / "STS" / "STS13-en-test" / "STS.gs.SMT.txt").is_file()  # there, but without its input
    for name in ["MR", "CR", "SUBJ", "MPQA", "SST2", "TREC", "MRPC"]:
        assert load_transfer_task(name, str(tmp_path)).sizes == written[name], name
    assert written["MR"] == {"train": 26} and written["MRPC"] == {"train": 12, "test": 12}
    trec = load_transfer_task("TREC", str(tmp_path))
    assert set(trec.splits["train"][1].tolist()) == set(range(6)) and not trec.splits["train"][0][0].startswith("ABBR")
    mrpc_file = tmp_path / "MRPC" / "msr_paraphrase_train.txt"
    assert mrpc_file.read_bytes().startswith(b"\xef\xbb\xbfQuality")
    first_row = mrpc_file.read_text(encoding="utf-8-sig").splitlines()[1]
    assert load_transfer_task("MRPC", str(tmp_path)).splits["train"][0][0][0] == first_row.split("\t")[3]


def test_missing_file_names_it_and_the_flag(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        load_sts_task("STS12", str(tmp_path))
    message = str(error.value)
    assert "STS.input.MSRpar.txt" in message and "--senteval_dir" in message and "\n" not in message


def test_offline_hub_fallback_is_one_line_naming_the_flag():
    with pytest.raises(FileNotFoundError) as error:
        load_sts_task("STS12", None)
    assert "mteb/sts12-sts" in str(error.value) and "--senteval_dir" in str(error.value)
    assert "\n" not in str(error.value)


def test_hub_fallback_reads_the_mteb_copy(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(repo, split):
        calls.append((repo, split))
        return datasets.Dataset.from_dict(
            {"sentence1": ["A  man .", "b"], "sentence2": ["a dog", "c d"], "score": [4.5, 1.0]}
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    task = load_sts_task("STSBenchmark", None, "dev")
    assert calls == [("mteb/stsbenchmark-sts", "validation")]
    assert task.subsets[0].sentences1 == ["A man .", "b"] and task.subsets[0].scores.tolist() == [4.5, 1.0]


# ---- STS scores ------------------------------------------------------------------------------------------


def _angle_lookup(cosines_by_pair: dict[str, float]) -> EmbeddingLookup:
    """'x' is [1, 0]; sentence s is [cos θ, sin θ], so cos(x, s) is the given value."""
    sentences = ["x", *cosines_by_pair]
    rows = [[1.0, 0.0]] + [[c, math.sqrt(1 - c * c)] for c in cosines_by_pair.values()]
    return EmbeddingLookup(sentences, torch.tensor(rows))


def test_all_wmean_and_mean_on_a_hand_built_example():
    # subset A: cosines rank exactly as gold (+100); subset B: exactly against it (−100)
    lookup = _angle_lookup({"a1": 0.9, "a2": 0.5, "a3": 0.1, "b1": 0.8, "b2": 0.2})
    a = STSPairs("Y/A", ["x"] * 3, ["a1", "a2", "a3"], np.array([3.0, 2.0, 1.0]))
    b = STSPairs("Y/B", ["x"] * 2, ["b1", "b2"], np.array([1.0, 4.0]))
    result = score_sts_task(STSTask("Y", [a, b]), lookup)
    assert result["subsets"]["A"]["spearman"] == pytest.approx(100.0)
    assert result["subsets"]["B"]["spearman"] == pytest.approx(-100.0)
    assert result["wmean"] == pytest.approx((3 * 100 - 2 * 100) / 5)
    assert result["mean"] == pytest.approx(0.0)
    # "all": cosine ranks [5, 3, 1, 4, 2] vs gold ranks [4, 3, 1.5, 1.5, 5] → r = 1.5 / sqrt(10 · 9.5)
    assert result["all"] == pytest.approx(100 * 1.5 / math.sqrt(95))
    assert result["pairs"] == 5


def test_metric_module_matches_scipy():
    rng = np.random.default_rng(0)
    x, y = rng.random(300), rng.integers(0, 6, 300).astype(float)  # ties in the gold scores
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).correlation * 100, abs=1e-9)


@pytest.mark.parametrize("pooler_type", ["avg", "cls"])
def test_sts_spearman_equals_sentence_transformers_evaluator(tiny_model_dir, senteval_dir, tmp_path, pooler_type):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    encoder = SentenceEncoder.from_pretrained(str(tiny_model_dir), pooler_type=pooler_type)
    encoder.save_pretrained(tmp_path / "model")
    task = load_sts_task("STSBenchmark", str(senteval_dir), "dev")
    ours = evaluate_sts(encoder, {"stsb": task})["stsb"]["all"]
    pairs = task.subsets[0]
    evaluator = EmbeddingSimilarityEvaluator(
        pairs.sentences1, pairs.sentences2, pairs.scores.tolist(), main_similarity="cosine", write_csv=False
    )
    theirs = evaluator(SentenceTransformer(str(tmp_path / "model"), device="cpu"))["spearman_cosine"] * 100
    assert ours == pytest.approx(theirs, abs=0.01)


def test_each_distinct_sentence_is_encoded_once(tiny_model_dir, senteval_small):
    encoder = SentenceEncoder.from_pretrained(str(tiny_model_dir), pooler_type="avg")
    seen = []
    original = encoder.encode

    def counting_encode(sentences, **kwargs):
        seen.append(list(sentences))
        return original(sentences, **kwargs)

    encoder.encode = counting_encode
    suite = load_suite(resolve_tasks("full", None, "fasttest"), "fasttest", str(senteval_small), alignment=True)
    run_suite(encoder, suite)
    assert len(seen) == 1 and len(seen[0]) == len(set(seen[0])) == len(set(suite.sentences()))


# ---- transfer protocol -------------------------------------------------------------------------------------


def _blobs(n: int, dim: int, classes: int, seed: int, gap: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    centres = torch.eye(dim)[:classes] * gap
    return centres[labels] + torch.randn(n, dim, generator=g), labels


def test_stratified_folds_balance_every_class():
    labels = torch.tensor([0] * 23 + [1] * 17 + [2] * 5)
    folds = stratified_folds(labels, 5, torch.Generator().manual_seed(1))
    sizes = torch.bincount(folds, minlength=5)
    assert int(sizes.max() - sizes.min()) <= 1
    for c in range(3):
        per_fold = torch.bincount(folds[labels == c], minlength=5)
        assert int(per_fold.max() - per_fold.min()) <= 1


@pytest.mark.parametrize("mode, n, expected", [("fasttest", 400, 100.0), ("test", 1000, 99.0)])
def test_cv_is_perfect_on_separable_data_and_chance_on_shuffled_labels(mode, n, expected):
    # The "test" protocol (Adam, lr 1e-3) early-stops on a 5 % hold-out: on a few hundred samples that hold-out
    # is perfect before the classifier has converged, exactly as in SentEval, so it gets a larger set.
    x, y = _blobs(n, 8, 2, seed=0)
    assert evaluate_cv(x, y, 2, PROTOCOLS[mode])["acc"] >= expected
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]
    assert abs(evaluate_cv(x, shuffled, 2, PROTOCOLS[mode])["acc"] - 50.0) < 6.0


def test_kfold_and_split_protocols_on_separable_and_shuffled_data():
    x, y = _blobs(600, 8, 3, seed=2)
    protocol = PROTOCOLS["fasttest"]
    assert evaluate_kfold(x[:400], y[:400], x[400:], y[400:], 3, protocol)["acc"] == 100.0
    result = evaluate_split(x[:300], y[:300], x[300:400], y[300:400], x[400:], y[400:], 3, protocol)
    assert result["acc"] == 100.0 and result["devacc"] == 100.0
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(3))]
    chance = evaluate_kfold(x[:400], shuffled[:400], x[400:], shuffled[400:], 3, protocol)["acc"]
    assert abs(chance - 100 / 3) < 10.0


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_batched_classifiers_step_like_torch_optimizers(optimizer):
    """Each batched model follows nn.Linear + torch.optim (weight_decay = its l2) on its own mini-batches."""
    torch.manual_seed(0)
    x, y = torch.randn(2, 6, 5), torch.randint(0, 3, (2, 6))
    valid = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.float)
    protocol = PROTOCOLS["test" if optimizer == "adam" else "fasttest"]
    l2 = torch.tensor([1e-2, 1e-4])
    models = BatchedLinearClassifiers(5, 3, l2, protocol, torch.Generator().manual_seed(0))
    references = []
    for m in range(2):
        linear = torch.nn.Linear(5, 3)
        with torch.no_grad():
            linear.weight.copy_(models.weight[m])
            linear.bias.copy_(models.bias[m])
        cls = torch.optim.Adam if optimizer == "adam" else torch.optim.RMSprop
        references.append((linear, cls(linear.parameters(), weight_decay=float(l2[m]))))
    for step in range(4):
        update = torch.tensor([True, step != 2])  # model 1 sits out step 2 (no rows in its batch)
        models.step(x, y, valid, update)
        for m, (linear, opt) in enumerate(references):
            if not update[m]:
                continue
            rows = valid[m].bool()
            opt.zero_grad()
            torch.nn.functional.cross_entropy(linear(x[m][rows]), y[m][rows]).backward()
            opt.step()
    for m, (linear, _) in enumerate(references):
        torch.testing.assert_close(models.weight[m], linear.weight.detach(), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(models.bias[m], linear.bias.detach(), atol=1e-6, rtol=1e-5)


# ---- alignment and uniformity ------------------------------------------------------------------------------


def test_alignment_and_uniformity_match_naive_loops():
    torch.manual_seed(0)
    x, y = torch.randn(7, 4), torch.randn(7, 4)
    xn, yn = [v / v.norm() for v in x.double()], [v / v.norm() for v in y.double()]
    naive_align = sum(float((a - b).norm() ** 2) for a, b in zip(xn, yn)) / 7
    pairs = [(i, j) for i in range(7) for j in range(i + 1, 7)]
    naive_uniform = math.log(sum(math.exp(-2 * float((xn[i] - xn[j]).norm() ** 2)) for i, j in pairs) / len(pairs))
    assert alignment(x, y) == pytest.approx(naive_align)
    assert uniformity(x) == pytest.approx(naive_uniform)


# ---- the command line --------------------------------------------------------------------------------------


def test_cli_full_suite_prints_tables_and_writes_json(tiny_model_dir, senteval_small, tmp_path, capsys):
    out = tmp_path / "results.json"
    argv = [str(tiny_model_dir), "--pooler", "avg", "--task_set", "full", "--mode", "fasttest",
            "--senteval_dir", str(senteval_small), "--output_json", str(out)]  # fmt: skip
    evaluate_cli.main(argv)
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())
    assert "| STS | STS12 | STS13 | STS14 | STS15 | STS16 | STS-B | SICK-R | Avg. |" in printed
    assert "| all |" in printed and "| wmean |" in printed
    assert "| transfer | MR | CR | SUBJ | MPQA | SST-2 | TREC | MRPC | Avg. |" in printed
    assert set(results["sts"]) == set(STS_TASKS) and len(results["transfer"]) == 7
    assert f"| all | {results['sts']['STS12']['all']:.2f} |" in printed
    assert set(results["sts"]["STS12"]["subsets"]) == {
        "MSRpar", "MSRvid", "SMTeuroparl", "surprise.OnWN", "surprise.SMTnews"
    }  # fmt: skip
    assert 0 <= results["alignment"] <= 4 and results["uniformity"] <= 0
    suite = load_suite(resolve_tasks("full", None, "fasttest"), "fasttest", str(senteval_small), alignment=True)
    metrics = flat_metrics(results, suite)
    assert {"sts12_spearman", "sts12_spearman_wmean", "mrpc_accuracy", "avg_sts", "avg_transfer"} <= set(metrics)
    assert "f1" in results["transfer"]["MRPC"]


def test_cli_errors_are_one_line_with_exit_code_2(tiny_model_dir, tmp_path):
    missing = subprocess.run(
        [sys.executable, "-m", "hncse.evaluate", str(tiny_model_dir), "--senteval_dir", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "--senteval_dir" in missing.stderr
    assert "STS.input.MSRpar.txt" in missing.stderr
    with pytest.raises(EvalConfigError, match="--tasks: unknown task 'sts99'"):
        evaluate_cli.main([str(tiny_model_dir), "--tasks", "sts99"])
    with pytest.raises(EvalConfigError, match="STS12 have no dev split"):
        evaluate_cli.main([str(tiny_model_dir), "--tasks", "sts12", "--mode", "dev"])


def test_cli_refuses_a_device_it_does_not_have(tiny_model_dir, senteval_small, monkeypatch):
    common = [str(tiny_model_dir), "--senteval_dir", str(senteval_small), "--tasks", "stsb", "--mode", "dev"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(EvalConfigError, match=r"--device cuda: no CUDA device here \(torch .*\); use --device cpu"):
        evaluate_cli.main([*common, "--device", "cuda"])
    with pytest.raises(EvalConfigError, match=r"--device gpu0: "):
        evaluate_cli.main([*common, "--device", "gpu0"])


def test_cli_refuses_the_lengths_training_refuses(tiny_model_dir, senteval_small):
    """The tiny model takes 64 tokens; training refuses longer, and so does the evaluation."""
    common = [str(tiny_model_dir), "--senteval_dir", str(senteval_small), "--tasks", "stsb", "--mode", "dev"]
    with pytest.raises(EvalConfigError, match=r"--max_seq_length 100000 is longer than .* takes \(64 tokens\)"):
        evaluate_cli.main([*common, "--max_seq_length", "100000"])
    with pytest.raises(EvalConfigError, match="--max_seq_length must be at least 2, got 1"):
        evaluate_cli.main([*common, "--max_seq_length", "1"])


def test_sentence_transformers_folder_brings_its_pooling(tiny_model_dir, tmp_path):
    SentenceEncoder.from_pretrained(str(tiny_model_dir), pooler_type="avg").save_pretrained(tmp_path / "st")
    (tmp_path / "st" / "hncse_config.json").unlink()  # now only the sentence-transformers files describe it
    assert SentenceEncoder.from_pretrained(str(tmp_path / "st")).pooler_type == "avg"
    assert SentenceEncoder.from_pretrained(str(tiny_model_dir)).pooler_type == "cls"  # plain checkpoint


def test_cli_refuses_a_folder_whose_sentence_transformers_files_were_edited(tiny_model_dir, senteval_small, tmp_path):
    """hncse_config.json says cls_before_pooler, 1_Pooling/config.json now says mean: the evaluation would score
    another function than `SentenceTransformer(path)` computes, so it stops with one line naming both files."""
    folder = tmp_path / "edited"
    SentenceEncoder.from_pretrained(str(tiny_model_dir), pooler_type="cls_before_pooler").save_pretrained(folder)
    pooling = folder / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    pooling.write_text(json.dumps({**config, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True}))
    argv = [str(folder), "--senteval_dir", str(senteval_small), "--tasks", "stsb", "--mode", "dev",
            "--output_json", str(tmp_path / "r.json")]  # fmt: skip
    refused = subprocess.run(
        [sys.executable, "-m", "hncse.evaluate", *argv],
        capture_output=True, text=True, cwd=REPO, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0, refused.stderr
    assert refused.stderr.startswith(
        f"hncse-evaluate: error: {pooling} says mean pooling but hncse_config.json says cls_before_pooler: "
    )
    assert not (tmp_path / "r.json").exists()
    (folder / "hncse_config.json").unlink()  # as the message says: the folder is now what sentence-transformers reads
    assert evaluate_cli.main(argv)["pooler"] == "avg"


def test_cli_results_are_never_lost_to_the_output_json(tiny_model_dir, senteval_small, tmp_path, capsys, monkeypatch):
    """An --output_json that cannot be written is refused before anything is encoded; one that fails while being
    written leaves no half file, and the results are printed first."""
    import hncse.evaluation.cli as evaluate_cli  # the module itself: its functions are patched

    common = [str(tiny_model_dir), "--senteval_dir", str(senteval_small), "--tasks", "stsb", "--mode", "dev"]
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder", encoding="utf-8")
    encoded = []
    monkeypatch.setattr(evaluate_cli, "evaluate_model", lambda args: encoded.append(args) or {})
    for path, why in ((blocked / "r.json", "cannot be written there"), (tmp_path, "is a folder")):
        with pytest.raises(EvalConfigError, match=rf"--output_json {re.escape(str(path))}: .*{why}"):
            evaluate_cli.main([*common, "--output_json", str(path)])
    assert encoded == []
    monkeypatch.undo()

    out = tmp_path / "r.json"
    out.write_text('{"earlier": true}\n', encoding="utf-8")

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(evaluate_cli.os, "replace", disk_full)
    with pytest.raises(EvalConfigError, match=r"r\.json: the results could not be written \(.*No space left"):
        evaluate_cli.main([*common, "--output_json", str(out)])
    assert "| STS-B |" in capsys.readouterr().out  # printed before the write failed
    assert out.read_text(encoding="utf-8") == '{"earlier": true}\n' and not (tmp_path / "r.json.partial").exists()
