"""The data from its real source: princeton-nlp/datasets-for-simcse served by the Hub stand-in under its real paths.

Downloads land in an empty Hugging Face home and are checked against the Hub's checksum; a transfer cut off
midway is resumed by huggingface_hub within the call; corrupted bytes are refused and nothing of them is kept;
`hncse-data` works as a command; and the quickstart config trains in a copy of the repository that has no
`../shared` beside it, with the stand-in as the only source of data.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import huggingface_hub.constants
import pytest
import yaml
from hub_standin import HubStandIn, hub_constants, hub_env
from tiny_run import REPO

from hncse.data.sources import DATA_DIR_ENV, HUB_DATASET, resolve_senteval_dir, resolve_train_file
from hncse.errors import DataError

CHUNK = 10 * 1024 * 1024  # huggingface_hub writes (and resumes) in whole chunks of this size


def make_senteval_tar(senteval_dir: Path, path: Path, prefix: str = "SentEval/data/downstream/") -> bytes:
    with tarfile.open(path, "w") as archive:
        for file in sorted(senteval_dir.rglob("*")):
            if file.is_file():
                archive.add(file, arcname=prefix + str(file.relative_to(senteval_dir)))
    return path.read_bytes()


@pytest.fixture
def hub(tmp_path, monkeypatch, corpus_file, senteval_dir):
    """The stand-in serving wiki1m (LFS, as on the Hub) and senteval.tar; an empty HF home; online."""
    with HubStandIn() as standin:
        corpus = corpus_file.read_bytes()
        standin.add_dataset_file(HUB_DATASET, "wiki1m_for_simcse.txt", corpus, lfs=True)
        tar_bytes = make_senteval_tar(senteval_dir, tmp_path / "senteval.tar")
        standin.add_dataset_file(HUB_DATASET, "senteval.tar", tar_bytes, lfs=True)
        for name, value in hub_constants(standin).items():
            monkeypatch.setattr(huggingface_hub.constants, name, value)
        home = tmp_path / "hf-home"
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(home / "hub"))
        monkeypatch.setenv("HF_HOME", str(home))
        monkeypatch.setenv("HF_ENDPOINT", standin.endpoint)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.delenv(DATA_DIR_ENV, raising=False)
        standin.home, standin.corpus, standin.tar_bytes = home, corpus, tar_bytes
        yield standin


def cache_blobs(home: Path) -> list[Path]:
    return sorted((home / "hub" / "datasets--princeton-nlp--datasets-for-simcse" / "blobs").glob("*"))


def test_download_then_reuse_from_the_cache(hub, senteval_dir):
    path = resolve_train_file("wiki1m")
    assert Path(path).read_bytes() == hub.corpus and Path(path).is_relative_to(hub.home / "hub")
    folder = Path(resolve_senteval_dir("senteval"))
    assert (folder / "STS" / "STSBenchmark" / "sts-dev.csv").read_bytes() == (
        senteval_dir / "STS" / "STSBenchmark" / "sts-dev.csv"
    ).read_bytes()
    requests = list(hub.downloads)
    assert [(method, path) for method, path, _ in requests if method == "GET"] == [
        ("GET", "wiki1m_for_simcse.txt"),
        ("GET", "senteval.tar"),
    ]
    # Second time: from the cache, without a single request; without --senteval_dir the download is found too.
    assert resolve_train_file("wiki1m") == path and resolve_senteval_dir("senteval") == str(folder)
    assert resolve_senteval_dir(None) == str(folder)
    assert hub.downloads == requests


def test_a_cut_transfer_is_resumed_where_it_stopped(hub):
    corpus = (hub.corpus * (CHUNK // len(hub.corpus) + 2))[: CHUNK + 200_000]  # a little over one chunk
    hub.add_dataset_file(HUB_DATASET, "wiki1m_for_simcse.txt", corpus, lfs=True)
    hub.cut_after["wiki1m_for_simcse.txt"] = CHUNK + 5000
    path = resolve_train_file("wiki1m")
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == hashlib.sha256(corpus).hexdigest()
    gets = [(path, byte_range) for method, path, byte_range in hub.downloads if method == "GET"]
    assert gets == [("wiki1m_for_simcse.txt", None), ("wiki1m_for_simcse.txt", f"bytes={CHUNK}-")]


def test_corrupted_bytes_are_refused_and_not_kept(hub):
    hub.corrupt.add("wiki1m_for_simcse.txt")
    with pytest.raises(DataError) as info:
        resolve_train_file("wiki1m")
    message = str(info.value)
    assert message.startswith("wiki1m: the downloaded wiki1m_for_simcse.txt does not match the Hub's checksum")
    assert "it was deleted. Run `hncse-data download wiki1m` again" in message and "\n" not in message
    assert cache_blobs(hub.home) == []
    hub.corrupt.add("senteval.tar")
    with pytest.raises(DataError, match="senteval.tar does not match"):
        resolve_senteval_dir("senteval")
    assert cache_blobs(hub.home) == [] and not (hub.home / "hncse").exists()  # nothing extracted either
    hub.corrupt.clear()
    assert Path(resolve_train_file("wiki1m")).read_bytes() == hub.corpus  # a clean transfer goes through


def test_a_transfer_that_keeps_failing_is_one_line(hub):
    hub.stop()  # the server is gone
    with pytest.raises(DataError) as info:
        resolve_train_file("wiki1m")
    assert str(info.value).startswith("wiki1m: downloading wiki1m_for_simcse.txt from princeton-nlp/datasets-for")
    assert "nothing partial was kept" in str(info.value) and "\n" not in str(info.value)
    assert cache_blobs(hub.home) == []


def run_command(args: list[str], hub: HubStandIn, cwd: str, **extra_env) -> subprocess.CompletedProcess:
    env = {**os.environ, **hub_env(hub), "HF_HOME": str(hub.home), "OMP_NUM_THREADS": "1", **extra_env}
    env.pop(DATA_DIR_ENV, None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_hncse_data_command(hub):
    proc = run_command(["-m", "hncse.data.cli", "where"], hub, REPO)
    assert proc.returncode == 0 and "wiki1m: not on this machine; `hncse-data download wiki1m`" in proc.stdout
    proc = run_command(["-m", "hncse.data.cli", "download", "wiki1m", "senteval"], hub, REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("wiki1m: ") and Path(lines[0].split(": ", 1)[1]).read_bytes() == hub.corpus
    assert lines[1].startswith("senteval: ") and (Path(lines[1].split(": ", 1)[1]) / "SICK").is_dir()
    proc = run_command(["-m", "hncse.data.cli", "download", "nli"], hub, REPO)  # not in the stand-in's repo
    error = proc.stderr.strip().splitlines()[-1]  # after the log lines
    assert proc.returncode == 2 and error.startswith("hncse-data: error: nli: downloading nli_for_simcse.csv from")
    assert "Traceback" not in proc.stderr
    proc = run_command(["-m", "hncse.data.cli", "download", "nli"], hub, REPO, HF_HUB_OFFLINE="1")
    assert proc.stderr.strip() == "hncse-data: error: nli: cannot download while HF_HUB_OFFLINE is set"


def test_quickstart_config_in_a_clone_without_shared_data(hub, tiny_model_dir, tmp_path):
    """configs/quickstart.yaml as written (names, no paths), in a copy of the repository with no ../shared beside
    it: the data come from the stand-in; then the same offline from the cache; then offline with nothing."""
    clone = tmp_path / "fresh" / "hncse"
    shutil.copytree(
        REPO, clone, ignore=shutil.ignore_patterns(".git", ".venv", "outputs", "*.egg-info", "__pycache__", ".*cache")
    )
    assert not (clone.parent.parent / "shared").exists() and not (clone.parent / "shared").exists()
    config = yaml.safe_load((clone / "configs" / "quickstart.yaml").read_text())
    assert (config["train_file"], config["senteval_dir"]) == ("wiki1m", "senteval")
    quick = [
        "run_hncse.py", "configs/quickstart.yaml", "--model_name_or_path", str(tiny_model_dir),
        "--max_steps", "2", "--per_device_train_batch_size", "8", "--max_train_samples", "64",
        "--eval_steps", "1", "--save_steps", "2", "--max_seq_length", "16", "--disable_tqdm", "true",
        "--dataloader_pin_memory", "false", "--hnm_k", "4", "--hnm_s", "4",
    ]  # fmt: skip
    proc = run_command([*quick, "--output_dir", "outputs/online"], hub, str(clone))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| after training (best checkpoint) |" in proc.stdout
    card = (clone / "outputs" / "online" / "README.md").read_text()
    assert "datasets:\n- princeton-nlp/datasets-for-simcse" in card and "- Objective: `hybrid_sum`" in card
    served = len(hub.downloads)

    proc = run_command([*quick, "--output_dir", "outputs/offline"], hub, str(clone), HF_HUB_OFFLINE="1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(hub.downloads) == served  # everything from the cache

    shutil.rmtree(hub.home)
    proc = run_command([*quick, "--output_dir", "outputs/nothing"], hub, str(clone), HF_HUB_OFFLINE="1")
    assert proc.returncode == 2 and not (clone / "outputs" / "nothing").exists()
    assert proc.stderr.strip().splitlines()[-1] == (
        "run_hncse.py: error: --train_file wiki1m: not available offline ($HNCSE_DATA_DIR is not set, and it is not "
        "in the Hugging Face cache); run `hncse-data download wiki1m` on a machine with network, or set "
        "$HNCSE_DATA_DIR to a folder holding a copy"
    )
