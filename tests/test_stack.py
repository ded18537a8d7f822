"""The team stack as `dev.py stack` runs it on 127.0.0.1, with its real components: loopback only,
secrets and state readable by their owner only, an environment of its own for SeaweedFS, one
clear error and nothing left running when it cannot start, and one `up` at a time."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import boto3
import psutil
import pytest
from helpers import (
    REPO,
    assert_internal_ports_refuse_another_account,
    clean_env,
    free_port_base,
    stack_command,
)

from mnist_ae.stack.clients import UNSET_ENDPOINT
from mnist_ae.stack.folders import Account
from mnist_ae.stack.layout import DVC_BUCKET, MLFLOW_BUCKET, Layout
from mnist_ae.stack.postgres import CLUSTERS_SETTING, PostgreSQL
from mnist_ae.stack.processes import StackError, Started
from mnist_ae.stack.seaweedfs import SeaweedFS

pytestmark = pytest.mark.services


def listening(layout: Layout) -> set[tuple[str, int]]:
    """Every TCP address the stack's processes (and their children) listen on."""
    found = set()
    for process in layout.started().values():
        parent = psutil.Process(process.pid)
        for member in (parent, *parent.children(recursive=True)):
            for connection in member.net_connections(kind="tcp"):
                if connection.status == psutil.CONN_LISTEN:
                    found.add((connection.laddr.ip, connection.laddr.port))
    return found


def test_every_service_runs_and_listens_on_loopback_only(stack):
    status = stack_command(stack.root, "status")
    assert status.returncode == 0
    lines = status.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["postgres", "seaweedfs", "mlflow", "registrar"]
    assert all("running" in line and "answering" in line for line in lines), status.stdout
    addresses = listening(stack)
    assert {ip for ip, _ in addresses} == {"127.0.0.1"}
    assert set(stack.ports().values()) <= {port for _, port in addresses}
    server = psutil.Process(stack.started()["mlflow"].pid)
    assert server.environ().get("MLFLOW_DISABLE_TELEMETRY") == "true"  # no usage reports out


def test_workers_sets_mlflow_s_processes_and_a_running_stack_keeps_its_own(stack):
    """The suite's stack runs one MLflow worker (`up --workers 1`): uvicorn serves in-process."""
    (server,) = psutil.Process(stack.started()["mlflow"].pid).children()
    assert "uvicorn" in " ".join(server.cmdline()) and server.children() == []
    refused = stack_command(stack.root, "up", "--workers", "2")
    assert refused.returncode == 1 and refused.stderr.strip() == (
        "error: the stack is running with another --workers: stop it first"
    )
    assert stack.mlflow_workers() == 1
    bad = stack_command(stack.root, "up", "--workers", "0")
    assert bad.returncode == 2 and "'0' is not a whole number from 1 to 16" in bad.stderr


def test_env_gives_what_a_shell_needs_and_no_secret(stack, monkeypatch, tmp_path):
    (tmp_path / ".dvc").mkdir()  # a checkout: its DVC remote is set, the committed one never
    (tmp_path / ".dvc" / "config").write_text((REPO / ".dvc" / "config").read_text())
    printed = stack_command(stack.root, "env", cwd=tmp_path).stdout
    secrets = json.loads((stack.root / "secrets.json").read_text())
    assert f"export MLFLOW_TRACKING_URI={stack.url('mlflow')}" in printed
    assert f"export MNIST_AE_REGISTRAR_URL={stack.url('registrar')}" in printed
    assert f"export MNIST_AE_MODEL_KEY={stack.model_key}" in printed
    # committed: a port of this machine where nothing listens, its path saying what to run
    assert remote_endpoint(REPO, "repo") == UNSET_ENDPOINT
    assert remote_endpoint(tmp_path) == stack.url("s3")
    assert f"export AWS_SHARED_CREDENTIALS_FILE={stack.aws_credentials}" in printed
    assert not any(value in printed for value in secrets.values())
    for private in (stack.root / "secrets.json", stack.aws_credentials):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    # the files it points at are all a client needs to reach the buckets
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in stack.client_env().items():
        monkeypatch.setenv(key, value)
    s3 = boto3.Session().client("s3")
    assert {MLFLOW_BUCKET, DVC_BUCKET} <= {b["Name"] for b in s3.list_buckets()["Buckets"]}


