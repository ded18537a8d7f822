"""The gateway: nginx (Debian's package) on the stack's network address, the only process that
faces the network. It terminates TLS for MLflow, S3 and the registrar, which listen on
127.0.0.1 only, and lets no login through that the registrar's login gate
(stack.registrar_app) did not accept: a wrong password never reaches MLflow's costly check, an
address that keeps failing gets 429 without any check, and the admin login is not usable from
the network at all.

Why nginx: it is packaged and kept by Debian, `auth_request` hands each login to a check of our
own, and `error_page` turns that check's refusals into the 429 a guesser sees. Run as root, its
master reads the keys and its workers, which handle every connection, run as `nobody`. It is on
a network address only: on 127.0.0.1 the stack is one person's and has no logins.
"""

from __future__ import annotations

import os
import shutil

from mnist_ae.plumbing.outputs import write_private
from mnist_ae.stack.layout import Layout
from mnist_ae.stack.processes import LOOPBACK, Started, answers_health
from mnist_ae.stack.service import Service

NGINX = "/usr/sbin/nginx"
WORKER_ACCOUNT = ("nobody", "nogroup")  # when the stack runs as root
GATE_HEADER = "X-Gate-Key"  # proves to the registrar that a request came through the gateway
THROTTLED = "too many failed logins from this address: wait a minute"
PRESIGNED = (  # MLflow's routes that hand out presigned S3 links
    r"^/(api|ajax-api)/[0-9.]+/(mlflow-artifacts/(presigned|mpu)/|mlflow/artifacts/presigned-)"
)
NO_PRESIGNED = "presigned links are off on this stack: artifacts go through MLflow's proxy"


def nginx_binary() -> str | None:
    return NGINX if os.access(NGINX, os.X_OK) else shutil.which("nginx")


class Gateway(Service):
    name = "gateway"
    ports = ()
    public = ("mlflow", "s3", "registrar")
    stop_grace = 5.0

    def wanted(self, layout: Layout) -> bool:
        return layout.networked()

    def missing(self) -> str | None:
        if nginx_binary() is None:
            return "nginx is not installed (as root: apt-get install nginx)"
        return None

    def config(self, layout: Layout) -> str:
        folder, tls, ports = layout.folder(self.name), layout.tls(), layout.ports()
        host, key = layout.host(), layout.secrets().gateway_key
        temp = "\n".join(
            f"    {kind}_temp_path {folder / 'tmp' / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        user = f"user {' '.join(WORKER_ACCOUNT)};\n" if os.geteuid() == 0 else ""
        to = {name: f"http://{LOOPBACK}:{ports[name]}" for name in self.public}
        return f"""{user}daemon off;
worker_processes 1;
pid {folder / "nginx.pid"};
error_log stderr warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    server_tokens off;
{temp}
    ssl_certificate {tls.certificate};
    ssl_certificate_key {tls.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    # streamed both ways: no request or response is written to disk
    proxy_http_version 1.1;
    proxy_request_buffering off;
    proxy_buffering off;
    client_max_body_size 0;
    proxy_read_timeout 600s;
    proxy_send_timeout 600s;

    server {{
        listen {host}:{ports["mlflow"]} ssl;
        location = /health {{ proxy_pass {to["mlflow"]}; }}
        location = /_login {{
            internal;
            proxy_pass {to["registrar"]}/login;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header {GATE_HEADER} {key};
        }}
        location @throttled {{ return 429 "{THROTTLED}\\n"; }}
        # MLflow signs presigned links with the stack's own S3 keys, so a link would outlive
        # `user remove`: MLflow's artifact proxy, which checks the login, serves them all
        location ~ "{PRESIGNED}" {{ return 403 "{NO_PRESIGNED}\\n"; }}
        location / {{
            auth_request /_login;
            error_page 403 = @throttled;
            proxy_pass {to["mlflow"]};
            proxy_set_header Host $http_host;
        }}
    }}
    server {{
        listen {host}:{ports["s3"]} ssl;
        location / {{
            proxy_pass {to["s3"]};
            proxy_set_header Host $http_host;
        }}
    }}
    server {{
        listen {host}:{ports["registrar"]} ssl;
        location / {{
            proxy_pass {to["registrar"]};
            proxy_set_header Host $http_host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header {GATE_HEADER} {key};
        }}
    }}
}}
"""

    def start(self, layout: Layout) -> Started:
        folder = layout.folder(self.name)
        (folder / "tmp").mkdir(parents=True, exist_ok=True, mode=0o700)
        conf = folder / "nginx.conf"
        write_private(conf, self.config(layout))  # it holds the gate's key
        command = [nginx_binary(), "-p", str(folder), "-c", str(conf), "-e", "stderr"]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        return Started.of(self._spawn(layout, command, env, cwd=folder), group=True)

    def ready(self, layout: Layout) -> bool:
        from mnist_ae.stack.mlflow_server import tls_context

        return answers_health(layout.url("mlflow"), tls_context(layout))  # through it, over TLS
