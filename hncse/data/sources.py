"""Where the data of SimCSE-style training and evaluation comes from, on any machine.

Everything is in one Hub dataset repository, `princeton-nlp/datasets-for-simcse`: `wiki1m_for_simcse.txt` (10⁶
Wikipedia sentences, unsupervised training), `nli_for_simcse.csv` (SimCSE's NLI triplets) and `senteval.tar`
(SentEval's `data/downstream`). `hncse-data download` fetches them through huggingface_hub into its cache
(resumable, checked against the Hub's checksum; `HF_ENDPOINT`, `HF_HOME`, `HF_HUB_OFFLINE` apply) and extracts
`senteval.tar` once. A machine without network uses a local copy instead, named by `$HNCSE_DATA_DIR`: what
`hf download --repo-type dataset princeton-nlp/datasets-for-simcse --local-dir DIR` leaves, or SentEval's
`data/downstream` layout (alone or in a `senteval/` folder).

A name (`--train_file wiki1m`, `--senteval_dir senteval`) resolves to the local copy, else the Hub cache, else a
download (unless offline), else one line naming the download command and the variable.
"""

from __future__ import annotations

import hashlib
import logging
import lzma
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass

from hncse.errors import DataError, first_line, hub_offline

logger = logging.getLogger(__name__)

HUB_DATASET = "princeton-nlp/datasets-for-simcse"
DATA_DIR_ENV = "HNCSE_DATA_DIR"
DOWNLOAD_COMMAND = "hncse-data download"
# Folders of SentEval's data/downstream; a folder holding two of them is taken for that layout.
SENTEVAL_FOLDERS = {"STS", "SICK", "MR", "CR", "SUBJ", "MPQA", "SST", "TREC", "MRPC"}
SEARCH_DEPTH = 3  # how deep a local copy or an extracted tar is searched for that layout


@dataclass(frozen=True)
class Source:
    """One file of the Hub dataset, and where a local copy may hold it."""

    name: str
    filename: str  # path in the Hub repository
    description: str
    local_names: tuple[str, ...] = ()  # paths in a local copy, preferred first
    samples: tuple[str, ...] = ()  # smaller extracts a local copy may hold instead (used with a warning)


SOURCES = {
    "wiki1m": Source(
        "wiki1m",
        "wiki1m_for_simcse.txt",
        "10⁶ Wikipedia sentences, one per line (unsupervised SimCSE / HNCSE)",
        local_names=("wiki1m_for_simcse.txt", "unsup/wiki1m_for_simcse.txt"),
        samples=("unsup/wiki1m_random10k.txt",),
    ),
    "nli": Source(
        "nli",
        "nli_for_simcse.csv",
        "SimCSE's NLI triplets: sent0, sent1, hard_neg (supervised SimCSE)",
        local_names=("nli_for_simcse.csv", "sup/nli_for_simcse.csv"),
    ),
    "senteval": Source(
        "senteval", "senteval.tar", "SentEval's data/downstream: STS12–16, STS-B, SICK, transfer tasks"
    ),
}
CORPORA = ("wiki1m", "nli")  # the sources a --train_file may name


def local_copy() -> str | None:
    """The folder `$HNCSE_DATA_DIR` names, or None; a name that is not a folder is an error, not a silent miss."""
    folder = os.environ.get(DATA_DIR_ENV) or None
    if folder is not None and not os.path.isdir(folder):
        raise DataError(f"${DATA_DIR_ENV}={folder}: no such folder")
    return folder


def extract_root() -> str:
    """Where extracted archives live: beside the Hub cache, under $HF_HOME/hncse."""
    from huggingface_hub import constants

    return os.path.join(os.environ.get("HF_HOME") or constants.HF_HOME, "hncse")


# ---- SentEval's folder -----------------------------------------------------------------------------------


