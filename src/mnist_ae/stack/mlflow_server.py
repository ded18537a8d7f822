"""The MLflow tracking server: runs and the registry in PostgreSQL, artifacts proxied to a
SeaweedFS bucket, so clients need no S3 keys."""

from __future__ import annotations

import os
import sys
import urllib.request

from mnist_ae.stack.layout import MLFLOW_BUCKET, Layout
from mnist_ae.stack.postgres import PostgreSQL
from mnist_ae.stack.processes import LOOPBACK, Started
from mnist_ae.stack.service import Service


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
