"""A fake Kaggle on 127.0.0.1 speaking what the installed kaggle / kagglesdk client sends.

kagglesdk's KaggleHttpClient POSTs JSON to `<endpoint>/api/v1/<Service>/<Method>` (camelCase fields,
enums by name, dates in ISO with a Z) and reads an error from a JSON body `{"code": 4xx, "message":
...}`; a submission's file goes up with a PUT to the `createUrl` the server hands out. The client's
endpoint comes from kagglesdk.kaggle_env; KaggleApi asks for the production endpoint, so `serving`
points that entry at this server, on a free port of its own, for the test's duration.

Logging in with an access token asks security.OAuthService/IntrospectToken (`tokens`); the refresh
token of `kaggle auth login` (~/.kaggle/credentials.json) gets an access token from
users.AccountService/GenerateAccessToken (`refresh_tokens`). ListSubmissions answers a page
(`page`, `pageSize`: 20 when not asked) as Kaggle does.

One request at a time (HTTP/1.0, a connection per request), at most `limit` requests, then 503.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

HOST = "127.0.0.1"  # the loopback address only; the port is the free one the system gives each server
API = "/api/v1/"  # then <Service>/<Method>
RULES = "You must accept this competition's rules before you'll be able to submit."
DAILY = "Your team has used its daily Submission allowance (5) today, please try again tomorrow UTC"


@dataclass
class FakeKaggle:
    """What the fake knows and what it was sent."""

    competitions: set[str] = field(default_factory=lambda: {"digit-recognizer"})
    fail: dict[str, tuple[int, str]] = field(default_factory=dict)  # method -> (HTTP status, message)
    submissions: list[dict[str, Any]] = field(default_factory=list)  # ApiSubmission dicts, newest first
    uploads: dict[str, bytes] = field(default_factory=dict)
    auth: list[str] = field(default_factory=list)  # the Authorization header of every request
    paths: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # competition -> its archive (DownloadDataFiles)
    tokens: dict[str, str] = field(default_factory=dict)  # access token -> its user (IntrospectToken)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # refresh token -> its user (GenerateAccessToken)
    limit: int = 60
    _pending: dict[str, str] = field(default_factory=dict)  # upload token -> file name
    url: str = ""  # http://HOST:PORT, set by `serving`

    def score(self, ref: int, public: str, private: str = "", status: str = "COMPLETE", error: str = "") -> None:
        """Kaggle scored submission `ref` (or failed it, with `error`)."""
        for sub in self.submissions:
            if sub["ref"] == ref:
                sub.update(status=status, publicScore=public, privateScore=private, errorDescription=error)

    def answer(self, method: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if method in self.fail:
            status, message = self.fail[method]
            return status, {"code": status, "message": message}
        if method == "IntrospectToken":
            user = self.tokens.get(body.get("token", ""), "")
            return 200, {"active": bool(user), "username": user}
        if method == "GenerateAccessToken":
            if body.get("refreshToken") not in self.refresh_tokens:
                return 401, {"code": 401, "message": "Unauthenticated"}
            token = f"access{len(self.tokens) + 1}"
            self.tokens[token] = self.refresh_tokens[body["refreshToken"]]
            return 200, {"token": token, "expiresIn": 43200, "userName": self.tokens[token]}
        if body.get("competitionName") not in self.competitions:
            return 404, {"code": 404, "message": "Not found"}
        if method == "StartSubmissionUpload":
            token = f"tok{len(self._pending) + 1}"
            self._pending[token] = body["fileName"]
            return 200, {"token": token, "createUrl": f"{self.url}/upload/{token}"}
        if method == "CreateSubmission":
            ref = 1000 + len(self.submissions)
            now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
            name = self._pending[body["blobFileTokens"]]
            self.submissions.insert(0, {"ref": ref, "fileName": name, "date": now, "description": body.get("submissionDescription", ""), "status": "PENDING"})
            return 200, {"message": "Successfully submitted", "ref": ref}
        if method == "ListSubmissions":
            size, page = int(body.get("pageSize") or 20), int(body.get("page") or 1)
            return 200, {"submissions": self.submissions[(page - 1) * size:page * size]}
        if method == "DownloadDataFiles":  # a redirect to the archive, as Kaggle answers with a signed URL
            return 302, {"location": f"{self.url}/files/{body['competitionName']}.zip"}
        if method == "GetSubmissionLimits":
            return 200, {"numAllowedNow": 4}
        return 404, {"code": 404, "message": f"no method {method}"}


def _handler(fake: FakeKaggle) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            if status == 302:
                self.send_header("Location", body["location"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _read(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _counted(self) -> bool:
            fake.paths.append(self.path)
            fake.auth.append(self.headers.get("Authorization", ""))
            if len(fake.paths) > fake.limit:
                self._send(503, {"code": 503, "message": "the fake's request limit is reached"})
                return False
            return True

        def do_POST(self) -> None:
            body = self._read()
            if not self._counted():
                return
            if not self.path.startswith(API):
                self._send(404, {"code": 404, "message": "Not found"})
                return
            self._send(*fake.answer(self.path.rsplit("/", 1)[-1], json.loads(body or b"{}")))

        def do_GET(self) -> None:
            if not self._counted():
                return
            name = self.path.rsplit("/", 1)[-1].removesuffix(".zip")
            if not self.path.startswith("/files/") or name not in fake.files:
                self._send(404, {"code": 404, "message": "Not found"})
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(len(fake.files[name])))
            self.end_headers()
            self.wfile.write(fake.files[name])

        def do_PUT(self) -> None:
            data = self._read()
            if self._counted():
                fake.uploads[self.path.rsplit("/", 1)[-1]] = data
                self._send(200, {})

    return Handler


@contextlib.contextmanager
def serving(fake: FakeKaggle) -> Iterator[FakeKaggle]:
    """Serve `fake` on 127.0.0.1 (a free port) with the kaggle client pointed at it; stopped and joined after."""
    from kagglesdk import kaggle_env

    server = HTTPServer((HOST, 0), _handler(fake))
    fake.url = f"http://{HOST}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    endpoints = kaggle_env._env_to_endpoint
    saved = endpoints[kaggle_env.KaggleEnv.PROD]
    endpoints[kaggle_env.KaggleEnv.PROD] = f"{fake.url}/api"  # the /api prefix of the TEST endpoint
    try:
        yield fake
    finally:
        endpoints[kaggle_env.KaggleEnv.PROD] = saved
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        assert not thread.is_alive()
