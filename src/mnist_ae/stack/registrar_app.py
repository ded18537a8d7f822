"""The stack's registrar service: writers ask it to register and sign a version of a model they
logged, and to run the champion rule; it does both with the stack's signing key and the stack's
own MLflow login (tracking.registrar.Registrar). It listens on 127.0.0.1 only.

On a network address it is also the login gate the gateway (stack.gateway) asks about every
MLflow request (`/login`), and it answers only requests that came through the gateway (they
carry the gateway's key). A known and an unknown name cost the same comparison; an address whose
logins keep failing is refused without any check until its failures age out, except for a login
accepted before (an honest client behind the same address goes on). Run by `stack up` as
`python -m mnist_ae.stack.registrar_app STACK_DIR`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import sys
import threading
import time
import traceback
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from mnist_ae.plumbing.errors import PipelineError
from mnist_ae.stack.gateway import GATE_HEADER, THROTTLED
from mnist_ae.stack.layout import Layout, User
from mnist_ae.stack.processes import LOOPBACK

FAILURES_ALLOWED = 5  # failed logins per address in a window before it is refused unchecked
FAILURE_WINDOW_SECONDS = 60.0
ACCEPTED_SECONDS = 60.0  # how long an accepted login passes a throttled address (MLflow's cache)
MAX_BODY = 64 * 1024  # a request names a model and a few tags


class LoginGate:
    """HTTP basic logins of the stack's members (users.json), throttled per source address."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.failures: dict[str, deque[float]] = defaultdict(deque)
        self.accepted: dict[str, float] = {}  # SHA-256 of an accepted header -> when
        self.users_seen: tuple[int, int] | None = None
        self.lock = threading.Lock()
        self.stand_in = secrets.token_urlsafe(24)  # compared for an unknown name

    def _throttled(self, address: str, now: float) -> bool:
        recent = self.failures[address]
        while recent and recent[0] < now - FAILURE_WINDOW_SECONDS:
            recent.popleft()
        if not recent:
            del self.failures[address]
        return len(recent) >= FAILURES_ALLOWED

    def _users(self) -> dict[str, User]:
        """The members now; a change of users.json forgets every accepted login."""
        try:
            stamp = self.layout.users_file.stat()
            seen = (stamp.st_mtime_ns, stamp.st_size)
        except FileNotFoundError:
            seen = None
        if seen != self.users_seen:
            self.users_seen, self.accepted = seen, {}
        return self.layout.users()

    def check(self, address: str, header: str | None) -> tuple[int, User | None]:
        """(200, the member), (401, None) for no or a wrong login, (429, None) for an address
        that failed too often."""
        now = time.monotonic()
        fingerprint = hashlib.sha256((header or "").encode()).hexdigest()
        with self.lock:
            users = self._users()
            known = now - self.accepted.get(fingerprint, -1e9) < ACCEPTED_SECONDS
            if not known and self._throttled(address, now):
                return 429, None
        name, password = _basic(header)
        user = users.get(name)
        expected = user.mlflow_password if user is not None else self.stand_in
        matches = hmac.compare_digest(password.encode(), expected.encode())
        with self.lock:
            if user is not None and matches:
                self.accepted[fingerprint] = now
                return 200, user
            if header:  # no login at all is no guess
                self.failures[address].append(now)
        return 401, None


def _basic(header: str | None) -> tuple[str, str]:
    if not header or not header.startswith("Basic "):
        return "", ""
    try:
        name, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return name, password


def make_handler(registrar, gate: LoginGate | None, gateway_key: str | None):
    from mnist_ae.tracking.registry import Registration  # MLflow: only in the service

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args) -> None:
            sys.stderr.write(f"{self.client()} {format % args}\n")

        def client(self) -> str:
            """The caller's address: the gateway's word for it, on a network address."""
            return self.headers.get("X-Real-IP") or self.client_address[0]

        def answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="mnist-ae"')
            self.end_headers()
            self.wfile.write(data)

        def handle_any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.close_connection = True
                self.answer(413, {"error": f"a request of at most {MAX_BODY} bytes"})
                return
            body = self.rfile.read(length)
            if self.path == "/health":
                self.answer(200, {"status": "ok"})
                return
            if gateway_key is not None:
                given = self.headers.get(GATE_HEADER) or ""
                if not hmac.compare_digest(given.encode(), gateway_key.encode()):
                    self.answer(403, {"error": "only through the stack's gateway"})
                    return
            if self.path == "/login":  # the gateway's question about an MLflow request
                status, _ = gate.check(self.client(), self.headers.get("Authorization"))
                # the gateway turns a 403 into the 429 the client sees
                self.answer({429: 403}.get(status, status), {})
                return
            if self.command != "POST":
                self.answer(405, {"error": "POST only"})
                return
            if gate is not None:
                status, user = gate.check(self.client(), self.headers.get("Authorization"))
                if status != 200 or user.role != "writer":
                    why = {401: "no such login", 429: THROTTLED}
                    status = 403 if status == 200 else status
                    self.answer(
                        status, {"error": why.get(status, f"{user and user.name} is not a writer")}
                    )
                    return
            self.dispatch(body)

        def dispatch(self, body: bytes) -> None:
            try:
                request = json.loads(body)
                if self.path == "/register":
                    version = registrar.register(Registration(
                        str(request["name"]), str(request["model_uri"]), str(request["run_id"]),
                        str(request["digest"]), dict(request.get("tags") or {}),
                        str(request.get("description") or ""),
                    ))  # fmt: skip
                    self.answer(200, {"version": version})
                elif self.path == "/promote":
                    decision = registrar.promote(str(request["name"]), str(request["version"]))
                    self.answer(200, {"promoted": decision.promoted, "why": decision.why})
                else:
                    self.answer(404, {"error": "no such endpoint"})
            except (ValueError, KeyError, TypeError) as error:
                self.answer(400, {"error": f"a bad request ({type(error).__name__}: {error})"})
            except PipelineError as error:
                self.answer(400, {"error": str(error)})
            except Exception as error:
                traceback.print_exc()
                self.answer(502, {"error": f"{type(error).__name__}: {error}"[:400]})

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any

    return Handler


def main(root: str) -> None:
    from mnist_ae.stack.mlflow_server import AdminApi
    from mnist_ae.stack.registrar import RegistrarService
    from mnist_ae.tracking import champion, signing
    from mnist_ae.tracking.registrar import Registrar

    layout = Layout(Path(root))
    key = signing.load_private(RegistrarService().key_files(layout)[0])
    registrar, gate, gateway_key = Registrar(key, rule=champion.promote), None, None
    if layout.networked():
        admin = AdminApi(layout)
        revoke = lambda name: admin.revoke_model_grants(name, layout.users())  # noqa: E731
        registrar = Registrar(key, revoke, champion.promote)
        gate, gateway_key = LoginGate(layout), layout.secrets().gateway_key
    server = ThreadingHTTPServer(
        (LOOPBACK, layout.ports()["registrar"]), make_handler(registrar, gate, gateway_key)
    )
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
