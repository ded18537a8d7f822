"""PostgreSQL from Debian's package: a cluster in the stack folder, TCP on loopback only, run as the
unprivileged `postgres` account when we are root; MLflow's runs, registry and users live in it."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from mnist_ae.stack.layout import DATABASE, Layout, write_private
from mnist_ae.stack.processes import LOOPBACK, StackError, Started
from mnist_ae.stack.service import Service

POSTGRES_USER = "postgres"  # the unprivileged account the cluster runs as when we are root


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
