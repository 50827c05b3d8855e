"""One client connection: TLS through memory BIOs, HTTP/1.1 parsing, authorize, forward.

The TLS engine is pyOpenSSL (see ``tls/gateway_context.py`` for why) driven through memory BIOs,
so uvloop's transports do every socket call and flow control, and OpenSSL only transforms bytes.
The request path never touches the database: it reads the worker's current snapshot.

An exchange is one request and its answer. Requests are answered in order; a pipelined request
waits, fully buffered (reading pauses meanwhile), until the one before it is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from collections import deque
from datetime import datetime
from typing import TYPE_CHECKING, cast

import httptools
from OpenSSL import SSL

from mutls.errors import (
    ClientCertificateRequired,
    InputTooLarge,
    InvalidArgument,
    MutlsError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from mutls.gateway.http import error_response, forward_head
from mutls.gateway.peer import peer_headers
from mutls.policy.authorize import (
    Allow,
    Deny,
    GatewayRequest,
    Identity,
    authorize,
    check_source,
    identify,
    resolve,
)
from mutls.policy.snapshot import GatewaySnapshot, Peer
from mutls.proxy.http import json_response, request_path
from mutls.proxy.reading import RequestReading
from mutls.proxy.upstream import UpstreamConnection
from mutls.tls.pipe import TlsPipe

if TYPE_CHECKING:
    from mutls.gateway.worker import ListenerState, Worker

__all__ = ["ClientConnection", "Exchange", "request_path"]

log = logging.getLogger("mutls.gateway")

WHOAMI = "/mutls/whoami"
_MAX_PIPELINE_BUFFER = 1024 * 1024
_REPLAYABLE = frozenset({b"GET", b"HEAD", b"OPTIONS"})


def _host_of(value: str) -> str:
    """The host of a Host header, lower case, without port or IPv6 brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    return value.partition(":")[0]


class Exchange:
    """One request: its head, its body's progress, and where its answer comes from."""

    __slots__ = (
        "body_buffer",
        "body_bytes",
        "chunked",
        "close",
        "code",
        "decision",
        "dispatched",
        "has_host",
        "headers",
        "host",
        "http10",
        "keep_alive",
        "local",
        "method",
        "path",
        "request_done",
        "response_started",
        "retried",
        "sent_at",
        "started",
        "status",
        "target",
        "upstream",
    )

    def __init__(self, started: float) -> None:
        self.started = started
        self.target = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.method = b""
        self.host = ""
        self.has_host = False
        self.http10 = False
        self.path = ""
        self.keep_alive = True
        self.chunked = False
        self.body_bytes = 0
        self.body_buffer: list[bytes] = []
        self.request_done = False
        self.dispatched = False
        self.local = False
        self.close = False
        self.upstream: UpstreamConnection | None = None
        self.decision: Allow | Deny | None = None
        self.response_started = False
        self.retried = False
        self.status = 0
        self.code = ""
        self.sent_at = 0.0

    def header(self, name: str) -> str | None:
        wanted = name.encode("ascii")
        for key, value in self.headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None