def find_senteval_layout(root: str, depth: int = SEARCH_DEPTH) -> str | None:
    """The shallowest folder under `root` (itself included) holding SentEval's data/downstream task folders."""
    level = [root]
    for _ in range(depth + 1):
        following = []
        for folder in sorted(level):
            try:
                entries = [e for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")]
            except OSError:
                continue
            if len(SENTEVAL_FOLDERS & {e.name for e in entries}) >= 2:
                return folder
            following += [e.path for e in entries]
        level = following
    return None


def extract_senteval(tar_path: str) -> str:
    """Extract senteval.tar once (keyed by its content's hash) and return its data/downstream folder.

    The archive is unpacked into a temporary folder that is renamed into place only when complete, so an
    interrupted or failed extraction leaves nothing half-written where a later run would look.
    """
    from filelock import FileLock

    # The Hub's checksum names a cached archive; a local copy's is named by its path, size and time (no hashing
    # of the whole archive on every run).
    stat = os.stat(tar_path)
    local_key = f"{os.path.realpath(tar_path)}:{stat.st_size}:{stat.st_mtime_ns}"
    key = file_etag(tar_path) or hashlib.sha256(local_key.encode()).hexdigest()
    root = extract_root()
    os.makedirs(root, exist_ok=True)
    target = os.path.join(root, f"senteval-{key[:16]}")
    with FileLock(target + ".lock"):
        if not os.path.isdir(target):
            partial = tempfile.mkdtemp(dir=root, prefix=".senteval-partial-")
            try:
                with tarfile.open(tar_path) as archive:
                    archive.extractall(partial, filter="data")
                if find_senteval_layout(partial) is None:
                    raise DataError(
                        f"{tar_path}: no SentEval data/downstream layout inside (folders such as STS/, SICK/, MR/)"
                    )
                os.rename(partial, target)
            # A compressed archive cut short fails in its decompressor (EOFError, zlib's or lzma's error), not tarfile.
            except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as error:
                raise DataError(
                    f"{tar_path}: not a readable tar archive ({first_line(error)}); download or copy it again"
                ) from None
            finally:
                shutil.rmtree(partial, ignore_errors=True)
            logger.info("Extracted %s into %s", tar_path, target)
    return find_senteval_layout(target)


def senteval_in_local_copy(folder: str) -> str | None:
    layout = find_senteval_layout(folder)
    if layout is not None:
        return layout
    tar_path = os.path.join(folder, SOURCES["senteval"].filename)
    return extract_senteval(tar_path) if os.path.isfile(tar_path) else None


def resolve_senteval_dir(senteval_dir: str | None, flag: str = "--senteval_dir") -> str | None:
    """SentEval's data/downstream folder for evaluation.

    A folder path is used as it is. The name `senteval` resolves like every source (local copy, cache, download).
    Nothing given: the local copy's, else one downloaded earlier; None if neither (the STS sets then come from the
    Hub's mteb/* copies).
    """
    if senteval_dir is not None and (os.path.exists(senteval_dir) or senteval_dir not in SOURCES):
        return senteval_dir
    if senteval_dir is None:
        found = on_this_machine(SOURCES["senteval"])
        return found[0] if found is not None else None
    return locate(SOURCES[senteval_dir], flag)


# ---- corpora -----------------------------------------------------------------------------------------------


def resolve_train_file(train_file: str, flag: str = "--train_file", stream: bool = False) -> str:
    """A corpus name (`wiki1m`, `nli`), or the address of its file in the Hub dataset (as SimCSE's scripts give it)
    → its file (local copy, cache or download; with stream, the Hub address instead of a download); anything else
    unchanged."""
    name = corpus_at(train_file) or train_file
    if name not in CORPORA or os.path.exists(train_file):
        return train_file
    return locate(SOURCES[name], flag, stream=stream)


def corpus_at(address: str) -> str | None:
    """The corpus name whose file in the Hub dataset `address` is (an https or hf:// address), else None."""
    for name in CORPORA:
        filename = SOURCES[name].filename
        if address in (f"https://huggingface.co/datasets/{HUB_DATASET}/resolve/main/{filename}",
                       f"hf://datasets/{HUB_DATASET}/{filename}"):  # fmt: skip
            return name
    return None


def in_local_copy(source: Source, folder: str) -> str | None:
    for name in source.local_names:
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    for name in source.samples:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            logger.warning(
                "%s: the local copy holds only %s, an extract of %s; using it in its place",
                source.name,
                path,
                source.filename,
            )
            return path
    return None


# ---- the Hub -----------------------------------------------------------------------------------------------


def on_this_machine(source: Source) -> tuple[str, str] | None:
    """(where to read it, which copy that is) from the local copy, else the Hub cache; None if neither. No network;
    senteval as its extracted folder."""
    folder = local_copy()
    if folder is not None:
        found = senteval_in_local_copy(folder) if source.name == "senteval" else in_local_copy(source, folder)
        if found is not None:
            return found, f"local copy, ${DATA_DIR_ENV}"
    cached = cached_file(source)
    return (usable(source, cached), "Hugging Face cache") if cached is not None else None


def locate(source: Source, flag: str, stream: bool = False) -> str:
    """The source from this machine (`on_this_machine`), else downloaded (stream: its `hf://` address, read as
    training goes); one line when offline with nothing."""
    found = on_this_machine(source)
    if found is not None:
        return found[0]
    if hub_offline():
        folder = local_copy()
        where = f"${DATA_DIR_ENV}={folder} holds no copy of it" if folder else f"${DATA_DIR_ENV} is not set"
        raise DataError(
            f"{flag} {source.name}: not available offline ({where}, and it is not in the Hugging Face cache); "
            f"run `{DOWNLOAD_COMMAND} {source.name}` on a machine with network, or set ${DATA_DIR_ENV} to a "
            "folder holding a copy"
        )
    if stream:
        return f"hf://datasets/{HUB_DATASET}/{source.filename}"
    return usable(source, download(source))


def usable(source: Source, path: str) -> str:
    """What a caller reads: the file, or for senteval.tar its extracted data/downstream folder."""
    return extract_senteval(path) if source.name == "senteval" else path


def cached_file(source: Source) -> str | None:
    """The file in the Hub cache, if an earlier download put it there; no network."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(HUB_DATASET, source.filename, repo_type="dataset")
    return path if isinstance(path, str) and os.path.isfile(path) else None


def download(source: Source) -> str:
    """Download into the Hub cache and check the bytes against the Hub's checksum (huggingface_hub checks only
    the size); a file that does not match is deleted again. huggingface_hub resumes a transfer cut off within the
    call (`Range: bytes=N-`); when it gives up it keeps nothing, so the next call starts over."""
    from huggingface_hub import hf_hub_download

    logger.info("Downloading %s from the Hub dataset %s", source.filename, HUB_DATASET)
    try:
        path = hf_hub_download(
            HUB_DATASET, source.filename, repo_type="dataset", endpoint=os.environ.get("HF_ENDPOINT") or None
        )
    except Exception as error:  # network, HTTP, disk: huggingface_hub raises many types
        raise DataError(
            f"{source.name}: downloading {source.filename} from {HUB_DATASET} failed ({first_line(error)}); nothing "
            f"partial was kept. Run `{DOWNLOAD_COMMAND} {source.name}` again, or set ${DATA_DIR_ENV} to a folder "
            "holding a copy"
        ) from None
    check_integrity(path, source)
    return path


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_blob_sha1_of(path: str) -> str:
    digest = hashlib.sha1(f"blob {os.path.getsize(path)}\0".encode())
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_etag(path: str) -> str | None:
    """The Hub's checksum of a cached file: the cache names each blob by it (sha256 for LFS files, git's blob
    sha1 otherwise). None for a file outside the cache."""
    name = os.path.basename(os.path.realpath(path))
    return name if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", name) else None


def check_integrity(path: str, source: Source) -> None:
    etag = file_etag(path)
    if etag is None:
        return
    actual = sha256_of(path) if len(etag) == 64 else git_blob_sha1_of(path)
    if actual != etag:
        blob = os.path.realpath(path)
        for leftover in {path, blob}:
            if os.path.lexists(leftover):
                os.remove(leftover)
        raise DataError(
            f"{source.name}: the downloaded {source.filename} does not match the Hub's checksum ({actual[:12]}… ≠ "
            f"{etag[:12]}…); it was deleted. Run `{DOWNLOAD_COMMAND} {source.name}` again"
        )


# ---- hncse-data ------------------------------------------------------------------------------------------


def describe(name: str) -> str:
    """Where `name` comes from on this machine, without downloading anything."""
    found = on_this_machine(SOURCES[name])
    if found is not None:
        return f"{name}: {found[0]} ({found[1]})"
    return f"{name}: not on this machine; `{DOWNLOAD_COMMAND} {name}` fetches it"


def fetch(name: str) -> str:
    """`hncse-data download NAME`: into the Hub cache whatever the local copy holds; the file, or senteval's
    extracted folder."""
    source = SOURCES[name]
    path = cached_file(source)
    if path is None:
        if hub_offline():
            raise DataError(f"{name}: cannot download while HF_HUB_OFFLINE is set")
        path = download(source)
    return usable(source, path)
