"""The upstream side: answers relayed with their hop-by-hop headers replaced, ends found."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
import uvloop

from mutls.policy.routing import Upstream
from mutls.proxy.upstream import UpstreamConnection, UpstreamPool, rewrite_head


class Sink:
    def __init__(self, *, closes: bool = False) -> None:
        self.data = b""
        self.heads: list[int] = []
        self.done: tuple[bool, bool] | None = None
        self.failed: bool | None = None
        self.closes = closes

    def upstream_data(self, data: bytes) -> None:
        self.data += data

    def upstream_head(self, status: int) -> None:
        self.heads.append(status)

    def upstream_done(self, reusable: bool, client_must_close: bool) -> None:
        self.done = (reusable, client_must_close)

    def upstream_failed(self, started: bool) -> None:
        self.failed = started

    def upstream_paused(self, paused: bool) -> None: ...

    def closes_after(self) -> bool:
        return self.closes

    def finish_head(self, head: bytes) -> bytes:
        return head


class Transport:
    def write(self, data: bytes) -> None: ...
    def abort(self) -> None: ...
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def _connection(sink: Sink, *, head_only: bool = False) -> tuple[UpstreamConnection, UpstreamPool]:
    pool = UpstreamPool(connect_timeout=1)
    connection = UpstreamConnection(pool, Upstream(host="127.0.0.1", port=9))
    connection.connection_made(Transport())  # type: ignore[arg-type]
    connection.begin(sink, head_only=head_only)
    return connection, pool


OK = (
    b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
    b"Content-Length: 2\r\n\r\nok"
)


def test_keep_alive_headers_of_the_upstream_do_not_reach_the_client() -> None:
    sink = Sink()
    connection, pool = _connection(sink)
    connection.data_received(OK)
    assert sink.data == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    assert sink.heads == [200]
    assert sink.done == (True, False)
    assert pool.take_idle(connection.upstream) is connection  # back in the pool


def test_the_client_is_told_when_the_gateway_closes_after_the_answer() -> None:
    sink = Sink(closes=True)
    connection, _ = _connection(sink)
    connection.data_received(OK)
    assert sink.data == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def test_an_upstream_close_does_not_close_the_client_when_the_body_is_framed() -> None:
    sink = Sink()
    connection, pool = _connection(sink)
    connection.data_received(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
    assert b"Connection" not in sink.data
    assert sink.done == (False, False)  # upstream connection dropped, client kept
    assert pool.take_idle(connection.upstream) is None


def test_a_close_delimited_body_ends_with_the_connection_and_closes_the_client() -> None:
    sink = Sink()
    connection, _ = _connection(sink)
    connection.data_received(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart one, ")
    connection.data_received(b"part two")
    assert sink.done is None
    connection.connection_lost(None)
    assert sink.data == b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart one, part two"
    assert sink.done == (False, True)


def test_interim_answers_pass_as_they_are_and_the_final_one_is_rewritten() -> None:
    sink = Sink()
    connection, _ = _connection(sink)
    connection.data_received(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nConn")
    assert sink.data == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert sink.heads == []
    connection.data_received(b"ection: keep-alive\r\nContent-Length: 0\r\n\r\n")
    assert (
        sink.data
        == b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    )
    assert sink.heads == [201]
    assert sink.done == (True, False)


@pytest.mark.parametrize("status", [b"204 No Content", b"304 Not Modified"])
def test_bodiless_answers_end_at_their_head(status: bytes) -> None:
    sink = Sink()
    connection, _ = _connection(sink)
    connection.data_received(b"HTTP/1.1 " + status + b"\r\nETag: x\r\n\r\n")
    assert sink.done == (True, False)


def test_an_answer_to_head_ends_at_its_head_despite_content_length() -> None:
    sink = Sink()
    connection, _ = _connection(sink, head_only=True)
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
    assert sink.done == (True, False)


def test_garbage_from_the_upstream_fails_the_exchange() -> None:
    sink = Sink()
    connection, _ = _connection(sink)
    connection.data_received(b"SSH-2.0-OpenSSH_9.2\r\n")
    assert sink.failed is True
    assert sink.done is None


def test_rewrite_head_removes_every_hop_by_hop_spelling() -> None:
    head = (
        b"HTTP/1.1 200 OK\r\nCONNECTION: keep-alive\r\nkeep-alive : timeout=5\r\n"
        b"Proxy-Connection: x\r\nX-Connection-Id: 7\r\n\r\n"
    )
    assert rewrite_head(head, close=False) == b"HTTP/1.1 200 OK\r\nX-Connection-Id: 7\r\n\r\n"


# --- flow control over a real loopback connection ---------------------------------------------

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


class _AnsweringServer:
    """Answers every request head with ANSWER on a keep-alive connection; a request for /split
    gets the answer's body in two writes 0.1 s apart."""

    def __init__(self) -> None:
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while head := await reader.readuntil(b"\r\n\r\n"):
                if head.startswith(b"GET /split "):
                    writer.write(ANSWER[:-3])
                    await writer.drain()
                    await asyncio.sleep(0.1)
                    writer.write(ANSWER[-3:])
                else:
                    writer.write(ANSWER)
                await writer.drain()

    def close(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        if self.server is not None:
            self.server.close()


class LoopSink(Sink):
    """A sink whose client fills up on the first bytes of the answer (its ``pause_writing``
    holds the upstream connection, as the data planes' connections do)."""

    def __init__(self, connection: UpstreamConnection | None = None) -> None:
        super().__init__()
        self.connection = connection
        self.finished = asyncio.Event()

    def upstream_data(self, data: bytes) -> None:
        super().upstream_data(data)
        if self.connection is not None:
            self.connection.pause_reading()

    def upstream_done(self, reusable: bool, client_must_close: bool) -> None:
        super().upstream_done(reusable, client_must_close)
        self.finished.set()


def _reading(connection: UpstreamConnection) -> bool:
    assert connection.transport is not None
    return bool(connection.transport.is_reading())


async def _pooled_connection_reads_again_after_a_held_answer() -> None:
    server = _AnsweringServer()
    port = await server.start()
    upstream = Upstream(host="127.0.0.1", port=port)
    pool = UpstreamPool(connect_timeout=5)
    try:
        connection = await pool.connect(upstream)

        # Held mid-answer: nothing more is read until the client takes what it has.
        held = LoopSink(connection)
        connection.begin(held, head_only=False)
        connection.write(b"GET /split HTTP/1.1\r\nHost: x\r\n\r\n")
        while not held.data:
            await asyncio.sleep(0.01)
        assert not _reading(connection)
        assert held.done is None
        held.connection = None  # the client keeps up from here on
        connection.resume_reading()
        await asyncio.wait_for(held.finished.wait(), 5)
        assert held.data == ANSWER

        # Held by the answer's last bytes: the connection goes back to the pool reading, so the
        # next exchange on it gets its answer (this once hung until the upstream timeout).
        last = LoopSink(connection)
        connection.begin(last, head_only=False)
        connection.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(last.finished.wait(), 5)
        assert last.done == (True, False)
        assert pool.take_idle(upstream) is connection
        assert _reading(connection)
        following = LoopSink()
        connection.begin(following, head_only=False)
        connection.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            await asyncio.wait_for(following.finished.wait(), 5)
        except TimeoutError:
            pytest.fail("the pooled connection never read the next answer: it was left paused")
        assert following.data == ANSWER
    finally:
        pool.close()
        server.close()


def test_a_pooled_connection_reads_again_after_its_client_held_the_answer() -> None:
    """The client's side filling up pauses reading the upstream; when that happens on the
    answer's last bytes, the connection must not sit in the pool paused."""
    uvloop.run(_pooled_connection_reads_again_after_a_held_answer())
