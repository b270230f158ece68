"""A local stand-in for the Hugging Face Hub's HTTP API, so push-to-Hub tests run offline and can inspect what arrived.

It serves, on loopback, the requests huggingface_hub makes on its non-Xet path (HF_HUB_DISABLE_XET=1) for
`whoami`, `create_repo`, `repo_info`/`model_info` and `upload_folder`/`create_commit` (README YAML check, preupload,
Git LFS batch + basic PUT + verify, NDJSON commit), and checks what the real Hub checks where it is cheap: a token on
writes, known repos, LFS bytes hashing to their oid, commits naming only uploaded LFS objects. Uploads: model repos.

Downloads: dataset repos, published by the test with `add_dataset_file` and read without a token the way
`hf_hub_download`, `get_hf_file_metadata`, `dataset_info` and `snapshot_download` read them: HEAD/GET of
/datasets/{repo}/resolve/{rev}/{path} with the Hub's file headers (X-Repo-Commit, ETag, X-Linked-Etag/-Size for LFS),
`Range: bytes=N-` resumes, /api/datasets/{repo}[/revision/{rev}] and /api/datasets/{repo}/tree/{rev}. LFS files are
answered directly (200), not by a redirect to a CDN. `cut_after` and `corrupt` inject transfer faults; `downloads`
records every resolve request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

USER = "standin-user"
LFS_MIN_SIZE = 10 * 1000 * 1000  # the Hub stores files of 10 MB or more (and binary files) with Git LFS
REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"
DATASETS = "datasets/"  # the Hub's URL prefix of dataset repos, and their key prefix in HubStandIn._oids/_heads
ROUTES = [  # (method, path regex, HubStandIn method), tried in order
    ("GET", r"/api/whoami-v2", "_whoami"),
    ("POST", r"/api/repos/create", "_create_repo"),
    ("POST", r"/api/validate-yaml", "_validate_yaml"),
    ("GET", rf"/api/models/{REPO}(?:/revision/(?P<rev>[^/]+))?", "_repo_info"),
    ("POST", rf"/api/models/{REPO}/preupload/(?P<rev>[^/]+)", "_preupload"),
    ("POST", rf"/api/models/{REPO}/commit/(?P<rev>[^/]+)", "_commit"),
    ("POST", rf"/{REPO}\.git/info/lfs/objects/batch", "_lfs_batch"),
    ("POST", rf"/{REPO}\.git/info/lfs/objects/verify", "_lfs_verify"),
    ("PUT", rf"/lfs-upload/{REPO}/(?P<oid>[0-9a-f]{{64}})", "_lfs_put"),
    ("GET", rf"/api/datasets/{REPO}(?:/revision/(?P<rev>[^/]+))?", "_dataset_info"),
    ("GET", rf"/api/datasets/{REPO}/tree/(?P<rev>[^/]+)(?:/(?P<folder>.+))?", "_dataset_tree"),
    ("HEAD", rf"/datasets/{REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "_resolve"),
    ("GET", rf"/datasets/{REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "_resolve"),
]
# reads, and the presigned LFS upload; every other route is a write, or whoami: 401 without a token
NO_TOKEN = {"_validate_yaml", "_repo_info", "_lfs_put", "_dataset_info", "_dataset_tree", "_resolve"}


class StandInError(Exception):
    """An error in the Hub's format: JSON {"error": ...} plus the X-Error-* headers that hf_raise_for_status reads."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None, **extra):
        super().__init__(message)
        self.status, self.code, self.extra, self.headers = status, code, extra, headers or {}


@dataclass
class FileReply:
    """A /resolve answer: file bytes with the Hub's headers; `cut_after` bytes of the body are sent, then a hang-up."""

    status: int
    headers: dict[str, str]
    body: bytes
    cut_after: int | None = None


def git_oid(data: bytes) -> str:
    """The git blob sha1 of `data`: the Hub's ETag of a regular file, and the oid its tree lists."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    """What git stores for an LFS file; its blob sha1 is the file's oid in the tree, the sha256 is its LFS oid."""
    return b"version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" % (
        hashlib.sha256(data).hexdigest().encode(),
        len(data),
    )


