"""A loopback GitHub: the REST calls the GitHub repo backend makes, with state in memory.

``FakeGitHub`` serves users, organizations, repos (created with or without GitHub's README
commit) and the Git Data API (blobs, trees, commits, refs) plus the contents API, on
``http://127.0.0.1:PORT`` from a background thread. Tokens map to logins; an unknown token gets
GitHub's own ``401 Bad credentials``, a taken name the ``422`` GitHub answers. Every request is
recorded; ``fail`` scripts any other error. Object shas are git's (blobs) or stable digests
(trees, commits); trees are kept flat, path → blob sha.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote

from tests.fakes.http_fake import read_request


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: Any


@dataclass
class FakeRepo:
    owner: str
    name: str
    private: bool
    description: str
    id: int
    default_branch: str = "main"
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


class _Reply(Exception):
    """Raised by a route to answer with ``status`` and ``body``."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _not_found() -> _Reply:
    return _Reply(404, {"message": "Not Found", "documentation_url": "https://docs.github.com"})


def _digest(kind: str, payload: bytes) -> str:
    return hashlib.sha1(f"{kind} {len(payload)}\0".encode() + payload).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeGitHub

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client hanging up is not news


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self.server.fake._serve(self)

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        return


Route = Callable[..., tuple[int, Any]]


