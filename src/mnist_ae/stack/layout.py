"""Where the stack keeps its state (a git-ignored folder), its fixed ports and its secrets.

Every port is pinned (SeaweedFS would otherwise move a taken port to the next free one without
saying so); secrets are generated once, kept only in files readable by their owner, and never
printed: clients find the S3 keys through AWS_SHARED_CREDENTIALS_FILE.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from mnist_ae.stack.processes import LOOPBACK, Started

DEFAULT_PORT_BASE = 15000
# Offsets from the port base: one block of ten ports for the whole stack.
PORT_OFFSETS = {
    "mlflow": 0,
    "postgres": 1,
    "s3": 2,
    "s3.grpc": 3,
    "master": 4,
    "master.grpc": 5,
    "volume": 6,
    "volume.grpc": 7,
    "filer": 8,
    "filer.grpc": 9,
}
MLFLOW_BUCKET = "mnist-ae-mlflow"  # MLflow's proxied artifacts
DVC_BUCKET = "mnist-ae-dvc"  # the DVC remote `team` (.dvc/config)
DATABASE = "mlflow"


@dataclass(frozen=True)
class Secrets:
    postgres_admin_password: str
    postgres_mlflow_password: str
    s3_access_key: str
    s3_secret_key: str

    @classmethod
    def generate(cls) -> Secrets:
        return cls(
            postgres_admin_password=secrets.token_urlsafe(24),
            postgres_mlflow_password=secrets.token_urlsafe(24),
            s3_access_key="MNISTAE" + secrets.token_hex(6).upper(),
            s3_secret_key=secrets.token_urlsafe(30),
        )


def write_private(path: Path, text: str) -> None:
    """Create or replace a file only its owner can read (the content never passes a wider mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    tmp.replace(path)


@dataclass(frozen=True)
class Layout:
    """The stack folder: `stack.json` (ports, started processes), `secrets.json`, a folder per
    component (its data and log), and the AWS files that give clients the S3 endpoint and keys."""

    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "stack.json"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    @property
    def aws_config(self) -> Path:
        return self.root / "aws" / "config"

    @property
    def aws_credentials(self) -> Path:
        return self.root / "aws" / "credentials"

    def folder(self, component: str) -> Path:
        return self.root / component

    def log(self, component: str) -> Path:
        """Inside the component's folder: PostgreSQL writes its log as its own account."""
        return self.folder(component) / f"{component}.log"

    def exists(self) -> bool:
        return self.state_file.is_file()

    # -- state ------------------------------------------------------------------------------
    def load_state(self) -> dict:
        if not self.state_file.is_file():
            return {}
        return json.loads(self.state_file.read_text())

    def save_state(self, state: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.state_file)

    def ports(self) -> dict[str, int]:
        base = int(self.load_state().get("port_base", DEFAULT_PORT_BASE))
        return {name: base + offset for name, offset in PORT_OFFSETS.items()}

    def started(self) -> dict[str, Started]:
        records = self.load_state().get("processes", {})
        return {name: Started(**record) for name, record in records.items()}

    def record(self, component: str, process: Started | None) -> None:
        state = self.load_state()
        processes = state.setdefault("processes", {})
        if process is None:
            processes.pop(component, None)
        else:
            processes[component] = process.as_dict()
        self.save_state(state)

    # -- secrets ----------------------------------------------------------------------------
    def secrets(self) -> Secrets:
        """The stack's secrets, generated on first use and kept in an owner-only file."""
        if self.secrets_file.is_file():
            return Secrets(**json.loads(self.secrets_file.read_text()))
        generated = Secrets.generate()
        write_private(self.secrets_file, json.dumps(generated.__dict__, indent=2) + "\n")
        return generated

    def write_aws_files(self, secrets_: Secrets) -> None:
        """What boto3, s3fs (DVC) and MLflow's server read: the endpoint and the keys."""
        s3_url = self.url("s3")
        write_private(
            self.aws_credentials,
            "[default]\n"
            f"aws_access_key_id = {secrets_.s3_access_key}\n"
            f"aws_secret_access_key = {secrets_.s3_secret_key}\n",
        )
        self.aws_config.write_text(f"[default]\nregion = us-east-1\nendpoint_url = {s3_url}\n")

    def url(self, component: str) -> str:
        return f"http://{LOOPBACK}:{self.ports()[component]}"

    def client_env(self) -> dict[str, str]:
        """What a shell needs: the tracking server, and the S3 endpoint and keys for DVC."""
        return {
            "MLFLOW_TRACKING_URI": self.url("mlflow"),
            "AWS_CONFIG_FILE": str(self.aws_config),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.aws_credentials),
        }
