"""A local stand-in for the Hugging Face Hub's HTTP API, so push-to-Hub tests run offline and can inspect what arrived.

It serves, on loopback, the requests huggingface_hub makes on its non-Xet path (HF_HUB_DISABLE_XET=1) for
`whoami`, `create_repo`, `repo_info`/`model_info` and `upload_folder`/`create_commit` (README YAML check, preupload,
Git LFS batch + basic PUT + verify, NDJSON commit), and checks what the real Hub checks where it is cheap: a token on
writes, known repos, LFS bytes hashing to their oid, commits naming only uploaded LFS objects. Model repos only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

USER = "standin-user"
LFS_MIN_SIZE = 10 * 1000 * 1000  # the Hub stores files of 10 MB or more (and binary files) with Git LFS
REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"
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
]
NO_TOKEN = {"_validate_yaml", "_repo_info", "_lfs_put"}  # every other route is a write, or whoami: 401 without a token


class StandInError(Exception):
    """An error in the Hub's format: JSON {"error": ...} plus the X-Error-* headers that hf_raise_for_status reads."""

    def __init__(self, status: int, message: str, code: str | None = None, **extra):
        super().__init__(message)
        self.status, self.code, self.extra = status, code, extra


class HubStandIn:
    """The Hub on 127.0.0.1:<free port>, served from a daemon thread. `repos[repo_id]` holds what was pushed:
    {"private": bool, "files": {path_in_repo: bytes}, "commits": [commit message, ...], "trees": [the paths in
    the repo after each commit, ...]}."""

    def __init__(self, user: str = USER, refuse_commit: str | None = None):
        self.user, self.endpoint = user, ""
        self.refuse_commit = refuse_commit  # a commit message answered 403, to test a push failing late
        self.repos: dict[str, dict] = {}
        self.lock = threading.Lock()  # uploads run as futures, and the server answers each request in a thread
        self._lfs: dict[tuple[str, str], bytes] = {}  # (repo, sha256) -> bytes PUT by clients, committed or not
        self._oids: dict[str, dict[str, str]] = {}  # repo -> path -> oid (git sha1, or sha256 for LFS files)
        self._heads: dict[str, str] = {}  # repo -> last commit oid
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
                oids[path] = hashlib.sha1(b"blob %d\0" % len(files[path]) + files[path]).hexdigest()  # git's oid
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
    """Routes one request to HubStandIn under its lock; writes need a token (401 otherwise), as on the Hub."""

    def _dispatch(self) -> None:
        hub: HubStandIn = self.server.hub
        status, payload, headers = 200, None, {}
        try:
            self.body = self._read_body()
            is_json = self.body and re.search(r"[/+]json$", self.headers.get_content_type())  # not x-ndjson
            self.json = json.loads(self.body) if is_json else {}
            self.authorized = self.headers.get("Authorization", "").startswith("Bearer ")
            path = urlsplit(self.path).path
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
        except Exception as error:  # a malformed request: 400, since huggingface_hub retries a 5xx for seconds
            status, payload = 400, {"error": f"the stand-in could not process {self.command} {self.path}: {error!r}"}
        data = json.dumps(payload).encode()
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", "Content-Length": str(len(data)), **headers}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _dispatch

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
