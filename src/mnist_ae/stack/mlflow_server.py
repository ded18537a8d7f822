"""The MLflow tracking server: runs and the registry in PostgreSQL, artifacts proxied to a
SeaweedFS bucket, so clients need no S3 keys.

It listens on 127.0.0.1 only; on a network address the gateway (stack.gateway) serves it over
TLS, and it runs MLflow's own auth app: users and permissions in PostgreSQL,
a generated admin password and session key, no permission for a user nobody granted one, only
the Host headers clients use, and two roles: `reader` (read experiments, runs, artifacts and the
registry) and `writer` (also create runs, register versions, set tags and aliases). Workspaces
are on, so only a role that grants it can create experiments or registered models.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from typing import Any

from mnist_ae.plumbing.outputs import write_private
from mnist_ae.stack.layout import AUTH_DATABASE, MLFLOW_BUCKET, ROLES, Layout, User
from mnist_ae.stack.postgres import PostgreSQL
from mnist_ae.stack.processes import LOOPBACK, StackError, Started, answers_health
from mnist_ae.stack.service import Service

ADMIN = "admin"
WORKSPACE = "default"
AUTH_CACHE_SECONDS = 3600
# (resource type, pattern, permission) each role grants, on every experiment and model
GRANTS = {
    "reader": [("experiment", "*", "READ"), ("registered_model", "*", "READ")],
    # Registering a version and moving an alias both need EDIT on the registered model: the
    # stack's registrar does both, so writers only read it, and tag or delete versions (what
    # promote measured; what a failed training registered).
    "writer": [
        ("workspace", "*", "USE"),  # create the experiment
        ("experiment", "*", "EDIT"),
        ("registered_model", "*", "READ"),
        ("registered_model_version", "*", "MANAGE"),
    ],
}


def tls_context(layout: Layout) -> ssl.SSLContext:
    """Trust the stack's authority, and nothing else."""
    return ssl.create_default_context(cafile=str(layout.tls().ca))


class AdminApi:
    """MLflow's REST API as the stack's admin, for users and roles: on 127.0.0.1 only (the
    gateway lets no admin login through from the network)."""

    def __init__(self, layout: Layout) -> None:
        self.base = layout.internal_url("mlflow")
        token = f"{ADMIN}:{layout.secrets().mlflow_admin_password}".encode()
        self.headers = {
            "Authorization": "Basic " + base64.b64encode(token).decode(),
            "Content-Type": "application/json",
        }

    def call(self, method: str, path: str, body: dict | None = None, **query: str) -> Any:
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data, self.headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                text = answer.read().decode()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:300]
            raise StackError(f"mlflow: {method} {path} answered {error.code}: {detail}") from None
        return json.loads(text) if text.strip() else {}

    def roles(self) -> dict[str, int]:
        listed = self.call("GET", "/api/3.0/mlflow/roles/list", workspace=WORKSPACE)
        return {role["name"]: int(role["id"]) for role in listed.get("roles", [])}

    def ensure_roles(self) -> dict[str, int]:
        """The reader and writer roles with exactly their grants (made once)."""
        roles = self.roles()
        for name in ROLES:
            if name in roles:
                continue
            made = self.call(
                "POST", "/api/3.0/mlflow/roles/create", {"workspace": WORKSPACE, "name": name}
            )
            roles[name] = int(made["role"]["id"])
            for resource_type, pattern, permission in GRANTS[name]:
                grant = {
                    "role_id": roles[name],
                    "resource_type": resource_type,
                    "resource_pattern": pattern,
                    "permission": permission,
                }
                self.call("POST", "/api/3.0/mlflow/roles/permissions/add", grant)
        return roles

    def add_user(self, user: User) -> None:
        role_id = self.ensure_roles()[user.role]
        body = {"username": user.name, "password": user.mlflow_password}
        self.call("POST", "/api/2.0/mlflow/users/create", body)
        self.call(
            "POST", "/api/3.0/mlflow/roles/assign", {"username": user.name, "role_id": role_id}
        )

    def remove_user(self, name: str) -> None:
        self.call("DELETE", "/api/2.0/mlflow/users/delete", {"username": name})

    def revoke_model_grants(self, model: str, users: Iterable[str]) -> None:
        """Take back what a member got on registered model `model` by creating it (MLflow gives
        its creator MANAGE, which moves aliases): then the roles' grants alone apply."""
        for name in users:
            body = {"username": name, "resource_type": "registered_model", "resource_id": model}
            try:
                self.call("POST", "/api/3.0/mlflow/users/permissions/revoke", body)
            except StackError as error:
                if " 404:" not in str(error) and "RESOURCE_DOES_NOT_EXIST" not in str(error):
                    raise


