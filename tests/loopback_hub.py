"""A loopback Hugging Face Hub: just enough of the Hub's HTTP protocol to test uploads and downloads offline.

Why it exists: the machines this project is built and tested on have no network, yet the publishing code
(``create_repo`` -> ``upload_folder`` -> ``from_pretrained``) has to be exercised end to end. The Hub's *write*
path (repo creation, ``preupload``, NDJSON ``commit``) needs a real server, and read-only mirrors such as olah
accept no uploads. This module is that server, built on the standard library only, for huggingface_hub 2.x
(``HfApi``, ``hf_hub_download``, ``snapshot_download``) and transformers 5.x. Point clients at it with
``HF_ENDPOINT=http://127.0.0.1:PORT`` (read at import time) or ``HfApi(endpoint=...)``/``endpoint=...``.

    with LoopbackHub(tmp_path) as hub:
        HfApi(endpoint=hub.endpoint, token="hf_x").create_repo("acme/tiny")

Deliberate simplifications (each one fails loudly rather than serving something wrong):

- one branch, ``main``, and only its head tree is stored. A revision is ``main`` or the head commit oid; an older
  oid answers ``RevisionNotFound``. No pull requests, no Range requests.
- ``preupload`` answers ``uploadMode: "regular"`` for every file, so no LFS or Xet storage is involved; an
  ``lfsFile`` commit line is refused.
- ``create_repo`` makes no commit (the Hub adds a ``.gitattributes`` commit), so ``commits()`` counts uploads only.
- any bearer token is accepted. Authorization headers are kept in memory (``hub.authorizations``), never on disk;
  a private repo is only hidden from requests that carry no token at all.

Storage under ``root``: ``repos/{type}/{org}/{name}/<files>`` (plain files), ``meta/{type}/{org}/{name}.json``
(privacy flag and commit log), ``collections.json``.

Run standalone with ``python -m elastoformer_hf.testing.loopback_hub --root DIR --port N``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

API_KINDS = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}


class HubError(Exception):
    """An HTTP error answered the way the Hub does (``X-Error-Code`` drives huggingface_hub's exceptions)."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-able object, bytes, or an open binary file (streamed, then closed)
    headers: dict = field(default_factory=dict)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob: what the Hub sends as a regular file's ETag and ``oid``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Repo:
    """One repository on disk: a working tree of plain files plus a JSON metadata file with the commit log."""

    def __init__(self, root: Path, repo_type: str, repo_id: str):
        self.type, self.id = repo_type, repo_id
        self.tree = root / "repos" / repo_type / repo_id
        self.meta_path = root / "meta" / repo_type / f"{repo_id}.json"

    def exists(self) -> bool:
        return self.meta_path.is_file()

    @property
    def meta(self) -> dict:
        return json.loads(self.meta_path.read_text())

    def save_meta(self, meta: dict) -> None:
        self.meta_path.parent.mkdir(parents=True, exist_ok=True)
        self.meta_path.write_text(json.dumps(meta, indent=1))

    @property
    def head(self) -> str | None:
        commits = self.meta["commits"]
        return commits[-1]["oid"] if commits else None

    def local(self, path: str) -> Path:
        parts = Path(path).parts
        if not path or path.startswith("/") or ".." in parts or (parts and parts[0] == ".git"):
            raise HubError(400, f"Invalid path in repo: {path!r}")
        return self.tree / path

    def files(self) -> list[str]:
        if not self.tree.is_dir():
            return []
        return sorted(p.relative_to(self.tree).as_posix() for p in self.tree.rglob("*") if p.is_file())

    def entry(self, path: str) -> dict:
        local = self.tree / path
        if local.is_dir():
            return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "path": path}
        return {
            "type": "file",
            "oid": git_blob_oid(local.read_bytes()),
            "size": local.stat().st_size,
            "path": path,
        }


