"""The stack's registrar service: writers ask it to register and sign a version of a model they
logged, and to run the champion rule; it does both with the stack's signing key and the stack's
own MLflow login (tracking.registrar.Registrar).

On a network address it speaks TLS and takes the writers' MLflow logins (HTTP basic): a known and
an unknown name cost the same comparison, and an address that keeps failing is answered 429
without any check until its failures age out. Run by `stack up` as
`python -m mnist_ae.stack.registrar_app STACK_DIR`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import ssl
import sys
import threading
import time
import traceback
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from mnist_ae.plumbing.errors import PipelineError
from mnist_ae.stack.layout import Layout

FAILURES_ALLOWED = 5  # failed logins per address in a window before it is answered 429 only
FAILURE_WINDOW_SECONDS = 60.0
MAX_BODY = 64 * 1024  # a request names a model and a few tags


class LoginGate:
    """HTTP basic logins of the stack's writers, throttled per source address."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.failures: dict[str, deque[float]] = defaultdict(deque)
        self.lock = threading.Lock()
        self.stand_in = secrets.token_urlsafe(24)  # compared for an unknown name

    def throttled(self, address: str) -> bool:
        with self.lock:
            recent = self.failures[address]
            while recent and recent[0] < time.monotonic() - FAILURE_WINDOW_SECONDS:
                recent.popleft()
            if not recent:
                del self.failures[address]
            return len(recent) >= FAILURES_ALLOWED

    def failed(self, address: str) -> None:
        with self.lock:
            self.failures[address].append(time.monotonic())

    def check(self, address: str, header: str | None) -> tuple[int, str]:
        """(HTTP status, the writer's name): 200, 401 (no such login), 403 (not a writer),
        429 (this address failed too often)."""
        if self.throttled(address):
            return 429, ""
        name, password = _basic(header)
        user = self.layout.users().get(name)
        expected = user.mlflow_password if user is not None else self.stand_in
        matches = hmac.compare_digest(password.encode(), expected.encode())
        if user is None or not matches:
            self.failed(address)
            return 401, ""
        return (200, name) if user.role == "writer" else (403, name)


def _basic(header: str | None) -> tuple[str, str]:
    if not header or not header.startswith("Basic "):
        return "", ""
    try:
        name, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return name, password


def make_handler(layout: Layout, registrar, gate: LoginGate | None):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args) -> None:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

        def answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="mnist-ae registrar"')
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/health":
                self.answer(200, {"status": "ok"})
            else:
                self.answer(404, {"error": "no such page"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.close_connection = True
                self.answer(413, {"error": f"a request of at most {MAX_BODY} bytes"})
                return
            body = self.rfile.read(length)
            if gate is not None:
                status, who = gate.check(self.client_address[0], self.headers.get("Authorization"))
                if status != 200:
                    why = {
                        401: "no such login",
                        403: f"{who} is not a writer",
                        429: "too many failed logins from this address: wait a minute",
                    }
                    self.answer(status, {"error": why[status]})
                    return
            try:
                request = json.loads(body)
                if self.path == "/register":
                    version = registrar.register(
                        str(request["name"]), str(request["model_uri"]), str(request["run_id"]),
                        str(request["digest"]), dict(request.get("tags") or {}),
                    )  # fmt: skip
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

    return Handler


def main(root: str) -> None:
    from mnist_ae.stack.mlflow_server import AdminApi
    from mnist_ae.stack.registrar import RegistrarService
    from mnist_ae.tracking import champion, signing
    from mnist_ae.tracking.registrar import Registrar

    layout = Layout(Path(root))
    service = RegistrarService()
    key = signing.load_private(service.key_files(layout)[0])
    registrar = Registrar(key, rule=champion.promote)
    if layout.networked():
        admin = AdminApi(layout)
        revoke = lambda name: admin.revoke_model_grants(name, layout.users())  # noqa: E731
        registrar = Registrar(key, revoke, champion.promote)
    gate = LoginGate(layout) if layout.networked() else None
    server = ThreadingHTTPServer(
        (layout.host(), layout.ports()["registrar"]), make_handler(layout, registrar, gate)
    )
    if layout.networked():
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(layout.tls().certificate, layout.tls().key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
