"""What a team member's machine needs to use a stack on a network address: a folder with the
stack's certificate authority and public model key, their MLflow password and S3 keys (files
readable by their owner only), the shell lines that point MLflow and the registrar at the
server, and the DVC remote settings of their checkout's `.dvc/config.local`.

`stack env --user NAME` writes the folder on the server host (`.stack/clients/NAME/`) and prints
the lines, leaving the operator's own checkout alone; copied to another machine,
`stack env --client FOLDER` there gives the same lines for where the folder now is, and sets the
DVC remote of the checkout it runs in. Passwords are read from the files by the shell, never
printed.
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

from mnist_ae.plumbing.outputs import write_private
from mnist_ae.stack.layout import Layout, aws_config_text
from mnist_ae.stack.processes import StackError

REMOTE = "team"  # the DVC remote of .dvc/config
CLIENT_FILE = "client.json"
MODEL_KEY = "model-key.pem"
# The committed remote's endpoint (.dvc/config): a port of the machine itself where nothing
# listens, so a clone without these settings sends its data nowhere (the bucket's name alone
# would reach whoever owns it on AWS), and the error shows what to run.
UNSET_ENDPOINT = "http://127.0.0.1:1/run-python3-dev.py-stack-env-first"


def write_client_folder(layout: Layout, name: str) -> Path:
    """The user's folder: `client.json` (who, where), `ca.pem`, `model-key.pem` (the
    registrar's public key), `mlflow-password`, `aws-credentials`."""
    users = layout.users()
    if name not in users:
        raise StackError(f"no user {name}: add one with `stack user add {name} --role reader`")
    user, folder = users[name], layout.clients(name)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    about = {
        "user": name,
        "role": user.role,
        "mlflow": layout.url("mlflow"),
        "s3": layout.url("s3"),
        "registrar": layout.url("registrar"),
    }
    write_private(folder / CLIENT_FILE, json.dumps(about, indent=2) + "\n")
    shutil.copyfile(layout.tls().ca, folder / "ca.pem")
    shutil.copyfile(layout.model_key, folder / MODEL_KEY)
    write_private(folder / "mlflow-password", user.mlflow_password + "\n")
    write_private(
        folder / "aws-credentials",
        "[default]\n"
        f"aws_access_key_id = {user.s3_access_key}\n"
        f"aws_secret_access_key = {user.s3_secret_key}\n",
    )
    return folder


def read_client_folder(folder: Path) -> dict[str, str]:
    folder = folder.resolve()
    try:
        about = json.loads((folder / CLIENT_FILE).read_text())
        return {key: str(about[key]) for key in ("user", "role", "mlflow", "s3", "registrar")}
    except (OSError, ValueError, KeyError) as error:
        raise StackError(
            f"{folder}: not a folder `stack env --user NAME` wrote ({type(error).__name__}: "
            f"{error}); copy the whole .stack/clients/NAME folder from the server host"
        ) from None


def client_env(folder: Path, checkout: Path | None) -> list[str]:
    """Shell lines for `eval`, for the user of `folder` (wherever it is now); writes the AWS
    config beside it and, given a `checkout`, the DVC remote settings of its .dvc/config.local."""
    folder = folder.resolve()
    about = read_client_folder(folder)
    ca = folder / "ca.pem"
    write_private(folder / "aws-config", aws_config_text(about["s3"], ca))
    if checkout is not None:
        dvc_settings(checkout, about["s3"], ca, folder / "aws-credentials")
    password = shlex.quote(str(folder / "mlflow-password"))
    return [
        f"export MLFLOW_TRACKING_URI={shlex.quote(about['mlflow'])}",
        f"export MLFLOW_TRACKING_SERVER_CERT_PATH={shlex.quote(str(ca))}",
        f"export MLFLOW_TRACKING_USERNAME={shlex.quote(about['user'])}",
        f'export MLFLOW_TRACKING_PASSWORD="$(cat {password})"',
        # artifacts through the server (which checks the login), not presigned S3 links
        "export MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD=false",
        f"export MNIST_AE_REGISTRAR_URL={shlex.quote(about['registrar'])}",
        f"export MNIST_AE_MODEL_KEY={shlex.quote(str(folder / MODEL_KEY))}",
        f"export AWS_CONFIG_FILE={shlex.quote(str(folder / 'aws-config'))}",
        f"export AWS_SHARED_CREDENTIALS_FILE={shlex.quote(str(folder / 'aws-credentials'))}",
    ]


def dvc_settings(checkout: Path, s3_url: str, ca: Path | None, credentials: Path) -> None:
    """The `team` remote's endpoint, certificate authority (on https) and keys in
    .dvc/config.local (git-ignored): the bucket itself stays in .dvc/config."""
    from dvc.config import Config

    dvc_dir = checkout / ".dvc"
    if not dvc_dir.is_dir():
        raise StackError(f"{checkout} is not a DVC repository (no .dvc/): run this in the checkout")
    config = Config(dvc_dir=str(dvc_dir), validate=False)
    with config.edit("local") as local:
        remote = local.setdefault("remote", {}).setdefault(REMOTE, {})
        remote.update({"endpointurl": s3_url, "credentialpath": str(credentials)})
        if ca is not None:
            remote["ssl_verify"] = str(ca)
