"""mTLS connections to partners and their keep-alive pool, per egress worker.

A :class:`PartnerConnection` is the gateway's upstream connection (the same HTTP/1.1 answer
relay: heads rewritten, bodies passed through as they arrive, 1xx passed on) with TLS
underneath, through :class:`~mutls.tls.pipe.TlsPipe` over memory BIOs, so uvloop does every
socket call and OpenSSL only transforms bytes.

The pool is keyed by the endpoint (address, SNI, name check) *and* the TLS context, which is
built per certificate version: a rotated certificate never rides on a connection that
authenticated with the old one. :meth:`PartnerPool.retire` is called when the snapshot changes:
idle connections of contexts no route uses any more are closed at once, busy ones when their
answer is complete, so a rotation drops no request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import deque
from collections.abc import Hashable
from typing import cast

from OpenSSL import SSL

from mutls.egress.snapshot import Endpoint
from mutls.egress.tlserrors import closed_after_handshake, translate_tls_error
from mutls.errors import (
    PartnerConnectionClosed,
    PartnerError,
    PartnerTimeout,
    PartnerUnreachable,
)
from mutls.proxy.upstream import UpstreamConnection, take_newest
from mutls.tls.pipe import TlsPipe

__all__ = ["PartnerConnection", "PartnerPool"]

log = logging.getLogger("mutls.egress")


class PartnerConnection(UpstreamConnection):
    """One TLS connection to a partner, reused for many requests."""

    def __init__(self, pool: PartnerPool, endpoint: Endpoint, *, sends_certificate: bool) -> None:
        super().__init__(pool, endpoint.pool_key)
        self.endpoint = endpoint
        self.pipe = TlsPipe.client(
            endpoint.context, server_name=endpoint.server_name, check_name=endpoint.check_name
        )
        self.tls = self.pipe.connection
        self.sends_certificate = sends_certificate
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # A failure nobody waits for any more (the connect timed out) is not an error to log.
        self.ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.verdict: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """After the handshake: done when the partner first answers, or fails (TLS 1.3 servers
        judge our certificate after the handshake; see :meth:`PartnerPool.probe`)."""
        self.verdict.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.established = False
        self.answered = False
        """Application data has arrived: the partner accepted the handshake."""
        self.failure: PartnerError | None = None
        self.idle_since = 0.0
        self.tls_version: str | None = None
        self.tls_cipher: str | None = None
        """Read once when the handshake completes (they do not change on a connection)."""

    @property
    def server(self) -> str:
        return f"{self.endpoint.host}:{self.endpoint.port}"

    # --- TLS plumbing ---

    def _flush(self) -> None:
        transport = self.transport
        out = self.pipe.drain()
        if out and transport is not None and not transport.is_closing():
            transport.write(out)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        try:
            self.pipe.handshake()  # the ClientHello
        except SSL.Error as error:
            self._tls_failed(error)
            return
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        pipe = self.pipe
        pipe.feed(data)
        if not self.established:
            try:
                done = pipe.handshake()
            except SSL.Error as error:
                self._tls_failed(error)
                return
            self._flush()
            if not done:
                return
            self.established = True
            self.tls_version = self.tls.get_protocol_version_name()
            self.tls_cipher = self.tls.get_cipher_name()
            if not self.ready.done():
                self.ready.set_result(None)
        while not self.closed:
            try:
                chunk = pipe.read()
            except SSL.ZeroReturnError:  # close_notify: the answer may end with the connection
                if self.transport is not None:
                    self.transport.close()
                return
            except SSL.Error as error:
                self._tls_failed(error)
                return
            if chunk is None:
                break
            self.answered = True
            if not self.verdict.done():
                self.verdict.set_result(None)
            super().data_received(chunk)
            if not pipe.more():
                break
        self._flush()  # key updates, alerts

    def _tls_failed(self, error: SSL.Error) -> None:
        """A failed handshake, or a read that failed before the partner ever answered (TLS 1.3
        servers reject a client certificate after the client's side of the handshake)."""
        if self.answered:
            self.failure = PartnerConnectionClosed(
                f"the TLS connection to {self.server} broke mid-answer", reason="tls_error"
            )
        else:
            self.failure = translate_tls_error(
                error, self.tls, sent_certificate=self.sends_certificate, server=self.server
            )
        self._flush()  # our alert, if OpenSSL made one
        if not self.ready.done():
            self.ready.set_exception(self.failure)
        if not self.verdict.done():
            self.verdict.set_exception(self.failure)
        self._fail()

    def write(self, data: bytes) -> None:
        if self.transport is None or self.closed:
            return
        try:
            self.pipe.write(data)
        except SSL.Error as error:
            self._tls_failed(error)
            return
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.failure = self.failure or PartnerConnectionClosed(
                f"the partner {self.server} closed the connection during the TLS handshake",
                hint="the partner may allow only some source IPs, require a client certificate "
                "without asking for one, or not speak TLS on this port; `mutls doctor URL` walks "
                "the connection",
                reason="closed_during_handshake",
            )
            self.ready.set_exception(self.failure)
        elif self.failure is None and not self.answered and self.sink is not None:
            if self.reused:
                self.failure = PartnerConnectionClosed(
                    f"the partner {self.server} closed the connection before answering",
                    reason="closed_before_answer",
                )
            else:  # a fresh connection: the partner refused us after the handshake
                self.failure = closed_after_handshake(
                    self.tls, sent_certificate=self.sends_certificate, server=self.server
                )
        if not self.verdict.done():
            self.verdict.set_exception(
                self.failure
                or closed_after_handshake(
                    self.tls, sent_certificate=self.sends_certificate, server=self.server
                )
            )
        super().connection_lost(exc)

    def close_gracefully(self) -> None:
        """Send close_notify and close (an idle connection being retired)."""
        self.closed = True
        if self.established:
            with contextlib.suppress(SSL.Error):
                self.tls.shutdown()
            self._flush()
        if self.transport is not None:
            self.transport.close()


class PartnerPool:
    """Idle keep-alive connections per (endpoint, TLS context), newest first."""

    def __init__(
        self, *, connect_timeout: float, max_idle: int = 64, idle_seconds: float = 50.0
    ) -> None:
        self._idle: dict[Hashable, deque[PartnerConnection]] = {}
        self._connect_timeout = connect_timeout
        self._max_idle = max_idle
        self._idle_seconds = idle_seconds
        self._live: set[Hashable] | None = None
        """Pool keys the current snapshot uses (None: all); others are retired."""
        self.opened = 0
        self.retired = 0

    def take_idle(self, endpoint: Endpoint) -> PartnerConnection | None:
        return take_newest(self._idle.get(endpoint.pool_key))

    async def connect(self, endpoint: Endpoint, *, sends_certificate: bool) -> PartnerConnection:
        """A new connection with its handshake complete, or a :class:`PartnerError`."""
        loop = asyncio.get_running_loop()
        server = f"{endpoint.host}:{endpoint.port}"
        protocol: PartnerConnection | None = None
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, made = await loop.create_connection(
                    lambda: PartnerConnection(self, endpoint, sends_certificate=sends_certificate),
                    endpoint.host,
                    endpoint.port,
                )
                protocol = made
                await protocol.ready
        except TimeoutError:
            if protocol is not None:
                protocol.abort()
            stage = "the TLS handshake" if protocol is not None else "connecting"
            raise PartnerTimeout(
                f"{stage} to the partner {server} took longer than {self._connect_timeout:g} s",
                reason="connect_timeout" if protocol is None else "handshake_timeout",
            ) from None
        except OSError as error:
            raise PartnerUnreachable(
                f"could not connect to the partner {server}: {_os_reason(error)}",
                reason=_os_code(error),
            ) from None
        self.opened += 1
        return protocol

    async def probe(
        self, endpoint: Endpoint, *, sends_certificate: bool, wait: float = 1.0
    ) -> PartnerError | None:
        """Why a partner refuses us, found with a connection that sends nothing after the
        handshake. A TLS 1.3 server judges the client certificate after the handshake and
        answers a refusal with an alert; when a request is already on its way, the server's
        close often turns into a reset that destroys the alert before it is read. Without a
        request, the alert arrives. None when the partner does not refuse within ``wait``."""
        try:
            connection = await self.connect(endpoint, sends_certificate=sends_certificate)
        except PartnerError as error:
            return error
        try:
            async with asyncio.timeout(wait):
                await connection.verdict
        except TimeoutError:
            return None
        except PartnerError as error:
            return error
        finally:
            connection.abort()
        return None

    def release(self, connection: UpstreamConnection) -> None:
        partner = cast("PartnerConnection", connection)
        key = partner.upstream
        idle = self._idle.setdefault(key, deque())
        retired = self._live is not None and key not in self._live
        if retired or len(idle) >= self._max_idle:
            self.retired += retired
            partner.close_gracefully()
            return
        partner.idle_since = time.monotonic()
        idle.append(partner)

    def forget(self, connection: UpstreamConnection) -> None:
        idle = self._idle.get(connection.upstream)
        if idle is not None and connection in idle:
            idle.remove(cast("PartnerConnection", connection))

    def retire(self, live: set[Hashable]) -> int:
        """Close idle connections whose pool key is not in ``live``; busy ones close when they
        come back. Returns how many were closed now."""
        self._live = live
        closed = 0
        for key in list(self._idle):
            if key not in live:
                for connection in self._idle.pop(key):
                    connection.close_gracefully()
                    closed += 1
        self.retired += closed
        return closed

    def sweep(self, now: float) -> None:
        """Close connections idle longer than the limit (partners often close at 60 s); ``now``
        is ``time.monotonic()``."""
        for key, idle in list(self._idle.items()):
            while idle and now - idle[0].idle_since > self._idle_seconds:
                idle.popleft().close_gracefully()
            if not idle:
                del self._idle[key]

    def idle_count(self) -> int:
        return sum(len(idle) for idle in self._idle.values())

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close_gracefully()
        self._idle.clear()


def _os_reason(error: OSError) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (nothing listens on that port, or a firewall rejects it)"
    if isinstance(error, socket.gaierror):
        return f"the name does not resolve ({error.strerror or error})"
    return error.strerror or type(error).__name__


def _os_code(error: OSError) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(error, socket.gaierror):
        return "name_not_resolved"
    return type(error).__name__.lower()
