"""Real servers on 127.0.0.1 for the Python clients: an HTTPS server that requires a client
certificate and echoes its subject, and a plain-HTTP stand-in for the egress proxy that records
each request line and its headers."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socket import socket
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from mutls.pki.authority import Profile
from mutls.pki.export import ExportFormat, export_material
from mutls.pki.loader import load_material
from mutls.testing import Identity, TestCA
from mutls.tls import server_context
from tests.secretscan import register_secret

NOW = datetime.now(UTC).replace(microsecond=0)
PASSPHRASE = "correct horse battery staple"
register_secret(PASSPHRASE)


@dataclass(frozen=True, kw_only=True)
class Pki:
    ca: TestCA
    server: Identity
    client: Identity
    stranger_ca: TestCA
    stranger: Identity  # a client certificate from a CA the server does not trust


@pytest.fixture(scope="session")
def pki() -> Pki:
    ca = TestCA(name="Client Tests CA", now=NOW)
    stranger_ca = TestCA(name="Stranger CA", now=NOW)
    return Pki(
        ca=ca,
        server=ca.issue("localhost", profile=Profile.SERVER, sans=["localhost", "127.0.0.1"]),
        client=ca.issue("client.partner.example"),
        stranger_ca=stranger_ca,
        stranger=stranger_ca.issue("stranger.example"),
    )


@dataclass(frozen=True, kw_only=True)
class Files:
    """One client identity in every shape a user is likely to hold it."""

    chain: Path  # leaf + intermediate, PEM
    key: Path  # plain PKCS#8
    encrypted_key: Path  # encrypted PKCS#8 (PASSPHRASE)
    legacy_key: Path  # "Proc-Type: 4,ENCRYPTED" traditional PEM (PASSPHRASE)
    combined: Path  # chain + plain key in one PEM
    p12: Path  # PKCS#12 (PASSPHRASE)
    ca: Path  # the root that issued the server's certificate


def write_files(directory: Path, identity: Identity, ca: TestCA) -> Files:
    directory.mkdir(parents=True, exist_ok=True)
    material = load_material(identity.combined_pem())
    legacy = identity.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(PASSPHRASE.encode()),
    )
    register_secret(identity.key_pem())
    contents = {
        "chain": identity.chain_pem,
        "key": identity.key_pem(),
        "encrypted_key": identity.key_pem(PASSPHRASE.encode()),
        "legacy_key": legacy,
        "combined": identity.combined_pem(),
        "p12": export_material(material, ExportFormat.P12, passphrase=PASSPHRASE.encode()),
        "ca": ca.root_pem,
    }
    paths = {}
    for name, data in contents.items():
        path = directory / f"{name}.pem"
        path.write_bytes(data)
        paths[name] = path
    return Files(**paths)


@pytest.fixture
def files(tmp_path: Path, pki: Pki) -> Files:
    return write_files(tmp_path / "client", pki.client, pki.ca)


# --- the HTTPS server ----------------------------------------------------------------------------


def _common_name(peer: Any) -> str | None:
    for rdn in peer.get("subject", ()) if peer else ():
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class _EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5
    server: _TlsServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        assert isinstance(self.connection, ssl.SSLSocket)
        peer = self.connection.getpeercert()
        payload = json.dumps(
            {
                "subject": _common_name(peer),
                "method": self.command,
                "path": self.path,
                "body": body.decode("utf-8", "replace"),
            }
        ).encode()
        status = 503 if self.path.startswith("/unavailable") else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _answer
    do_POST = _answer


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.handshakes: list[str] = []
        self.failures: list[str] = []
        super().__init__(("127.0.0.1", 0), _EchoHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        tls = self.context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        try:
            try:
                tls.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                self.failures.append(str(exc))
                # Keep the socket open a moment: closing it at once with the client's unread
                # request in the buffer sends a RST, which can overtake the TLS alert.
                time.sleep(0.3)
                return
            self.handshakes.append(_common_name(tls.getpeercert()) or "")
            _EchoHandler(tls, client_address, self)
        finally:
            tls.close()


@dataclass
class TlsServer:
    url: str
    server: _TlsServer

    @property
    def handshakes(self) -> list[str]:
        return self.server.handshakes

    @property
    def failures(self) -> list[str]:
        return self.server.failures


@pytest.fixture(scope="session")
def mtls_server(pki: Pki) -> Iterator[TlsServer]:
    """HTTPS on 127.0.0.1 requiring a client certificate issued by ``pki.ca``."""
    identity = load_material(pki.server.combined_pem())
    context = server_context(identity, client_cas=[pki.ca.root])
    server = _TlsServer(context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield TlsServer(url=f"https://127.0.0.1:{server.server_address[1]}", server=server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- the egress proxy stand-in -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Recorded:
    method: str
    target: str  # the request target as sent: path and query
    headers: dict[str, str]
    body: bytes


class _RecordingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5
    server: _RecordingServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.recorded.append(
            Recorded(
                method=self.command,
                target=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
        )
        if self.path.startswith("/bank_api/partner-down"):  # an answer the proxy passes on
            status = 502
            payload = json.dumps({"error": {"code": "partner_unreachable"}}).encode()
        else:
            status, payload = 200, json.dumps({"ok": True, "target": self.path}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _answer
    do_POST = _answer
    do_PUT = _answer


class _RecordingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.recorded: list[Recorded] = []
        super().__init__(("127.0.0.1", 0), _RecordingHandler)


@dataclass
class EgressStandIn:
    url: str
    server: _RecordingServer = field(repr=False)

    @property
    def recorded(self) -> list[Recorded]:
        return self.server.recorded

    def last(self) -> Recorded:
        assert self.server.recorded, "the stand-in received no request"
        return self.server.recorded[-1]


@pytest.fixture
def egress_proxy() -> Iterator[EgressStandIn]:
    """Plain HTTP on 127.0.0.1 that records what it receives, as the egress proxy would."""
    server = _RecordingServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield EgressStandIn(url=f"http://127.0.0.1:{server.server_address[1]}", server=server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    with socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
