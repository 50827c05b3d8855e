"""TLS over memory BIOs for the data planes' hot paths: pyOpenSSL, minus its per-call overhead.

The gateway uses it server-side (it terminates its customers' TLS), the egress proxy client-side
(it opens mTLS connections to partners). Either way uvloop's transports do every socket call and
flow control, and OpenSSL only transforms bytes.

pyOpenSSL's ``recv``/``send``/``bio_read`` allocate a buffer, check the error queue and raise an
exception for "no data yet" on every call. On a keep-alive request that is a measurable share of
the gateway's CPU (``bench/gateway/hotpath.py``); measured client-side against nginx, a
keep-alive request over this pipe costs about 22 us of CPU against about 50 us over uvloop's
``ssl=`` transports (the stdlib ``ssl`` module). :class:`TlsPipe` calls the same OpenSSL
functions through pyOpenSSL's own cffi binding on the success path, with one reusable buffer per
process, and hands every other outcome back to pyOpenSSL so errors raise exactly as pyOpenSSL
raises them. It relies on pyOpenSSL's private ``_ssl``, ``_into_ssl`` and ``_from_ssl``
attributes, which have been stable since pyOpenSSL 0.14; ``tests/unit/gateway`` pins them.
"""

from __future__ import annotations

import ipaddress

from OpenSSL import SSL
from OpenSSL._util import ffi as _ffi
from OpenSSL._util import lib as _lib

__all__ = ["TlsPipe"]


def _ip_bytes(name: str) -> bytes | None:
    try:
        return ipaddress.ip_address(name.strip("[]")).packed
    except ValueError:
        return None


_BUFFER_SIZE = 64 * 1024
_buffer = _ffi.new("char[]", _BUFFER_SIZE)  # one per process: the event loop is single-threaded
_view = _ffi.buffer(_buffer)
_SSL_read = _lib.SSL_read
_SSL_write = _lib.SSL_write
_SSL_pending = _lib.SSL_pending
_SSL_get0_param = _lib.SSL_get0_param
_set1_host = _lib.X509_VERIFY_PARAM_set1_host
_set1_ip = _lib.X509_VERIFY_PARAM_set1_ip
_BIO_write = _lib.BIO_write
_BIO_read = _lib.BIO_read
_BIO_pending = _lib.BIO_get_mem_data  # a macro: BIO_ctrl(BIO_CTRL_INFO); NULL asks the length
_NULL = _ffi.NULL


class TlsPipe:
    """One TLS connection: bytes from the network in, plaintext out, and back.

    Server-side by default. ``TlsPipe.client(context, server_name=...)`` is the client side: it
    sends ``server_name`` as SNI (unless it is an IP address, which SNI may not carry) and has
    OpenSSL check the server's certificate against it during the handshake, so a certificate for
    another name fails the handshake before our client certificate is sent.
    """

    __slots__ = ("_in", "_out", "_ssl", "connection")

    def __init__(self, context: SSL.Context, *, client: bool = False) -> None:
        self.connection = SSL.Connection(context, None)
        if client:
            self.connection.set_connect_state()
        else:
            self.connection.set_accept_state()
        self._ssl = self.connection._ssl
        self._in = self.connection._into_ssl
        self._out = self.connection._from_ssl

    @classmethod
    def client(cls, context: SSL.Context, *, server_name: str, check_name: bool = True) -> TlsPipe:
        """A client connection to ``server_name``; ``check_name=False`` only where the route
        explicitly switched verification off (never in production)."""
        pipe = cls(context, client=True)
        address = _ip_bytes(server_name)
        if address is None:
            pipe.connection.set_tlsext_host_name(server_name.encode("idna"))
        if check_name:
            param = _SSL_get0_param(pipe._ssl)
            if address is None:
                encoded = server_name.encode("idna")
                ok = _set1_host(param, encoded, len(encoded))
            else:
                ok = _set1_ip(param, address, len(address))
            if ok != 1:
                raise ValueError(f"cannot check the server's certificate for {server_name!r}")
        return pipe

    def handshake(self) -> bool:
        """Advance the handshake: True once it is complete, False while it waits for the peer.
        Raises ``SSL.Error`` when it fails (what :meth:`drain` returns then holds the alert)."""
        try:
            self.connection.do_handshake()
        except SSL.WantReadError:
            return False
        return True

    def feed(self, data: bytes) -> None:
        """Bytes that arrived from the client."""
        if _BIO_write(self._in, data, len(data)) != len(data):
            self.connection.bio_write(data)  # not expected for a memory BIO; raises the cause

    def read(self) -> bytes | None:
        """Decrypted application data, or None when no complete record is buffered.

        Raises ``SSL.ZeroReturnError`` on the client's close_notify and ``SSL.Error`` on a
        broken stream, as pyOpenSSL does."""
        result = _SSL_read(self._ssl, _buffer, _BUFFER_SIZE)
        if result > 0:
            return bytes(_view[:result])
        try:
            return self.connection.recv(_BUFFER_SIZE)  # raises the precise error
        except SSL.WantReadError:
            return None

    def more(self) -> bool:
        """Whether :meth:`read` may return more without new bytes from the network."""
        return bool(_SSL_pending(self._ssl) or _BIO_pending(self._in, _NULL))

    def write(self, data: bytes) -> None:
        """Encrypt all of ``data`` for the client.

        pyOpenSSL turns on ``SSL_MODE_ENABLE_PARTIAL_WRITE``, so one ``SSL_write`` takes at
        most one record (16 KiB); a memory BIO never blocks, so looping takes the rest."""
        size = len(data)
        if not size:
            return
        written = _SSL_write(self._ssl, data, size)
        if written == size:
            return
        if written <= 0:
            self.connection.sendall(data)  # raises the precise error
            return
        with _ffi.from_buffer(data) as pointer:
            while written < size:
                step = _SSL_write(self._ssl, pointer + written, size - written)
                if step <= 0:
                    self.connection.sendall(data[written:])  # raises the precise error
                    return
                written += step

    def drain(self) -> bytes:
        """Everything OpenSSL has written for the network (empty if nothing)."""
        pending = _BIO_pending(self._out, _NULL)
        if pending <= 0:
            return b""
        if pending <= _BUFFER_SIZE:
            got = _BIO_read(self._out, _buffer, pending)
            if got > 0:
                return bytes(_view[:got])
        return self.connection.bio_read(pending)
