"""Where the stack keeps its state (a git-ignored folder readable by its owner only), its address
and fixed ports, its secrets and its users.

Every port is pinned (SeaweedFS would otherwise move a taken port to the next free one without
saying so). Secrets and users are generated once, kept in owner-only files written atomically,
and never printed: clients read them through files (AWS_SHARED_CREDENTIALS_FILE, and
`stack env --user NAME`'s files). A damaged state file is one clear error naming it.
This module names the stack folder's own files and a folder per component; what lies inside a
component's folder is that component's module's business.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from mnist_ae.plumbing.outputs import write_private
from mnist_ae.stack.processes import LOOPBACK, StackError, Started
from mnist_ae.stack.tls import ServerTLS

DEFAULT_PORT_BASE = 15000
# MLflow server processes: 2 serve a team on 2 cores (MLflow's default of 4 is too many there);
# 1 is enough for one person and starts faster.
DEFAULT_MLFLOW_WORKERS = 2
# Offsets from the port base: one block of eleven ports for the whole stack.
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
    "registrar": 10,
}
MLFLOW_BUCKET = "mnist-ae-mlflow"  # MLflow's proxied artifacts
DVC_BUCKET = "mnist-ae-dvc"  # the DVC remote `team` (.dvc/config)
DATABASE = "mlflow"  # MLflow's runs and registry
AUTH_DATABASE = "mlflow_auth"  # MLflow's users and permissions (network stacks only)
ROLES = ("reader", "writer")
USER_NAME = re.compile(r"[a-z][a-z0-9_-]{1,31}")  # whole name: fullmatch (no "\n" after $)
RESERVED_NAMES = ("admin", "mnist-ae-stack")  # MLflow's admin, the stack's own S3 identity


@dataclass(frozen=True)
class Secrets:
    postgres_admin_password: str
    postgres_mlflow_password: str
    s3_access_key: str  # the stack's own S3 identity: MLflow's artifact proxy, the buckets
    s3_secret_key: str
    mlflow_admin_password: str  # MLflow's auth app (never its built-in default)
    flask_secret_key: str  # MLflow's auth app signs its sessions and forms with it
    jwt_write_key: str  # SeaweedFS: master, volume and filer sign their requests with these
    jwt_read_key: str
    jwt_filer_key: str
    jwt_filer_read_key: str
    gateway_key: str  # nginx proves with it that a request passed through it (X-Gate-Key)

    @classmethod
    def generate(cls) -> Secrets:
        values = {field.name: secrets.token_urlsafe(32) for field in fields(cls)}
        values["s3_access_key"] = "MNISTAE" + secrets.token_hex(6).upper()
        return cls(**values)


@dataclass(frozen=True)
class User:
    """A team member: a role, an MLflow login and an S3 identity."""

    name: str
    role: str  # reader or writer
    mlflow_password: str
    s3_access_key: str
    s3_secret_key: str

    @classmethod
    def new(cls, name: str, role: str) -> User:
        if not USER_NAME.fullmatch(name):
            raise StackError(
                f"user name {name!r}: 2-32 lower-case letters, digits, '-' or '_', first a letter"
            )
        if name in RESERVED_NAMES:
            raise StackError(f"user name {name!r} is the stack's own; choose another")
        if role not in ROLES:
            raise StackError(f"role {role!r}: one of {', '.join(ROLES)}")
        key = "MNISTAE" + secrets.token_hex(6).upper()
        return cls(name, role, secrets.token_urlsafe(24), key, secrets.token_urlsafe(30))


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return data
    except (OSError, ValueError) as error:  # JSONDecodeError is a ValueError
        raise StackError(
            f"{path}: {what} is damaged ({type(error).__name__}: {error}); restore it from a "
            "backup, or remove the stack folder to start a new stack (its data goes with it)"
        ) from None


@dataclass(frozen=True)
class Layout:
    """The stack folder: `stack.json` (address, ports, started processes), `secrets.json`,
    `users.json`, a folder per component (its data and log), `tls/` on a network address, and
    the files that give clients the S3 endpoint and keys."""

    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "stack.json"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    @property
    def users_file(self) -> Path:
        return self.root / "users.json"

    @property
    def aws_config(self) -> Path:
        return self.root / "aws" / "config"

    @property
    def aws_credentials(self) -> Path:
        return self.root / "aws" / "credentials"

    @property
    def model_key(self) -> Path:
        """The public half of the registrar's signing key (stack.registrar)."""
        return self.folder("registrar") / "signing.pub"

    def folder(self, component: str) -> Path:
        return self.root / component

    def log(self, component: str) -> Path:
        return self.folder(component) / f"{component}.log"

    def clients(self, user: str) -> Path:
        """What `stack env --user NAME` writes for that person's machine."""
        return self.root / "clients" / user

    def exists(self) -> bool:
        return self.state_file.is_file()

    def create(self) -> None:
        """The folder, readable by its owner only (and what an older stack left, made so)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)

    @contextlib.contextmanager
    def locked(self, command: str) -> Iterator[None]:
        """One `stack` command that changes the stack at a time; another gets a clear error."""
        self.create()
        with open(self.root / "stack.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StackError(
                    f"another stack command is changing {self.root} (it holds stack.lock); "
                    f"wait for it to finish, then run `stack {command}` again"
                ) from None
            yield

    # -- state ------------------------------------------------------------------------------
    def load_state(self) -> dict:
        if not self.state_file.is_file():
            return {}
        return _read_json(self.state_file, "the stack's state")

    def save_state(self, state: dict) -> None:
        self.create()
        write_private(self.state_file, json.dumps(state, indent=2, sort_keys=True) + "\n")

    def ports(self) -> dict[str, int]:
        base = int(self.load_state().get("port_base", DEFAULT_PORT_BASE))
        return {name: base + offset for name, offset in PORT_OFFSETS.items()}

    def mlflow_workers(self) -> int:
        return int(self.load_state().get("mlflow_workers", DEFAULT_MLFLOW_WORKERS))

    def host(self) -> str:
        """The address clients reach MLflow and S3 on (127.0.0.1: this machine only)."""
        return self.load_state().get("host", LOOPBACK)

    def networked(self) -> bool:
        """Reachable from other machines: TLS and logins."""
        return self.host() != LOOPBACK

    def started(self) -> dict[str, Started]:
        records = self.load_state().get("processes", {})
        return {name: Started(**record) for name, record in records.items()}

    def remember(self, **values: str) -> None:
        """Keep facts a later command needs in the state (where PostgreSQL's cluster is)."""
        state = self.load_state()
        if any(state.get(key) != value for key, value in values.items()):
            self.save_state(state | values)

    def record(self, component: str, process: Started | None) -> None:
        state = self.load_state()
        processes = state.setdefault("processes", {})
        if process is None:
            processes.pop(component, None)
        else:
            processes[component] = process.as_dict()
        self.save_state(state)

    # -- secrets and users --------------------------------------------------------------------
    def secrets(self) -> Secrets:
        """The stack's secrets, generated on first use (and any an older stack lacks)."""
        kept = _read_json(self.secrets_file, "secrets.json") if self.secrets_file.exists() else {}
        generated = asdict(Secrets.generate())
        merged = {name: kept.get(name, value) for name, value in generated.items()}
        if merged != kept:
            self.create()
            write_private(self.secrets_file, json.dumps(merged, indent=2) + "\n")
        return Secrets(**merged)

    def users(self) -> dict[str, User]:
        if not self.users_file.exists():
            return {}
        saved = _read_json(self.users_file, "users.json")
        return {name: User(**record) for name, record in saved.items()}

    def save_users(self, users: dict[str, User]) -> None:
        listed = {name: asdict(user) for name, user in sorted(users.items())}
        write_private(self.users_file, json.dumps(listed, indent=2) + "\n")

    # -- addresses --------------------------------------------------------------------------
    def tls(self) -> ServerTLS:
        folder = self.folder("tls")
        return ServerTLS(folder / "server.pem", folder / "server.key", folder / "ca.pem")

    def url(self, component: str) -> str:
        """How clients reach MLflow, S3 or the registrar: https on a network address (through
        the gateway)."""
        scheme = "https" if self.networked() else "http"
        return f"{scheme}://{self.host()}:{self.ports()[component]}"

    def internal_url(self, component: str) -> str:
        """How the stack's own components reach each other: plain HTTP on 127.0.0.1 (on a
        network address the gateway alone listens there)."""
        return f"http://{LOOPBACK}:{self.ports()[component]}"

    def write_aws_files(self, secrets_: Secrets) -> None:
        """What boto3, s3fs (DVC) and MLflow's server read on this machine: the endpoint on
        127.0.0.1 and the stack's keys."""
        write_private(
            self.aws_credentials,
            "[default]\n"
            f"aws_access_key_id = {secrets_.s3_access_key}\n"
            f"aws_secret_access_key = {secrets_.s3_secret_key}\n",
        )
        write_private(self.aws_config, aws_config_text(self.internal_url("s3"), None))

    def client_env(self) -> dict[str, str]:
        """What a shell on this machine needs (a loopback stack): the tracking server, and the
        S3 endpoint and keys for DVC."""
        return {
            "MLFLOW_TRACKING_URI": self.url("mlflow"),
            "MNIST_AE_REGISTRAR_URL": self.url("registrar"),
            "MNIST_AE_MODEL_KEY": str(self.model_key),
            "AWS_CONFIG_FILE": str(self.aws_config),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.aws_credentials),
        }


def aws_config_text(s3_url: str, ca: Path | None) -> str:
    """An AWS config file: the endpoint, and the certificate authority to trust on https."""
    lines = ["[default]", "region = us-east-1", f"endpoint_url = {s3_url}"]
    if ca is not None:
        lines.append(f"ca_bundle = {ca}")
    return "\n".join(lines) + "\n"
