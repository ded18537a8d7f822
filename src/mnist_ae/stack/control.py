"""Starting, stopping and reporting the stack's services, by the process ids `up` recorded."""

from __future__ import annotations

import os
import time
from pathlib import Path

from mnist_ae.stack.layout import Layout
from mnist_ae.stack.mlflow_server import MlflowServer
from mnist_ae.stack.postgres import PostgreSQL
from mnist_ae.stack.processes import StackError, Started, port_is_free, wait_for
from mnist_ae.stack.seaweedfs import SeaweedFS
from mnist_ae.stack.service import READY_TIMEOUT, Service

SERVICES: tuple[Service, ...] = (PostgreSQL(), SeaweedFS(), MlflowServer())


def default_dir(repo: Path) -> Path:
    return Path(os.environ.get("MNIST_AE_STACK_DIR") or repo / ".stack")


def _running(layout: Layout) -> dict[str, Started]:
    return {name: p for name, p in layout.started().items() if p.running()}


def _check_can_start(layout: Layout, to_start: list[Service]) -> None:
    """Before anything starts: every package present and every port free, or one clear error."""
    for service in to_start:
        reason = service.missing()
        if reason:
            raise StackError(f"{service.name}: {reason}")
    ports = layout.ports()
    for service in to_start:
        for name in service.ports:
            if not port_is_free(ports[name]):
                raise StackError(
                    f"{service.name}: port {ports[name]} ({name}) on 127.0.0.1 is taken by another "
                    "program; stop it, or move the whole stack with --port-base N"
                )


def up(layout: Layout, port_base: int | None = None) -> list[str]:
    """Start every service that is not running; on any failure stop what this call started."""
    running = _running(layout)
    state = layout.load_state()
    if port_base is not None and port_base != state.get("port_base"):
        if running:
            raise StackError("the stack is running on other ports: stop it first (stack down)")
        state["port_base"] = port_base
    state.setdefault("port_base", layout.ports()["mlflow"])
    state["processes"] = {name: p.as_dict() for name, p in running.items()}
    layout.save_state(state)
    layout.write_aws_files(layout.secrets())

    to_start = [s for s in SERVICES if s.name not in running]
    _check_can_start(layout, to_start)
    started: list[tuple[Service, Started]] = []
    try:
        for service in to_start:
            began = time.monotonic()
            process = service.start(layout)
            started.append((service, process))
            layout.record(service.name, process)
            alive = True

            def answering(service: Service = service, process: Started = process) -> bool:
                nonlocal alive
                alive = process.running()
                return not alive or service.ready(layout)

            if not wait_for(answering, READY_TIMEOUT, interval=0.25) or not alive:
                what = "exited during start-up" if not alive else "did not answer in time"
                raise service.fail(layout, what)
            if isinstance(service, SeaweedFS):
                service.create_buckets(layout)
            print(
                f"{service.name}: started (pid {process.pid}) in {time.monotonic() - began:.1f} s"
            )
    except BaseException:
        for service, process in reversed(started):
            process.stop(service.stop_signal, service.stop_grace)
            layout.record(service.name, None)
        raise
    return [service.name for service, _ in started]


def down(layout: Layout) -> list[str]:
    """Stop the processes `up` started, newest first, by the process ids it recorded."""
    stopped = []
    records = layout.started()
    for service in reversed(SERVICES):
        process = records.get(service.name)
        if process is None:
            continue
        if process.running():
            process.stop(service.stop_signal, service.stop_grace)
            stopped.append(service.name)
        layout.record(service.name, None)
    return stopped


def status(layout: Layout) -> list[tuple[str, str, str]]:
    """(service, state, address) for each service."""
    records, ports = layout.started(), layout.ports()
    rows = []
    for service in SERVICES:
        process = records.get(service.name)
        address = f"127.0.0.1:{ports[service.ports[0]]}"
        if process is not None and process.running():
            health = "answering" if service.ready(layout) else "not answering"
            rows.append((service.name, f"running (pid {process.pid}), {health}", address))
        else:
            rows.append((service.name, "stopped", address))
    return rows