class MlflowServer(Service):
    name = "mlflow"
    ports = ("mlflow",)

    def _auth_config(self, layout: Layout) -> str:
        """MLflow's auth app settings, in an owner-only file (they hold two passwords)."""
        path = layout.folder(self.name) / "auth.ini"
        admin_password = layout.secrets().mlflow_admin_password
        write_private(
            path,
            "[mlflow]\n"
            "default_permission = NO_PERMISSIONS\n"
            f"database_uri = {PostgreSQL().database_uri(layout, AUTH_DATABASE)}\n"
            f"admin_username = {ADMIN}\n"
            f"admin_password = {admin_password}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            "grant_default_workspace_access = false\n"
            # A password check (PBKDF2) costs about 0.5 s of a worker, and each worker checks
            # each login once per this long. A removed user's login is refused at once anyway:
            # the gateway's gate reads users.json on every request (MLflow's own note on this
            # setting warns of the opposite without such a gate).
            f"auth_cache_ttl_seconds = {AUTH_CACHE_SECONDS}\n",
        )
        return str(path)

    def start(self, layout: Layout) -> Started:
        secrets_ = layout.secrets()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
        env |= {
            # Passwords reach the server through its environment or owner-only files, never
            # its command line.
            "MLFLOW_BACKEND_STORE_URI": PostgreSQL().database_uri(layout),
            "MLFLOW_S3_ENDPOINT_URL": layout.internal_url("s3"),
            "AWS_CONFIG_FILE": str(layout.aws_config),
            "AWS_SHARED_CREDENTIALS_FILE": str(layout.aws_credentials),
            # The GenAI job runner (a huey process) serves nothing this project uses.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            # MLflow 3 reports its use to mlflow-telemetry.io unless told not to: a team's
            # private server talks to no one outside the team.
            "MLFLOW_DISABLE_TELEMETRY": "true",
            # its temporary files (a lock file per database it opens) stay in the stack folder
            "TMPDIR": str(self.private_tmp(layout)),
        }
        host, port = layout.host(), str(layout.ports()["mlflow"])
        command = [
            *(sys.executable, "-m", "mlflow", "server"),
            *("--artifacts-destination", f"s3://{MLFLOW_BUCKET}/artifacts"),
            *("--host", LOOPBACK, "--port", port, "--workers", str(layout.mlflow_workers())),
        ]
        if layout.networked():
            env |= {
                "MLFLOW_AUTH_CONFIG_PATH": self._auth_config(layout),
                "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets_.flask_secret_key,
            }
            command += [
                *("--app-name", "basic-auth", "--enable-workspaces"),
                # the Host the gateway passes on, and the stack's own calls on 127.0.0.1
                *("--allowed-hosts", f"{host}:{port},{host},{LOOPBACK}:{port},{LOOPBACK}"),
                *("--cors-allowed-origins", layout.url("mlflow")),
            ]
        # uvicorn and its workers: one process group, stopped together
        return Started.of(self._spawn(layout, command, env), group=True)

    def ready(self, layout: Layout) -> bool:
        return answers_health(layout.internal_url("mlflow"))

    def configure(self, layout: Layout) -> None:
        if layout.networked():
            AdminApi(layout).ensure_roles()
