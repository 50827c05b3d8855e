"""The mTLS gateway while it runs: live changes, scale-out, certificate reload, limits, operations.

Every server here is a real process: `mutls up` (SQLite, two gateway workers), extra
`mutls gateway` processes on the same data directory with their own limits, and on PostgreSQL an
API node with two gateways. The upstream is a small threaded HTTP/1.1 server in this process.
Change bounds (2 s) are measured from the moment the CLI call that made the change returns, and
every wait polls against a deadline; a slow change is reported with the time it really took.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import http.client
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mutls.pki.authority import Profile
from mutls.testing import TestCA
from tests.dbfixtures import fresh_postgres_database
from tests.e2e.conftest import MUTLS
from tests.e2e.test_cli_platform import Server, _clean_env, _free_port
from tests.secretscan import register_secret

LIMIT = 2.0
"""Seconds within which a change made through the API must be in force on every gateway."""
PATIENCE = 10.0
"""How long a wait goes on past LIMIT, so a failure says how late the change really was."""
BIG = random.Random(20).randbytes(20 * 1024 * 1024)
_START_TIMEOUT = 60.0


# --- the upstream ----------------------------------------------------------------------------


class _Upstream(BaseHTTPRequestHandler):
    """GET: the path and the identity headers as JSON; POST/PUT: the body's length and sha256;
    /big: 20 MB; /slow: answers after 1 s; /hang: after 5 s; HEAD: a head with a length."""

    protocol_version = "HTTP/1.1"
    server: _UpstreamServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, value: object) -> None:
        self._send(200, json.dumps(value).encode())

    def do_HEAD(self) -> None:
        self._send(200, b"x" * 1234, "text/plain")

    def do_GET(self) -> None:
        self.server.seen.append(self.path)
        if self.path.endswith("/big"):
            self._send(200, BIG, "application/octet-stream")
            return
        if self.path.endswith("/slow"):
            self.server.slow_started.set()
            time.sleep(1.0)
        elif self.path.endswith("/hang"):
            time.sleep(5.0)
        self._json(
            {
                "path": self.path,
                "host": self.headers.get("Host"),
                "request_version": self.request_version,
                "account": self.headers.get("X-Mutls-Account"),
                "serial": self.headers.get("X-Mutls-Cert-Serial"),
            }
        )

    def do_POST(self) -> None:
        digest, length = hashlib.sha256(), 0
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        if chunked:
            while size := int(self.rfile.readline().split(b";")[0].strip(), 16):
                data = self.rfile.read(size)
                digest.update(data)
                length += len(data)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left:
                data = self.rfile.read(min(left, 1 << 20))
                digest.update(data)
                length += len(data)
                left -= len(data)
        self._json({"sha256": digest.hexdigest(), "length": length, "chunked": chunked})

    do_PUT = do_POST


class _UpstreamServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Upstream)
        self.seen: list[str] = []
        self.slow_started = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def upstream() -> Iterator[_UpstreamServer]:
    server = _UpstreamServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


# --- processes and the CLI -------------------------------------------------------------------


def _wait_for(check: Callable[[], object], *, limit: float, what: str) -> float:
    """Poll ``check`` until it is truthy; the seconds it took. Fails past ``limit + PATIENCE``."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > limit + PATIENCE:
            pytest.fail(f"{what}: still not true after {limit + PATIENCE:.0f} s")
        time.sleep(0.05)


def _within(started: float, check: Callable[[], object], *, what: str) -> float:
    """``check`` becomes true within LIMIT seconds of ``started`` (a monotonic time)."""
    _wait_for(check, limit=LIMIT - (time.monotonic() - started), what=what)
    took = time.monotonic() - started
    assert took <= LIMIT, f"{what} took {took:.2f} s (limit {LIMIT} s)"
    return took


