"""The gateway's per-request CPU in-process, without sockets: what the Python data plane costs.

``run.py`` measures the whole gateway against nginx over loopback; this isolates the part mutls
controls. One TLS 1.3 connection (memory BIOs both ends) sends keep-alive requests through a real
``ClientConnection``; a pooled ``UpstreamConnection`` with a fake transport answers each. Only the
gateway's own calls are timed (decrypt, parse, authorize, forward, relay, encrypt); the client's
encryption is not.

    python bench/gateway/hotpath.py [--requests 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import socket
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL

from mutls.config import GatewayListen, GatewaySettings
from mutls.gateway.connection import ClientConnection
from mutls.gateway.identity import ServerIdentity
from mutls.gateway.worker import Worker
from mutls.pki.authority import Profile
from mutls.pki.material import Material, SourceFormat
from mutls.policy.routing import Route, RouteTable, Upstream
from mutls.policy.snapshot import AccountPolicy, CustomerCA, GatewaySnapshot
from mutls.proxy.upstream import UpstreamConnection
from mutls.testing import TestCA

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Mon, 23 Nov 2026 15:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n"
)


class FakeTransport:
    def __init__(self) -> None:
        self.out: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.out.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


def _setup() -> tuple[ClientConnection, SSL.Connection, FakeTransport, UpstreamConnection]:
    ca = TestCA()
    server = ca.issue("localhost", profile=Profile.SERVER, sans=["DNS:localhost"])
    client = ca.issue("client.acme.example")
    upstream = Upstream(host="127.0.0.1", port=9)
    route = Route(id="r1", name="bench", upstream=upstream)
    cas = (ca.root, *ca.intermediates)
    snapshot = GatewaySnapshot(
        revision=1,
        routes=RouteTable.of([route]),
        accounts={"a1": AccountPolicy(id="a1", name="acme", mtls_enabled=True)},
        customer_cas={
            hashlib.sha256(c.public_bytes(Encoding.DER)).digest(): (
                CustomerCA(id="ca1", account_id="a1"),
            )
            for c in cas
        },
        anchors_der=tuple(c.public_bytes(Encoding.DER) for c in cas),
    )
    identity = ServerIdentity.issued(
        Material(
            source_format=SourceFormat.PEM,
            leaf=server.certificate,
            chain=server.chain,
            key=server.key,
        )
    )
    listen = GatewayListen(host="127.0.0.1", port=0)
    worker = Worker(
        db=None,  # type: ignore[arg-type]  # never touched without serve()
        settings=GatewaySettings(access_log=False),
        identity=identity,
        snapshot=snapshot,
        sockets=[(listen, socket.socket())],
        clock=lambda: datetime.now(UTC),
        run_dir=None,
    )
    connection = ClientConnection(worker, worker.listeners[0])
    transport = FakeTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]

    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.use_certificate(client.certificate)
    for extra in client.chain[1:]:
        context.add_extra_chain_cert(extra)
    context.use_privatekey(client.key)
    tls = SSL.Connection(context, None)
    tls.set_connect_state()
    for _ in range(10):
        with contextlib.suppress(SSL.WantReadError):
            tls.do_handshake()
        with contextlib.suppress(SSL.WantReadError):
            connection.data_received(tls.bio_read(65536))
        for chunk in transport.out:
            tls.bio_write(chunk)
        transport.out.clear()
        if connection.established:
            break
    tls.do_handshake()
    pooled = UpstreamConnection(worker.pool, upstream)
    pooled.connection_made(FakeTransport())  # type: ignore[arg-type]
    worker.pool.release(pooled)
    return connection, tls, transport, pooled


def run(requests: int) -> float:
    """Microseconds of gateway CPU per keep-alive request."""
    connection, tls, transport, pooled = _setup()
    request = b"GET /bench/x HTTP/1.1\r\nHost: localhost\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
    spent = 0.0
    for _ in range(requests):
        tls.sendall(request)
        record = tls.bio_read(65536)
        start = time.thread_time()
        connection.data_received(record)
        pooled.data_received(RESPONSE)
        spent += time.thread_time() - start
        for chunk in transport.out:
            tls.bio_write(chunk)
        transport.out.clear()
        answer = tls.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
    return spent / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.set_event_loop(asyncio.new_event_loop())
    results = [run(args.requests) for _ in range(args.rounds)]
    print(
        f"gateway hot path, in-process: median {statistics.median(results):.1f} µs per "
        f"keep-alive request (rounds: {', '.join(f'{r:.1f}' for r in results)})"
    )


if __name__ == "__main__":
    main()
