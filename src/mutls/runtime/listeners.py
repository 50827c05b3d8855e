"""Run several HTTP listeners (plain or TLS) in one event loop, and stop them together.

uvicorn serves each listener. Two things are added around it:

- **The peer's certificate reaches the app.** uvicorn does not implement the ASGI TLS extension
  yet (uvicorn PRs #1119, #2586, #3132 are open), so :class:`TlsHttpToolsProtocol` puts
  ``scope["extensions"]["tls"]`` on every request of a TLS connection, with
  ``client_cert_chain`` as the spec defines it (PEM strings, the client's certificate first).
  Python 3.11's ``ssl`` exposes only the peer's leaf, so the chain has one element; the handshake
  has already verified it against the listener's client CAs.
- **One signal handler for all listeners.** Each ``uvicorn.Server`` would install its own
  SIGINT/SIGTERM handler and the last one would win; here one handler stops every listener, each
  finishes its in-flight requests, and the process exits 0.

Sockets are bound before anything starts, so a port in use is a clear error naming the setting,
not a half-started node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mutls.errors import InvalidArgument

__all__ = ["Listener", "TlsHttpToolsProtocol", "bind", "run_listeners"]

log = logging.getLogger("mutls.listeners")

_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def _tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    chain = []
    if der:
        chain.append(
            x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode()
        )
    cipher = ssl_object.cipher()
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,
        "cipher_name": cipher[0] if cipher else None,  # not in the spec: for logs only
    }


class TlsHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the ASGI TLS extension, computed once per connection."""

    _tls: dict[str, Any] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._tls = _tls_extension(transport)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            # uvicorn types the extensions dict for the extensions it knows; "tls" is spec ASGI.
            self.scope["extensions"] = {"tls": self._tls}  # type: ignore[dict-item]


@dataclass(frozen=True, kw_only=True)
class Listener:
    """One listener: what it serves, where, and with which TLS context (None: plain HTTP)."""

    name: str
    app: Any
    sock: socket.socket
    ssl_context: ssl.SSLContext | None = None
    graceful_seconds: int = 10

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def bind(host: str, port: int, *, setting: str) -> socket.socket:
    """A listening-ready TCP socket, or ``invalid_argument`` naming the setting to change."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidArgument(
            f"expected to listen on {host}:{port} ({setting}); the system refused: "
            f"{exc.strerror or exc}",
            hint=f"stop what uses the port, or set {setting} to another host:port",
        ) from None
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to :func:`run_listeners`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _server(listener: Listener) -> _Server:
    tls = listener.ssl_context
    config = uvicorn.Config(
        listener.app,
        http=TlsHttpToolsProtocol if tls else "httptools",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=listener.graceful_seconds,
        lifespan="on",
        ssl_context_factory=(lambda _config, _default: tls) if tls else None,
    )
    return _Server(config)


def run_listeners(listeners: Sequence[Listener]) -> None:
    """Serve every listener until SIGINT or SIGTERM, then stop them all gracefully."""
    servers = [_server(listener) for listener in listeners]

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def stop() -> None:
            for server in servers:
                server.should_exit = True

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        try:
            await asyncio.gather(
                *(
                    server.serve(sockets=[listener.sock])
                    for server, listener in zip(servers, listeners, strict=True)
                )
            )
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    for listener in listeners:
        log.info("%s listening on %s", listener.name, listener.url)
    try:
        uvloop.run(main())
    finally:
        for listener in listeners:
            listener.sock.close()
