"""TlsPipe: the gateway's fast path over pyOpenSSL's memory BIOs behaves as pyOpenSSL does."""

from __future__ import annotations

import contextlib

import pytest
from OpenSSL import SSL

from mutls.pki.authority import Profile
from mutls.testing import TestCA
from mutls.tls.pipe import TlsPipe


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


def _pair(ca: TestCA) -> tuple[TlsPipe, SSL.Connection]:
    server = ca.issue("localhost", profile=Profile.SERVER, sans=["DNS:localhost"])
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.use_certificate(server.certificate)
    context.use_privatekey(server.key)
    pipe = TlsPipe(context)
    client = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
    client.set_connect_state()
    for _ in range(10):
        try:
            client.do_handshake()
            break
        except SSL.WantReadError:
            pass
        pipe.feed(client.bio_read(65536))
        with contextlib.suppress(SSL.WantReadError):
            pipe.connection.do_handshake()
        client.bio_write(pipe.drain())
    pipe.feed(client.bio_read(65536))  # the client's Finished
    pipe.connection.do_handshake()
    client.bio_write(pipe.drain())  # session tickets
    return pipe, client


def test_pipe_relies_on_pyopenssl_private_bios(ca: TestCA) -> None:
    """If pyOpenSSL renames its BIO attributes, this fails before the gateway does."""
    pipe, _ = _pair(ca)
    assert pipe.connection._into_ssl is not None
    assert pipe.connection._from_ssl is not None


def test_application_data_round_trips_both_ways(ca: TestCA) -> None:
    pipe, client = _pair(ca)
    assert pipe.read() is None  # nothing sent yet: None, not an exception
    client.sendall(b"GET / HTTP/1.1\r\n\r\n" * 3)
    pipe.feed(client.bio_read(65536))
    received = b""
    while (chunk := pipe.read()) is not None:
        received += chunk
        if not pipe.more():
            break
    assert received == b"GET / HTTP/1.1\r\n\r\n" * 3
    pipe.write(b"HTTP/1.1 200 OK\r\n\r\n")
    client.bio_write(pipe.drain())
    assert client.recv(65536) == b"HTTP/1.1 200 OK\r\n\r\n"


def test_large_writes_are_taken_whole_and_drained(ca: TestCA) -> None:
    pipe, client = _pair(ca)
    body = bytes(range(256)) * 1024  # 256 KiB: many records, more than the shared buffer
    pipe.write(body)
    client.bio_write(pipe.drain())
    got = b""
    while len(got) < len(body):
        got += client.recv(65536)
    assert got == body


def test_a_partial_record_waits_for_the_rest(ca: TestCA) -> None:
    pipe, client = _pair(ca)
    client.sendall(b"hello")
    record = client.bio_read(65536)
    pipe.feed(record[:3])
    assert pipe.read() is None
    assert not pipe.more()  # OpenSSL holds the fragment; nothing to read until more arrives
    pipe.feed(record[3:])
    assert pipe.read() == b"hello"


def test_close_notify_raises_zero_return(ca: TestCA) -> None:
    pipe, client = _pair(ca)
    client.shutdown()
    pipe.feed(client.bio_read(65536))
    with pytest.raises(SSL.ZeroReturnError):
        pipe.read()


def test_a_corrupted_record_raises_ssl_error(ca: TestCA) -> None:
    pipe, client = _pair(ca)
    client.sendall(b"hello")
    record = bytearray(client.bio_read(65536))
    record[-1] ^= 0xFF
    pipe.feed(bytes(record))
    with pytest.raises(SSL.Error):
        pipe.read()
