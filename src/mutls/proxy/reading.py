"""Reading HTTP/1.1 requests from a client, and pacing the answers back, as the gateway and
the egress proxy both do.

The httptools callbacks that collect a request's target and headers with a bound on the head's
size, and reading paused for named reasons (pipelining, a full upstream, a buffer) and resumed
when the last reason goes. The other way, when the client cannot take more of an answer (the
transport's ``pause_writing``), the upstream connections serving it stop reading until it can.
The two data planes' connections differ in everything after the head (TLS or not, authorization,
where the request goes), so only this is shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol

from mutls.errors import InputTooLarge
from mutls.proxy.upstream import UpstreamConnection

__all__ = ["RequestReading"]


class _Settings(Protocol):
    @property
    def max_header_bytes(self) -> int: ...


class _Worker(Protocol):
    @property
    def settings(self) -> _Settings: ...


class _Receiving(Protocol):
    target: bytes
    headers: list[tuple[bytes, bytes]]


class _Answering(Protocol):
    @property
    def upstream(self) -> UpstreamConnection | None: ...


class RequestReading:
    """Mixed into an ``asyncio.Protocol`` that has ``worker``, ``receiving``, ``transport``,
    ``closing`` and ``queue`` (its exchanges); it calls :meth:`start_reading` from its
    ``__init__``."""

    __slots__ = ("_paused_reading", "_too_large", "_write_paused", "head_bytes")

    worker: _Worker
    receiving: _Receiving | None
    transport: asyncio.Transport | None
    closing: bool
    queue: Iterable[_Answering]

    def start_reading(self) -> None:
        self.head_bytes = 0
        self._paused_reading: set[str] = set()
        self._too_large: str | None = None
        self._write_paused = False
        """The client's side is full: upstream connections dispatched now start paused."""

    # --- the answers' pace ---

    def pause_writing(self) -> None:
        self._write_paused = True
        for exchange in self.queue:
            if exchange.upstream is not None:
                exchange.upstream.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        for exchange in self.queue:
            if exchange.upstream is not None:
                exchange.upstream.resume_reading()

    # --- the requests ---

    def on_url(self, url: bytes) -> None:
        exchange = self.receiving
        assert exchange is not None
        exchange.target += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        exchange = self.receiving
        assert exchange is not None
        exchange.headers.append((name, value))
        self._count_head(len(name) + len(value) + 4)

    def _count_head(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes > self.worker.settings.max_header_bytes:
            self._too_large = "head"
            raise InputTooLarge("request head too large")  # httptools wraps it; see _too_large

    def _pause_reading(self, why: str) -> None:
        if not self._paused_reading and self.transport is not None:
            self.transport.pause_reading()
        self._paused_reading.add(why)

    def _resume_reading(self, why: str) -> None:
        if why in self._paused_reading:
            self._paused_reading.discard(why)
            if not self._paused_reading and self.transport is not None and not self.closing:
                self.transport.resume_reading()
