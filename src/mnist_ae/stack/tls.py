"""TLS for a stack on a network address: a small certificate authority of the stack's own, and a
server certificate it signs for the address clients use (or the user's own certificate and key).
Clients trust the authority's certificate alone (`ca.pem`), never the system's store."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mnist_ae.plumbing.outputs import write_private

_CA_YEARS, _SERVER_DAYS = 10, 825  # 825 days: the longest some TLS clients accept


@dataclass(frozen=True)
class ServerTLS:
    """The files a TLS server and its clients need."""

    certificate: Path  # the server's certificate (then the chain, if any)
    key: Path  # its private key, readable by the stack's owner only
    ca: Path  # what clients trust

    def exist(self) -> bool:
        return all(path.is_file() for path in (self.certificate, self.key, self.ca))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def subject_alternative_name(host: str) -> x509.GeneralName:
    """An IP address or a DNS name, as clients will compare it with the address they dial."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _builder(subject: x509.Name, issuer: x509.Name, key, days: int) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _write(path: Path, certificate: x509.Certificate) -> None:
    write_private(path, certificate.public_bytes(serialization.Encoding.PEM).decode())


def name_constraints(names: list[str]) -> x509.NameConstraints:
    """What an authority may vouch for: exactly these addresses, these DNS names (and names
    below them), and no other. A type of name not listed gets one permitted name that can never
    be dialled, so a browser that trusts the authority trusts it for nothing else."""
    addresses, dns = [], []
    for name in names:
        general = subject_alternative_name(name)
        if isinstance(general, x509.IPAddress):
            addresses.append(x509.IPAddress(ipaddress.ip_network(general.value)))
        else:
            dns.append(general)
    if not addresses:
        addresses = [x509.IPAddress(ipaddress.ip_network("0.0.0.0/32"))]
    return x509.NameConstraints(addresses + (dns or [x509.DNSName("invalid")]), None)


def make_authority(
    folder: Path, names: list[str], client_too: bool = False, keep_key: bool = True
) -> ServerTLS:
    """A new authority in `folder` (ca.pem, and ca.key with `keep_key`) and a certificate it
    signs (server.pem, server.key) for the addresses and names `names`, the only ones the
    authority may vouch for (NameConstraints); `client_too`: the certificate also proves a
    client (mutual TLS between a server's own components). Keys are 0600."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"mnist-ae stack CA ({folder.name})")
    ca = (
        _builder(ca_name, ca_name, ca_key, 365 * _CA_YEARS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )  # key_cert_sign, crl_sign
        .add_extension(name_constraints(names), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] + ([ExtendedKeyUsageOID.CLIENT_AUTH] * client_too)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        # not an address in the subject: OpenSSL would hold it to the DNS name constraints
        _builder(_name("mnist-ae stack server"), ca_name, server_key, _SERVER_DAYS)
        .add_extension(
            x509.SubjectAlternativeName([subject_alternative_name(n) for n in names]), False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    tls = ServerTLS(folder / "server.pem", folder / "server.key", folder / "ca.pem")
    if keep_key:
        write_private(folder / "ca.key", _pem_key(ca_key).decode())
    write_private(tls.key, _pem_key(server_key).decode())
    _write(tls.certificate, server)
    _write(tls.ca, ca)
    return tls


def names_in(certificate: Path) -> list[str]:
    """The addresses and names a certificate is valid for (its subject alternative names)."""
    loaded = x509.load_pem_x509_certificate(certificate.read_bytes())
    try:
        names = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(value) for value in names.get_values_for_type(x509.IPAddress)] + list(
        names.get_values_for_type(x509.DNSName)
    )


def pair_intact(certificate: Path, key: Path, ca: Path) -> bool:
    """Whether the files load, and the key is the certificate's and the authority signed it."""
    try:
        loaded = x509.load_pem_x509_certificate(certificate.read_bytes())
        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
        authority = x509.load_pem_x509_certificate(ca.read_bytes())
        loaded.verify_directly_issued_by(authority)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return loaded.public_key().public_bytes(der, spki) == private.public_key().public_bytes(
        der, spki
    )
