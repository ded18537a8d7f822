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


def test_the_authority_vouches_for_its_own_addresses_only(tmp_path):
    """Its key stolen, it still cannot make a certificate any client takes for another site."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

    make_authority(tmp_path, ["10.0.0.5"])
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((tmp_path / "ca.key").read_bytes(), None)
    verifier = PolicyBuilder().store(Store([ca]))

    def leaf(name: x509.GeneralName) -> x509.Certificate:
        key, now = ec.generate_private_key(ec.SECP256R1()), datetime.datetime.now(datetime.UTC)
        subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "forged")])
        return (
            x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([name]), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip

    server = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes())
    verifier.build_server_verifier(x509.IPAddress(ipaddress.ip_address("10.0.0.5"))).verify(
        server, []
    )
    own = x509.IPAddress(ipaddress.ip_address("10.0.0.5"))
    verifier.build_server_verifier(own).verify(leaf(own), [])  # made right: only names differ
    for name in (x509.DNSName("bank.example"), x509.IPAddress(ipaddress.ip_address("10.0.0.6"))):
        with pytest.raises(VerificationError, match="no permitted name constraints matched"):
            verifier.build_server_verifier(name).verify(leaf(name), [])


def test_openssl_takes_the_certificate_of_an_authority_for_one_address(tmp_path):
    """The address is in the subject alternative name only: OpenSSL holds a subject that looks
    like a host name to the DNS constraints, which allow none here."""
    make_authority(tmp_path, ["127.0.0.1"])
    with serving(server_context(tmp_path, demand_certificate=False)) as port:
        client = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            client.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(b"ping")
            assert tls.recv(100).startswith(b"HTTP/1.1 200")
