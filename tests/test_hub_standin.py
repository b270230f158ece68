"""The Hub stand-in's download side, driven in-process by huggingface_hub 2.4.0 against dataset repos.

How an in-process test points huggingface_hub at the stand-in: huggingface_hub reads HF_ENDPOINT, HF_HUB_OFFLINE and
HF_HUB_DISABLE_XET once, at import, into `huggingface_hub.constants` (the push tests run a subprocess with `hub_env`
instead). Setting the variables here changes nothing, so:
- HF_HUB_OFFLINE: patch `constants.HF_HUB_OFFLINE = False` (`is_offline_mode()` reads it on every request; conftest
  sets the variable to 1 for subprocesses, after transformers has already imported huggingface_hub).
- HF_HUB_DISABLE_XET: patch `constants.HF_HUB_DISABLE_XET = True` (hf_xet is installed; the stand-in serves no Xet).
- HF_ENDPOINT: either pass `endpoint=hub.endpoint` to every call (`hf_hub_url`, `hf_hub_download`, `HfApi`,
  `snapshot_download`; `get_hf_file_metadata` takes the URL `hf_hub_url` built), or patch `constants.ENDPOINT` and
  `constants.HUGGINGFACE_CO_URL_TEMPLATE` (hf_hub_url formats the latter), which `hub_constants` lists, and pass none.
The `hub` fixture does the first two; `test_patched_constants_need_no_endpoint_argument` shows the third way.

What these tests pin down about huggingface_hub 2.4.0 (file_download.py): a download is HEAD /resolve (metadata, with
Accept-Encoding: identity) then GET /resolve, into a process-unique `blobs/<etag>.<8 hex>.incomplete` that is renamed
to `blobs/<etag>` or deleted on any error. An interrupted GET (httpx2.RemoteProtocolError) does not raise: http_get
logs "Trying to resume download...", sleeps 1 s and asks again with `Range: bytes=N-`, N counting only the whole
10 MiB chunks (constants.DOWNLOAD_CHUNK_SIZE) already written, so a cut inside the first chunk restarts from byte 0
(no Range). It gives up after 6 tries in a row that wrote no chunk, raising the last httpx2 error (RemoteProtocolError
for cuts, ConnectError once the server is gone) and deleting the partial file: the next call starts over, nothing is
resumed across calls. Only the size is checked, never the sha256: corrupted bytes of the right size land in the cache.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest
from hub_standin import HubStandIn, git_oid, hub_constants
from huggingface_hub import HfApi, constants, file_download, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub import snapshot_download as hub_snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

# The download internals pinned here are huggingface_hub 2.x's (HTTP through httpx2); transformers < 5.23 brings 1.x.
httpx2 = pytest.importorskip("httpx2", reason="pins huggingface_hub 2.x's downloads (httpx2); this one has 1.x")

REPO_ID = "standin-user/corpus"
CHUNK = constants.DOWNLOAD_CHUNK_SIZE  # 10 MiB: the unit in which http_get writes, hence resumes


@pytest.fixture()
def hub(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # for anything that reads the environment anew
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    with HubStandIn() as standin:
        yield standin


def download(hub: HubStandIn, path: str, cache_dir, **kwargs) -> str:
    return hf_hub_download(REPO_ID, path, repo_type="dataset", cache_dir=cache_dir, endpoint=hub.endpoint, **kwargs)


def metadata(hub: HubStandIn, path: str, revision: str = "main"):
    return get_hf_file_metadata(
        hf_hub_url(REPO_ID, path, repo_type="dataset", revision=revision, endpoint=hub.endpoint)
    )


def leftovers(cache_dir) -> list[str]:
    return [name for _, _, names in os.walk(cache_dir) for name in names if name.endswith(".incomplete")]


def test_regular_and_lfs_files_download_byte_exact_and_are_cached_by_etag(hub, tmp_path):
    text, binary = b"a sentence per line\n" * 50, bytes(range(256)) * 40  # a NUL byte: LFS, as on the Hub
    hub.add_dataset_file(REPO_ID, "train.txt", text)
    sha = hub.add_dataset_file(REPO_ID, "data/vectors.bin", binary)

    path = download(hub, "train.txt", tmp_path, revision="main", token=False)  # public: no token needed
    assert open(path, "rb").read() == text
    assert path.endswith(f"datasets--standin-user--corpus/snapshots/{sha}/train.txt")
    assert os.path.basename(os.path.realpath(path)) == git_oid(text)  # a regular file's blob is named by its sha1
    lfs_path = download(hub, "data/vectors.bin", tmp_path)
    assert open(lfs_path, "rb").read() == binary
    assert os.path.basename(os.path.realpath(lfs_path)) == hashlib.sha256(binary).hexdigest()
    assert hub.downloads == [
        ("HEAD", "train.txt", None),
        ("GET", "train.txt", None),
        ("HEAD", "data/vectors.bin", None),
        ("GET", "data/vectors.bin", None),
    ]

    hub.downloads.clear()  # cached: a HEAD to learn the etag, no GET; at the commit sha, not even the HEAD
    assert download(hub, "train.txt", tmp_path) == path
    assert download(hub, "train.txt", tmp_path, revision=sha) == path
    assert hub.downloads == [("HEAD", "train.txt", None)]
    assert open(download(hub, "train.txt", tmp_path / "fresh", revision=sha), "rb").read() == text
    assert leftovers(tmp_path) == []


def test_metadata_reports_size_commit_and_the_sha256_of_lfs_files(hub):
    big = b"text " * 2_000_000  # 10 MB of text: LFS by size
    hub.add_dataset_file(REPO_ID, "big.bin", big)
    hub.add_dataset_file(REPO_ID, "forced-lfs.txt", b"text, but LFS\n", lfs=True)
    sha = hub.add_dataset_file(REPO_ID, "forced-git.bin", b"\0binary, but git\n", lfs=False)

    meta = metadata(hub, "big.bin")
    assert (meta.size, meta.etag, meta.commit_hash) == (len(big), hashlib.sha256(big).hexdigest(), sha)
    assert meta.location == hf_hub_url(REPO_ID, "big.bin", repo_type="dataset", endpoint=hub.endpoint)
    assert metadata(hub, "forced-lfs.txt").etag == hashlib.sha256(b"text, but LFS\n").hexdigest()
    assert metadata(hub, "forced-git.bin").etag == git_oid(b"\0binary, but git\n")
    assert metadata(hub, "big.bin", revision=sha).size == len(big)

    # The raw headers: an LFS file's ETag is its pointer's sha1, X-Linked-Etag/-Size describe the content.
    request = urllib.request.Request(f"{hub.endpoint}/datasets/{REPO_ID}/resolve/main/big.bin", method="HEAD")
    with urllib.request.urlopen(request) as response:
        headers = response.headers
    assert headers["X-Linked-Etag"] == f'"{hashlib.sha256(big).hexdigest()}"' and headers["X-Linked-Size"] == str(
        len(big)
    )
    assert headers["Content-Length"] == str(len(big)) and headers["Accept-Ranges"] == "bytes"
    assert headers["X-Repo-Commit"] == sha and headers["ETag"] != headers["X-Linked-Etag"]


def test_ranges_are_answered_206_and_out_of_range_416(hub):
    data = bytes(range(100))
    hub.add_dataset_file(REPO_ID, "r.bin", data)
    url = f"{hub.endpoint}/datasets/{REPO_ID}/resolve/main/r.bin"
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=40-"})) as response:
        assert response.status == 206 and response.read() == data[40:]
        assert response.headers["Content-Range"] == "bytes 40-99/100" and response.headers["Content-Length"] == "60"
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=10-19"})) as response:
        assert response.read() == data[10:20]
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=100-"}))
    assert error.value.code == 416 and error.value.headers["Content-Range"] == "bytes */100"
    assert [record[2] for record in hub.downloads] == ["bytes=40-", "bytes=10-19", "bytes=100-"]


def test_a_cut_inside_the_first_chunk_is_retried_from_the_start_in_the_same_call(hub, tmp_path, caplog):
    data = os.urandom(300_000)
    hub.add_dataset_file(REPO_ID, "small.bin", data)
    hub.cut_after["small.bin"] = 1000

    path = download(hub, "small.bin", tmp_path)  # no exception: http_get retried after "Trying to resume download"
    assert open(path, "rb").read() == data
    assert "Trying to resume download" in caplog.text
    # Nothing had been written (http_get writes whole 10 MiB chunks), so the retry asks for everything again.
    assert hub.downloads == [("HEAD", "small.bin", None), ("GET", "small.bin", None), ("GET", "small.bin", None)]
    assert "small.bin" not in hub.cut_after and leftovers(tmp_path) == []


def test_a_cut_after_a_whole_chunk_resumes_with_a_range_in_the_same_call(hub, tmp_path):
    data = os.urandom(CHUNK + 200_000)
    hub.add_dataset_file(REPO_ID, "big.bin", data)
    hub.cut_after["big.bin"] = CHUNK + 5000

    path = download(hub, "big.bin", tmp_path)
    assert open(path, "rb").read() == data
    assert hub.downloads == [
        ("HEAD", "big.bin", None),
        ("GET", "big.bin", None),
        ("GET", "big.bin", f"bytes={CHUNK}-"),
    ]
    assert leftovers(tmp_path) == []


def test_a_download_that_gives_up_raises_and_leaves_nothing_to_resume(hub, tmp_path, monkeypatch):
    data = os.urandom(CHUNK + 200_000)
    hub.add_dataset_file(REPO_ID, "big.bin", data)
    hub.cut_after["big.bin"] = CHUNK + 5000
    # The connection drops after one whole chunk was written, and the Hub stays unreachable: http_get's pause before
    # each retry (its only use of `time`) stops the server, so the 6 tries in a row without progress all fail.
    monkeypatch.setattr(file_download, "time", SimpleNamespace(sleep=lambda seconds: hub.stop()))

    with pytest.raises(httpx2.ConnectError):
        download(hub, "big.bin", tmp_path)
    blobs = tmp_path / "datasets--standin-user--corpus" / "blobs"
    assert list(blobs.iterdir()) == [] and leftovers(tmp_path) == []  # the 10 MiB written were deleted with the file
    assert hub.downloads == [("HEAD", "big.bin", None), ("GET", "big.bin", None)]

    hub.start()  # back, on another port
    path = download(hub, "big.bin", tmp_path)  # the next call starts over: no Range
    assert open(path, "rb").read() == data
    assert hub.downloads[2:] == [("HEAD", "big.bin", None), ("GET", "big.bin", None)]


def test_corrupted_bytes_arrive_under_the_true_headers(hub, tmp_path):
    data = os.urandom(50_000)
    hub.add_dataset_file(REPO_ID, "weights.bin", data, lfs=True)
    hub.corrupt.add("weights.bin")

    meta = metadata(hub, "weights.bin")
    assert meta.etag == hashlib.sha256(data).hexdigest() and meta.size == len(data)
    got = open(download(hub, "weights.bin", tmp_path), "rb").read()  # huggingface_hub checks only the size
    assert len(got) == len(data) and got != data
    assert hashlib.sha256(got).hexdigest() != meta.etag  # what a caller's integrity check catches

    hub.corrupt.clear()
    fixed = download(hub, "weights.bin", tmp_path, force_download=True)
    assert hashlib.sha256(open(fixed, "rb").read()).hexdigest() == meta.etag


def test_missing_repo_file_and_revision_raise_huggingface_hub_errors(hub, tmp_path):
    sha = hub.add_dataset_file(REPO_ID, "train.txt", b"x\n")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(
            "standin-user/nope", "train.txt", repo_type="dataset", cache_dir=tmp_path, endpoint=hub.endpoint
        )
    with pytest.raises(RemoteEntryNotFoundError) as error:
        download(hub, "valid.txt", tmp_path)
    assert isinstance(error.value, EntryNotFoundError)
    # The 404 names the commit, so huggingface_hub records that the file is missing there.
    assert (tmp_path / "datasets--standin-user--corpus" / ".no_exist" / sha / "valid.txt").is_file()
    with pytest.raises(RevisionNotFoundError):
        download(hub, "train.txt", tmp_path, revision="v2")
    with pytest.raises(RevisionNotFoundError):
        metadata(hub, "train.txt", revision="0" * 40)
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.endpoint).dataset_info("standin-user/nope")
    assert ("HEAD", "valid.txt", None) in hub.downloads


def test_patched_constants_need_no_endpoint_argument(hub, tmp_path, monkeypatch):
    for name, value in hub_constants(hub).items():
        monkeypatch.setattr(constants, name, value)
    hub.add_dataset_file(REPO_ID, "README.md", b"---\nlicense: mit\n---\n")
    hub.add_dataset_file(REPO_ID, "data/train.txt", b"one\ntwo\n")
    sha = hub.add_dataset_file(REPO_ID, "data/emb.bin", b"\0" * 64)

    info = HfApi().dataset_info(REPO_ID)
    assert info.sha == sha and [s.rfilename for s in info.siblings] == ["README.md", "data/emb.bin", "data/train.txt"]
    detailed = HfApi().dataset_info(REPO_ID, revision=sha, files_metadata=True)
    lfs = {s.rfilename: s.lfs for s in detailed.siblings}
    assert lfs["data/emb.bin"].sha256 == hashlib.sha256(b"\0" * 64).hexdigest() and lfs["data/train.txt"] is None
    tree = {entry.path for entry in HfApi().list_repo_tree(REPO_ID, repo_type="dataset")}
    assert tree == {"README.md", "data"}

    folder = hub_snapshot_download(REPO_ID, repo_type="dataset", cache_dir=tmp_path)  # repo_info, tree, HEAD+GET each
    assert folder.endswith(sha) and open(os.path.join(folder, "data", "train.txt"), "rb").read() == b"one\ntwo\n"
    assert open(os.path.join(folder, "data", "emb.bin"), "rb").read() == b"\0" * 64
    assert sorted(path for method, path, _ in hub.downloads if method == "GET") == [
        "README.md",
        "data/emb.bin",
        "data/train.txt",
    ]
    assert open(hf_hub_download(REPO_ID, "README.md", repo_type="dataset", cache_dir=tmp_path), "rb").read()
