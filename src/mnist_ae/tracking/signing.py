"""Registrations signed by whoever holds the store's signing key: an Ed25519 signature over the
registered model's name, the version's number and creation time, and the SHA-256 of all its files.

The key never leaves its holder. On a local store that is the user (a key file beside
mlflow.db); on a stack it is the stack's registrar, and members get the public key
(`MNIST_AE_MODEL_KEY`, written by `stack env`). A writer can change a version's tags and, through
MLflow's artifact API, its files, but cannot make a signature for them: every loader checks the
signature, then the files against the digest it signs, before anything is unpickled or imported.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mnist_ae.plumbing.outputs import write_private
from mnist_ae.tracking.store import TrackingError

PUBLIC_KEY_SETTING = "MNIST_AE_MODEL_KEY"  # a member's copy of the stack's public key (PEM)
LOCAL_KEY = "mlflow-signing.key"  # beside a local store's mlflow.db
DIGEST_TAG = "model_sha256"  # version tag: the SHA-256 of its files, as signed
SIGNATURE_TAG = "model_signature"  # version tag: the signature, base64
_CONTEXT = b"mnist-ae registered model version\n"


def message(name: str, version: str, created_ms: int, digest: str) -> bytes:
    """What is signed: a deleted and re-created version gets another creation time, so no
    signature outlives the version it was made for."""
    return _CONTEXT + f"{name}\n{version}\n{created_ms}\n{digest}\n".encode()


def sign(key: Ed25519PrivateKey, name: str, version: str, created_ms: int, digest: str) -> str:
    return base64.b64encode(key.sign(message(name, version, created_ms, digest))).decode()


def signature_holds(
    key: Ed25519PublicKey, signature: str, name: str, version: str, created_ms: int, digest: str
) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True),
                   message(name, version, created_ms, digest))  # fmt: skip
    except (InvalidSignature, ValueError):
        return False
    return True


def load_or_create_private(path: Path) -> Ed25519PrivateKey:
    """The signing key in `path` (PEM, owner-only), made on first use. Queued experiments may
    start together: the first key linked into place wins, and every process uses that one."""
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        made = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        write_private(made, pem.decode())
        try:
            os.link(made, path)
        except FileExistsError:
            pass  # another process made it meanwhile: theirs is the key
        finally:
            made.unlink()
    return load_private(path)


def load_private(path: Path) -> Ed25519PrivateKey:
    key = _load(path, serialization.load_pem_private_key, "private", password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise TrackingError(f"{path}: not an Ed25519 private key")
    return key


def public_pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _load(path: Path, loader, kind: str, **options):
    try:
        return loader(path.read_bytes(), **options)
    except OSError as error:
        raise TrackingError(
            f"{path}: the model signing {kind} key cannot be read ({error.strerror})"
        ) from None
    except ValueError:
        raise TrackingError(f"{path}: not a PEM {kind} key (damaged?)") from None


def local_key_path(tracking_uri: str) -> Path | None:
    """Where a local SQLite store keeps its signing key; None for a server."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(unquote(urlparse(tracking_uri).path)).parent / LOCAL_KEY


def trusted_key(tracking_uri: str) -> Ed25519PublicKey:
    """The key whose signatures this machine trusts for the store `tracking_uri`: a local
    store's own, or the stack's (`MNIST_AE_MODEL_KEY`)."""
    local = local_key_path(tracking_uri)
    if local is not None:
        if not local.exists():
            raise TrackingError(
                f"{local}: the local store's model signing key is missing, so none of its "
                "versions can be trusted; train again (python3 dev.py repro) to make a new key"
            )
        return load_private(local).public_key()
    setting = os.environ.get(PUBLIC_KEY_SETTING)
    if not setting:
        raise TrackingError(
            f"{PUBLIC_KEY_SETTING} is not set: the stack's public model key is needed to check "
            f'versions from {tracking_uri}; run eval "$(python3 dev.py stack env ...)" first'
        )
    key = _load(Path(setting), serialization.load_pem_public_key, "public")
    if not isinstance(key, Ed25519PublicKey):
        raise TrackingError(f"{setting}: not an Ed25519 public key ({PUBLIC_KEY_SETTING})")
    return key