class FakeGitHub:
    """``tokens`` maps each valid token to its user's login; ``orgs`` maps each organization to
    its members' logins. Use as a context manager; ``url`` is the API root."""

    def __init__(
        self,
        tokens: Mapping[str, str],
        *,
        orgs: Mapping[str, set[str]] | None = None,
    ) -> None:
        self.tokens = dict(tokens)
        self.orgs = {name: set(members) for name, members in (orgs or {}).items()}
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[Request] = []
        self._failures: list[tuple[str, re.Pattern[str], int, Any]] = []
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._routes: list[tuple[str, re.Pattern[str], Route]] = [
            ("GET", re.compile(r"/user"), self._get_user),
            ("GET", re.compile(r"/users/(?P<name>[^/]+)"), self._get_named_user),
            ("GET", re.compile(r"/orgs/(?P<org>[^/]+)"), self._get_org),
            ("POST", re.compile(r"/user/repos"), self._create_user_repo),
            ("POST", re.compile(r"/orgs/(?P<org>[^/]+)/repos"), self._create_org_repo),
            ("GET", re.compile(r"/repos/(?P<o>[^/]+)/(?P<r>[^/]+)"), self._get_repo),
            ("POST", re.compile(r"/repos/(?P<o>[^/]+)/(?P<r>[^/]+)/git/blobs"), self._post_blob),
            ("GET", re.compile(r"/repos/(?P<o>[^/]+)/(?P<r>[^/]+)/git/blobs/(?P<sha>\w+)"),
             self._get_blob),
            ("POST", re.compile(r"/repos/(?P<o>[^/]+)/(?P<r>[^/]+)/git/trees"), self._post_tree),
            ("GET", re.compile(r"/repos/(?P<o>[^/]+)/(?P<r>[^/]+)/git/trees/(?P<sha>\w+)"),
             self._get_tree),
            ("POST", re.compile(r"/repos/(?P<o>[^/]+)/(?P<r>[^/]+)/git/commits"),
             self._post_commit),
            ("GET", re.compile(r"/repos/(?P<o>[^/]+)/(?P<r>[^/]+)/git/commits/(?P<sha>\w+)"),
             self._get_commit),
            ("GET", re.compile(r"/repos/(?P<o>[^/]+)/(?P<r>[^/]+)/git/refs?/(?P<ref>.+)"),
             self._get_ref),
            ("PATCH", re.compile(r"/repos/(?P<o>[^/]+)/(?P<r>[^/]+)/git/refs/(?P<ref>.+)"),
             self._patch_ref),
            ("GET", re.compile(r"/repos/(?P<o>[^/]+)/(?P<r>[^/]+)/contents/(?P<path>.+)"),
             self._get_contents),
        ]  # fmt: skip

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},  # stop() waits up to one interval
            name="fake-github",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeGitHub:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # ------------------------------------------------------------------ test helpers
    def fail(self, method: str, path_pattern: str, status: int, message: str) -> None:
        """Answer the next request matching ``method`` and the ``path_pattern`` regex (full
        match) with ``status`` and GitHub's error body."""
        with self._lock:
            self._failures.append((method, re.compile(path_pattern), status, {"message": message}))

    def add_repo(
        self, owner: str, name: str, *, description: str = "", auto_init: bool = True
    ) -> FakeRepo:
        """A repo that exists before the test (someone else's, or an earlier run's)."""
        with self._lock:
            return self._new_repo(
                owner, name, private=True, description=description, init=auto_init
            )

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def files(self, full_name: str, ref: str | None = None) -> dict[str, bytes]:
        """Path → content at the head of ``ref`` (default: the default branch)."""
        with self._lock:
            repo = self.repos[full_name]
            commit = repo.objects[repo.refs[f"heads/{ref or repo.default_branch}"]]
            tree = repo.objects[commit["tree"]]
            return {path: repo.objects[sha]["data"] for path, sha in tree["entries"].items()}

    def history(self, full_name: str) -> list[dict[str, Any]]:
        """The default branch's commits, newest first (first parents)."""
        with self._lock:
            repo = self.repos[full_name]
            sha: str | None = repo.refs.get(f"heads/{repo.default_branch}")
            out = []
            while sha:
                commit = repo.objects[sha]
                out.append({"sha": sha, **commit})
                sha = commit["parents"][0] if commit["parents"] else None
            return out

    # ------------------------------------------------------------------ serving
    def _serve(self, handler: _Handler) -> None:
        read = read_request(handler)
        request = Request(read.method, read.path, read.query, read.headers, read.body)
        with self._lock:
            self.requests.append(request)
            try:
                status, reply = self._dispatch(request)
            except _Reply as answer:
                status, reply = answer.status, answer.body
        payload = json.dumps(reply).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json; charset=utf-8")
        handler.send_header("content-length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
        handler.wfile.flush()

    def _dispatch(self, request: Request) -> tuple[int, Any]:
        for index, (method, pattern, status, body) in enumerate(self._failures):
            if method == request.method and pattern.fullmatch(request.path):
                del self._failures[index]
                return status, body
        login = self._login(request)
        for method, pattern, route in self._routes:
            match = pattern.fullmatch(request.path)
            if method == request.method and match:
                params = {k: unquote(v) for k, v in match.groupdict().items()}
                return route(request, login, **params)
        raise _not_found()

    def _login(self, request: Request) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        login = self.tokens.get(token) if scheme.lower() in ("token", "bearer") else None
        if login is None:
            raise _Reply(
                401,
                {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"},
            )
        return login

    # ------------------------------------------------------------------ JSON shapes
    def _user_json(self, login: str) -> dict[str, Any]:
        kind = "Organization" if login in self.orgs else "User"
        return {
            "login": login,
            "id": abs(hash(login)) % 10**6,
            "type": kind,
            "url": f"{self.url}/users/{login}",
            "html_url": f"{self.url}/{login}",
        }

    def _repo_json(self, repo: FakeRepo) -> dict[str, Any]:
        return {
            "id": repo.id,
            "node_id": f"R_{repo.id}",
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": self._user_json(repo.owner),
            "private": repo.private,
            "description": repo.description,
            "fork": False,
            "html_url": f"{self.url}/{repo.full_name}",
            "url": f"{self.url}/repos/{repo.full_name}",
            "default_branch": repo.default_branch,
        }

    def _api(self, repo: FakeRepo, rest: str) -> str:
        return f"{self.url}/repos/{repo.full_name}/{rest}"

    def _commit_json(self, repo: FakeRepo, sha: str) -> dict[str, Any]:
        commit = repo.objects[sha]
        person = {"name": "agentfirm", "email": "agentfirm@localhost", "date": commit["date"]}
        return {
            "sha": sha,
            "node_id": f"C_{sha[:12]}",
            "url": self._api(repo, f"git/commits/{sha}"),
            "html_url": f"{self.url}/{repo.full_name}/commit/{sha}",
            "author": person,
            "committer": person,
            "message": commit["message"],
            "tree": {"sha": commit["tree"], "url": self._api(repo, f"git/trees/{commit['tree']}")},
            "parents": [
                {"sha": p, "url": self._api(repo, f"git/commits/{p}")} for p in commit["parents"]
            ],
        }

    def _tree_json(self, repo: FakeRepo, sha: str) -> dict[str, Any]:
        entries = repo.objects[sha]["entries"]
        return {
            "sha": sha,
            "url": self._api(repo, f"git/trees/{sha}"),
            "truncated": False,
            "tree": [
                {
                    "path": path,
                    "mode": "100644",
                    "type": "blob",
                    "sha": blob,
                    "size": len(repo.objects[blob]["data"]),
                    "url": self._api(repo, f"git/blobs/{blob}"),
                }
                for path, blob in sorted(entries.items())
            ],
        }

    def _ref_json(self, repo: FakeRepo, ref: str) -> dict[str, Any]:
        sha = repo.refs[ref]
        return {
            "ref": f"refs/{ref}",
            "node_id": f"REF_{ref}",
            "url": self._api(repo, f"git/refs/{ref}"),
            "object": {"sha": sha, "type": "commit", "url": self._api(repo, f"git/commits/{sha}")},
        }

    # ------------------------------------------------------------------ state changes
    def _store(self, repo: FakeRepo, kind: str, obj: dict[str, Any], payload: bytes) -> str:
        sha = _digest(kind, payload)
        repo.objects[sha] = {"type": kind, **obj}
        return sha

    def _blob(self, repo: FakeRepo, data: bytes) -> str:
        return self._store(repo, "blob", {"data": data}, data)

    def _tree(self, repo: FakeRepo, entries: Mapping[str, str]) -> str:
        canonical = json.dumps(sorted(entries.items())).encode()
        return self._store(repo, "tree", {"entries": dict(entries)}, canonical)

    def _commit(self, repo: FakeRepo, message: str, tree: str, parents: list[str]) -> str:
        date = _now()
        canonical = json.dumps([message, tree, parents, date, len(repo.objects)]).encode()
        obj = {"message": message, "tree": tree, "parents": parents, "date": date}
        return self._store(repo, "commit", obj, canonical)

    def _new_repo(
        self, owner: str, name: str, *, private: bool, description: str, init: bool
    ) -> FakeRepo:
        full_name = f"{owner}/{name}"
        if full_name in self.repos:
            raise _Reply(
                422,
                {
                    "message": "Repository creation failed.",
                    "errors": [
                        {
                            "resource": "Repository",
                            "code": "custom",
                            "field": "name",
                            "message": "name already exists on this account",
                        }
                    ],
                },
            )
        repo = FakeRepo(owner, name, private, description, id=len(self.repos) + 1)
        self.repos[full_name] = repo
        if init:
            readme = self._blob(repo, f"# {name}\n\n{description}\n".encode())
            tree = self._tree(repo, {"README.md": readme})
            repo.refs[f"heads/{repo.default_branch}"] = self._commit(
                repo, "Initial commit", tree, []
            )
        return repo

    def _visible_repo(self, owner: str, name: str, login: str) -> FakeRepo:
        repo = self.repos.get(f"{owner}/{name}")
        if repo is None or (
            repo.private and login != repo.owner and login not in self.orgs.get(repo.owner, ())
        ):
            raise _not_found()
        return repo

    def _object(self, repo: FakeRepo, sha: str, kind: str) -> dict[str, Any]:
        obj = repo.objects.get(sha)
        if obj is None or obj["type"] != kind:
            raise _not_found()
        return obj

    @staticmethod
    def _require_content(repo: FakeRepo) -> None:
        if not repo.refs:
            raise _Reply(409, {"message": "Git Repository is empty."})

    # ------------------------------------------------------------------ routes
    def _get_user(self, request: Request, login: str) -> tuple[int, Any]:
        return 200, self._user_json(login)

    def _get_named_user(self, request: Request, login: str, name: str) -> tuple[int, Any]:
        known = set(self.tokens.values()) | {r.owner for r in self.repos.values()}
        if name not in known or name in self.orgs:
            raise _not_found()
        return 200, self._user_json(name)

    def _get_org(self, request: Request, login: str, org: str) -> tuple[int, Any]:
        if org not in self.orgs:
            raise _not_found()
        return 200, self._user_json(org)

    def _create_repo(self, request: Request, owner: str) -> tuple[int, Any]:
        body = request.body or {}
        repo = self._new_repo(
            owner,
            str(body["name"]),
            private=bool(body.get("private", False)),
            description=str(body.get("description") or ""),
            init=bool(body.get("auto_init", False)),
        )
        return 201, self._repo_json(repo)

    def _create_user_repo(self, request: Request, login: str) -> tuple[int, Any]:
        return self._create_repo(request, login)

    def _create_org_repo(self, request: Request, login: str, org: str) -> tuple[int, Any]:
        if org not in self.orgs:
            raise _not_found()
        if login not in self.orgs[org]:
            raise _Reply(403, {"message": "You need admin access to the organization"})
        return self._create_repo(request, org)

    def _get_repo(self, request: Request, login: str, o: str, r: str) -> tuple[int, Any]:
        return 200, self._repo_json(self._visible_repo(o, r, login))

    def _post_blob(self, request: Request, login: str, o: str, r: str) -> tuple[int, Any]:
        repo = self._visible_repo(o, r, login)
        self._require_content(repo)
        body = request.body or {}
        content = str(body.get("content", ""))
        encoding = body.get("encoding", "utf-8")
        data = base64.b64decode(content) if encoding == "base64" else content.encode()
        sha = self._blob(repo, data)
        return 201, {"sha": sha, "url": self._api(repo, f"git/blobs/{sha}")}

    def _get_blob(self, request: Request, login: str, o: str, r: str, sha: str) -> tuple[int, Any]:
        repo = self._visible_repo(o, r, login)
        data = self._object(repo, sha, "blob")["data"]
        return 200, {
            "sha": sha,
            "size": len(data),
            "encoding": "base64",
            "content": base64.b64encode(data).decode(),
            "url": self._api(repo, f"git/blobs/{sha}"),
        }

    def _post_tree(self, request: Request, login: str, o: str, r: str) -> tuple[int, Any]:
        repo = self._visible_repo(o, r, login)
        self._require_content(repo)
        body = request.body or {}
        base = body.get("base_tree")
        entries = dict(self._object(repo, base, "tree")["entries"]) if base else {}
        for item in body.get("tree", []):
            path = str(item["path"])
            if "content" in item:
                entries[path] = self._blob(repo, str(item["content"]).encode())
            elif item.get("sha") is None:
                entries.pop(path, None)
            else:
                self._object(repo, str(item["sha"]), "blob")
                entries[path] = str(item["sha"])
        return 201, self._tree_json(repo, self._tree(repo, entries))

    def _get_tree(self, request: Request, login: str, o: str, r: str, sha: str) -> tuple[int, Any]:
        repo = self._visible_repo(o, r, login)
        self._object(repo, sha, "tree")
        return 200, self._tree_json(repo, sha)

    def _post_commit(self, request: Request, login: str, o: str, r: str) -> tuple[int, Any]:
        repo = self._visible_repo(o, r, login)
        body = request.body or {}
        tree = str(body["tree"])
        self._object(repo, tree, "tree")
        parents = [str(p) for p in body.get("parents", [])]
        for parent in parents:
            self._object(repo, parent, "commit")
        sha = self._commit(repo, str(body["message"]), tree, parents)
        return 201, self._commit_json(repo, sha)

    def _get_commit(
        self, request: Request, login: str, o: str, r: str, sha: str
    ) -> tuple[int, Any]:
        repo = self._visible_repo(o, r, login)
        self._object(repo, sha, "commit")
        return 200, self._commit_json(repo, sha)

    def _get_ref(self, request: Request, login: str, o: str, r: str, ref: str) -> tuple[int, Any]:
        repo = self._visible_repo(o, r, login)
        self._require_content(repo)
        if ref not in repo.refs:
            raise _not_found()
        return 200, self._ref_json(repo, ref)

    def _ancestors(self, repo: FakeRepo, sha: str) -> set[str]:
        seen: set[str] = set()
        stack = [sha]
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(repo.objects[current]["parents"])
        return seen

    def _patch_ref(self, request: Request, login: str, o: str, r: str, ref: str) -> tuple[int, Any]:
        repo = self._visible_repo(o, r, login)
        body = request.body or {}
        sha = str(body["sha"])
        self._object(repo, sha, "commit")
        if ref not in repo.refs:
            raise _Reply(422, {"message": "Reference does not exist"})
        if not body.get("force") and repo.refs[ref] not in self._ancestors(repo, sha):
            raise _Reply(422, {"message": "Update is not a fast forward"})
        repo.refs[ref] = sha
        return 200, self._ref_json(repo, ref)

    def _get_contents(
        self, request: Request, login: str, o: str, r: str, path: str
    ) -> tuple[int, Any]:
        repo = self._visible_repo(o, r, login)
        if not repo.refs:
            raise _not_found()
        ref = parse_qs(request.query).get("ref", [repo.default_branch])[0]
        files = self.files(repo.full_name, ref)
        if path not in files:
            raise _not_found()
        data = files[path]
        return 200, {
            "type": "file",
            "encoding": "base64",
            "size": len(data),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "content": base64.b64encode(data).decode(),
            "sha": _digest("blob", data),
            "url": self._api(repo, f"contents/{path}"),
            "html_url": f"{self.url}/{repo.full_name}/blob/{ref}/{path}",
            "download_url": None,
        }
