"""Where data comes from without a network: a local copy named by $HNCSE_DATA_DIR in each of its layouts,
senteval.tar extracted once whatever its inner layout, and one line naming the way out when nothing is found."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from hncse.data import sources as data_sources
from hncse.data.sources import (
    DATA_DIR_ENV,
    SOURCES,
    extract_senteval,
    resolve_senteval_dir,
    resolve_train_file,
)
from hncse.errors import DataError


@pytest.fixture
def offline_home(tmp_path, monkeypatch):
    """An empty Hugging Face home (nothing cached) and no network."""
    import huggingface_hub.constants

    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    return home


def senteval_tar(root: Path, prefix: str, senteval_dir: Path) -> Path:
    """senteval.tar holding `senteval_dir`'s files under `prefix` (e.g. SentEval/data/downstream/)."""
    path = root / "senteval.tar"
    with tarfile.open(path, "w") as archive:
        for file in sorted(senteval_dir.rglob("*")):
            if file.is_file():
                archive.add(file, arcname=prefix + str(file.relative_to(senteval_dir)))
    return path


def check_project_layout(folder: Path, monkeypatch, caplog) -> None:
    """$HNCSE_DATA_DIR naming a folder in the project data folder's layout (senteval/, unsup/ with the wiki1m
    extract) or its senteval/ alone: both sources resolve into it, and using the extract is said."""
    monkeypatch.setenv(DATA_DIR_ENV, str(folder))
    assert resolve_senteval_dir(None) == str(folder / "senteval")
    assert resolve_senteval_dir("senteval") == str(folder / "senteval")
    with caplog.at_level("WARNING"):
        assert resolve_train_file("wiki1m") == str(folder / "unsup" / "wiki1m_random10k.txt")
    assert "an extract of wiki1m_for_simcse.txt" in caplog.text  # said, not silent
    # The variable may also name SentEval's data/downstream folder itself (as it did before).
    monkeypatch.setenv(DATA_DIR_ENV, str(folder / "senteval"))
    assert resolve_senteval_dir(None) == str(folder / "senteval")


def test_a_folder_in_the_project_data_layout_as_local_copy(offline_home, project_data, monkeypatch, caplog):
    check_project_layout(project_data, monkeypatch, caplog)


def test_the_project_data_folder_as_local_copy(offline_home, real_data, monkeypatch, caplog):
    """The real folder (../shared/data) has the layout the resolution expects."""
    check_project_layout(real_data, monkeypatch, caplog)


def test_paths_and_other_names_are_left_alone(offline_home, corpus_file, senteval_dir):
    assert resolve_train_file(str(corpus_file)) == str(corpus_file)
    assert resolve_train_file("https://example.org/x.txt") == "https://example.org/x.txt"
    assert resolve_senteval_dir(str(senteval_dir)) == str(senteval_dir)
    assert resolve_senteval_dir(None) is None  # nothing anywhere: the STS sets come from the Hub's mteb/* copies


@pytest.mark.parametrize("prefix", ["SentEval/data/downstream/", "data/downstream/", "downstream/", ""])
def test_hf_download_layout_with_the_tar_in_any_inner_layout(
    offline_home, senteval_dir, tmp_path, monkeypatch, prefix
):
    copy = tmp_path / "copy"  # what `hf download … --local-dir copy` leaves
    copy.mkdir()
    (copy / "wiki1m_for_simcse.txt").write_text("one sentence.\nanother one.\n", encoding="utf-8")
    senteval_tar(copy, prefix, senteval_dir)
    monkeypatch.setenv(DATA_DIR_ENV, str(copy))

    assert resolve_train_file("wiki1m") == str(copy / "wiki1m_for_simcse.txt")
    found = Path(resolve_senteval_dir("senteval"))
    assert (found / "STS" / "STSBenchmark" / "sts-dev.csv").read_bytes() == (
        senteval_dir / "STS" / "STSBenchmark" / "sts-dev.csv"
    ).read_bytes()
    assert found.is_relative_to(offline_home / "hncse")  # extracted beside the cache, not into the copy
    extracted = sorted(p.name for p in (offline_home / "hncse").iterdir() if p.is_dir())
    assert resolve_senteval_dir(None) == str(found) and len(extracted) == 1  # extracted once, then reused
    assert sorted(p.name for p in (offline_home / "hncse").iterdir() if p.is_dir()) == extracted


def test_a_tar_without_the_layout_leaves_nothing_behind(offline_home, tmp_path):
    tar_path = tmp_path / "senteval.tar"
    with tarfile.open(tar_path, "w") as archive:
        info = tarfile.TarInfo("README")
        info.size = 5
        archive.addfile(info, io.BytesIO(b"hello"))
    with pytest.raises(DataError, match=r"senteval.tar: no SentEval data/downstream layout inside"):
        extract_senteval(str(tar_path))
    assert [p.name for p in (offline_home / "hncse").iterdir() if not p.name.endswith(".lock")] == []
    tar_path.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(DataError, match=r"not a readable tar archive"):
        extract_senteval(str(tar_path))
    assert [p.name for p in (offline_home / "hncse").iterdir() if not p.name.endswith(".lock")] == []


@pytest.mark.parametrize("compression", ["gz", "bz2", "xz"])
def test_a_compressed_tar_cut_short_is_one_line(offline_home, senteval_dir, tmp_path, compression):
    """Its decompressor fails (EOFError, not a TarError): a traceback before."""
    whole = tmp_path / f"whole.tar.{compression}"
    with tarfile.open(whole, f"w:{compression}") as archive:
        archive.add(senteval_dir, arcname="data/downstream")
    tar_path = tmp_path / "senteval.tar"
    tar_path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DataError) as error:
        extract_senteval(str(tar_path))
    message = str(error.value)
    assert message.startswith(f"{tar_path}: not a readable tar archive (") and "\n" not in message
    assert message.endswith("); download or copy it again")
    assert [p.name for p in (offline_home / "hncse").iterdir() if not p.name.endswith(".lock")] == []


def test_offline_with_nothing_names_the_command_and_the_variable(offline_home, tmp_path, monkeypatch):
    with pytest.raises(DataError) as info:
        resolve_train_file("wiki1m")
    message = str(info.value)
    assert message.startswith("--train_file wiki1m: not available offline ($HNCSE_DATA_DIR is not set")
    assert "`hncse-data download wiki1m`" in message and "\n" not in message
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(DATA_DIR_ENV, str(empty))
    with pytest.raises(DataError, match=rf"--senteval_dir senteval: not available offline \(\$HNCSE_DATA_DIR={empty}"):
        resolve_senteval_dir("senteval")
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"^\$HNCSE_DATA_DIR=.*nowhere: no such folder$"):
        resolve_train_file("wiki1m")


def test_a_cached_file_whose_bytes_do_not_match_its_checksum_is_deleted(tmp_path):
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    good, bad = b"the right bytes\n", b"the wrong bytes\n"
    import hashlib

    etag = hashlib.sha256(good).hexdigest()
    (blobs / etag).write_bytes(bad)
    link = tmp_path / "wiki1m_for_simcse.txt"
    os.symlink(blobs / etag, link)
    with pytest.raises(DataError, match=r"does not match the Hub's checksum .* it was deleted"):
        data_sources.check_integrity(str(link), SOURCES["wiki1m"])
    assert not link.exists() and not (blobs / etag).exists()
    (blobs / etag).write_bytes(good)
    os.symlink(blobs / etag, link)
    data_sources.check_integrity(str(link), SOURCES["wiki1m"])  # whole: kept
    assert link.read_bytes() == good