class LoopbackHub:
    """A Hub-compatible HTTP server on 127.0.0.1, serving ``root`` from a daemon thread.

    Public state for tests: ``endpoint``, ``requests`` ((method, path) seen, query excluded),
    ``authorizations`` (Authorization headers seen), ``fail_next()`` and ``commits()``.
    """

    def __init__(
        self, root: str | os.PathLike, *, host: str = "127.0.0.1", port: int = 0, user: str = "acme"
    ):
        self.root = Path(root)
        self.host, self.port, self.user = host, port, user
        self.requests: list[tuple[str, str]] = []
        self.authorizations: list[str] = []
        self._faults: list[dict] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle and test hooks
    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("LoopbackHub is not running")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> LoopbackHub:
        self.root.mkdir(parents=True, exist_ok=True)
        self._server = ThreadingHTTPServer((self.host, self.port), _Handler)
        self._server.daemon_threads = True
        self._server.hub = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="loopback-hub",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)  # type: ignore[union-attr]
            self._server = self._thread = None

    def __enter__(self) -> LoopbackHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def fail_next(self, n: int, status: int = 500, path_prefix: str | None = None, *, after: bool = False) -> None:
        """Answer the next ``n`` requests whose path starts with ``path_prefix`` (any, if None) with ``status``;
        ``after``: carry the request out first (a commit is applied), then answer with the error, as a Hub whose
        answer is lost on the way back."""
        with self._lock:
            self._faults.append({"left": n, "status": status, "prefix": path_prefix, "after": after})

    def commits(self, repo_id: str, repo_type: str = "model") -> list[dict]:
        """The commit log of a repo, oldest first: dicts with oid, message, description, date, files, deleted."""
        with self._lock:
            repo = _Repo(self.root, repo_type, repo_id)
            return repo.meta["commits"] if repo.exists() else []

    def _take_fault(self, path: str, after: bool = False) -> int | None:
        with self._lock:
            for fault in self._faults:
                if fault["after"] == after and (fault["prefix"] is None or path.startswith(fault["prefix"])):
                    fault["left"] -= 1
                    if fault["left"] <= 0:
                        self._faults.remove(fault)
                    return fault["status"]
        return None

    # ------------------------------------------------------------------ routing
    def handle(self, method: str, path: str, query: dict, body: bytes, auth: str | None) -> Reply:
        with self._lock:
            self.requests.append((method, path))
            if auth:
                self.authorizations.append(auth)
        if (status := self._take_fault(path)) is not None:
            raise HubError(status, f"Injected failure ({status})")
        parts = [unquote(p) for p in path.strip("/").split("/")]
        with self._lock:
            if parts[0] == "api":
                reply = self._api(method, parts[1:], query, body, auth)
                if (status := self._take_fault(path, after=True)) is not None:
                    raise HubError(status, f"Injected failure after the request was carried out ({status})")
                return reply
            repo_type = API_KINDS[parts.pop(0)] if parts[0] in ("datasets", "spaces") else "model"
            match parts:
                case [org, name, "resolve", rev, *file] if file and method in ("GET", "HEAD"):
                    return self._resolve(self._repo(repo_type, f"{org}/{name}", auth), rev, "/".join(file))
        raise HubError(404, f"No route for {method} {path}")

    def _api(self, method: str, parts: list[str], query: dict, body: bytes, auth: str | None) -> Reply:
        match method, parts:
            case "GET", ["whoami-v2"]:
                if not auth:
                    raise HubError(401, "Invalid credentials in Authorization header")
                return Reply(
                    body={
                        "type": "user",
                        "name": self.user,
                        "fullname": self.user,
                        "orgs": [],
                        "auth": {"type": "access_token", "accessToken": {"role": "write"}},
                    }
                )
            case "POST", ["repos", "create"]:
                return self._create_repo(json.loads(body))
            case "DELETE", ["repos", "delete"]:
                payload = json.loads(body)
                repo_id = f"{payload.get('organization') or self.user}/{payload['name']}"
                repo = self._repo(payload.get("type") or "model", repo_id, auth)
                shutil.rmtree(repo.tree, ignore_errors=True)
                repo.meta_path.unlink()
                return Reply(body={})
            case "POST", ["validate-yaml"]:
                return Reply(body={"errors": [], "warnings": []})
            case "POST", ["collections"]:
                return self._create_collection(json.loads(body))
            case "GET", ["collections", ns, slug]:
                return Reply(body=self._collection(f"{ns}/{slug}"))
            case "POST", ["collections", ns, slug, "items"]:
                return self._add_collection_item(f"{ns}/{slug}", json.loads(body))
            case _, [kind, org, name, *tail] if kind in API_KINDS:
                repo = self._repo(API_KINDS[kind], f"{org}/{name}", auth)
                return self._repo_api(method, repo, tail, query, body)
        raise HubError(404, f"No API route for {method} /api/{'/'.join(parts)}")

    def _repo_api(self, method: str, repo: _Repo, tail: list[str], query: dict, body: bytes) -> Reply:
        match method, tail:
            case "GET", []:
                return Reply(body=self._info(repo))
            case "GET", ["revision", rev]:
                self._check_revision(repo, rev)
                return Reply(body=self._info(repo))
            case "GET", ["tree", rev, *sub]:
                self._check_revision(repo, rev)
                recursive = query.get("recursive", ["false"])[0].lower() == "true"
                return Reply(body=self._tree(repo, "/".join(sub), recursive))
            case "GET", ["commits", rev]:
                self._check_revision(repo, rev)
                return Reply(
                    body=[
                        {
                            "id": c["oid"],
                            "title": c["message"],
                            "message": c["description"],
                            "date": c["date"],
                            "authors": [{"user": self.user}],
                        }
                        for c in reversed(repo.meta["commits"])
                    ]
                )
            case "POST", ["paths-info", rev]:
                self._check_revision(repo, rev)
                wanted = parse_qs(body.decode()).get("paths", [])
                return Reply(body=[repo.entry(p) for p in wanted if repo.local(p).exists()])
            case "POST", ["preupload", rev]:
                self._check_writable(repo, rev, query)
                files = json.loads(body)["files"]
                return Reply(body={"files": [self._preupload(repo, f["path"]) for f in files]})
            case "POST", ["commit", rev]:
                self._check_writable(repo, rev, query)
                return self._commit(repo, body)
        raise HubError(404, f"No repo route for {method} {'/'.join(tail)}")

    # ------------------------------------------------------------------ repositories
    def _repo(self, repo_type: str, repo_id: str, auth: str | None) -> _Repo:
        repo = _Repo(self.root, repo_type, repo_id)
        if not repo.exists() or (repo.meta["private"] and not auth):
            raise HubError(404, f"Repository {repo_type}/{repo_id} not found", "RepoNotFound")
        return repo

    def _url(self, repo: _Repo) -> str:
        return f"{self.endpoint}/{URL_PREFIXES[repo.type]}{repo.id}"

    def _check_revision(self, repo: _Repo, rev: str) -> None:
        if rev != "main" and rev != repo.head:
            raise HubError(
                404, f"Revision {rev!r} not found (only main and its head are kept)", "RevisionNotFound"
            )

    def _check_writable(self, repo: _Repo, rev: str, query: dict) -> None:
        if rev != "main":
            raise HubError(404, f"Can only commit to main, not {rev!r}", "RevisionNotFound")
        if "create_pr" in query:
            raise HubError(400, "Pull requests are not supported by the loopback hub")

    def _create_repo(self, payload: dict) -> Reply:
        repo_type = payload.get("type") or "model"
        if repo_type not in URL_PREFIXES or not payload.get("name"):
            raise HubError(400, f"Invalid repo type or name: {payload}")
        repo = _Repo(self.root, repo_type, f"{payload.get('organization') or self.user}/{payload['name']}")
        if repo.exists():
            return Reply(409, {"error": f"You already created this {repo_type} repo", "url": self._url(repo)})
        repo.tree.mkdir(parents=True, exist_ok=True)
        private = payload.get("visibility", "public") != "public" or bool(payload.get("private"))
        repo.save_meta(
            {"type": repo_type, "id": repo.id, "private": private, "createdAt": _now(), "commits": []}
        )
        return Reply(body={"url": self._url(repo), "name": repo.id, "id": uuid.uuid4().hex[:24]})

    def _info(self, repo: _Repo) -> dict:
        meta = repo.meta
        commits = meta["commits"]
        siblings = [repo.entry(p) for p in repo.files()]
        return {
            "_id": hashlib.sha1(repo.id.encode()).hexdigest()[:24],
            "id": repo.id,
            "author": repo.id.split("/")[0],
            "sha": repo.head,
            "private": meta["private"],
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "createdAt": meta["createdAt"],
            "lastModified": commits[-1]["date"] if commits else meta["createdAt"],
            "siblings": [{"rfilename": s["path"], "size": s["size"], "blobId": s["oid"]} for s in siblings],
        }

    def _tree(self, repo: _Repo, sub: str, recursive: bool) -> list[dict]:
        if sub and not (repo.tree / sub).is_dir():
            raise HubError(404, f"{sub} does not exist on main", "EntryNotFound")
        paths = set()
        for file in repo.files():
            parents = file.split("/")
            paths.update("/".join(parents[: i + 1]) for i in range(len(parents)))
        prefix = f"{sub}/" if sub else ""
        children = [p for p in paths if p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :])]
        return [repo.entry(p) for p in sorted(children)]

    def _preupload(self, repo: _Repo, path: str) -> dict:
        local = repo.local(path)
        oid = git_blob_oid(local.read_bytes()) if local.is_file() else None
        return {"path": path, "uploadMode": "regular", "shouldIgnore": False, "oid": oid}

    def _commit(self, repo: _Repo, body: bytes) -> Reply:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "Commit payload must start with a header line")
        header, ops = lines[0]["value"], lines[1:]
        parent = header.get("parentCommit")
        if parent and not (repo.head or "").startswith(parent):
            raise HubError(412, f"Parent commit {parent} is not the head of main ({repo.head})")
        for op in ops:  # validate everything before touching the tree
            if op["key"] not in ("file", "deletedFile", "deletedFolder"):
                raise HubError(400, f"Unsupported commit operation {op['key']!r} (only regular files here)")
            local = repo.local(op["value"]["path"].rstrip("/"))
            gone = op["key"] == "deletedFile" and not local.is_file()
            if gone or (op["key"] == "deletedFolder" and not local.is_dir()):
                raise HubError(
                    404, f"A file with this name doesn't exist: {op['value']['path']}", "EntryNotFound"
                )
        added, deleted = [], []
        for op in ops:
            path = op["value"]["path"].rstrip("/")
            local = repo.local(path)
            if op["key"] == "file":
                local.parent.mkdir(parents=True, exist_ok=True)
                tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex}.tmp")
                tmp.write_bytes(base64.b64decode(op["value"]["content"]))
                os.replace(tmp, local)  # open readers keep the old content
                added.append(path)
            else:
                if local.is_dir():
                    shutil.rmtree(local)
                else:
                    local.unlink()
                while local.parent != repo.tree and not any(local.parent.iterdir()):  # git has no empty dirs
                    local = local.parent
                    local.rmdir()
                deleted.append(path)
        meta = repo.meta
        oid = hashlib.sha1(f"{repo.id}\n{len(meta['commits'])}\n{uuid.uuid4()}".encode()).hexdigest()
        meta["commits"].append(
            {
                "oid": oid,
                "message": header.get("summary", ""),
                "date": _now(),
                "description": header.get("description", ""),
                "files": added,
                "deleted": deleted,
            }
        )
        repo.save_meta(meta)
        return Reply(
            body={
                "success": True,
                "commitOid": oid,
                "commitUrl": f"{self._url(repo)}/commit/{oid}",
                "hookOutput": "",
            }
        )

    def _resolve(self, repo: _Repo, rev: str, path: str) -> Reply:
        self._check_revision(repo, rev)
        commit = {"X-Repo-Commit": repo.head} if repo.head else {}
        local = repo.local(path)
        if not local.is_file():
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", headers=commit)
        data = local.read_bytes()  # hashed under the hub lock; the handle below survives a later os.replace
        headers = {**commit, "ETag": f'"{git_blob_oid(data)}"', "Content-Length": str(len(data))}
        return Reply(body=local.open("rb"), headers=headers)

    # ------------------------------------------------------------------ collections
    def _collections(self) -> dict:
        path = self.root / "collections.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def _save_collections(self, collections: dict) -> None:
        (self.root / "collections.json").write_text(json.dumps(collections, indent=1))

    def _collection(self, slug: str) -> dict:
        if slug not in (collections := self._collections()):
            raise HubError(404, f"Collection {slug} not found")
        return collections[slug]

    def _create_collection(self, payload: dict) -> Reply:
        collections, namespace = self._collections(), payload.get("namespace") or self.user
        for slug, existing in collections.items():
            if existing["owner"]["name"] == namespace and existing["title"] == payload["title"]:
                return Reply(409, {"error": "Collection already exists", "slug": slug})
        stem = "".join(c if c.isalnum() else "-" for c in payload["title"].lower()).strip("-")
        slug = f"{namespace}/{stem}-{uuid.uuid4().hex[:24]}"
        collections[slug] = {
            "slug": slug,
            "title": payload["title"],
            "description": payload.get("description"),
            "owner": {"name": namespace, "type": "user"},
            "items": [],
            "lastUpdated": _now(),
            "position": 0,
            "private": bool(payload.get("private")),
            "theme": "indigo",
            "upvotes": 0,
        }
        self._save_collections(collections)
        return Reply(body=collections[slug])

    def _add_collection_item(self, slug: str, payload: dict) -> Reply:
        self._collection(slug)  # 404 if missing
        collections = self._collections()
        collection = collections[slug]
        item = payload["item"]
        if any(i["id"] == item["id"] and i["type"] == item["type"] for i in collection["items"]):
            raise HubError(409, f"{item['type']} {item['id']} is already in collection {slug}")
        note = {"text": payload["note"]} if payload.get("note") else None
        collection["items"].append(
            {
                "_id": uuid.uuid4().hex[:24],
                "id": item["id"],
                "type": item["type"],
                "position": len(collection["items"]),
                "note": note,
            }
        )
        collection["lastUpdated"] = _now()
        self._save_collections(collections)
        return Reply(body=collection)