def remote_endpoint(checkout: Path, level: str | None = None) -> str:
    """The endpoint `dvc push` of `checkout` would send its data to (by its settings of
    `level` alone: "repo", the committed .dvc/config)."""
    from dvc.config import Config

    config = Config(dvc_dir=str(checkout / ".dvc"), validate=False)
    return (config.load_one(level) if level else config)["remote"]["team"]["endpointurl"]


def test_anonymous_and_wrong_keys_are_refused_by_s3(stack):
    import botocore
    from botocore.config import Config

    anonymous = boto3.client(
        "s3",
        endpoint_url=stack.url("s3"),
        region_name="us-east-1",
        config=Config(signature_version=botocore.UNSIGNED),
    )
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        anonymous.list_objects_v2(Bucket=MLFLOW_BUCKET)


@pytest.fixture
def spare_dir():
    """A stack folder in a folder only its owner can enter (as root's home is)."""
    home = Path(tempfile.mkdtemp(prefix="mnist-ae-home-", dir="/tmp"))
    home.chmod(0o700)
    root = home / ".stack"
    yield root
    stack_command(root, "down", "--delete")
    with contextlib.suppress(StackError):  # a test may have damaged the state on purpose
        for process in Layout(root).started().values():
            process.stop()
    shutil.rmtree(home, ignore_errors=True)


def test_a_taken_port_is_named_and_nothing_starts(spare_dir):
    base = free_port_base()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", base + 2))  # the S3 port
        squatter.listen()
        result = stack_command(spare_dir, "up", "--port-base", str(base))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: seaweedfs: port {base + 2} (s3) on 127.0.0.1 is taken by another program; "
        "stop it, or move the whole stack with --port-base N"
    ]
    assert Layout(spare_dir).started() == {}


def postmasters(layout: Layout) -> list[int]:
    """Processes of this stack's PostgreSQL cluster, whoever started them."""
    data = str(PostgreSQL().data_dir(layout))
    return [
        p.pid for p in psutil.process_iter(["cmdline"]) if data in " ".join(p.info["cmdline"] or [])
    ]


def test_a_component_that_dies_at_start_stops_what_started_before_it(spare_dir):
    (spare_dir / "seaweedfs" / "data").mkdir(parents=True)
    (spare_dir / "seaweedfs" / "data" / "filerldb2").write_text(
        "a file: its filer store is a folder"
    )
    result = stack_command(spare_dir, "up", "--port-base", str(free_port_base()))
    assert result.returncode == 1
    assert result.stderr.startswith("error: seaweedfs exited during start-up; its log ")
    assert "Traceback" not in result.stderr
    layout = Layout(spare_dir)
    assert layout.started() == {}  # postgres, started first, was stopped again
    assert postmasters(layout) == []


def test_a_postgresql_that_cannot_be_configured_leaves_no_process(spare_dir):
    base = str(free_port_base())
    assert stack_command(spare_dir, "up", "--port-base", base, "--workers", "1").returncode == 0
    sockets = SeaweedFS().leftovers(Layout(spare_dir))  # SeaweedFS's gRPC sockets, in /tmp
    assert all(path.is_socket() for path in sockets[:2])  # the master's and the gateway's
    assert stack_command(spare_dir, "down").returncode == 0
    assert not any(path.exists() for path in sockets)  # removed once it stopped
    secrets = json.loads((spare_dir / "secrets.json").read_text())
    secrets["postgres_admin_password"] = "not the one the cluster was made with"
    (spare_dir / "secrets.json").write_text(json.dumps(secrets))  # restored from a bad backup
    result = stack_command(spare_dir, "up", "--port-base", base)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "postgres: cannot log in as its administrator" in result.stderr
    assert Layout(spare_dir).started() == {} and postmasters(Layout(spare_dir)) == []


def test_a_damaged_state_file_is_one_clear_error(spare_dir):
    spare_dir.mkdir(parents=True)
    (spare_dir / "stack.json").write_text('{"port_base": 150')
    result = stack_command(spare_dir, "status")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {spare_dir / 'stack.json'}: the stack's state is damaged (JSONDecodeError: "
        "Expecting ',' delimiter: line 1 column 18 (char 17)); restore it from a backup, or "
        "remove the stack folder to start a new stack (its data goes with it)"
    ]


