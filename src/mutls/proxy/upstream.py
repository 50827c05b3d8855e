"""Upstream HTTP/1.1 connections and their keep-alive pool, per worker.

The upstream's answer is passed to the client as it arrives, byte for byte: the gateway adds no
response headers, so re-serialising would only cost time. The response parser runs alongside to
find where the answer ends (``Content-Length``, chunked, or close) and whether the connection may
be reused. Answers without a body (to HEAD, 204, 304) end at their head, and interim 1xx answers
(``100 Continue``) pass through without ending the exchange.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Hashable
from typing import Protocol, TypeVar, cast

import httptools

from mutls.errors import UpstreamUnavailable
from mutls.policy.routing import Upstream

__all__ = [
    "ConnectionPool",
    "ResponseSink",
    "UpstreamConnection",
    "UpstreamPool",
    "rewrite_head",
    "take_newest",
]

log = logging.getLogger("mutls.proxy")

MAX_IDLE_PER_UPSTREAM = 128


class ResponseSink(Protocol):
    """What an upstream connection reports to the exchange it serves."""

    def upstream_data(self, data: bytes) -> None: ...
    def upstream_head(self, status: int) -> None: ...
    def upstream_done(self, reusable: bool, client_must_close: bool) -> None: ...
    def upstream_failed(self, started: bool) -> None: ...
    def upstream_paused(self, paused: bool) -> None: ...
    def closes_after(self) -> bool: ...
    def finish_head(self, head: bytes) -> bytes:
        """The final response head as the client gets it (the gateway passes it as it is; the
        egress proxy adds a warning or rewrites a redirect's Location)."""
        ...


class ConnectionPool(Protocol):
    """Where a finished connection goes back (the gateway's pool, the egress proxy's)."""

    def release(self, connection: UpstreamConnection) -> None: ...
    def forget(self, connection: UpstreamConnection) -> None: ...


_HOP_BY_HOP = re.compile(rb"\r\n(?:connection|keep-alive|proxy-connection)[ \t]*:[^\r\n]*", re.I)
_FRAMING = re.compile(rb"\r\n(?:content-length|transfer-encoding)[ \t]*:", re.I)
MAX_RESPONSE_HEAD = 64 * 1024


def rewrite_head(head: bytes, *, close: bool) -> bytes:
    """A response head without the upstream's hop-by-hop headers, plus ``Connection: close``
    when the client's connection closes after this answer."""
    head = _HOP_BY_HOP.sub(b"", head)
    if close:
        return head[:-2] + b"Connection: close\r\n\r\n"
    return head


class UpstreamConnection(asyncio.Protocol):
    """One plain HTTP/1.1 connection and the relay of its answers; ``upstream`` is its pool key.
    The egress proxy's partner connections subclass it with TLS underneath."""

    def __init__(self, pool: ConnectionPool, upstream: Hashable) -> None:
        self.pool = pool
        self.upstream = upstream
        self.transport: asyncio.Transport | None = None
        self.sink: ResponseSink | None = None
        self.reused = False
        self.closed = False
        self._parser: httptools.HttpResponseParser | None = None
        self._started = False
        self._head_only = False
        self._head = b""
        self._in_head = True
        self._heads: list[int] = []
        """Statuses of the heads the parser has finished and the relay has not yet rewritten."""
        self._final = 0
        self._complete: bool | None = None
        """None until the answer ends; then whether the connection may be kept."""
        self._framed = False
        """The final answer has a Content-Length or chunked body (else it ends with the close)."""
        self._held = False
        """Reading is paused because the client cannot take more of the answer yet."""

    # --- the exchange's side ---

    def begin(self, sink: ResponseSink, *, head_only: bool) -> None:
        self.sink = sink
        self._parser = httptools.HttpResponseParser(self)
        self._started = False
        self._head_only = head_only
        self._head = b""
        self._in_head = True
        self._heads = []
        self._final = 0
        self._complete = None
        self._framed = False

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def pause_reading(self) -> None:
        """Stop reading the answer while the client's side is full (its ``pause_writing``)."""
        if not self._held and self.transport is not None and not self.closed:
            self._held = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Read again (the client's ``resume_writing``, or the answer ended while held)."""
        if self._held:
            self._held = False
            if self.transport is not None and not self.closed:
                self.transport.resume_reading()

    def abort(self) -> None:
        self.sink = None
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        sink, parser = self.sink, self._parser
        if sink is None or parser is None:
            self.abort()  # bytes on an idle connection: it cannot be trusted any more
            return
        self._started = True
        try:
            parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail()
            return
        out = self._relay(data, sink) if self._in_head else data
        if out is None:
            return
        if out:
            sink.upstream_data(out)
        if self._complete is not None and self.sink is sink:
            self._done(self._complete)

    def _relay(self, data: bytes, sink: ResponseSink) -> bytes | None:
        """Bytes for the client while heads are still being read: each head rewritten, then the
        body's start as it came. None when the upstream broke the response."""
        buffered = self._head + data
        out: list[bytes] = []
        while self._in_head:
            end = buffered.find(b"\r\n\r\n")
            if end < 0 or not self._heads:
                if len(buffered) > MAX_RESPONSE_HEAD:
                    self._fail()
                    return None
                self._head = buffered
                return b"".join(out)
            head, buffered = buffered[: end + 4], buffered[end + 4 :]
            status = self._heads.pop(0)
            if 100 <= status < 200 and status != 101:
                out.append(head)  # interim (100 Continue): as it came
                continue
            self._in_head = False
            self._framed = _FRAMING.search(head) is not None
            client_close = sink.closes_after() or not (
                self._framed or self._head_only or status in (204, 304)
            )
            out.append(sink.finish_head(rewrite_head(head, close=client_close)))
            sink.upstream_head(status)
        self._head = b""
        out.append(buffered)
        return b"".join(out)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.sink is not None:
            # A body delimited by the connection's end is complete now.
            if self._final and not self._in_head and not self._framed:
                sink, self.sink = self.sink, None
                sink.upstream_done(reusable=False, client_must_close=True)
                return
            self._fail()

    def pause_writing(self) -> None:
        if self.sink is not None:
            self.sink.upstream_paused(True)

    def resume_writing(self) -> None:
        if self.sink is not None:
            self.sink.upstream_paused(False)

    # --- httptools callbacks (they record; data_received acts once the bytes are relayed) ---

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None
        status = parser.get_status_code()
        self._heads.append(status)
        if 100 <= status < 200 and status != 101:
            return
        self._final = status
        if self._head_only or status in (204, 304):
            self._complete = parser.should_keep_alive()

    def on_message_complete(self) -> None:
        parser = self._parser
        if parser is None or not self._final or self._complete is not None:
            return
        self._complete = parser.should_keep_alive()

    # --- internals ---

    def _done(self, keep_alive: bool) -> None:
        sink, self.sink, self._parser = self.sink, None, None
        if sink is None:
            return
        reusable = keep_alive and not self.closed
        if reusable:
            # The answer's last bytes may have filled the client's side and held this connection;
            # an idle pooled connection must read again (to see its close, and its next answer).
            self.resume_reading()
            self.pool.release(self)
        else:
            self.abort()
        sink.upstream_done(
            reusable=reusable,
            client_must_close=not self._framed
            and not (self._head_only or self._final in (204, 304)),
        )

    def _fail(self) -> None:
        sink, self.sink = self.sink, None
        started = self._started
        self.abort()
        if sink is not None:
            sink.upstream_failed(started)


C = TypeVar("C", bound=UpstreamConnection)


def take_newest(idle: deque[C] | None) -> C | None:
    """The most recently released open connection of ``idle`` (closed ones are dropped on the
    way), marked as reused; None if there is none."""
    while idle:
        connection = idle.pop()
        if not connection.closed:
            connection.reused = True
            return connection
    return None


class UpstreamPool:
    """Idle keep-alive connections per upstream, newest first (warm ones get reused)."""

    def __init__(self, *, connect_timeout: float) -> None:
        self._idle: dict[Hashable, deque[UpstreamConnection]] = {}
        self._connect_timeout = connect_timeout

    def take_idle(self, upstream: Hashable) -> UpstreamConnection | None:
        return take_newest(self._idle.get(upstream))

    async def connect(self, upstream: Upstream) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, protocol = await loop.create_connection(
                    lambda: UpstreamConnection(self, upstream), upstream.host, upstream.port
                )
        except (OSError, TimeoutError) as error:
            log.warning("upstream %s unreachable: %s", upstream.authority, type(error).__name__)
            raise UpstreamUnavailable(
                "the service behind this route is unavailable; retry shortly"
            ) from None
        return protocol

    def release(self, connection: UpstreamConnection) -> None:
        idle = self._idle.setdefault(connection.upstream, deque())
        if len(idle) >= MAX_IDLE_PER_UPSTREAM:
            connection.abort()
            return
        idle.append(connection)

    def forget(self, connection: UpstreamConnection) -> None:
        idle = self._idle.get(connection.upstream)
        if idle is not None and connection in idle:
            idle.remove(connection)

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.abort()
        self._idle.clear()
