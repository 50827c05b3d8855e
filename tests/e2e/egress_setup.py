"""Shared helpers for tests that drive the egress proxy as a process, with real partners.

* :class:`MtlsPartner`: an HTTPS/1.1 server on loopback (stdlib ``ssl``) that requires a client
  certificate from its own CA and answers with what it received: the client certificate's
  subject and serial, method, path, headers, and a body digest (bodies are hashed as they
  stream, never held). ``GET /bytes/N`` streams N bytes.
* :class:`EgressNode`: a data directory made by ``bootstrap`` (as ``mutls up`` would), services
  called in-process to create secrets, tokens and routes, and ``mutls egress`` as a process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mutls.accounts.principal import Principal
from mutls.accounts.service import create_token
from mutls.config import Settings
from mutls.pki.authority import Profile
from mutls.routing.egress import create_egress_route
from mutls.routing.egress_fields import EgressRouteSpec
from mutls.runtime.bootstrap import bootstrap
from mutls.runtime.platform import Platform
from mutls.testing import Identity, TestCA
from mutls.vault.secrets import create_secret, set_value
from tests.e2e.gateway_setup import free_port, wait_until

MUTLS = Path(sys.executable).parent / "mutls"
ADMIN = Principal.system("test:egress")

__all__ = ["EgressNode", "MtlsPartner", "certificate_fields", "pem"]


def pem(identity: Identity) -> str:
    return identity.chain_pem.decode()


def certificate_fields(identity: Identity, *, ca_pem: str | None = None) -> dict[str, object]:
    fields: dict[str, object] = {
        "certificate_pem": pem(identity),
        "private_key_pem": identity.key_pem().decode(),
    }
    if ca_pem:
        fields["ca_bundle_pem"] = ca_pem
    return fields


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body are separate writes
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        del format, args

    def _peer(self) -> dict[str, object]:
        cert = self.connection.getpeercert()
        subject = dict(x[0] for x in cert.get("subject", ())) if cert else {}
        return {
            "cn": subject.get("commonName"),
            "serial": cert.get("serialNumber") if cert else None,
        }

    def _body(self) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = 0
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            while True:
                line = self.rfile.readline()
                length = int(line.split(b";")[0].strip(), 16)
                if length == 0:
                    self.rfile.readline()
                    break
                remaining = length
                while remaining:
                    chunk = self.rfile.read(min(remaining, 1 << 16))
                    digest.update(chunk)
                    remaining -= len(chunk)
                    size += len(chunk)
                self.rfile.readline()
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            if remaining and (self.headers.get("Expect") or "").lower() == "100-continue":
                self.send_response_only(100)
                self.end_headers()
            while remaining:
                chunk = self.rfile.read(min(remaining, 1 << 16))
                digest.update(chunk)
                remaining -= len(chunk)
                size += len(chunk)
        return size, digest.hexdigest()

    def _answer(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _echo(self) -> None:
        self.server.requests += 1
        size, digest = self._body()
        path = self.path.split("?", 1)[0]
        if path.endswith("/redirect"):
            self.send_response(302)
            host = self.headers.get("Host")
            self.send_header("Location", f"https://{host}{path.removesuffix('/redirect')}/moved")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if "/status/" in path:
            self._answer(int(path.rsplit("/", 1)[1]), {"status": "as asked"})
            return
        if "/bytes/" in path:
            total = int(path.rsplit("/", 1)[1])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(total))
            self.end_headers()
            block = b"m" * (1 << 16)
            sent = 0
            while sent < total:
                piece = block[: min(len(block), total - sent)]
                self.wfile.write(piece)
                sent += len(piece)
            return
        self._answer(
            200,
            {
                "client": self._peer(),
                "method": self.command,
                "path": self.path,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body_bytes": size,
                "body_sha256": digest,
                "tls_version": self.connection.version(),
            },
        )

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _echo


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    requests = 0


@dataclass
class MtlsPartner:
    """A partner API requiring client certificates issued by ``client_ca``."""

    server_ca: TestCA
    client_ca: TestCA
    name: str = "localhost"
    tls12_only: bool = False
    port: int = 0
    _server: _Server | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _dir: Path | None = field(default=None, repr=False)

    def start(self, directory: Path) -> MtlsPartner:
        directory.mkdir(parents=True, exist_ok=True)
        identity = self.server_ca.issue(
            self.name, profile=Profile.SERVER, sans=[f"DNS:{self.name}", "IP:127.0.0.1"]
        )
        cert, key = directory / "server.pem", directory / "server.key"
        cert.write_bytes(identity.chain_pem)
        key.write_bytes(identity.key_pem())
        trust = directory / "clients-ca.pem"
        trust.write_bytes(self.client_ca.root_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        context.load_verify_locations(trust)
        context.verify_mode = ssl.CERT_REQUIRED
        if self.tls12_only:
            context.maximum_version = ssl.TLSVersion.TLSv1_2
        server = _Server(("127.0.0.1", 0), _Handler)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"https://{self.name}:{self.port}"

    @property
    def requests(self) -> int:
        return self._server.requests if self._server else 0

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@dataclass
class EgressNode:
    """A data directory with the platform bootstrapped, and ``mutls egress`` serving it."""

    directory: Path
    database_url: str | None = None
    """PostgreSQL (or any) URL; None: the data directory's SQLite file."""
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    platform: Platform | None = None

    def open(self) -> EgressNode:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MUTLS_")}
        self.port = free_port()
        self.env.update(
            {
                "MUTLS_DATA_DIR": str(self.directory / "data"),
                "MUTLS_EGRESS_LISTEN": f"127.0.0.1:{self.port}",
                "MUTLS_EGRESS_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
                "MUTLS_EGRESS_POLL_SECONDS": "0.1",
                "MUTLS_LOG_LEVEL": "info",
            }
        )
        if self.database_url is not None:
            self.env["MUTLS_DATABASE_URL"] = self.database_url
        settings = Settings.from_env(self.env)
        self.platform, _ = bootstrap(settings)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.env['MUTLS_EGRESS_METRICS_LISTEN']}/metrics"

    def now(self) -> datetime:
        return datetime.now(UTC)

    def secret(self, name: str, values: dict[str, dict[str, object]], **extra: Any) -> str:
        assert self.platform is not None
        view = create_secret(
            self.platform.db,
            self.platform.keys,
            ADMIN,
            name=name,
            secret_type=extra.pop("secret_type", "certificate"),
            values=values,
            now=self.now(),
            **extra,
        )
        return view.id

    def set_value(self, name: str, environment: str, fields: dict[str, object]) -> None:
        assert self.platform is not None
        set_value(
            self.platform.db,
            self.platform.keys,
            ADMIN,
            name,
            environment=environment,
            fields=fields,
            now=self.now(),
        )

    def token(self, name: str = "app", **extra: Any) -> str:
        assert self.platform is not None
        issued = create_token(
            self.platform.db, ADMIN, name=name, role="app", now=self.now(), **extra
        )
        return issued.token

    def route(self, name: str, target_url: str, **fields: Any) -> None:
        assert self.platform is not None
        create_egress_route(
            self.platform.db,
            ADMIN,
            EgressRouteSpec(name=name, target_url=target_url, **fields),
            now=self.now(),
        )

    def start(self, *, workers: int = 1) -> EgressNode:
        self.env["MUTLS_EGRESS_WORKERS"] = str(workers)
        with (self.directory / "egress.log").open("wb") as log:
            self.process = subprocess.Popen(
                [str(MUTLS), "egress"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def listening() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"mutls egress exited:\n{self.log()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return True
            return False

        wait_until(listening, 20, what="mutls egress listening")
        return self

    def log(self) -> str:
        path = self.directory / "egress.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.platform is not None:
            self.platform.close()


@contextlib.contextmanager
def egress_node(directory: Path) -> Iterator[EgressNode]:
    node = EgressNode(directory).open()
    try:
        yield node
    finally:
        node.stop()