def test_two_ups_at_once_start_one_stack_and_the_other_says_why(spare_dir):
    command = [sys.executable, "-m", "mnist_ae.stack", "up", "--dir", str(spare_dir)]
    command += ["--port-base", str(free_port_base()), "--workers", "1"]
    both = [
        subprocess.Popen(command, cwd=REPO, env=clean_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]  # fmt: skip
    outcomes = sorted((p.wait(timeout=240), p.communicate()[1]) for p in both)
    assert [status for status, _ in outcomes] == [0, 1], outcomes
    assert outcomes[1][1].strip() == (
        f"error: another stack command is changing {spare_dir} (it holds stack.lock); wait for "
        "it to finish, then run `stack up` again"
    )
    layout = Layout(spare_dir)
    assert set(layout.started()) == {"postgres", "seaweedfs", "mlflow", "registrar"}  # one of each
    assert len(postmasters(layout)) >= 1
    weeds = [p for p in psutil.process_iter(["cmdline"]) if str(spare_dir) in " ".join(
        p.info["cmdline"] or []) and "weed" in " ".join(p.info["cmdline"] or [])]  # fmt: skip
    assert [p.pid for p in weeds] == [layout.started()["seaweedfs"].pid]

    cluster = PostgreSQL().cluster(layout)  # for root, in the postgres account's home
    deleted = stack_command(spare_dir, "down", "--delete")
    assert deleted.returncode == 0 and f"data deleted {spare_dir}" in deleted.stdout
    assert not spare_dir.exists() and not cluster.exists() and postmasters(layout) == []


def test_state_secrets_and_data_are_their_owner_s_alone(stack):
    """Folders 0700, our files 0600 (SeaweedFS's own volume-info files sit in 0700 folders)."""
    assert stat.S_IMODE(stack.root.stat().st_mode) == 0o700
    for path in stack.root.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    for name in ("stack.json", "secrets.json", "aws/credentials", "aws/config",
                 "seaweedfs/security.toml", "seaweedfs/s3-identities.json"):  # fmt: skip
        assert stat.S_IMODE((stack.root / name).stat().st_mode) == 0o600, name


def test_seaweedfs_gets_no_environment_but_its_own(stack):
    environment = psutil.Process(stack.started()["seaweedfs"].pid).environ()
    assert set(environment) == {"PATH", "HOME", "TMPDIR"}
    assert environment["HOME"] == str(stack.folder("seaweedfs"))


def test_the_stack_starts_from_nothing_with_each_level_made_for_its_account(stack):
    """The suite's stack was started under umask 077 with no level of its clusters' place made
    (conftest): each level it made has the owner and mode of the account that uses it."""
    place = Path(os.environ[CLUSTERS_SETTING])
    cluster, account = PostgreSQL().cluster(stack), PostgreSQL().account()
    assert cluster.parent == place
    me = os.geteuid()
    if account.uid != me:  # root: the postgres account passes through, and owns its cluster
        expected = {place.parent: (me, 0o755), place: (me, 0o711), cluster: (account.uid, 0o700)}
    else:
        expected = {place.parent: (me, 0o755), place: (me, 0o700), cluster: (me, 0o700)}
    found = {p: (p.lstat().st_uid, stat.S_IMODE(p.lstat().st_mode)) for p in expected}
    assert found == expected
    names = [p.name for p in place.iterdir()]  # the clusters of this run's stacks
    assert cluster.name in names and not any(name.endswith(".pw") for name in names)
    postmaster = psutil.Process(stack.started()["postgres"].pid)
    assert postmaster.uids().real == account.uid
    assert PostgreSQL()._postmaster(stack) == stack.started()["postgres"]


@pytest.fixture
def postgres_home():
    """A folder of the postgres account's, as its home is: it can add and replace names in it."""
    home = Path(tempfile.mkdtemp(prefix="mnist-ae-pghome-", dir="/tmp"))
    account = Account.named("postgres")
    os.chown(home, account.uid, account.gid)
    home.chmod(0o755)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def as_postgres(*command: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root stack runs PostgreSQL as postgres")
@pytest.mark.parametrize("planted", ["a link to another folder", "a folder of its own"])
def test_what_the_postgres_account_plants_in_its_home_is_refused(planted, postgres_home, spare_dir):
    """The postgres account puts a link (to a folder of root's, standing for /etc) or a folder
    of its own where the stack keeps its clusters: `up` refuses in one line, changes nothing
    there and starts nothing."""
    victim = Path(tempfile.mkdtemp(prefix="mnist-ae-victim-", dir="/tmp"))
    victim.chmod(0o755)
    place = postgres_home / "mnist-ae-stacks"
    if planted == "a link to another folder":
        as_postgres("ln", "-s", str(victim), str(place))
        why = "a symbolic link where the stack makes folders"
    else:
        as_postgres("mkdir", str(place))
        why = "owned by postgres, not root"
    try:
        result = stack_command(
            spare_dir, "up", "--port-base", str(free_port_base()), "--workers", "1",
            env=clean_env(**{CLUSTERS_SETTING: str(place)}),
        )  # fmt: skip
        assert result.returncode == 1, result.stdout + result.stderr
        assert result.stderr.strip().splitlines() == [
            f"error: {place}: {why}; the stack follows no link and uses no folder it did not "
            "make here: move it aside, then run `stack up` again"
        ]
        assert list(victim.iterdir()) == [] and victim.stat().st_uid == 0
        assert stat.S_IMODE(victim.stat().st_mode) == 0o755
        assert Layout(spare_dir).started() == {}
    finally:
        shutil.rmtree(victim, ignore_errors=True)


def test_a_pid_file_that_names_another_process_gets_it_no_signal(tmp_path):
    """postmaster.pid is the postgres account's to write: a process it names that is not this
    cluster's postmaster (here one of root's, with the cluster's data folder in its arguments)
    is neither recorded nor stopped."""
    layout = Layout(tmp_path / ".stack")
    cluster = tmp_path / "cluster"
    layout.remember(postgres_cluster=str(cluster))
    data = PostgreSQL().data_dir(layout)
    data.mkdir(parents=True)
    victim = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "-D", str(data)]
    )
    try:
        (data / "postmaster.pid").write_text(f"{victim.pid}\n{data}\n")
        assert PostgreSQL()._postmaster(layout) is None
        PostgreSQL()._stop_postmaster(layout)
        assert Started.of(victim.pid).running() and victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("admin", "user name 'admin' is the stack's own; choose another"),
        ("mnist-ae-stack", "user name 'mnist-ae-stack' is the stack's own; choose another"),
        ("walt\n", "user name 'walt\\n': 2-32 lower-case letters"),
        ("wa/lt", "user name 'wa/lt': 2-32 lower-case letters"),
    ],
)
def test_a_reserved_name_or_one_with_a_newline_or_slash_is_refused_in_one_line(stack, name, why):
    refused = stack_command(stack.root, "user", "add", name, "--role", "writer")
    assert refused.returncode == 1 and refused.stderr.startswith(f"error: {why}")
    assert len(refused.stderr.strip().splitlines()) == 1 and name not in stack.users()


@pytest.mark.skipif(os.geteuid() != 0, reason="making an account needs root")
def test_another_local_account_is_refused_by_every_internal_seaweedfs_port(stack):
    assert_internal_ports_refuse_another_account(stack, [])
    buckets = {b["Name"] for b in SeaweedFS().s3(stack).list_buckets()["Buckets"]}
    assert {MLFLOW_BUCKET, DVC_BUCKET} <= buckets  # nothing was deleted


def test_a_damaged_internal_certificate_is_made_again_at_the_next_up(spare_dir):
    started = stack_command(spare_dir, "up", "--port-base", str(free_port_base()))
    assert started.returncode == 0, started.stderr
    assert stack_command(spare_dir, "down").returncode == 0
    certificate = spare_dir / "seaweedfs" / "grpc" / "server.pem"
    with open(certificate, "r+b") as damaged:
        damaged.truncate(100)
    again = stack_command(spare_dir, "up")
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(certificate.read_bytes()) > 100
