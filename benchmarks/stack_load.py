"""A team stack under load, with TLS and logins, with and without a password guesser.

    python benchmarks/stack_load.py --out docs/results/stack-load.json
    python benchmarks/stack_load.py --seconds 20 --writers 4 --readers 2

A stack on a network address (default 127.0.0.2, MLflow's default two workers) with a login per
client. Two phases of `--seconds` each, the same clients in both: `--writers` processes log a
metric per call and a small artifact every tenth call, each into a run of its own; `--readers`
processes search the runs and download an artifact. In the second phase one more process
guesses the admin's password at 20 a second. Each honest call's latency is recorded; at the end
every metric and artifact sent is looked for in the store. Writes each phase's p50 and p99,
calls per second, errors, what was stored against what was sent, how the guesses were answered,
and the second phase's throughput as a share of the first's, with the machine.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import random
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from machine import machine

from mnist_ae.stack.control import free_port_base
from mnist_ae.stack.layout import Layout

EXPERIMENT = "stack-load"
GUESSES_PER_SECOND = 20


def stack(folder: Path, *args: str) -> None:
    command = [sys.executable, "-m", "mnist_ae.stack", *args, "--dir", str(folder)]
    subprocess.run(command, check=True, capture_output=True, text=True)


def login_env(layout: Layout, name: str) -> dict[str, str]:
    user = layout.users()[name]
    return {
        "MLFLOW_TRACKING_URI": layout.url("mlflow"),
        "MLFLOW_TRACKING_SERVER_CERT_PATH": str(layout.tls().ca),
        "MLFLOW_TRACKING_USERNAME": name,
        "MLFLOW_TRACKING_PASSWORD": user.mlflow_password,
        "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",  # an error is counted, not retried away
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }


def writer(env: dict, run_id: str, label: str, start: float, seconds: float, out) -> None:
    os.environ.update(env)
    from mlflow.tracking import MlflowClient

    client, errors, sent, artifacts = MlflowClient(), [], 0, 0
    took = {"log_metric": [], "log_artifact": []}
    with tempfile.TemporaryDirectory() as folder:
        note = Path(folder) / "note.txt"
        note.write_text("x" * 1000)
        time.sleep(max(0.0, start - time.time()))
        while time.time() < start + seconds:
            began, kind = time.perf_counter(), "log_artifact" if sent % 10 == 9 else "log_metric"
            try:
                if kind == "log_artifact":
                    client.log_artifact(run_id, str(note), f"notes/{label}-{artifacts}")
                    artifacts += 1
                else:
                    client.log_metric(run_id, "load", float(sent), step=sent)
                sent += 1
                took[kind].append(time.perf_counter() - began)
            except Exception as error:
                errors.append(f"{kind}: {type(error).__name__}: {error}"[:300])
    out.put({"kind": "writer", "run_id": run_id, "took": took, "errors": errors,
             "metrics": sent - artifacts, "artifacts": artifacts})  # fmt: skip


def reader(env: dict, experiment_id: str, start: float, seconds: float, out) -> None:
    os.environ.update(env)
    from mlflow.tracking import MlflowClient

    client, errors, rng = MlflowClient(), [], random.Random(0)
    took = {"search_runs": [], "list_artifacts": [], "download_artifact": []}

    def timed(kind: str, call, *args):
        began = time.perf_counter()
        found = call(*args)
        took[kind].append(time.perf_counter() - began)
        return found

    time.sleep(max(0.0, start - time.time()))
    with tempfile.TemporaryDirectory() as folder:
        while time.time() < start + seconds:
            kind = "search_runs"
            try:
                runs = timed(kind, client.search_runs, [experiment_id], "", 1, 50)
                run_id, kind = rng.choice(runs).info.run_id, "list_artifacts"
                listed = timed(kind, client.list_artifacts, run_id, "notes")
                if listed:
                    path, kind = rng.choice(listed).path, "download_artifact"
                    timed(kind, client.download_artifacts, run_id, path, folder)
            except Exception as error:
                errors.append(f"{kind}: {type(error).__name__}: {error}"[:300])
    out.put({"kind": "reader", "took": took, "errors": errors})


def guesser(url: str, ca: str, start: float, seconds: float, out) -> None:
    context, answers, n = ssl.create_default_context(cafile=ca), {}, 0
    time.sleep(max(0.0, start - time.time()))
    while time.time() < start + seconds:
        n += 1
        login = base64.b64encode(f"admin:guess-{n}".encode()).decode()
        request = urllib.request.Request(
            url + "/api/2.0/mlflow/experiments/search?max_results=1",
            headers={"Authorization": "Basic " + login},
        )
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as answer:
                code = answer.status
        except urllib.error.HTTPError as error:
            code = error.code
        except OSError as error:
            code = type(error).__name__
        answers[str(code)] = answers.get(str(code), 0) + 1
        time.sleep(1 / GUESSES_PER_SECOND)
    out.put({"kind": "guesser", "answers": answers})


def latencies(took: list[float]) -> dict:
    took = sorted(took)
    return {
        "calls": len(took),
        "p50_ms": round(1000 * statistics.median(took), 1),
        "p99_ms": round(1000 * took[int(0.99 * (len(took) - 1))], 1),
    }


def phase(layout: Layout, runs: dict[str, str], readers: list[str], experiment_id: str,
          seconds: float, with_guesser: bool) -> dict:  # fmt: skip
    context = multiprocessing.get_context("spawn")
    out, start = context.Queue(), time.time() + 15  # every client imported MLflow by then
    processes = [
        context.Process(
            target=writer,
            args=(login_env(layout, name), run_id, f"{start:.0f}", start, seconds, out),
        )
        for name, run_id in runs.items()
    ]
    for name in readers:
        given = (login_env(layout, name), experiment_id, start, seconds, out)
        processes.append(context.Process(target=reader, args=given))
    if with_guesser:
        target = (layout.url("mlflow"), str(layout.tls().ca), start, seconds, out)
        processes.append(context.Process(target=guesser, args=target))
    for process in processes:
        process.start()
    results = [out.get(timeout=seconds + 300) for _ in processes]
    for process in processes:
        process.join()
    honest = [r for r in results if r["kind"] != "guesser"]
    kinds = ("log_metric", "log_artifact", "search_runs", "list_artifacts", "download_artifact")
    every = [t for r in honest for times in r["took"].values() for t in times]
    found = latencies(every) | {
        "calls_per_s": round(len(every) / seconds, 1),
        "errors": sum(len(r["errors"]) for r in honest),
        "error_samples": [e for r in honest for e in r["errors"]][:5],
        "by_kind": {
            kind: latencies([t for r in honest for t in r["took"].get(kind, [])]) for kind in kinds
        },
        "sent": {"metrics": 0, "artifacts": 0},
    }
    for r in (r for r in honest if r["kind"] == "writer"):
        found["sent"]["metrics"] += r["metrics"]
        found["sent"]["artifacts"] += r["artifacts"]
    guesses = [r["answers"] for r in results if r["kind"] == "guesser"]
    if guesses:
        found["guesses"] = guesses[0]
    return found


def stored(layout: Layout, runs: dict[str, str]) -> dict:
    """Every metric value and artifact the writers' runs hold, read back by a writer."""
    os.environ.update(login_env(layout, next(iter(runs))))
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    metrics = sum(len(client.get_metric_history(run_id, "load")) for run_id in runs.values())
    artifacts = sum(len(client.list_artifacts(run_id, "notes")) for run_id in runs.values())
    return {"metrics": metrics, "artifacts": artifacts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.2")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--writers", type=int, default=12)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="mnist-ae-load-", dir="/tmp"))
    layout = Layout(home / ".stack")
    try:
        stack(layout.root, "up", "--port-base", str(free_port_base()), "--host", args.host)
        writers = [f"writer{i}" for i in range(args.writers)]
        readers = [f"reader{i}" for i in range(args.readers)]
        for name in writers:
            stack(layout.root, "user", "add", name, "--role", "writer")
        for name in readers:
            stack(layout.root, "user", "add", name, "--role", "reader")
        os.environ.update(login_env(layout, writers[0]))
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
        experiment_id = client.create_experiment(EXPERIMENT)
        runs = {}
        for name in writers:
            os.environ.update(login_env(layout, name))
            runs[name] = MlflowClient().create_run(experiment_id).info.run_id
        # not reported: each MLflow worker checks each login once (PBKDF2, 0.5 s) and keeps it
        warm_up = phase(layout, runs, readers, experiment_id, 10.0, False)
        phases = {
            "alone": phase(layout, runs, readers, experiment_id, args.seconds, False),
            "with_guesser": phase(layout, runs, readers, experiment_id, args.seconds, True),
        }
        kept = stored(layout, runs)
    finally:
        subprocess.run([sys.executable, "-m", "mnist_ae.stack", "down", "--delete", "--dir",
                        str(layout.root)], capture_output=True)  # fmt: skip
        home.rmdir()
    every_phase = [warm_up, *phases.values()]
    sent = {k: sum(p["sent"][k] for p in every_phase) for k in ("metrics", "artifacts")}
    ratio = phases["with_guesser"]["calls_per_s"] / phases["alone"]["calls_per_s"]
    report = {
        "machine": machine(),
        "host": args.host,
        "seconds": args.seconds,
        "writers": args.writers,
        "readers": args.readers,
        "guesses_per_second": GUESSES_PER_SECOND,
        "phases": phases,
        "sent": sent,
        "stored": kept,
        "throughput_with_guesser_share": round(ratio, 3),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