class _Handler(BaseHTTPRequestHandler):
    server_version = "LoopbackHub/1.0"

    def _dispatch(self) -> None:
        hub: LoopbackHub = self.server.hub  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        body = self._read_body()
        try:
            reply = hub.handle(
                self.command, url.path, parse_qs(url.query), body, self.headers.get("Authorization")
            )
        except HubError as err:
            headers = {**err.headers, "X-Error-Message": err.message}
            if err.code:
                headers["X-Error-Code"] = err.code
            reply = Reply(err.status, {"error": err.message}, headers)
        except Exception as err:  # a bug here must reach the client as a 500, not a dropped connection
            reply = Reply(500, {"error": f"{type(err).__name__}: {err}"})
        self._send(reply)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, reply: Reply) -> None:
        stream = reply.body if hasattr(reply.body, "read") else None
        if stream is not None:
            data = b""
        elif isinstance(reply.body, bytes):
            data = reply.body
        else:
            data = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/octet-stream" if stream else "application/json")
        for key, value in reply.headers.items():
            self.send_header(key, value)
        if "Content-Length" not in reply.headers:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            if self.command != "HEAD" and stream:
                shutil.copyfileobj(stream, self.wfile)
            elif self.command != "HEAD":
                self.wfile.write(data)
        finally:
            if stream:
                stream.close()

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a loopback Hugging Face Hub from a directory.")
    parser.add_argument("--root", required=True, help="storage directory (created if missing)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--user", default="acme", help="user name answered by /api/whoami-v2")
    args = parser.parse_args(argv)
    hub = LoopbackHub(args.root, host=args.host, port=args.port, user=args.user).start()
    print(hub.endpoint, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()


if __name__ == "__main__":
    main()