class HubStandIn:
    """The Hub on 127.0.0.1:<free port>, served from a daemon thread. `repos[repo_id]` holds what was pushed:
    {"private": bool, "files": {path_in_repo: bytes}, "commits": [commit message, ...], "trees": [the paths in
    the repo after each commit, ...]}; `datasets[repo_id]` the same for dataset repos published by `add_dataset_file`.
    Fault injection on downloads: `cut_after[path_in_repo] = n` hangs up after n body bytes of that file's next GET
    (once); GETs of a path in `corrupt` carry altered bytes under the true headers. `downloads` lists every resolve
    request as (method, path_in_repo, Range header or None)."""

    def __init__(self, user: str = USER, refuse_commit: str | None = None):
        self.user, self.endpoint = user, ""
        self.refuse_commit = refuse_commit  # a commit message answered 403, to test a push failing late
        self.repos: dict[str, dict] = {}
        self.datasets: dict[str, dict] = {}
        self.cut_after: dict[str, int] = {}
        self.corrupt: set[str] = set()
        self.downloads: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()  # uploads run as futures, and the server answers each request in a thread
        self._lfs: dict[tuple[str, str], bytes] = {}  # (repo, sha256) -> bytes PUT by clients, committed or not
        self._oids: dict[str, dict[str, str]] = {}  # repo -> path -> oid (git sha1, or sha256 for LFS files)
        self._heads: dict[str, str] = {}  # repo -> last commit oid
        # dataset repos are keyed DATASETS + repo_id in _oids and _heads, since a model and a dataset may share an id
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> HubStandIn:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads, self._server.hub = True, self
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    __enter__ = start

    def __exit__(self, *exc) -> None:
        self.stop()

    def _repo(self, repo_id: str, authorized: bool, rev: str | None = None) -> dict:
        """The Hub answers 404 RepoNotFound both for a missing repo and for a private one seen without a token."""
        if unquote(rev or "main") != "main":  # the stand-in keeps one branch
            raise StandInError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        repo = self.repos.get(repo_id)
        if repo is None or (repo["private"] and not authorized):
            raise StandInError(404, f"Repository not found: {repo_id}", "RepoNotFound")
        return repo

    def add_dataset_file(self, repo_id: str, path_in_repo: str, data: bytes, lfs: bool | None = None) -> str:
        """Publishes a file in a public dataset repo (made on first use) as one commit, whose sha it returns. The file
        is stored with Git LFS as the Hub would (10 MB or more, or a NUL byte in its first 512), unless `lfs` says."""
        if not re.fullmatch(REPO, repo_id):
            raise ValueError(f"Invalid repo name: {repo_id}")
        if lfs is None:
            lfs = len(data) >= LFS_MIN_SIZE or b"\0" in data[:512]
        key, data = DATASETS + repo_id, bytes(data)
        with self.lock:
            repo = self.datasets.setdefault(repo_id, {"private": False, "files": {}, "commits": [], "trees": []})
            oids = self._oids.setdefault(key, {})
            repo["files"][path_in_repo] = data
            oids[path_in_repo] = hashlib.sha256(data).hexdigest() if lfs else git_oid(data)
            message = f"Upload {path_in_repo}"
            head = hashlib.sha1(json.dumps([self._heads.get(key), message, sorted(oids.items())]).encode()).hexdigest()
            self._heads[key] = head
            repo["commits"].append(message)
            repo["trees"].append(sorted(repo["files"]))
        return head

    def _dataset(self, repo_id: str, rev: str | None) -> dict:
        """Dataset repos are public and hold one branch, `main`, also readable at its head commit sha."""
        repo = self.datasets.get(repo_id)
        if repo is None:
            raise StandInError(404, f"Repository not found: {repo_id}", "RepoNotFound")
        if unquote(rev or "main") not in ("main", self._heads[DATASETS + repo_id]):
            raise StandInError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return repo

    def _whoami(self, req):
        return {"type": "user", "name": self.user, "orgs": [], "auth": {"accessToken": {"role": "write"}}}

    def _create_repo(self, req):
        if req.json.get("type") not in (None, "model"):
            raise StandInError(400, "the stand-in only serves model repos")
        repo_id = f"{req.json.get('organization') or self.user}/{req.json['name']}"
        if not re.fullmatch(REPO, repo_id):
            raise StandInError(400, f"Invalid repo name: {repo_id}")
        url = f"{self.endpoint}/{repo_id}"
        if repo_id in self.repos:  # with exist_ok=True the client reads "url" from this 409 too
            raise StandInError(409, "You already created this model repo", url=url)
        self.repos[repo_id] = {
            "private": req.json.get("visibility") == "private",
            "files": {},
            "commits": [],
            "trees": [],
        }
        self._oids[repo_id], self._heads[repo_id] = {}, hashlib.sha1(repo_id.encode()).hexdigest()
        return {"url": url, "name": repo_id}

    def _validate_yaml(self, req):
        return {"errors": [], "warnings": []}

    def _repo_info(self, req, repo, rev=None):
        info = self._repo(repo, req.authorized, rev)
        siblings = [{"rfilename": path} for path in sorted(info["files"])]
        return {"id": repo, "sha": self._heads[repo], "private": info["private"], "siblings": siblings}

    def _preupload(self, req, repo, rev):
        self._repo(repo, True, rev)
        files = []
        for f in req.json["files"]:
            mode = "lfs" if f["size"] >= LFS_MIN_SIZE or b"\0" in base64.b64decode(f["sample"]) else "regular"
            oid = self._oids[repo].get(f["path"])  # equal to the local one => the client leaves the file out
            files.append({"path": f["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        return {"files": files}

    def _lfs_batch(self, req, repo):
        self._repo(repo, True, req.json.get("ref", {}).get("name"))
        objects = [{**obj, "authenticated": True} for obj in req.json["objects"]]
        for obj in objects:  # basic transfer: one PUT each; objects already stored get no actions, as on the Hub
            if (repo, obj["oid"]) not in self._lfs:
                obj["actions"] = {  # the upload URL is presigned, like S3's: the client sends it no token
                    "upload": {"href": f"{self.endpoint}/lfs-upload/{repo}/{obj['oid']}"},
                    "verify": {"href": f"{self.endpoint}/{repo}.git/info/lfs/objects/verify", "header": {}},
                }
        return {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}

    def _lfs_put(self, req, repo, oid):
        if hashlib.sha256(req.body).hexdigest() != oid:
            raise StandInError(400, f"the uploaded bytes do not hash to the LFS oid {oid}")
        self._lfs[repo, oid] = req.body
        return {}

    def _lfs_verify(self, req, repo):
        self._repo(repo, True)
        data = self._lfs.get((repo, req.json["oid"]))
        if data is None or len(data) != req.json["size"]:
            raise StandInError(404, f"LFS object {req.json['oid']} was not uploaded with size {req.json['size']}")
        return {}

    def _dataset_info(self, req, repo, rev=None):
        """With ?blobs=true (files_metadata=True) the siblings carry size, blob id and LFS info, as on the Hub."""
        info, oids = self._dataset(repo, rev), self._oids[DATASETS + repo]
        blobs = req.query.get("blobs", ["false"])[-1].lower() in ("1", "true")
        siblings = []
        for path, data in sorted(info["files"].items()):
            sibling = {"rfilename": path}
            if blobs:  # the same facts as the tree, under the names this endpoint uses
                entry = self._tree_entry(path, data, oids[path])
                sibling.update(size=entry["size"], blobId=entry["oid"])
                if "lfs" in entry:
                    sibling["lfs"] = {
                        "sha256": oids[path],
                        "size": len(data),
                        "pointerSize": entry["lfs"]["pointerSize"],
                    }
            siblings.append(sibling)
        return {"id": repo, "sha": self._heads[DATASETS + repo], "private": False, "siblings": siblings}

    def _dataset_tree(self, req, repo, rev, folder=None):
        """list_repo_tree, which snapshot_download calls with recursive=True at the commit sha; one page, no Link."""
        info, oids = self._dataset(repo, rev), self._oids[DATASETS + repo]
        prefix = unquote(folder).strip("/") + "/" if folder else ""
        recursive = req.query.get("recursive", ["false"])[-1].lower() in ("1", "true")
        entries, folders = [], set()
        for path, data in sorted(info["files"].items()):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split("/")
            for depth in range(1, len(parts) if recursive else min(len(parts), 2)):
                folders.add(prefix + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                entries.append(self._tree_entry(path, data, oids[path]))
        if prefix and not entries and not folders:
            raise StandInError(404, f"Entry not found: {prefix.rstrip('/')}", "EntryNotFound")
        for name in folders:
            oid = hashlib.sha1(json.dumps(sorted(p for p in oids if p.startswith(name + "/"))).encode()).hexdigest()
            entries.append({"type": "directory", "oid": oid, "size": 0, "path": name})
        return sorted(entries, key=lambda entry: entry["path"])

    @staticmethod
    def _tree_entry(path: str, data: bytes, oid: str) -> dict:
        """The tree API's entry: an LFS file lists its pointer's blob sha1 as oid, and its sha256 under "lfs"."""
        if len(oid) != 64:  # a regular file: its oid is its git blob sha1
            return {"type": "file", "oid": oid, "size": len(data), "path": path}
        pointer = lfs_pointer(data)
        lfs = {"oid": oid, "size": len(data), "pointerSize": len(pointer)}
        return {"type": "file", "oid": git_oid(pointer), "size": len(data), "path": path, "lfs": lfs}

    def _resolve(self, req, repo, rev, path):
        """A file download (GET) or its metadata (HEAD), with a `Range: bytes=START-[END]` answered 206. The headers
        are those huggingface_hub reads: X-Repo-Commit, ETag (git blob sha1; for LFS files that of the pointer) and,
        for LFS files, X-Linked-Etag (the sha256 of the content) and X-Linked-Size."""
        path, byte_range = unquote(path), req.headers.get("Range")
        self.downloads.append((req.command, path, byte_range))
        info = self._dataset(repo, rev)
        key = DATASETS + repo
        if path not in info["files"]:  # the Hub names the commit, so the client can cache that the file is missing
            headers = {"X-Repo-Commit": self._heads[key]}
            raise StandInError(404, f"Entry not found: {path}", "EntryNotFound", headers=headers)
        data, oid = info["files"][path], self._oids[key][path]
        size, lfs = len(data), len(oid) == 64
        headers = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "X-Repo-Commit": self._heads[key],
            "ETag": f'"{git_oid(lfs_pointer(data)) if lfs else oid}"',
            **({"X-Linked-Etag": f'"{oid}"', "X-Linked-Size": str(size)} if lfs else {}),
        }
        body, status = data, 200
        if path in self.corrupt and data:  # headers keep describing the true bytes
            body = bytearray(data)
            body[size // 2] ^= 0xFF
            body = bytes(body)
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", byte_range or "")
        if match and match.group(1) + match.group(2):  # other forms (several ranges): the whole file, as HTTP allows
            start, end = match.groups()
            start, end = (int(start), int(end or size - 1)) if start else (max(size - int(end), 0), size - 1)
            if start >= size or start > end:
                raise StandInError(
                    416, f"Range not satisfiable: {byte_range}", headers={"Content-Range": f"bytes */{size}"}
                )
            end = min(end, size - 1)
            body, status = body[start : end + 1], 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        cut = self.cut_after.pop(path, None) if req.command == "GET" else None
        return FileReply(status, headers, body, cut)

    def _commit(self, req, repo, rev):
        info = self._repo(repo, True, rev)
        lines = [json.loads(line) for line in req.body.splitlines() if line.strip()]
        if not lines or lines[0]["key"] != "header" or not lines[0]["value"].get("summary"):
            raise StandInError(400, "a commit starts with a header line carrying a summary")
        if lines[0]["value"]["summary"] == self.refuse_commit:
            raise StandInError(403, "You don't have the rights to create a commit in this repo")
        header = lines[0]["value"]
        if header.get("parentCommit") not in (None, self._heads[repo]):
            raise StandInError(412, "A commit has happened since the parent commit. Please refresh and try again.")
        files, oids = dict(info["files"]), dict(self._oids[repo])
        for line in lines[1:]:
            key, path = line["key"], line["value"]["path"]
            if key == "file":
                files[path] = base64.b64decode(line["value"]["content"])
                oids[path] = git_oid(files[path])
            elif key == "lfsFile":
                oid, data = line["value"]["oid"], self._lfs.get((repo, line["value"]["oid"]))
                if data is None or line["value"].get("size", len(data)) != len(data):
                    raise StandInError(400, f"{path}: LFS object {oid} was not uploaded (or has another size)")
                files[path], oids[path] = data, oid
            elif key == "deletedFile" and path in files:
                del files[path], oids[path]
            elif key == "deletedFile":
                raise StandInError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            elif key == "deletedFolder":
                for name in [name for name in files if name.startswith(path.rstrip("/") + "/")]:
                    del files[name], oids[name]
            else:
                raise StandInError(400, f"unknown commit operation {key!r}")
        head = hashlib.sha1(json.dumps([self._heads[repo], header, sorted(oids.items())]).encode()).hexdigest()
        info["files"], self._oids[repo], self._heads[repo] = files, oids, head
        info["commits"].append(header["summary"])
        info["trees"].append(sorted(files))
        return {"success": True, "commitOid": head, "commitUrl": f"{self.endpoint}/{repo}/commit/{head}"}


class _Handler(BaseHTTPRequestHandler):
    """Routes one request to HubStandIn under its lock; writes need a token (401 otherwise), as on the Hub. Bodies are
    written after the lock is released, so a slow download holds nobody up."""

    def _dispatch(self) -> None:
        hub: HubStandIn = self.server.hub
        status, payload, headers, cut = 200, None, {}, None
        try:
            self.body = self._read_body()
            is_json = self.body and re.search(r"[/+]json$", self.headers.get_content_type())  # not x-ndjson
            self.json = json.loads(self.body) if is_json else {}
            self.authorized = self.headers.get("Authorization", "").startswith("Bearer ")
            url = urlsplit(self.path)
            path, self.query = url.path, parse_qs(url.query)
            routes = ((re.fullmatch(regex, path), name) for method, regex, name in ROUTES if method == self.command)
            match, name = next((route for route in routes if route[0]), (None, None))
            if match is None:
                raise StandInError(404, f"Sorry, we can't find the page you are looking for: {self.command} {path}")
            if name not in NO_TOKEN and not self.authorized:
                raise StandInError(401, "Invalid credentials in Authorization header")
            with hub.lock:
                payload = getattr(hub, name)(self, **match.groupdict())
        except StandInError as error:
            status, payload = error.status, {"error": str(error), **error.extra}
            headers = {"X-Error-Message": str(error), **({"X-Error-Code": error.code} if error.code else {})}
            headers.update(error.headers)
        except Exception as error:  # a malformed request: 400, since huggingface_hub retries a 5xx for seconds
            status, payload = 400, {"error": f"the stand-in could not process {self.command} {self.path}: {error!r}"}
        if isinstance(payload, FileReply):
            status, headers, data, cut = payload.status, payload.headers, payload.body, payload.cut_after
        else:
            data, headers = json.dumps(payload).encode(), {"Content-Type": "application/json", **headers}
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "HEAD":  # the headers of a GET, no body
            return
        if cut is not None:  # an interrupted transfer: fewer bytes than Content-Length, then the connection closes
            data, self.close_connection = data[:cut], True
        self.wfile.write(data)

    do_GET = do_HEAD = do_POST = do_PUT = _dispatch

    def _read_body(self) -> bytes:
        """LFS PUTs stream a file object, which httpx may send chunked rather than with a Content-Length."""
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            parts.append(self.rfile.read(size))
            self.rfile.readline()
        self.rfile.readline()
        return b"".join(parts)

    def log_message(self, *args) -> None:  # keep test output quiet
        pass


def hub_env(standin: HubStandIn) -> dict[str, str]:
    """Environment for a subprocess that should push to the stand-in: no Xet (not served), online, any token."""
    return {"HF_ENDPOINT": standin.endpoint, "HF_TOKEN": "hf_any", "HF_HUB_DISABLE_XET": "1", "HF_HUB_OFFLINE": "0"}


def hub_constants(standin: HubStandIn) -> dict[str, object]:
    """hub_env for this process: huggingface_hub.constants read those variables at import, so a test patches these
    attributes instead (monkeypatch.setattr). Hosts whose redirects it follows stay frozen: the stand-in sends none."""
    return {
        "ENDPOINT": standin.endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": standin.endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_OFFLINE": False,
    }
