"""The team stack as `dev.py stack` runs it, with its real components: loopback only, secrets
kept out of sight, one clear error and nothing left running when it cannot start."""

from __future__ import annotations

import json
import socket
import stat
import tempfile
from pathlib import Path

import boto3
import psutil
import pytest
from helpers import free_port_base, stack_command

from mnist_ae.stack.layout import DVC_BUCKET, MLFLOW_BUCKET, Layout


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
    assert [line.split()[0] for line in lines] == ["postgres", "seaweedfs", "mlflow"]
    assert all("running" in line and "answering" in line for line in lines), status.stdout
    addresses = listening(stack)
    assert {ip for ip, _ in addresses} == {"127.0.0.1"}
    assert set(stack.ports().values()) <= {port for _, port in addresses}


def test_env_gives_what_a_shell_needs_and_no_secret(stack, monkeypatch):
    printed = stack_command(stack.root, "env").stdout
    secrets = json.loads((stack.root / "secrets.json").read_text())
    assert f"export MLFLOW_TRACKING_URI={stack.url('mlflow')}" in printed
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
    root = Path(tempfile.mkdtemp(prefix="mnist-ae-stack-", dir="/tmp"))
    root.chmod(0o755)
    yield root
    stack_command(root, "down")


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
    postmaster = spare_dir / "postgres" / "data" / "postmaster.pid"
    assert not postmaster.exists()
