"""The check `stack up` makes of each SeaweedFS port other local accounts could reach: it must
speak TLS with the stack's internal certificate and refuse a client without one. Real sockets
on free loopback ports: a plaintext server, a TLS server that asks for no client certificate,
and one that demands it."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mnist_ae.stack.seaweedfs import tls_problem
from mnist_ae.stack.tls import make_authority, pair_intact


@pytest.fixture(scope="module")
def authority(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("grpc")
    make_authority(folder, ["127.0.0.1", "localhost"], client_too=True)
    return folder


@contextlib.contextmanager
def serving(context: ssl.SSLContext | None) -> Iterator[int]:
    """A server on a free loopback port answering each connection with a line (over TLS when
    `context` is given); stopped afterwards."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def answer() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with contextlib.suppress(OSError, ssl.SSLError):
                connection.settimeout(3)
                if context is not None:
                    connection = context.wrap_socket(connection, server_side=True)
                connection.recv(100)
                connection.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
            connection.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def server_context(authority: Path, demand_certificate: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(authority / "server.pem", authority / "server.key")
    if demand_certificate:
        context.load_verify_locations(authority / "ca.pem")
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def test_a_plaintext_port_is_caught(authority):
    with serving(None) as port:
        assert tls_problem(port, authority, None).startswith(
            "does not speak TLS with the stack's internal certificate"
        )


def test_a_port_that_asks_no_client_certificate_is_caught(authority):
    with serving(server_context(authority, demand_certificate=False)) as port:
        assert tls_problem(port, authority, None) == "answers a client without a certificate"


def test_a_port_that_demands_the_internal_certificate_passes(authority):
    with serving(server_context(authority, demand_certificate=True)) as port:
        assert tls_problem(port, authority, None) is None


def test_a_damaged_or_mismatched_certificate_is_not_intact(authority, tmp_path):
    files = (authority / "server.pem", authority / "server.key", authority / "ca.pem")
    assert pair_intact(*files)
    other = tmp_path / "other"
    other.mkdir()
    make_authority(other, ["127.0.0.1"])
    assert not pair_intact(files[0], other / "server.key", files[2])  # not its key
    assert not pair_intact(files[0], files[1], other / "ca.pem")  # not signed by that one
    truncated = tmp_path / "server.pem"
    truncated.write_bytes(files[0].read_bytes()[:100])
    assert not pair_intact(truncated, files[1], files[2])