def _cli(env: dict[str, str], *args: str, cwd: Path | None = None) -> str:
    """``mutls ARGS`` with only ``env``'s MUTLS_* settings; stdout. Fails on a non-zero exit."""
    proc = subprocess.run(
        [str(MUTLS), *args],
        env={**_clean_env(), **env},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"mutls {' '.join(args)} failed:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until ``url`` answers /healthz (the caller stops ``proc`` if this fails)."""
    deadline = time.monotonic() + _START_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args!r} exited with {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer /healthz; see {log}")
        time.sleep(0.1)


def _start_up(base: Path, **extra: str) -> Server:
    """`mutls up` like test_cli_platform.start_server, with gateway settings of our own."""
    base.mkdir(parents=True, exist_ok=True)
    data_dir, log = Path(extra.get("MUTLS_DATA_DIR") or base / "data"), base / "mutls-up.log"
    port, gateway_port, metrics_port = _free_port(), _free_port(), _free_port()
    env = {
        **_clean_env(),
        "MUTLS_DATA_DIR": str(data_dir),
        "MUTLS_API_LISTEN": f"127.0.0.1:{port}",
        "MUTLS_RENEW_LISTEN": "off",
        "MUTLS_GATEWAY_LISTEN": f"127.0.0.1:{gateway_port}",
        "MUTLS_GATEWAY_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
        "MUTLS_EGRESS_LISTEN": f"127.0.0.1:{_free_port()}",
        "MUTLS_EGRESS_METRICS_LISTEN": f"127.0.0.1:{_free_port()}",
        "MUTLS_LOG_LEVEL": "debug",
        **extra,
    }
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [str(MUTLS), "up"], cwd=base, env=env, stdin=subprocess.DEVNULL, stdout=sink,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(url, proc, log)
        token = (data_dir / "admin-token").read_text().strip()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    register_secret(token)
    return Server(
        url=url,
        data_dir=data_dir,
        log=log,
        proc=proc,
        admin_token=token,
        gateway_url=f"https://127.0.0.1:{gateway_port}",
        metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
    )


@dataclass
class Gateway:
    """One `mutls gateway` process."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    metrics_url: str = ""

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def _spawn_gateway(base: Path, name: str, env: dict[str, str], *, workers: int = 1) -> Gateway:
    """Start `mutls gateway` (not yet waited for: see _ready)."""
    base.mkdir(parents=True, exist_ok=True)
    port, metrics = _free_port(), _free_port()
    log = base / f"{name}.log"
    full = {
        **_clean_env(),
        "MUTLS_GATEWAY_METRICS_LISTEN": f"127.0.0.1:{metrics}",
        "MUTLS_LOG_LEVEL": "debug",
        **env,
    }
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [str(MUTLS), "gateway", "--listen", f"127.0.0.1:{port}", "--workers", str(workers)],
            cwd=base, env=full, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return Gateway(proc=proc, port=port, log=log, metrics_url=f"http://127.0.0.1:{metrics}/metrics")


def _ready(gateway: Gateway) -> Gateway:
    """Wait until the gateway says it listens (its workers are forked by then)."""
    deadline = time.monotonic() + _START_TIMEOUT
    while "mTLS gateway listening" not in gateway.log.read_text(errors="replace"):
        if gateway.proc.poll() is not None:
            log = gateway.log.read_text(errors="replace")[-3000:]
            pytest.fail(f"mutls gateway exited with {gateway.proc.returncode}:\n{log}")
        if time.monotonic() > deadline:
            gateway.proc.kill()
            pytest.fail(f"mutls gateway did not start; see {gateway.log}")
        time.sleep(0.05)
    return gateway


@contextlib.contextmanager
def _gateways(*gateways: Gateway, wait: bool = True) -> Iterator[tuple[Gateway, ...]]:
    """Wait for every gateway (unless told not to), stop them all at the end; each must exit 0."""
    try:
        yield tuple(_ready(g) for g in gateways) if wait else gateways
    finally:
        codes = [g.stop() for g in gateways]
    assert codes == [0] * len(gateways), f"gateway exit codes {codes}"


# --- TLS clients -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    """A client certificate (chain) and key on disk."""

    cert: Path
    key: Path
    serial: str = ""
    id: str = ""


def _context(trust: Path, client: Client | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(trust))
    if client is not None:
        ctx.load_cert_chain(client.cert, client.key)
    return ctx


def _connect(port: int, ctx: ssl.SSLContext) -> http.client.HTTPSConnection:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=15)
    conn.connect()
    return conn


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> dict[str, object]:
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value

    @property
    def code(self) -> str:
        error = self.json().get("error")
        return str(error["code"]) if isinstance(error, dict) else "ok"


def _ask(
    conn: http.client.HTTPSConnection,
    path: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    return Answer(response.status, data, {k.lower(): v for k, v in response.getheaders()})


def _fresh(port: int, ctx: ssl.SSLContext, path: str, **kwargs: object) -> Answer:
    """One request on a new connection."""
    conn = _connect(port, ctx)
    try:
        return _ask(conn, path, **kwargs)  # type: ignore[arg-type]
    finally:
        conn.close()


def _outcome(port: int, ctx: ssl.SSLContext, path: str) -> str:
    """A fresh request's error code ("ok" for 200), or "tls:<error>" if TLS refused it."""
    try:
        answer = _fresh(port, ctx, path)
    except (ssl.SSLError, ConnectionError) as error:
        return f"tls:{type(error).__name__}:{error}"
    return answer.code if answer.status != 200 else "ok"


def _closed_by_server(conn: http.client.HTTPSConnection) -> str | None:
    """How the server ended this idle connection: "eof" (close_notify or FIN), "reset", or None
    while it is still open."""
    sock = conn.sock
    assert isinstance(sock, ssl.SSLSocket)
    if not sock.pending() and not select.select([sock], [], [], 0)[0]:
        return None
    sock.settimeout(0.05)
    try:
        data = sock.recv(1)
    except TimeoutError:
        return None
    except ssl.SSLWantReadError:
        return None
    except (ConnectionError, ssl.SSLError):
        return "reset"
    finally:
        sock.settimeout(15)
    assert data == b"", f"unexpected bytes on an idle connection: {data!r}"
    return "eof"


def _peer_cert(port: int, trust: Path) -> x509.Certificate:
    """The server certificate a new connection sees (no client certificate needed for that)."""
    ctx = _context(trust)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _raw_tls(port: int, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=15)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def _read_answer(stream: BinaryIO, *, head_only: bool = False) -> Answer:
    """One HTTP/1.1 answer framed by Content-Length (what the gateway and the upstream send)."""
    status_line = stream.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = 0 if head_only else int(headers.get("content-length", "0"))
    return Answer(int(status_line.split()[1]), stream.read(length), headers)


# --- the admin API ---------------------------------------------------------------------------


def _csr(cn: str) -> tuple[bytes, bytes]:
    """A new P-256 key and its CSR (PEM), made the way a customer's own tooling would."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


@dataclass
class Admin:
    """The admin API of one node, as an operator's script would call it."""

    url: str
    token: str = field(repr=False)
    upstream: str

    def call(self, method: str, path: str, body: object = None, expect: int = 200) -> Any:
        answer = httpx.request(
            method,
            f"{self.url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        assert answer.status_code == expect, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None

    def account(self, name: str) -> None:
        self.call("POST", "/admin/accounts", {"name": name}, expect=201)
        self.mtls(name, enabled=True)

    def mtls(self, account: str, **settings: object) -> None:
        self.call("PUT", f"/admin/accounts/{account}/mtls", settings)

    def route(self, name: str, prefix: str, upstream: str | None = None) -> None:
        body = {"name": name, "upstream_url": upstream or self.upstream, "path_prefix": prefix}
        self.call("POST", "/admin/routes", body, expect=201)

    def remove_route(self, name: str) -> None:
        self.call("DELETE", f"/admin/routes/{name}", expect=204)

    def add_ca(self, account: str, chain_pem: bytes) -> None:
        body = {"chain_pem": chain_pem.decode()}
        self.call("POST", f"/admin/accounts/{account}/cas", body, expect=201)

    def revoke(self, client: Client) -> None:
        self.call("POST", f"/admin/certificates/{client.id}/revoke", {})

    def issue(self, account: str, cn: str, directory: Path) -> Client:
        """A client certificate from the platform CA, for a CSR whose key stays here."""
        key_pem, csr_pem = _csr(cn)
        issued = self.call(
            "POST", f"/admin/accounts/{account}/certificates", {"csr_pem": csr_pem.decode()},
            expect=201,
        )  # fmt: skip
        cert, key = directory / f"{cn}.pem", directory / f"{cn}.key.pem"
        cert.write_text(issued["certificate_pem"] + issued["chain_pem"])
        key.write_bytes(key_pem)
        return Client(cert=cert, key=key, serial=issued["serial"], id=issued["id"])


def _all(port: int, ctx: ssl.SSLContext, path: str, outcome: str, n: int = 6) -> bool:
    """``n`` fresh connections in a row get ``outcome`` (so both workers are asked)."""
    return all(_outcome(port, ctx, path) == outcome for _ in range(n))


# --- the platform ----------------------------------------------------------------------------


@dataclass
class Live:
    """The module's `mutls up` (two gateway workers) and what is set up on it."""

    server: Server
    admin: Admin
    upstream: _UpstreamServer
    base: Path
    trust: Path
    """The platform CA chain: the gateway's server certificate verifies against it."""
    shared: Client = field(default_factory=lambda: Client(Path(), Path()))
    """A certificate of account "live" for the tests that do not change it."""

    @property
    def ctx(self) -> ssl.SSLContext:
        return _context(self.trust, self.shared)

    @property
    def port(self) -> int:
        return int(self.server.gateway_url.rsplit(":", 1)[1])

    def client(self, account: str, cn: str) -> tuple[Client, ssl.SSLContext]:
        """A new certificate for ``account``, once the gateway accepts it (within 2 s)."""
        client = self.admin.issue(account, cn, self.base)
        issued = time.monotonic()
        ctx = _context(self.trust, client)
        _within(issued, lambda: _all(self.port, ctx, "/live/ready", "ok"), what=f"{cn} accepted")
        return client, ctx

    def gateway_env(self, **extra: str) -> dict[str, str]:
        """A separate `mutls gateway` on this platform's SQLite data directory."""
        return {"MUTLS_DATA_DIR": str(self.server.data_dir), **extra}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, upstream: _UpstreamServer) -> Iterator[Live]:
    base = tmp_path_factory.mktemp("gateway-live")
    server = _start_up(
        base / "platform",
        MUTLS_GATEWAY_WORKERS="2",
        MUTLS_GATEWAY_MAX_BODY_BYTES=str(64 * 1024 * 1024),
    )
    try:
        chain = httpx.get(f"{server.url}/ca/platform/chain.pem", timeout=10)
        assert chain.status_code == 200, chain.text
        trust = base / "platform-chain.pem"
        trust.write_bytes(chain.content)
        admin = Admin(url=server.url, token=server.admin_token, upstream=upstream.url)
        admin.account("live")
        admin.mtls("live", certificate_quota=50)
        admin.route("live", "/live")
        live = Live(server=server, admin=admin, upstream=upstream, base=base, trust=trust)
        live.shared, _ = live.client("live", "shared.live.example")
        yield live
    finally:
        code = server.stop()
    assert code == 0, f"mutls up exited with {code}"
    assert server.leaked() == [], f"secret values in the server log {server.log}"


# --- 1. revocation ---------------------------------------------------------------------------


def _children(parent: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            if re.search(rf"^PPid:\s+{parent}$", status.read_text(), re.MULTILINE):
                found.append(int(status.parent.name))
    return found


def _serving_process(parent: int, port: int, client_ports: list[int]) -> dict[int, int]:
    """Client port -> pid of the child of ``parent`` holding the server side of that connection."""
    owner: dict[str, int] = {}
    for pid in _children(parent):
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            with contextlib.suppress(OSError):
                target = str(fd.readlink())
                if target.startswith("socket:["):
                    owner[target[8:-1]] = pid
    found: dict[int, int] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        remote_port = int(remote.split(":")[1], 16)
        if int(local.split(":")[1], 16) == port and remote_port in client_ports and inode in owner:
            found[remote_port] = owner[inode]
    return found


def test_revocation_reaches_every_worker_and_closes_its_connections(live: Live) -> None:
    """Within 2 s of `mutls cert revoke`, both workers answer 403 certificate_revoked on fresh
    connections and close the revoked certificate's open keep-alive connections."""
    client, ctx = live.client("live", "revoked.live.example")
    kept: list[http.client.HTTPSConnection] = []
    try:
        # Keep-alive connections until both workers hold some (the kernel picks the worker).
        deadline = time.monotonic() + 20
        owners: dict[int, int] = {}
        while len(kept) < 4 or len(set(owners.values())) < 2:
            assert time.monotonic() < deadline, f"one worker took every connection: {owners}"
            kept.append(_connect(live.port, ctx))
            answer = _ask(kept[-1], "/live/before")
            assert answer.status == 200, answer.body
            assert answer.json()["serial"] == client.serial
            ports = [c.sock.getsockname()[1] for c in kept if c.sock is not None]
            owners = _serving_process(live.server.proc.pid, live.port, ports)
        assert len(owners) == len(kept), "every kept connection is held by a gateway worker"

        _cli(live.server.env(), "cert", "revoke", client.serial)
        revoked = time.monotonic()

        closed = _within(
            revoked,
            lambda: all(_closed_by_server(c) for c in kept),
            what="the revoked certificate's keep-alive connections closed",
        )
        assert {_closed_by_server(c) for c in kept} == {"eof"}, "closed cleanly, not reset"
        refused = _within(
            revoked,
            lambda: _all(live.port, ctx, "/live/after", "certificate_revoked", n=10),
            what="10 fresh connections in a row get 403 certificate_revoked",
        )
        answer = _fresh(live.port, ctx, "/live/after")
        assert answer.status == 403
        assert "revoked" in str(answer.json()["error"])
        print(f"revocation: connections closed after {closed:.2f} s, refused after {refused:.2f} s")
    finally:
        for conn in kept:
            conn.close()
    assert not any("/live/after" in seen for seen in live.upstream.seen)


# --- 2. routes, accounts and trusted CAs -----------------------------------------------------


def test_route_added_and_removed_applies_within_2s(live: Live) -> None:
    """A route added through the API serves within 2 s; once removed, 404 route_not_found."""
    ctx = live.ctx
    assert _all(live.port, ctx, "/added/x", "route_not_found")

    live.admin.route("added", "/added")
    _within(time.monotonic(), lambda: _all(live.port, ctx, "/added/x", "ok"), what="new route")
    live.admin.remove_route("added")
    removed = time.monotonic()
    _within(removed, lambda: _all(live.port, ctx, "/added/x", "route_not_found"), what="route gone")
    answer = _fresh(live.port, ctx, "/added/x")
    assert answer.status == 404


def test_account_disabled_applies_within_2s(live: Live) -> None:
    """Turning an account's mTLS off gives its certificates 403 account_mtls_disabled in 2 s."""
    live.admin.account("switched-off")
    _, ctx = live.client("switched-off", "off.switched.example")
    live.admin.mtls("switched-off", enabled=False)
    disabled = time.monotonic()
    _within(
        disabled,
        lambda: _all(live.port, ctx, "/live/x", "account_mtls_disabled"),
        what="account_mtls_disabled",
    )
    assert _fresh(live.port, ctx, "/live/x").status == 403


def test_account_ca_added_is_trusted_within_2s(live: Live, tmp_path: Path) -> None:
    """An unknown CA's client fails the TLS handshake; once the account trusts that CA, its
    certificates pass within 2 s."""
    live.admin.account("byo")
    ca = TestCA(name="BYO Root CA", organization="BYO")
    identity = ca.issue("svc.byo.example")
    client = Client(cert=tmp_path / "byo.pem", key=tmp_path / "byo.key.pem")
    client.cert.write_bytes(identity.chain_pem)
    client.key.write_bytes(identity.key_pem())
    ctx = _context(live.trust, client)
    before = _outcome(live.port, ctx, "/live/x")
    assert before.startswith("tls:"), before
    assert "unknown ca" in before.lower().replace("_", " "), before

    live.admin.add_ca("byo", ca.root_pem + b"".join(
        c.public_bytes(serialization.Encoding.PEM) for c in ca.intermediates
    ))  # fmt: skip
    _within(time.monotonic(), lambda: _all(live.port, ctx, "/live/x", "ok"), what="BYO CA")
    assert _fresh(live.port, ctx, "/live/x").json()["account"] == "byo"


# --- 3. scale-out on PostgreSQL --------------------------------------------------------------


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test, dropped afterwards."""
    with fresh_postgres_database("mutls_gateway") as url:
        yield url


def test_scale_out_on_postgresql(
    postgres_url: str, upstream: _UpstreamServer, tmp_path: Path
) -> None:
    """On one PostgreSQL database, a revocation made on a `mutls api` node reaches two separate
    `mutls gateway` processes within 2 s (LISTEN/NOTIFY), and closes their open connections."""
    data = tmp_path / "api-node"
    db_env = {"MUTLS_DATABASE_URL": postgres_url, "MUTLS_DATA_DIR": str(data)}
    _cli(db_env, "db", "upgrade")
    # The gateways share nothing with the API node but the database: their own (empty) data
    # directories and a server certificate from files.
    server_ca = TestCA(name="Gateway Server CA")
    server_id = server_ca.issue("localhost", profile=Profile.SERVER, sans=["127.0.0.1"])
    (tmp_path / "gw.pem").write_bytes(server_id.chain_pem)
    (tmp_path / "gw.key").write_bytes(server_id.key_pem())
    trust = tmp_path / "gw-trust.pem"
    trust.write_bytes(server_ca.root_pem)
    gateway_env = {
        "MUTLS_DATABASE_URL": postgres_url,
        "MUTLS_GATEWAY_CERT_FILE": str(tmp_path / "gw.pem"),
        "MUTLS_GATEWAY_KEY_FILE": str(tmp_path / "gw.key"),
    }
    spawned = [
        _spawn_gateway(
            tmp_path / name, name, {**gateway_env, "MUTLS_DATA_DIR": str(tmp_path / name)},
            workers=workers,
        )
        for name, workers in (("gw-a", 1), ("gw-b", 2))
    ]  # fmt: skip
    with _gateways(*spawned, wait=False) as gateways:
        # First start (`mutls up`) makes the platform CA, the master key and the first admin
        # token; then the API node serves on the same database with the same data directory.
        first = _start_up(tmp_path / "first", **db_env)
        assert first.stop() == 0
        port = _free_port()
        log = tmp_path / "api.log"
        with log.open("wb") as sink:
            api = subprocess.Popen(
                [str(MUTLS), "api"],
                env={**_clean_env(), **db_env, "MUTLS_API_LISTEN": f"127.0.0.1:{port}",
                     "MUTLS_RENEW_LISTEN": "off"},
                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            _wait_http(f"http://127.0.0.1:{port}", api, log)
            for gateway in gateways:
                _ready(gateway)
            token = (data / "admin-token").read_text().strip()
            admin = Admin(url=f"http://127.0.0.1:{port}", token=token, upstream=upstream.url)
            admin.account("scale")
            admin.route("scale", "/scale")
            client = admin.issue("scale", "svc.scale.example", tmp_path)
            other = admin.issue("scale", "other.scale.example", tmp_path)
            issued = time.monotonic()
            ctx, other_ctx = _context(trust, client), _context(trust, other)
            for gateway in gateways:
                _within(
                    issued,
                    functools.partial(_all, gateway.port, ctx, "/scale/x", "ok"),
                    what=f"new certificate on {gateway.log.stem}",
                )
                assert _outcome(gateway.port, other_ctx, "/scale/x") == "ok"
            kept = [_connect(g.port, ctx) for g in gateways for _ in range(2)]
            try:
                assert all(_ask(c, "/scale/kept").status == 200 for c in kept)
                admin.revoke(client)
                revoked = time.monotonic()
                for gateway in gateways:
                    _within(
                        revoked,
                        functools.partial(
                            _all, gateway.port, ctx, "/scale/x", "certificate_revoked"
                        ),
                        what=f"revocation on {gateway.log.stem}",
                    )
                _within(revoked, lambda: all(_closed_by_server(c) for c in kept),
                        what="open connections on both gateways closed")  # fmt: skip
                assert {_closed_by_server(c) for c in kept} == {"eof"}

                # A change that is not about certificates travels the same way.
                admin.remove_route("scale")
                removed = time.monotonic()
                for gateway in gateways:
                    _within(
                        removed,
                        functools.partial(
                            _all, gateway.port, other_ctx, "/scale/x", "route_not_found"
                        ),
                        what=f"route removal on {gateway.log.stem}",
                    )
            finally:
                for conn in kept:
                    conn.close()
        finally:
            api.send_signal(signal.SIGINT)
            assert api.wait(timeout=20) == 0


# --- 4. server certificate replaced on disk --------------------------------------------------


def _replace(path: Path, data: bytes) -> None:
    """Write a file the way deployment tools should: a temporary file, then one rename."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


def test_server_certificate_replaced_without_dropping_connections(
    live: Live, tmp_path: Path
) -> None:
    """A new certificate pair on disk is served to new connections within about 2 s while an
    open connection keeps working; a pair whose key does not match keeps the old one in use."""
    ca = TestCA(name="Gateway Files CA")
    trust = tmp_path / "trust.pem"
    trust.write_bytes(ca.root_pem)
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    first = ca.issue("localhost", profile=Profile.SERVER, sans=["127.0.0.1"])
    cert.write_bytes(first.chain_pem)
    key.write_bytes(first.key_pem())
    env = live.gateway_env(MUTLS_GATEWAY_CERT_FILE=str(cert), MUTLS_GATEWAY_KEY_FILE=str(key))
    client = live.shared
    with _gateways(_spawn_gateway(tmp_path, "gw-files", env)) as (gateway,):
        assert _peer_cert(gateway.port, trust) == first.certificate
        ctx = _context(trust, client)
        kept = _connect(gateway.port, ctx)
        try:
            assert _ask(kept, "/live/one").status == 200

            second = ca.issue("localhost", profile=Profile.SERVER, sans=["127.0.0.1"])
            _replace(key, second.key_pem())
            _replace(cert, second.chain_pem)
            took = _wait_for(
                lambda: _peer_cert(gateway.port, trust) == second.certificate,
                limit=2.5,
                what="new connections see the new certificate",
            )
            assert took <= 2.5, f"the new certificate took {took:.2f} s"
            assert _ask(kept, "/live/two").status == 200  # the open connection survived
            assert _fresh(gateway.port, ctx, "/live/three").status == 200

            broken = ca.issue("localhost", profile=Profile.SERVER, sans=["127.0.0.1"])
            _replace(cert, broken.chain_pem)  # its key is not second's: a broken pair
            _wait_for(
                lambda: "reload failed" in gateway.log.read_text(errors="replace"),
                limit=2.5,
                what="the broken pair is noticed",
            )
            assert _peer_cert(gateway.port, trust) == second.certificate
            assert _fresh(gateway.port, ctx, "/live/four").status == 200
            assert _ask(kept, "/live/five").status == 200
        finally:
            kept.close()


# --- 5. limits and timeouts ------------------------------------------------------------------


@dataclass
class Limited:
    """A `mutls gateway` with small limits and timeouts, and a route to a closed port."""

    gateway: Gateway
    ctx: ssl.SSLContext
    dead_port: int

    def no_address(self, answer: Answer, upstream_port: int) -> None:
        text = answer.body.decode()
        for address in (f"127.0.0.1:{upstream_port}", f"127.0.0.1:{self.dead_port}"):
            assert address not in text, text
        assert str(self.dead_port) not in text


@pytest.fixture(scope="module")
def limited(live: Live, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Limited]:
    dead_port = _free_port()
    live.admin.route("dead", "/dead", upstream=f"http://127.0.0.1:{dead_port}")
    env = live.gateway_env(
        MUTLS_GATEWAY_MAX_HEADER_BYTES="2048",
        MUTLS_GATEWAY_MAX_BODY_BYTES="4096",
        MUTLS_GATEWAY_UPSTREAM_TIMEOUT="1",
        MUTLS_GATEWAY_IDLE_TIMEOUT="1",
    )
    client = live.shared
    ctx = _context(live.trust, client)
    base = tmp_path_factory.mktemp("gw-limits")
    with _gateways(_spawn_gateway(base, "gw-limits", env)) as (gateway,):
        _wait_for(lambda: _outcome(gateway.port, ctx, "/dead/x") != "route_not_found",
                  limit=LIMIT, what="the dead route is loaded")  # fmt: skip
        yield Limited(gateway=gateway, ctx=ctx, dead_port=dead_port)


def test_oversized_head_is_431_and_oversized_body_is_413(live: Live, limited: Limited) -> None:
    """A head over MUTLS_GATEWAY_MAX_HEADER_BYTES is 431 and a body over
    MUTLS_GATEWAY_MAX_BODY_BYTES is 413, both as JSON errors; a body under the limit passes."""
    port, ctx = limited.gateway.port, limited.ctx
    assert _fresh(port, ctx, "/live/x", method="POST", body=b"c" * 4000).status == 200
    head = _fresh(port, ctx, "/live/x", headers={"X-Big": "a" * 3000})
    body = _fresh(port, ctx, "/live/x", method="POST", body=b"b" * 8000)
    found = {"head": (head.status, head.body), "body": (body.status, body.body)}
    assert (head.status, body.status) == (431, 413), found
    for answer in (head, body):
        assert answer.headers["content-type"] == "application/json"
        assert answer.code == "input_too_large", answer.body


def test_upstream_timeout_is_504_and_closed_port_is_502(live: Live, limited: Limited) -> None:
    """A silent upstream is 504 upstream_timeout after MUTLS_GATEWAY_UPSTREAM_TIMEOUT, a closed
    upstream port 502 upstream_unavailable; neither answer names the upstream's address."""
    port, ctx = limited.gateway.port, limited.ctx
    started = time.monotonic()
    timeout = _fresh(port, ctx, "/live/hang")
    took = time.monotonic() - started
    assert (timeout.status, timeout.code) == (504, "upstream_timeout"), timeout.body
    assert 0.9 <= took < 4.0, f"504 after {took:.2f} s with a 1 s upstream timeout"
    unavailable = _fresh(port, ctx, "/dead/x")
    assert (unavailable.status, unavailable.code) == (502, "upstream_unavailable")
    for answer in (timeout, unavailable):
        limited.no_address(answer, live.upstream.server_address[1])


def test_idle_keep_alive_connection_is_closed(limited: Limited) -> None:
    """An idle keep-alive connection is closed (cleanly) after MUTLS_GATEWAY_IDLE_TIMEOUT=1."""
    kept = _connect(limited.gateway.port, limited.ctx)
    try:
        assert _ask(kept, "/live/idle").status == 200
        answered = time.monotonic()
        assert _closed_by_server(kept) is None
        _wait_for(lambda: _closed_by_server(kept), limit=3.0, what="idle connection closed")
        assert _closed_by_server(kept) == "eof"
        idle = time.monotonic() - answered
        assert 0.9 <= idle <= 3.0, f"closed after {idle:.2f} s idle (timeout 1 s)"
    finally:
        kept.close()


def test_connection_limit_closes_the_extra_connection_at_once(live: Live, tmp_path: Path) -> None:
    """With MUTLS_GATEWAY_MAX_CONNECTIONS=2 and one worker, a third concurrent connection is
    closed at once; after one of the two closes, a new one is served."""
    env = live.gateway_env(MUTLS_GATEWAY_MAX_CONNECTIONS="2")
    client = live.shared
    ctx = _context(live.trust, client)
    with _gateways(_spawn_gateway(tmp_path, "gw-maxconn", env, workers=1)) as (gateway,):
        held = [_connect(gateway.port, ctx) for _ in range(2)]
        try:
            assert all(_ask(c, "/live/held").status == 200 for c in held)
            started = time.monotonic()
            third = _outcome(gateway.port, ctx, "/live/third")
            assert third.startswith("tls:"), third
            assert time.monotonic() - started < 1.0, "the third connection was not closed at once"
            held.pop().close()
            again = _wait_for(
                lambda: _outcome(gateway.port, ctx, "/live/again") == "ok",
                limit=1.0,
                what="a connection is served again once one closed",
            )
            assert again <= 1.0, f"a new connection was served only {again:.2f} s after one closed"
        finally:
            for conn in held:
                conn.close()


# --- 6. streaming, 100-continue, HEAD, pipelining --------------------------------------------


def test_twenty_megabytes_stream_both_ways(live: Live) -> None:
    """A 20 MB request body (Content-Length and chunked) and a 20 MB answer pass byte for byte."""
    ctx = live.ctx
    digest = hashlib.sha256(BIG).hexdigest()
    conn = _connect(live.port, ctx)
    try:
        sized = _ask(conn, "/live/upload", method="POST", body=BIG)
        assert sized.status == 200, sized.body
        assert sized.json() == {"sha256": digest, "length": len(BIG), "chunked": False}

        pieces = (BIG[i : i + 1_000_003] for i in range(0, len(BIG), 1_000_003))
        conn.request("POST", "/live/upload", body=pieces, encode_chunked=True)
        chunked = conn.getresponse()
        assert chunked.status == 200
        assert json.loads(chunked.read()) == {
            "sha256": digest, "length": len(BIG), "chunked": True,
        }  # fmt: skip

        download = _ask(conn, "/live/big")
        assert download.status == 200
        assert len(download.body) == len(BIG)
        assert hashlib.sha256(download.body).hexdigest() == digest
    finally:
        conn.close()


def test_curl_expect_100_continue(live: Live, tmp_path: Path) -> None:
    """curl's `Expect: 100-continue` gets the upstream's 100 Continue through the gateway."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("the curl command is required for this test (make install adds it)")
    client = live.shared
    body = tmp_path / "body.bin"
    body.write_bytes(BIG[: 3 * 1024 * 1024])
    proc = subprocess.run(
        [curl, "-sS", "-v", "--cacert", str(live.trust), "--cert", str(client.cert),
         "--key", str(client.key), "-H", "Expect: 100-continue", "--expect100-timeout", "30",
         "--data-binary", f"@{body}", f"{live.server.gateway_url}/live/upload"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "HTTP/1.1 100 Continue" in proc.stderr
    # curl says this when it gives up waiting and sends the body anyway.
    assert "Done waiting for 100-continue" not in proc.stderr, "the 100 Continue came too late"
    assert json.loads(proc.stdout)["sha256"] == hashlib.sha256(body.read_bytes()).hexdigest()


def test_head_and_pipelined_requests_on_one_connection(live: Live) -> None:
    """Two requests in one write get two answers in order; HEAD gets a head and no body (the
    next answer follows it directly)."""
    ctx = live.ctx
    with _raw_tls(live.port, ctx) as tls:
        host = b"Host: 127.0.0.1\r\n"
        tls.sendall(
            b"GET /live/first HTTP/1.1\r\n" + host + b"\r\n"
            b"GET /live/second HTTP/1.1\r\n" + host + b"\r\n"
        )
        stream = tls.makefile("rb")
        first, second = _read_answer(stream), _read_answer(stream)
        assert (first.status, second.status) == (200, 200)
        assert json.loads(first.body)["path"] == "/live/first"
        assert json.loads(second.body)["path"] == "/live/second"

        tls.sendall(b"HEAD /live/head HTTP/1.1\r\n" + host + b"\r\n")
        head = _read_answer(stream, head_only=True)
        assert head.status == 200
        assert head.headers["content-length"] == "1234"
        tls.sendall(b"GET /live/after-head HTTP/1.1\r\n" + host + b"\r\n")
        after = _read_answer(stream)  # fails if the HEAD answer carried a body
        assert json.loads(after.body)["path"] == "/live/after-head"
        stream.close()


# --- 7. metrics and the access log -----------------------------------------------------------


def _metric_lines(url: str) -> list[str]:
    answer = httpx.get(url, timeout=5)
    assert answer.status_code == 200
    return [line for line in answer.text.splitlines() if not line.startswith("#")]


def test_metrics_and_access_log(live: Live) -> None:
    """/metrics counts requests by outcome, handshakes, upstream latency, certificate days left
    and open connections; the access log has one JSON line per request, without certificates or
    Authorization values."""
    client = live.shared
    ctx = live.ctx
    bearer = f"Bearer secret-{uuid.uuid4().hex}"
    register_secret(bearer.split()[1])
    answer = _fresh(live.port, ctx, "/live/metrics-ok", headers={"Authorization": bearer})
    assert answer.status == 200
    anonymous = _fresh(live.port, _context(live.trust), "/live/metrics-anonymous")
    assert (anonymous.status, anonymous.code) == (401, "client_certificate_required")

    wanted = {
        "ok": re.compile(r'^mutls_gateway_requests_total\{.*code="ok".*\} [1-9]'),
        "required": re.compile(
            r'^mutls_gateway_requests_total\{.*code="client_certificate_required".*\} [1-9]'
        ),
        "handshakes": re.compile(r"^mutls_gateway_handshakes_total [1-9]"),
        "latency": re.compile(r'^mutls_gateway_upstream_latency_seconds_bucket\{.*route="live"'),
        "days": re.compile(
            r'^mutls_gateway_client_certificate_days_left\{account="live"\} 3[0-9][0-9]'
        ),
        "open": re.compile(r"^mutls_gateway_open_connections [0-9]"),
    }
    missing: list[str] = list(wanted)

    def complete() -> bool:
        lines = _metric_lines(live.server.metrics_url)
        missing[:] = [k for k, pattern in wanted.items() if not any(map(pattern.match, lines))]
        return not missing

    _wait_for(complete, limit=3.0, what=f"metrics {missing}")

    def access_lines() -> list[dict[str, Any]]:
        marker = " mutls.gateway.access: "
        log = live.server.log.read_text(errors="replace")
        return [json.loads(line.split(marker, 1)[1]) for line in log.splitlines() if marker in line]

    def ours() -> list[dict[str, Any]]:
        return [e for e in access_lines() if str(e.get("path", "")).startswith("/live/metrics-")]

    _wait_for(lambda: len(ours()) == 2, limit=2.0, what="two access log lines")
    ok, refused = sorted(ours(), key=lambda e: str(e["path"]))[::-1]
    assert ok["path"] == "/live/metrics-ok"
    assert (ok["account"], ok["route"], ok["code"], ok["status"]) == ("live", "live", "ok", 200)
    assert ok["cert_serial"] == client.serial
    assert isinstance(ok["ms"], int | float)
    assert (refused["code"], refused["status"], refused["cert_serial"]) == (
        "client_certificate_required", 401, None,
    )  # fmt: skip
    log = live.server.log.read_text(errors="replace")
    assert bearer.split()[1] not in log
    leaf = x509.load_pem_x509_certificate(client.cert.read_bytes())
    der_b64 = base64.b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode()
    assert der_b64[:40] not in log
    assert "BEGIN CERTIFICATE" not in log


# --- 8. graceful shutdown --------------------------------------------------------------------


def test_sigterm_lets_the_request_in_flight_finish(live: Live, tmp_path: Path) -> None:
    """On SIGTERM a slow request in flight still gets its 200; new connections are refused
    afterwards and `mutls gateway` exits 0."""
    client = live.shared
    ctx = _context(live.trust, client)
    gateway = _ready(_spawn_gateway(tmp_path, "gw-drain", live.gateway_env(), workers=1))
    try:
        assert _fresh(gateway.port, ctx, "/live/warm").status == 200
        live.upstream.slow_started.clear()
        result: list[Answer | BaseException] = []

        def slow() -> None:
            try:
                result.append(_fresh(gateway.port, ctx, "/live/slow"))
            except BaseException as error:
                result.append(error)

        thread = threading.Thread(target=slow)
        thread.start()
        assert live.upstream.slow_started.wait(10), "the slow request never reached the upstream"
        gateway.proc.send_signal(signal.SIGTERM)
        thread.join(15)
        assert len(result) == 1
        answer = result[0]
        assert isinstance(answer, Answer), answer
        assert answer.status == 200
        assert json.loads(answer.body)["path"] == "/live/slow"
        assert gateway.proc.wait(timeout=20) == 0
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", gateway.port), timeout=2).close()
    finally:
        gateway.stop()


# --- 9. plain HTTP on the TLS port -----------------------------------------------------------


def test_plain_http_on_the_tls_port_is_told_to_use_https(live: Live) -> None:
    """A plain-HTTP request to the gateway gets a 400 JSON answer with code tls_required."""
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(b"GET /live/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        stream = sock.makefile("rb")
        answer = _read_answer(stream)
        stream.close()
    assert answer.status == 400
    assert answer.headers["content-type"] == "application/json"
    assert answer.code == "tls_required"


def test_http10_request_without_host_is_forwarded_and_closed(live: Live) -> None:
    """An HTTP/1.0 request without Host (openssl s_time sends one) reaches the upstream with a
    Host header added, gets its answer, and the connection ends after it."""
    with _raw_tls(live.port, live.ctx) as tls:
        tls.sendall(b"GET /live/old-client HTTP/1.0\r\n\r\n")
        received = b""
        while chunk := tls.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"200", head[:200]
    echoed = json.loads(body)
    assert echoed["path"] == "/live/old-client"
    assert echoed["host"], "HTTP/1.1 upstreams must get a Host header"
    assert echoed["request_version"] == "HTTP/1.0"  # a 1.0 client cannot read a chunked answer


def test_a_websocket_upgrade_is_answered_as_plain_http_then_closed(live: Live) -> None:
    """Upgrades are not supported: the request reaches the upstream without its Upgrade header,
    its answer comes back, and the connection ends after it."""
    with _raw_tls(live.port, live.ctx) as tls:
        tls.sendall(
            b"GET /live/socket HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        received = b""
        while chunk := tls.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"200", head[:200]
    assert b"connection: close" in head.lower()
    assert json.loads(body)["path"] == "/live/socket"


class _DropsFirstGet:
    """An upstream that closes the first GET connection and every POST one without a word, and
    answers the other GETs: the connection race a keep-alive pool meets."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = {"GET": 0, "POST": 0}
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                method = "POST" if data.startswith(b"POST") else "GET"
                self.connections[method] += 1
                if method == "GET" and self.connections["GET"] > 1:
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    )

    def close(self) -> None:
        self.sock.close()


def test_a_safe_request_goes_again_once_when_the_upstream_drops_it(
    live: Live, limited: Limited
) -> None:
    """A GET whose upstream connection closes before any answer is sent once more on a new
    connection and succeeds; a POST is not sent again (502 upstream_unavailable)."""
    upstream = _DropsFirstGet()
    try:
        live.admin.route("drops", "/drops", upstream=f"http://127.0.0.1:{upstream.port}")
        port, ctx = limited.gateway.port, limited.ctx
        first: list[str] = []

        def routed() -> bool:
            first[:] = [_outcome(port, ctx, "/drops/first")]
            return first[0] != "route_not_found"

        _wait_for(routed, limit=LIMIT, what="the route is loaded")
        assert first == ["ok"]  # the first GET reached the upstream, was dropped, went again
        assert upstream.connections["GET"] == 2
        post = _fresh(port, ctx, "/drops/x", method="POST", body=b"payment")
        assert (post.status, post.code) == (502, "upstream_unavailable")
        assert upstream.connections["POST"] == 1  # not sent twice
    finally:
        live.admin.remove_route("drops")
        upstream.close()


def _answers(url: str) -> int | None:
    """The HTTP status ``url`` answers with (no client certificate, no token), or None."""
    try:
        return httpx.get(url, verify=False, timeout=2).status_code
    except httpx.HTTPError:
        return None


def test_mutls_up_restarts_dead_gateway_and_egress_workers(tmp_path: Path) -> None:
    """Under `mutls up`, gateway and egress workers killed with SIGKILL are replaced (one each,
    no more) and both listeners answer again; the node still stops cleanly."""
    egress_port = _free_port()
    server = _start_up(
        tmp_path / "up",
        MUTLS_GATEWAY_WORKERS="2",
        MUTLS_EGRESS_WORKERS="1",
        MUTLS_EGRESS_LISTEN=f"127.0.0.1:{egress_port}",
    )
    gateway = f"{server.gateway_url}/mutls/whoami"
    egress = f"http://127.0.0.1:{egress_port}/any/path"
    try:
        parent = server.proc.pid
        _wait_for(lambda: len(_children(parent)) == 3, limit=10, what="3 workers")
        _wait_for(lambda: _answers(gateway) == 401, limit=10, what="the gateway answers")
        _wait_for(lambda: _answers(egress) == 401, limit=10, what="the egress proxy answers")
        dead = set(_children(parent))
        for pid in dead:
            os.kill(pid, signal.SIGKILL)

        def replaced() -> bool:
            now = set(_children(parent))
            return len(now) == 3 and not now & dead

        _wait_for(replaced, limit=10, what="3 new workers")
        assert _answers(gateway) == 401  # the gateway's JSON client_certificate_required
        assert _answers(egress) == 401  # the egress proxy's token_required
        time.sleep(1.0)
        assert len(_children(parent)) == 3, "a restart spawned more workers than died"
    finally:
        code = server.stop()
    assert code == 0, f"mutls up exited with {code}: {server.log.read_text()[-2000:]}"
    log = server.log.read_text()
    assert log.count("exited (-9); starting a new one") == 3, log[-3000:]


def _server_certificate(sock: ssl.SSLSocket) -> x509.Certificate:
    der = sock.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_issued_server_certificates_are_renewed_before_they_expire(tmp_path: Path) -> None:
    """With no certificate files, the certificates the platform CA issues the gateway and the
    renewal listener are replaced at two thirds of their life (here 30 s): fresh handshakes get
    new ones, which verify against the platform chain; a connection opened before keeps
    working on its old certificate."""
    renew_port = _free_port()
    server = _start_up(
        tmp_path / "up",
        MUTLS_GATEWAY_WORKERS="1",
        MUTLS_SERVER_CERT_DAYS=str(30 / 86_400),
        MUTLS_RENEW_LISTEN=f"127.0.0.1:{renew_port}",
    )
    try:
        chain = httpx.get(f"{server.url}/ca/platform/chain.pem", timeout=10)
        trust = tmp_path / "platform-chain.pem"
        trust.write_bytes(chain.content)
        ctx = ssl.create_default_context(cafile=str(trust))
        ports = {"gateway": int(server.gateway_url.rsplit(":", 1)[1]), "renewal": renew_port}
        kept = {name: _raw_tls(port, ctx) for name, port in ports.items()}
        first = {name: _server_certificate(sock) for name, sock in kept.items()}
        for name, port in ports.items():
            life = first[name].not_valid_after_utc - datetime.now(UTC)
            assert life <= timedelta(seconds=31), f"{name}: expected 30 s; {life} left"
            with _raw_tls(port, ctx) as again:  # the twin: not renewed early
                assert _server_certificate(again).serial_number == first[name].serial_number

        def renewed(name: str, seen: list[x509.Certificate]) -> bool:
            with _raw_tls(ports[name], ctx) as fresh:  # verifies chain and name (platform CA)
                seen.append(_server_certificate(fresh))
            return seen[-1].serial_number != first[name].serial_number

        for name in ports:
            seen: list[x509.Certificate] = []
            _wait_for(
                functools.partial(renewed, name, seen),
                limit=30,
                what=f"a renewed {name} certificate",
            )
            assert seen[-1].not_valid_after_utc > first[name].not_valid_after_utc
        assert datetime.now(UTC) < min(c.not_valid_after_utc for c in first.values()), (
            "renewed only after expiry"
        )
        kept["gateway"].sendall(b"GET /mutls/whoami HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _read_answer(kept["gateway"].makefile("rb")).status == 401  # still served
        for name, sock in kept.items():
            assert _server_certificate(sock).serial_number == first[name].serial_number
            sock.close()
    finally:
        code = server.stop()
    assert code == 0
    log = server.log.read_text()
    assert "gateway certificate renewed" in log
    assert "renewal listener certificate renewed" in log
