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
from collections import deque
from typing import Protocol, cast

import httptools

from mutls.errors import UpstreamUnavailable
from mutls.policy.routing import Upstream

__all__ = ["ResponseSink", "UpstreamConnection", "UpstreamPool"]

log = logging.getLogger("mutls.gateway")

MAX_IDLE_PER_UPSTREAM = 128


class ResponseSink(Protocol):
    """What an upstream connection reports to the exchange it serves."""

    def upstream_data(self, data: bytes) -> None: ...
    def upstream_head(self, status: int) -> None: ...
    def upstream_done(self, reusable: bool) -> None: ...
    def upstream_failed(self, started: bool) -> None: ...
    def upstream_paused(self, paused: bool) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, pool: UpstreamPool, upstream: Upstream) -> None:
        self.pool = pool
        self.upstream = upstream
        self.transport: asyncio.Transport | None = None
        self.sink: ResponseSink | None = None
        self.reused = False
        self.closed = False
        self._parser: httptools.HttpResponseParser | None = None
        self._started = False
        self._head_only = False
        self._final = False

    # --- the exchange's side ---

    def begin(self, sink: ResponseSink, *, head_only: bool) -> None:
        self.sink = sink
        self._parser = httptools.HttpResponseParser(self)
        self._started = False
        self._final = False
        self._head_only = head_only

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

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
        sink.upstream_data(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.sink is not None:
            parser = self._parser
            # A body delimited by the connection's end is complete now.
            if parser is not None and self._final and not parser.should_keep_alive():
                sink, self.sink = self.sink, None
                sink.upstream_done(reusable=False)
                return
            self._fail()

    def pause_writing(self) -> None:
        if self.sink is not None:
            self.sink.upstream_paused(True)

    def resume_writing(self) -> None:
        if self.sink is not None:
            self.sink.upstream_paused(False)

    # --- httptools callbacks ---

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None
        status = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return  # interim: the final answer follows
        self._final = True
        if self.sink is not None:
            self.sink.upstream_head(status)
        if self._head_only or status in (204, 304):
            self._done(parser.should_keep_alive())

    def on_message_complete(self) -> None:
        parser = self._parser
        if parser is None or not self._final:
            return
        self._done(parser.should_keep_alive())

    # --- internals ---

    def _done(self, keep_alive: bool) -> None:
        sink, self.sink, self._parser = self.sink, None, None
        if sink is None:
            return
        reusable = keep_alive and not self.closed
        if reusable:
            self.pool.release(self)
        else:
            self.abort()
        sink.upstream_done(reusable=reusable)

    def _fail(self) -> None:
        sink, self.sink = self.sink, None
        started = self._started
        self.abort()
        if sink is not None:
            sink.upstream_failed(started)


class UpstreamPool:
    """Idle keep-alive connections per upstream, newest first (warm ones get reused)."""

    def __init__(self, *, connect_timeout: float) -> None:
        self._idle: dict[Upstream, deque[UpstreamConnection]] = {}
        self._connect_timeout = connect_timeout

    def take_idle(self, upstream: Upstream) -> UpstreamConnection | None:
        idle = self._idle.get(upstream)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                connection.reused = True
                return connection
        return None

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
