"""Starting, stopping and reporting the stack's services, by the process ids `up` recorded, and
its users. One command that changes the stack runs at a time (a lock in the stack folder)."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import time
from pathlib import Path

from mnist_ae.stack.gateway import Gateway
from mnist_ae.stack.layout import (
    DEFAULT_MLFLOW_WORKERS,
    DEFAULT_PORT_BASE,
    PORT_OFFSETS,
    Layout,
    User,
)
from mnist_ae.stack.mlflow_server import AdminApi, MlflowServer
from mnist_ae.stack.postgres import PostgreSQL
from mnist_ae.stack.processes import LOOPBACK, StackError, Started, port_is_free, wait_for
from mnist_ae.stack.registrar import RegistrarService
from mnist_ae.stack.seaweedfs import SeaweedFS
from mnist_ae.stack.service import READY_TIMEOUT, Service
from mnist_ae.stack.tls import ServerTLS, make_authority, names_in

POSTGRES = PostgreSQL()
SERVICES: tuple[Service, ...] = (
    POSTGRES,
    SeaweedFS(),
    MlflowServer(),
    RegistrarService(),
    Gateway(),
)


def default_dir(repo: Path) -> Path:
    return Path(os.environ.get("MNIST_AE_STACK_DIR") or repo / ".stack")


def free_port_base() -> int:
    """The first of eleven consecutive free loopback ports, picked at random (for stacks beside a
    user's own on 15000: the tests' and the benchmarks')."""
    for _ in range(200):
        base = random.randrange(20000, 60000, 20)
        if all(port_is_free(base + offset) for offset in PORT_OFFSETS.values()):
            return base
    raise StackError(f"no {len(PORT_OFFSETS)} consecutive free ports on 127.0.0.1")


def _running(layout: Layout) -> dict[str, Started]:
    return {name: p for name, p in layout.started().items() if p.running()}


def _check_host(host: str) -> None:
    """A network address must be one of this machine's: it is where the servers listen."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
    except OSError as error:
        raise StackError(
            f"--host {host}: not an address of this machine ({error.strerror}); give one that "
            "`ip -brief address` lists, which the team's machines can reach"
        ) from None


def _check_can_start(layout: Layout, to_start: list[Service]) -> None:
    """Before anything starts: every package present and every port free, or one clear error."""
    for service in to_start:
        reason = service.missing()
        if reason:
            raise StackError(f"{service.name}: {reason}")
    for service in to_start:
        for address, port, name in service.addresses(layout):
            if not port_is_free(port, address):
                raise StackError(
                    f"{service.name}: port {port} ({name}) on {address} is taken by another "
                    "program; stop it, or move the whole stack with --port-base N"
                )


def _prepare_tls(layout: Layout, own: ServerTLS | None) -> None:
    """On a network address: the user's certificate and key, or a certificate of the stack's
    own authority for the address (made again if the address changed)."""
    if not layout.networked():
        return
    tls, host = layout.tls(), layout.host()
    if own is not None:
        tls.certificate.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for given, kept in zip(
            (own.certificate, own.key, own.ca), (tls.certificate, tls.key, tls.ca), strict=True
        ):
            shutil.copyfile(given, kept)
            kept.chmod(0o600)
        (tls.certificate.parent / "ca.key").unlink(missing_ok=True)  # not ours to reissue
    elif not tls.exist() or (
        host not in names_in(tls.certificate) and (tls.certificate.parent / "ca.key").exists()
    ):
        make_authority(tls.certificate.parent, [host])
    if host not in names_in(tls.certificate):
        raise StackError(
            f"{tls.certificate} is not valid for {host} (it names {names_in(tls.certificate)}); "
            "give a certificate for that address, leave out --cert to let the stack make one, "
            f"or put back its authority's key ({tls.certificate.parent / 'ca.key'}) if you "
            "keep it offline"
        )


# What `up` keeps in stack.json: its option and default.
SETTINGS = {
    "port_base": ("--port-base", DEFAULT_PORT_BASE),
    "host": ("--host", LOOPBACK),
    "mlflow_workers": ("--workers", DEFAULT_MLFLOW_WORKERS),
}


def up(
    layout: Layout,
    port_base: int | None = None,
    host: str | None = None,
    own_tls: ServerTLS | None = None,
    workers: int | None = None,
) -> list[str]:
    """Start every service that is not running; on any failure stop what this call started."""
    with layout.locked("up"):
        running = _running(layout)
        state = layout.load_state()
        chosen = {"port_base": port_base, "host": host, "mlflow_workers": workers}
        for key, (option, default) in SETTINGS.items():
            value, kept = chosen[key], state.get(key, default)
            if value is not None and running and value != kept:
                raise StackError(f"the stack is running with another {option}: stop it first")
            state[key] = kept if value is None else value
        if state["host"] != LOOPBACK:
            _check_host(state["host"])
        state["processes"] = {name: p.as_dict() for name, p in running.items()}
        layout.save_state(state)
        _prepare_tls(layout, own_tls)
        layout.write_aws_files(layout.secrets())
        to_start = [s for s in SERVICES if s.wanted(layout) and s.name not in running]
        _check_can_start(layout, to_start)
        return _start(layout, to_start)


def _start(layout: Layout, to_start: list[Service]) -> list[str]:
    started: list[tuple[Service, Started]] = []
    try:
        for service in to_start:
            began = time.monotonic()
            process = service.start(layout)
            started.append((service, process))
            layout.record(service.name, process)  # before anything else can fail
            alive = True

            def answering(service: Service = service, process: Started = process) -> bool:
                nonlocal alive
                alive = process.running()
                return not alive or service.ready(layout)

            if not wait_for(answering, READY_TIMEOUT, interval=0.25) or not alive:
                what = "exited during start-up" if not alive else "did not answer in time"
                raise service.fail(layout, what)
            service.configure(layout)
            took = time.monotonic() - began
            print(f"{service.name}: started (pid {process.pid}) in {took:.1f} s")
    except BaseException:
        for service, process in reversed(started):
            process.stop(service.stop_signal, service.stop_grace)
            layout.record(service.name, None)
            _remove_leftovers(service, layout)
        raise
    return [service.name for service, _ in started]


def _remove_leftovers(service: Service, layout: Layout) -> None:
    """What a stopped service left outside the stack folder: only files of this user."""
    for path in service.leftovers(layout):
        with contextlib.suppress(FileNotFoundError):
            if path.lstat().st_uid == os.getuid():
                path.unlink()


def down(layout: Layout, delete: bool = False) -> list[str]:
    """Stop the processes `up` started, newest first, by the process ids it recorded; with
    `delete`, then remove everything the stack kept: its folder, and PostgreSQL's cluster where
    it lives outside it (in the postgres account's home, for root)."""
    with layout.locked("down"):
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
            _remove_leftovers(service, layout)
        if delete:
            POSTGRES.delete(layout)
            shutil.rmtree(layout.root)  # the lock goes last
        return stopped


def status(layout: Layout) -> list[tuple[str, str, str]]:
    """(service, state, where it listens) for each service."""
    records = layout.started()
    rows = []
    for service in (s for s in SERVICES if s.wanted(layout)):
        process = records.get(service.name)
        facing = [a for a in service.addresses(layout) if a[2] in service.public]
        address, port, _ = (facing or service.addresses(layout))[0]
        where = f"{address}:{port}"
        if process is not None and process.running():
            health = "answering" if service.ready(layout) else "not answering"
            rows.append((service.name, f"running (pid {process.pid}), {health}", where))
        else:
            rows.append((service.name, "stopped", where))
    return rows


def _require_team_stack(layout: Layout) -> None:
    if not layout.networked():
        raise StackError(
            "users belong to a stack on a network address (`stack up --host ADDRESS`); on "
            "127.0.0.1 the stack is one person's and needs no logins"
        )
    running = _running(layout)
    if not {"mlflow", "seaweedfs", "registrar", "gateway"} <= set(running):
        raise StackError("the stack is not running: start it first (`stack up`)")


def add_user(layout: Layout, name: str, role: str) -> User:
    """An MLflow login with the role's permissions and an S3 identity limited to match."""
    user = User.new(name, role)  # a bad name or role: refused before anything else
    with layout.locked("user add"):
        _require_team_stack(layout)
        users = layout.users()
        if name in users:
            raise StackError(f"user {name} exists ({users[name].role}); remove it first")
        AdminApi(layout).add_user(user)
        layout.save_users(users | {name: user})
        SeaweedFS().reload_identities(layout)
        return user


def remove_user(layout: Layout, name: str) -> None:
    with layout.locked("user remove"):
        _require_team_stack(layout)
        users = layout.users()
        if name not in users:
            raise StackError(f"no user {name} (users: {', '.join(sorted(users)) or 'none'})")
        AdminApi(layout).remove_user(name)
        layout.save_users({k: v for k, v in users.items() if k != name})
        SeaweedFS().reload_identities(layout)
        shutil.rmtree(layout.clients(name), ignore_errors=True)
