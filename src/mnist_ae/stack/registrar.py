"""The stack's registrar service (stack.registrar_app): the only holder of the stack's model
signing key, in its folder (`registrar/signing.key`, owner-only); members get the public key
(`registrar/signing.pub`) with `stack env`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mnist_ae.plumbing.outputs import write_private
from mnist_ae.stack.layout import Layout
from mnist_ae.stack.processes import Started, answers_health
from mnist_ae.stack.service import Service


class RegistrarService(Service):
    name = "registrar"
    ports = ("registrar",)

    def key_files(self, layout: Layout) -> tuple[Path, Path]:
        """(private, public): made on first start, kept across restarts."""
        return layout.folder(self.name) / "signing.key", layout.model_key

    def start(self, layout: Layout) -> Started:
        from mnist_ae.stack.mlflow_server import ADMIN
        from mnist_ae.tracking import signing

        private, public = self.key_files(layout)
        layout.folder(self.name).mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(public, signing.public_pem(signing.load_or_create_private(private)))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
        env |= {
            "MLFLOW_TRACKING_URI": layout.internal_url("mlflow"),
            signing.PUBLIC_KEY_SETTING: str(public),  # the champion rule checks versions
            "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false",
            "TMPDIR": str(self.private_tmp(layout)),
        }
        if layout.networked():
            env |= {
                "MLFLOW_TRACKING_USERNAME": ADMIN,
                "MLFLOW_TRACKING_PASSWORD": layout.secrets().mlflow_admin_password,
            }
        command = [sys.executable, "-m", "mnist_ae.stack.registrar_app", str(layout.root)]
        return Started.of(self._spawn(layout, command, env))

    def ready(self, layout: Layout) -> bool:
        return answers_health(layout.internal_url("registrar"))