class ClientConnection(RequestReading, asyncio.Protocol):
    worker: Worker
    receiving: Exchange | None
    # Slots: an idle connection's Python footprint matters at tens of thousands of them.
    __slots__ = (
        "_identity_cached",
        "_resolved",
        "client_ip",
        "client_ip_bytes",
        "close_when_idle",
        "closing",
        "established",
        "last_activity",
        "listener",
        "loop",
        "opened_at",
        "parser",
        "peer",
        "pipe",
        "queue",
        "receiving",
        "tasks",
        "tls",
        "transport",
        "worker",
    )

    def __init__(self, worker: Worker, listener: ListenerState) -> None:
        self.worker = worker
        self.listener = listener
        self.loop = worker.loop
        self.transport: asyncio.Transport | None = None
        self.pipe = TlsPipe(listener.context)
        self.tls = self.pipe.connection
        self.established = False
        self.peer: Peer | None = None
        self.client_ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv4Address(0)
        self.client_ip_bytes = b""
        self.parser = httptools.HttpRequestParser(self)
        self.receiving: Exchange | None = None
        self.queue: deque[Exchange] = deque()
        self.start_reading()
        self.last_activity = self.loop.time()
        self.opened_at = self.last_activity
        self.closing = False
        self.close_when_idle = False
        self.tasks: set[asyncio.Task[None]] = set()
        self._resolved: tuple[GatewaySnapshot, Identity | Deny] | None = None
        self._identity_cached: tuple[object, bytes] | None = None

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's are not subclasses
        worker = self.worker
        if len(worker.connections) >= worker.settings.max_connections or worker.draining:
            worker.stats.rejected_connections += 1
            self.closing = True
            self.transport.abort()
            return
        worker.connections.add(self)
        worker.stats.open_connections = len(worker.connections)
        peername = transport.get_extra_info("peername")
        if peername:
            self.client_ip = ipaddress.ip_address(peername[0])
            self.client_ip_bytes = str(self.client_ip).encode("ascii")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        worker = self.worker
        worker.connections.discard(self)
        worker.stats.open_connections = len(worker.connections)
        for exchange in self.queue:
            if exchange.upstream is not None:
                exchange.upstream.abort()
                exchange.upstream = None
        self.queue.clear()
        for task in self.tasks:
            task.cancel()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_activity = self.loop.time()
        pipe = self.pipe
        pipe.feed(data)
        if not self.established:
            try:
                self.tls.do_handshake()
            except SSL.WantReadError:
                self._flush()
                return
            except SSL.Error as error:
                self._handshake_failed(error)
                return
            self._handshake_done()
        parser = self.parser
        while not self.closing:
            try:
                chunk = pipe.read()
            except SSL.ZeroReturnError:
                self._close(send_notify=False)
                return
            except SSL.Error:
                self._abort()
                return
            if chunk is None:
                break
            try:
                parser.feed_data(chunk)
            except httptools.HttpParserUpgrade:
                # The request asked to switch protocols (WebSocket): it was forwarded without
                # its Upgrade header and is answered as plain HTTP; nothing after it is read.
                self._pause_reading("upgrade")
                self.close_when_idle = True
                if not self.queue:
                    self._close(send_notify=True)
                break
            except httptools.HttpParserError:
                # A callback's own exception reaches here wrapped in HttpParserCallbackError,
                # so the callbacks say what went wrong in _too_large.
                self._bad_request(self._too_large)
                return
            if not pipe.more():
                break
        self._flush()

    def eof_received(self) -> bool:
        # Nothing in flight: close now; else keep the transport open until answers are written.
        return bool(self.queue)

    # --- TLS -------------------------------------------------------------------------------

    def _flush(self) -> None:
        """Hand what OpenSSL wrote for the network to the transport, in one write."""
        transport = self.transport
        if transport is None:
            return
        out = self.pipe.drain()
        if out:
            transport.write(out)

    def _handshake_done(self) -> None:
        self.established = True
        worker = self.worker
        worker.stats.handshakes += 1
        self.peer = worker.peers.get(self.tls)
        self._flush()
        if self.peer is not None:
            identified = identify(self.peer, worker.snapshot, worker.clock())
            if isinstance(identified, Identity):
                days = (self.peer.not_after - worker.clock()).total_seconds() / 86400
                worker.stats.note_certificate(identified.account.name, round(days, 2))
                worker.saw_client(self.tls, self.peer, identified.account.id)

    def _handshake_failed(self, error: SSL.Error) -> None:
        reason = _ssl_reason(error)
        self.worker.stats.handshake_failures[reason] += 1
        if reason == "http request" and self.transport is not None:
            # Plain HTTP on the TLS port: say so in plain HTTP, like nginx's 497.
            body = json.dumps(
                {
                    "error": {
                        "code": "tls_required",
                        "message": "this is an HTTPS port and the request came in plain HTTP",
                        "hint": "use https:// with your client certificate",
                    }
                }
            ).encode()
            self.transport.write(
                b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
            )
        self._flush()  # the alert, if OpenSSL made one
        self._close(send_notify=False)

    # --- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.receiving = Exchange(self.loop.time())
        self.head_bytes = 0

    def on_headers_complete(self) -> None:
        exchange = self.receiving
        assert exchange is not None
        parser = self.parser
        exchange.method = parser.get_method()
        exchange.keep_alive = parser.should_keep_alive()
        exchange.http10 = parser.get_http_version() == "1.0"
        for name, value in exchange.headers:
            lower = name.lower()
            if lower == b"host":
                exchange.host = _host_of(value.decode("latin-1"))
                exchange.has_host = True
            elif lower == b"transfer-encoding" and b"chunked" in value.lower():
                exchange.chunked = True
        if not exchange.host:
            exchange.host = (self.tls.get_servername() or b"").decode("latin-1").lower()
        self.queue.append(exchange)
        if len(self.queue) == 1:
            self._start(exchange)
        else:
            self._pause_reading("pipeline")

    def on_body(self, body: bytes) -> None:
        exchange = self.receiving
        assert exchange is not None
        exchange.body_bytes += len(body)
        if exchange.body_bytes > self.worker.settings.max_body_bytes:
            self._too_large = "body"
            raise InputTooLarge("request body too large")
        if exchange.local:
            return
        upstream = exchange.upstream
        if exchange.dispatched and upstream is not None:
            upstream.write(b"%x\r\n%s\r\n" % (len(body), body) if exchange.chunked else body)
            return
        exchange.body_buffer.append(body)
        if sum(len(b) for b in exchange.body_buffer) > _MAX_PIPELINE_BUFFER:
            self._pause_reading("buffer")

    def on_message_complete(self) -> None:
        exchange = self.receiving
        assert exchange is not None
        exchange.request_done = True
        self.receiving = None
        if exchange.dispatched and exchange.upstream is not None and exchange.chunked:
            exchange.upstream.write(b"0\r\n\r\n")
        if exchange.local and exchange.response_started:
            self._finish(exchange)

    # --- exchanges -------------------------------------------------------------------------

    def _start(self, exchange: Exchange) -> None:
        worker = self.worker
        path = request_path(exchange.target)
        if path is None:
            self._answer(
                exchange,
                400,
                InvalidArgument(
                    "expected an absolute path without dot segments or backslashes",
                    hint="send the request path as /path/to/resource",
                ),
                close=True,
            )
            return
        exchange.path = path
        now = worker.clock()
        if path == WHOAMI:
            self._whoami(exchange, now)
            return
        request = GatewayRequest(
            method=exchange.method.decode("ascii", "replace"),
            host=exchange.host,
            path=path,
            source_ip=self.client_ip,
            header=exchange.header,
        )
        snapshot = worker.snapshot
        resolved = None
        if self.peer is not None:
            cached = self._resolved
            if cached is not None and cached[0] is snapshot:
                resolved = cached[1]
            else:
                resolved = resolve(self.peer, snapshot)
                self._resolved = (snapshot, resolved)
        decision = authorize(self.peer, request, snapshot, now, resolved=resolved)
        exchange.decision = decision
        if isinstance(decision, Deny):
            self._answer(exchange, decision.status, decision.error)
            return
        upstream = worker.pool.take_idle(decision.route.upstream)
        if upstream is not None:
            self._dispatch(exchange, upstream)
            return
        task = self.loop.create_task(self._connect(exchange, decision))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _connect(self, exchange: Exchange, decision: Allow) -> None:
        try:
            upstream = await self.worker.pool.connect(decision.route.upstream)
        except UpstreamUnavailable as error:
            if not self.closing:
                self._answer(exchange, 502, error, close=not exchange.request_done)
            return
        if self.closing:
            upstream.abort()
            return
        self._dispatch(exchange, upstream)

    def _identity_block(self, decision: Allow) -> bytes:
        """The identity header lines for the upstream, rendered once per connection, route and
        snapshot (the certificate's base64 is the costly part)."""
        key = (self.worker.snapshot, decision.route, decision.identity is not None)
        cached = self._identity_cached
        if cached is not None and cached[0] == key:
            return cached[1]
        headers = [(b"X-Mutls-Route", decision.route.name.encode("ascii"))]
        peer, identity = self.peer, decision.identity
        if peer is not None and identity is not None:
            cert, chain = peer_headers(peer)
            headers += [
                (b"Client-Cert", cert),
                (b"X-Mutls-Account", identity.account.name.encode("ascii")),
                (b"X-Mutls-Account-Id", identity.account.id.encode("ascii")),
                (b"X-Mutls-Cert-Serial", peer.serial.encode("ascii")),
                (b"X-Mutls-Cert-Fingerprint", peer.fingerprint.hex().encode("ascii")),
            ]
            if chain:
                headers.append((b"Client-Cert-Chain", chain))
        block = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        self._identity_cached = (key, block)
        return block

    def _dispatch(self, exchange: Exchange, upstream: UpstreamConnection) -> None:
        decision = exchange.decision
        assert isinstance(decision, Allow)
        exchange.upstream = upstream
        exchange.dispatched = True
        upstream.begin(_Sink(self, exchange), head_only=exchange.method == b"HEAD")
        if self._write_paused:
            upstream.pause_reading()  # the client has not taken the last answer yet
        head = forward_head(
            exchange.method,
            exchange.target,
            exchange.headers,
            identity=self._identity_block(decision),
            client_ip=self.client_ip_bytes,
            host=(exchange.host or decision.route.upstream.authority).encode("latin-1"),
            chunked=exchange.chunked,
            close=False,
            http10=exchange.http10,
            add_host=not exchange.has_host,
        )
        body = exchange.body_buffer
        exchange.body_buffer = []
        if exchange.chunked:
            parts = [head, *(b"%x\r\n%s\r\n" % (len(b), b) for b in body)]
            if exchange.request_done:
                parts.append(b"0\r\n\r\n")
            upstream.write(b"".join(parts))
        else:
            upstream.write(b"".join([head, *body]) if body else head)
        exchange.sent_at = self.loop.time()
        self._resume_reading("buffer")

    def _whoami(self, exchange: Exchange, now: datetime) -> None:
        """Seed 003's "test authentication": who the gateway thinks you are, nothing forwarded."""
        peer = self.peer
        if peer is None:
            self._answer(
                exchange,
                401,
                ClientCertificateRequired(f"{WHOAMI} needs a client certificate and none was sent"),
            )
            return
        identified = identify(peer, self.worker.snapshot, now)
        if isinstance(identified, Deny):
            self._answer(exchange, identified.status, identified.error)
            return
        refused = check_source(identified, self.client_ip)
        if refused is not None:
            self._answer(exchange, refused.status, refused.error)
            return
        seconds = (peer.not_after - now).total_seconds()
        body = {
            "message": f"Hello, {identified.account.name}",
            "account": identified.account.name,
            "subject": peer.subject,
            "serial": peer.serial,
            "fingerprint_sha256": peer.fingerprint.hex(),
            "not_after": peer.not_after.isoformat().replace("+00:00", "Z"),
            "days_remaining": int(seconds // 86400),
            "api_versions": sorted(identified.issued.api_versions) if identified.issued else [],
            "tls_version": self.tls.get_protocol_version_name(),
            "source_ip": str(self.client_ip),
        }
        self._respond(exchange, 200, "ok", json_response(200, body))

    def _answer(
        self, exchange: Exchange, status: int, error: MutlsError, *, close: bool = False
    ) -> None:
        self._respond(
            exchange, status, error.code, error_response(status, error, close=close), close=close
        )

    def _respond(
        self, exchange: Exchange, status: int, code: str, data: bytes, *, close: bool = False
    ) -> None:
        exchange.local = True
        exchange.status, exchange.code = status, code
        exchange.close = close or not exchange.keep_alive
        exchange.body_buffer = []
        exchange.response_started = True
        self._send(data)
        if exchange.request_done or close:
            self._finish(exchange)

    def _send(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            self.pipe.write(data)
        except SSL.Error:
            self._abort()
            return
        self._flush()

    def _finish(self, exchange: Exchange) -> None:
        """The answer is written: log it, then start the next exchange or close."""
        if not self.queue or self.queue[0] is not exchange:
            return
        self.queue.popleft()
        self.worker.record(self, exchange)
        if exchange.close or (self.close_when_idle and not self.queue):
            self._close(send_notify=True)
            return
        self._resume_reading("pipeline")
        if self.queue:
            self._start(self.queue[0])

    # --- upstream events (through _Sink) ---------------------------------------------------

    def upstream_head(self, exchange: Exchange, status: int) -> None:
        exchange.status = status
        exchange.code = "ok"
        exchange.response_started = True
        decision = exchange.decision
        if isinstance(decision, Allow):
            self.worker.stats.observe_upstream(
                decision.route.name, self.loop.time() - exchange.sent_at
            )

    def upstream_done(self, exchange: Exchange, client_must_close: bool) -> None:
        exchange.upstream = None
        if client_must_close or not exchange.keep_alive:
            exchange.close = True  # a close-delimited answer, or the client asked to close
        if not exchange.request_done:
            exchange.close = True  # answered before the body ended: do not read the rest
        self._finish(exchange)

    def upstream_failed(self, exchange: Exchange, started: bool) -> None:
        exchange.upstream = None
        if started:
            exchange.status, exchange.code = exchange.status or 502, "upstream_broken"
            exchange.close = True
            self.worker.record(self, exchange)
            self._abort()
            return
        decision = exchange.decision
        if (
            not exchange.retried
            and exchange.method in _REPLAYABLE
            and exchange.body_bytes == 0
            and exchange.request_done
            and isinstance(decision, Allow)
            and not self.closing
        ):
            # Closed before any answer (a pooled connection the upstream had closed, or an
            # upstream still starting): a safe request without a body may go again, once, on a
            # new connection (RFC 9110 9.2.2).
            exchange.retried = True
            exchange.dispatched = False
            task = self.loop.create_task(self._connect(exchange, decision))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return
        self._answer(
            exchange,
            502,
            UpstreamUnavailable("the service behind this route closed the connection; retry"),
            close=not exchange.request_done,
        )

    def upstream_timed_out(self, exchange: Exchange) -> None:
        if exchange.upstream is not None:
            exchange.upstream.abort()
            exchange.upstream = None
        if exchange.response_started:
            self._abort()
            return
        self._answer(
            exchange,
            504,
            UpstreamTimeout("the service behind this route did not answer in time"),
            close=True,
        )

    # --- reading, closing ------------------------------------------------------------------

    def upstream_paused(self, paused: bool) -> None:
        if paused:
            self._pause_reading("upstream")
        else:
            self._resume_reading("upstream")

    def _bad_request(self, too_large: str | None) -> None:
        if too_large is not None:
            status = 413 if too_large == "body" else 431
            settings = self.worker.settings
            limit = settings.max_body_bytes if status == 413 else settings.max_header_bytes
            error: MutlsError = InputTooLarge(
                f"the request {'body' if status == 413 else 'head'} is larger than this gateway "
                f"accepts ({limit} bytes)",
                hint="send less; the limits are MUTLS_GATEWAY_MAX_BODY_BYTES and "
                "MUTLS_GATEWAY_MAX_HEADER_BYTES",
            )
        else:
            status = 400
            error = InvalidArgument(
                "expected an HTTP/1.1 request; the request could not be parsed",
                hint="check the request line and headers",
            )
        if self.queue and self.queue[-1].response_started:
            self._close(send_notify=True)
            return
        exchange = self.receiving or Exchange(self.loop.time())
        if exchange not in self.queue:
            self.queue.append(exchange)
        for other in list(self.queue):
            if other is not exchange and other.upstream is not None:
                other.upstream.abort()
        self.queue.clear()
        self.queue.append(exchange)
        self._answer(exchange, status, error, close=True)

    def check_timeouts(self, now: float) -> None:
        """Called about once a second by the worker."""
        settings = self.worker.settings
        idle = now - self.last_activity
        if not self.established:
            if now - self.opened_at > settings.handshake_timeout:
                self.worker.stats.handshake_failures["timeout"] += 1
                self._abort()
            return
        if not self.queue:
            if self.receiving is not None and idle > settings.read_timeout:
                self._abort()
            elif self.receiving is None and idle > settings.idle_timeout:
                self._close(send_notify=True)
            return
        head = self.queue[0]
        if head.dispatched and not head.response_started:
            if now - head.sent_at > settings.upstream_timeout:
                self.upstream_timed_out(head)
        elif not head.request_done and idle > settings.read_timeout:
            self._abort()

    def on_snapshot(self, now: datetime) -> None:
        """The worker swapped its snapshot: close this connection if its certificate no longer
        passes (revoked, account disabled), at once when idle, else after the answer in flight."""
        if self.peer is None or self.closing:
            return
        if isinstance(identify(self.peer, self.worker.snapshot, now), Deny):
            if self.queue or self.receiving is not None:
                self.close_when_idle = True
            else:
                self._close(send_notify=True)

    def shutdown(self) -> None:
        """Graceful stop: idle connections close now, busy ones after their answer."""
        if self.queue or self.receiving is not None:
            self.close_when_idle = True
        else:
            self._close(send_notify=True)

    def _close(self, *, send_notify: bool) -> None:
        if self.closing:
            return
        self.closing = True
        if send_notify and self.established:
            with contextlib.suppress(SSL.Error):
                self.tls.shutdown()
            self._flush()
        if self.transport is not None:
            self.transport.close()

    def _abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()


class _Sink:
    """Binds an upstream connection's reports to one exchange."""

    __slots__ = ("connection", "exchange")

    def __init__(self, connection: ClientConnection, exchange: Exchange) -> None:
        self.connection, self.exchange = connection, exchange

    def upstream_data(self, data: bytes) -> None:
        self.connection._send(data)

    def upstream_head(self, status: int) -> None:
        self.connection.upstream_head(self.exchange, status)

    def upstream_done(self, reusable: bool, client_must_close: bool) -> None:
        del reusable  # the pool has already kept or dropped the upstream connection
        self.connection.upstream_done(self.exchange, client_must_close)

    def finish_head(self, head: bytes) -> bytes:
        return head

    def closes_after(self) -> bool:
        connection = self.connection
        return not self.exchange.keep_alive or connection.close_when_idle or connection.closing

    def upstream_failed(self, started: bool) -> None:
        self.connection.upstream_failed(self.exchange, started)

    def upstream_paused(self, paused: bool) -> None:
        self.connection.upstream_paused(paused)


def _ssl_reason(error: SSL.Error) -> str:
    try:
        details = error.args[0]
        reason = details[-1][2] if details else "unknown"
    except (IndexError, TypeError):
        reason = "unknown"
    return str(reason).lower() or "unknown"


def access_line(connection: ClientConnection, exchange: Exchange, duration: float) -> str:
    decision = exchange.decision
    identity = getattr(decision, "identity", None)
    route = getattr(decision, "route", None)
    peer = connection.peer
    return json.dumps(
        {
            "client": str(connection.client_ip),
            "method": exchange.method.decode("ascii", "replace"),
            "host": exchange.host,
            "path": exchange.path or exchange.target.decode("latin-1")[:200],
            "route": route.name if route is not None else None,
            "account": identity.account.name if identity is not None else None,
            "cert_serial": peer.serial if peer is not None else None,
            "code": exchange.code,
            "status": exchange.status,
            "ms": round(duration * 1000, 2),
            "tls": connection.tls.get_protocol_version_name(),
        },
        separators=(",", ":"),
    )
