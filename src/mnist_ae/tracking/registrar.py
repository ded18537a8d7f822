"""The registrar: the one that registers versions, signs them, and runs the champion rule.

It holds the store's signing key. With a local store it runs in the training's own process (the
key beside mlflow.db); with a stack, writers ask the stack's registrar service
(`MNIST_AE_REGISTRAR_URL`), which does the same work with the stack's key and the stack's own
MLflow login. Members cannot register versions or move `@champion` themselves: only the
registrar signs, and only the champion rule, run by it, moves the alias.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mnist_ae.tracking import model_card, registry, signing
from mnist_ae.tracking.registry import AnyRegistrar, Decision, Registration
from mnist_ae.tracking.store import TrackingError

URL_SETTING = "MNIST_AE_REGISTRAR_URL"  # a stack's registrar service, written by `stack env`
PENDING = {registry.OUTPUTS_TAG: "pending"}
Rule = Callable[[str, str], Decision]  # the champion rule (tracking.champion.promote)


class Registrar:
    """Registers and signs with `key`, and runs `rule` (the champion rule: given by whoever
    promotes, so that training code does not depend on it); `guard(name)` runs first on each
    call (the stack's service takes back any right a member got on a model by creating it)."""

    def __init__(
        self,
        key: Ed25519PrivateKey,
        guard: Callable[[str], None] = lambda name: None,
        rule: Rule | None = None,
    ) -> None:
        self.key, self.guard, self.rule = key, guard, rule

    def register(self, request: Registration) -> str:
        """A new version of the request's model from its logged model, signed if the request's
        run logged it and its files are the ones the training logged (their SHA-256), described
        by the request's model card and the signature; its number. Otherwise nothing stays
        registered."""
        import mlflow
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        name, model_uri, run_id, digest = (
            request.name, request.model_uri, request.run_id, request.digest
        )  # fmt: skip
        client = MlflowClient()
        try:
            client.create_registered_model(name)
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        self.guard(name)
        tags = {key: str(value) for key, value in request.tags.items()} | PENDING
        version = mlflow.register_model(model_uri, name, tags=tags)
        number = str(version.version)
        try:
            if version.run_id != run_id:
                raise registry.ModelFilesError(
                    f"{model_uri} was logged by run {version.run_id}, not by run {run_id}; "
                    "not registered"
                )
            with tempfile.TemporaryDirectory(prefix="registered-") as copy:
                _, stored = registry.download_with_digest(f"models:/{name}/{number}", Path(copy))
            if stored != digest:
                raise registry.ModelFilesError(
                    f"{model_uri}: its files have SHA-256 {stored[:16]}..., not the "
                    f"{digest[:16]}... the training logged: changed between logging and "
                    "registering; not registered"
                )
            signature = signing.sign(self.key, name, number, version.creation_timestamp, stored)
            client.set_model_version_tag(name, number, signing.DIGEST_TAG, stored)
            client.set_model_version_tag(name, number, signing.SIGNATURE_TAG, signature)
            signed = model_card.signature_section(stored, signature, signing.PUBLIC_KEY_SETTING)
            card = request.description.replace(model_card.VERSION_SLOT, number) + signed
            client.update_model_version(name, number, description=card)
        except BaseException:
            registry.delete_version(name, number)
            raise
        return number

    def promote(self, name: str, version: str) -> Decision:
        if self.rule is None:
            raise TypeError("this registrar was made without the champion rule")
        self.guard(name)
        return self.rule(name, version)


class RemoteRegistrar:
    """A stack's registrar service, called with the member's MLflow login."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        authority = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH")
        self.context = ssl.create_default_context(cafile=authority) if authority else None
        self.headers = {"Content-Type": "application/json"}
        user = os.environ.get("MLFLOW_TRACKING_USERNAME")
        if user:
            login = f"{user}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(login).decode()

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.url + path, json.dumps(body).encode(), self.headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=300, context=self.context) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as error:
            try:
                why = json.loads(error.read()).get("error", "")
            except ValueError:
                why = ""
            raise TrackingError(
                f"the stack's registrar {self.url} refused {path[1:]} (HTTP {error.code})"
                + (f": {why}" if why else "")
            ) from None
        except (OSError, ValueError) as error:
            raise TrackingError(
                f"the stack's registrar {self.url} ({URL_SETTING}) does not answer "
                f"({getattr(error, 'reason', error)}); is the stack up (python3 dev.py stack up)?"
            ) from None

    def register(self, request: Registration) -> str:
        body = asdict(request) | {"tags": {k: str(v) for k, v in request.tags.items()}}
        return str(self.call("/register", body)["version"])

    def promote(self, name: str, version: str) -> Decision:
        answer = self.call("/promote", {"name": name, "version": str(version)})
        return Decision(bool(answer["promoted"]), str(answer["why"]))


def for_store(rule: Rule | None = None) -> AnyRegistrar:
    """The registrar of the store MLflow points at: this process with the local store's key
    (running `rule` to promote), or the stack's service (which has its own)."""
    import mlflow

    uri = mlflow.get_tracking_uri()
    local = signing.local_key_path(uri)
    if local is not None:
        return Registrar(signing.load_or_create_private(local), rule=rule)
    url = os.environ.get(URL_SETTING)
    if not url:
        raise TrackingError(
            f"{URL_SETTING} is not set: versions on {uri} are registered by the stack's "
            'registrar; run eval "$(python3 dev.py stack env ...)" first'
        )
    return RemoteRegistrar(url)
