"""PostgreSQL from Debian's package: a cluster of the stack's own, TCP on loopback only. It holds
MLflow's runs and registry (database `mlflow`) and, on a network address, MLflow's users and
permissions (database `mlflow_auth`).

PostgreSQL refuses to run as root, so a root stack runs it as the unprivileged `postgres`
account, with its cluster outside the stack folder (which stays readable by its owner only, even
in a 0700 home such as /root): in `$MNIST_AE_PG_CLUSTERS/<id>/`, by default
`~postgres/mnist-ae-stacks/<id>/`. Root makes those folders from nothing and writes nothing
through a link the postgres account could plant (`stack.folders`), and signals only a process
that is this cluster's postmaster. The server programs are those of the cluster's own PG_VERSION.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
from contextlib import ExitStack
from pathlib import Path

import psutil

from mnist_ae.plumbing.digests import sha256_bytes
from mnist_ae.stack.folders import Account, Folder
from mnist_ae.stack.layout import AUTH_DATABASE, DATABASE, Layout
from mnist_ae.stack.processes import LOOPBACK, StackError, Started
from mnist_ae.stack.service import Service

POSTGRES_USER = "postgres"  # the unprivileged account the cluster runs as when we are root
CLUSTERS_SETTING = "MNIST_AE_PG_CLUSTERS"  # where new clusters go (tests: a fresh folder)


def _as_root() -> bool:
    return os.geteuid() == 0


def installed_versions() -> dict[str, Path]:
    """Debian installs each version's server programs under /usr/lib/postgresql/<v>/bin."""
    found = {Path(p).parts[-2]: Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")}
    if not found and shutil.which("initdb"):
        found["path"] = Path(shutil.which("initdb")).parent
    return found


def _newest(versions: dict[str, Path]) -> Path:
    return versions[max(versions, key=lambda v: int(v) if v.isdigit() else 0)]


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", POSTGRES_USER, "--", *command] if _as_root() else command


class PostgreSQL(Service):
    name = "postgres"
    ports = ("postgres",)
    stop_signal = signal.SIGINT  # PostgreSQL's "fast" shutdown: roll back clients, exit cleanly

    def missing(self) -> str | None:
        if not installed_versions():
            return "PostgreSQL is not installed (Debian/Ubuntu: apt-get install postgresql)"
        if _as_root():
            try:
                pwd.getpwnam(POSTGRES_USER)
            except KeyError:
                return f"running as root needs the unprivileged user {POSTGRES_USER!r}"
        return None

    def account(self) -> Account:
        """The account PostgreSQL runs as."""
        return Account.named(POSTGRES_USER) if _as_root() else Account.current()

    def cluster(self, layout: Layout) -> Path:
        """The cluster's folder: its data and its log. Where `up` first made it (stack.json
        keeps it); for a new one `$MNIST_AE_PG_CLUSTERS/<id>` (named by the stack folder), else,
        for root, the same in the postgres account's home, else inside the stack folder."""
        kept = layout.load_state().get("postgres_cluster")
        if kept:
            return Path(kept)
        place = os.environ.get(CLUSTERS_SETTING)
        if not place and not _as_root():
            return layout.folder("postgres")
        home = Path(place or Path(pwd.getpwnam(POSTGRES_USER).pw_dir) / "mnist-ae-stacks")
        home = Path(os.path.normpath(home.absolute()))
        return home / sha256_bytes(str(layout.root).encode())[:16]

    def data_dir(self, layout: Layout) -> Path:
        return self.cluster(layout) / "data"

    def log(self, layout: Layout) -> Path:
        return self.cluster(layout) / "postgres.log"  # PostgreSQL writes it as its own account

    def programs(self, layout: Layout) -> Path:
        """The server programs of the cluster's PG_VERSION (the newest for a new cluster)."""
        versions = installed_versions()
        marker = self.data_dir(layout) / "PG_VERSION"
        if not marker.is_file():
            return _newest(versions)
        version = marker.read_text()[:16].strip()  # the postgres account's file: shown only
        if not version.isdigit():  # if it is a version number
            raise StackError(f"postgres: {marker} is not a PostgreSQL version file")
        if version not in versions:
            raise StackError(
                f"postgres: the cluster in {self.data_dir(layout)} is PostgreSQL {version}, which "
                f"is not installed (found: {', '.join(sorted(versions)) or 'none'}); install "
                f"postgresql-{version}"
            )
        return versions[version]

    def _run(self, command: list[str], what: str) -> None:
        result = subprocess.run(_as_postgres(command), capture_output=True, text=True)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise StackError(f"postgres: {what} failed: {detail[-1] if detail else 'no output'}")

    def _holder(self, layout: Layout, stack: ExitStack) -> Folder:
        """The caller's folder that holds the cluster, reached and made safely: only the
        account that runs PostgreSQL passes through it when that is not the caller."""
        cluster, account = self.cluster(layout), self.account()
        mode = 0o700 if account == Account.current() else 0o711
        above = stack.enter_context(Folder.reach(cluster.parent.parent, account))
        return stack.enter_context(above.child(cluster.parent.name, mode, Account.current()))

    def _prepare(self, layout: Layout) -> None:
        """The cluster's folder, owned by the account that runs it, and a new cluster (once)."""
        cluster, account = self.cluster(layout), self.account()
        with ExitStack() as stack:
            holder = self._holder(layout, stack)
            stack.enter_context(holder.child(cluster.name, 0o700, account))
            layout.remember(postgres_cluster=str(cluster))
            if (self.data_dir(layout) / "PG_VERSION").is_file():
                return
            # initdb reads the admin password from a file only its account can read, beside the
            # cluster in the caller's folder (never in a folder of the postgres account's)
            name = f"{cluster.name}.initdb.pw"
            secret = layout.secrets().postgres_admin_password + "\n"
            password_file = holder.write_secret(name, secret, account)
            initdb = str(self.programs(layout) / "initdb")
            try:
                self._run(
                    [
                        *(initdb, "-D", str(self.data_dir(layout)), "-U", "admin"),
                        *(f"--pwfile={password_file}", "-A", "scram-sha-256"),
                        *("-E", "UTF8", "--no-locale"),
                    ],
                    "initdb",
                )
            finally:
                holder.remove_file(name)

    def delete(self, layout: Layout) -> None:
        """The cluster, for good (`stack down --delete`), without following a link in it."""
        if not os.path.lexists(self.cluster(layout)):
            return
        with ExitStack() as stack:
            self._holder(layout, stack).remove_tree(self.cluster(layout).name)

    def start(self, layout: Layout) -> Started:
        self._prepare(layout)
        port = layout.ports()["postgres"]
        # TCP on loopback only; no Unix socket (its path could be too long, and is not needed).
        options = f"-c listen_addresses={LOOPBACK} -c port={port} -c unix_socket_directories="
        pg_ctl = str(self.programs(layout) / "pg_ctl")
        try:
            self._run(
                [
                    *(pg_ctl, "start", "-w", "-t", "30", "-D", str(self.data_dir(layout))),
                    *("-l", str(self.log(layout)), "-o", options),
                ],
                "pg_ctl start",
            )
            postmaster = self._postmaster(layout)
            if postmaster is None:
                raise StackError(
                    f"postgres: {self.data_dir(layout) / 'postmaster.pid'} names no process of "
                    "this cluster's PostgreSQL; see its log " + str(self.log(layout))
                )
            return postmaster
        except BaseException:
            self._stop_postmaster(layout)  # a start that timed out may have left it running
            raise

    def _postmaster(self, layout: Layout) -> Started | None:
        """The process that postmaster.pid names, if it is this cluster's postmaster: the
        server program of its version, run by its account with its data folder. The pid file
        is the postgres account's to write, so its number alone proves nothing."""
        try:
            pid = int((self.data_dir(layout) / "postmaster.pid").read_text().split()[0])
            process = psutil.Process(pid)
            arguments = process.cmdline()
            program = (self.programs(layout) / "postgres").resolve()
            data = str(self.data_dir(layout))
            if (
                process.uids().real == self.account().uid
                and Path(process.exe()) == program
                and any(arguments[i : i + 2] == ["-D", data] for i in range(len(arguments)))
            ):
                return Started(pid, process.create_time())
        except (OSError, ValueError, IndexError, psutil.Error):
            pass
        return None

    def _stop_postmaster(self, layout: Layout) -> None:
        """Stop the postmaster of this cluster, whoever started it (nothing if none runs)."""
        process = self._postmaster(layout)
        if process is not None:
            process.stop(self.stop_signal, self.stop_grace)

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

    def configure(self, layout: Layout) -> None:
        """The `mlflow` role and its two databases (once): MLflow's server connects as it."""
        from psycopg2 import sql

        secrets_ = layout.secrets()
        try:
            connection = self._connect(
                layout, "admin", secrets_.postgres_admin_password, "postgres"
            )
        except Exception as error:
            raise StackError(
                f"postgres: cannot log in as its administrator ({str(error).strip()}); is "
                f"{layout.secrets_file} the one this cluster was made with?"
            ) from None
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
                for database in (DATABASE, AUTH_DATABASE):
                    cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                    if cursor.fetchone() is None:
                        cursor.execute(
                            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                                sql.Identifier(database), sql.Identifier(DATABASE)
                            )
                        )
        finally:
            connection.close()

    def ready(self, layout: Layout) -> bool:
        try:
            secrets_ = layout.secrets()
            self._connect(layout, "admin", secrets_.postgres_admin_password, "postgres").close()
        except Exception as error:
            return "password authentication failed" in str(error)  # it answers: configure says
        return True

    def database_uri(self, layout: Layout, database: str = DATABASE) -> str:
        """psycopg2, the driver of MLflow's own compose file and CI (SQLAlchemy 2.1 would pick
        psycopg 3 for a bare postgresql://)."""
        password = layout.secrets().postgres_mlflow_password
        port = layout.ports()["postgres"]
        return f"postgresql+psycopg2://{DATABASE}:{password}@{LOOPBACK}:{port}/{database}"
