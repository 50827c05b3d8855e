"""The network half of the doctor: one blocking pyOpenSSL client, one question per connection.

Each function opens its own TCP connection, asks one thing, and returns what it saw or raises a
:class:`~mutls.errors.PartnerError` (the same codes the egress proxy uses). TLS errors are
translated by :mod:`mutls.egress.tlserrors`, so the doctor and the egress proxy name a failure
the same way. Every wait is bounded by a deadline.
"""

from __future__ import annotations

import ipaddress
import json
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from cryptography import x509
from OpenSSL import SSL

from mutls.egress.tlserrors import closed_after_handshake, translate_tls_error
from mutls.errors import InvalidArgument, PartnerError, PartnerTimeout, PartnerUnreachable

__all__ = [
    "HttpAnswer",
    "Target",
    "TlsOutcome",
    "connect",
    "handshake",
    "parse_target",
    "request",
    "resolve",
]

T = TypeVar("T")

#: How long to wait after the handshake for a TLS 1.3 server's verdict on our certificate. The
#: server sends its alert as soon as it has checked the certificate: milliseconds on a LAN.
VERDICT_WAIT = 0.5
_MAX_ANSWER = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class Target:
    url: str
    host: str
    port: int
    path: str
    servername: str  # SNI and the name the server certificate must hold

    @property
    def sni(self) -> str | None:
        """SNI carries DNS names only (RFC 6066 section 3)."""
        try:
            ipaddress.ip_address(self.servername)
        except ValueError:
            return self.servername
        return None


def parse_target(url: str, servername: str | None = None) -> Target:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise InvalidArgument(
            f"expected an https:// URL with a host; got {url!r}",
            hint="give the URL you call, for example https://api.partner.example/v1/health",
        )
    try:
        port = parts.port or 443
    except ValueError:
        raise InvalidArgument(f"expected a port number in {url!r}") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(
        url=url, host=parts.hostname, port=port, path=path, servername=servername or parts.hostname
    )


def resolve(target: Target) -> list[tuple[str, int]]:
    """The addresses of the host, in the order the resolver gives them."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise PartnerUnreachable(
            f"the name {target.host} does not resolve: {error}",
            hint="check the spelling of the host and this machine's DNS (resolv.conf, VPN, "
            "/etc/hosts)",
            reason="name_not_resolved",
        ) from None
    addresses: list[tuple[str, int]] = []
    for info in infos:
        address = (str(info[4][0]), int(info[4][1]))
        if address not in addresses:
            addresses.append(address)
    return addresses


def connect(target: Target, addresses: list[tuple[str, int]], timeout: float) -> socket.socket:
    """A TCP connection to the first address that accepts one."""
    last: PartnerError | None = None
    for host, port in addresses:
        try:
            return socket.create_connection((host, port), timeout=timeout)
        except ConnectionRefusedError:
            last = PartnerUnreachable(
                f"{host} port {port} refused the connection: nothing listens there",
                hint="check the port in the URL and that the server runs; a firewall may also "
                "reject the connection",
                reason="connection_refused",
            )
        except TimeoutError:
            last = PartnerTimeout(
                f"{host} port {port} did not accept a connection within {timeout:g}s",
                hint="a firewall or proxy drops the packets, or the server is down; check "
                "allowlists of source IPs with the partner",
                reason="connect_timeout",
            )
        except OSError as error:
            last = PartnerUnreachable(
                f"cannot connect to {host} port {port}: {error.strerror or error}",
                hint="check the network route to the server (firewall, proxy, VPN)",
                reason="connect_failed",
            )
    assert last is not None
    raise last


@dataclass(frozen=True, kw_only=True)
class TlsOutcome:
    """What one handshake showed, and the open connection when it succeeded."""

    version: str | None
    peer_chain: tuple[x509.Certificate, ...]
    client_ca_names: tuple[x509.Name, ...]
    error: PartnerError | None
    connection: SSL.Connection | None = None
    sock: socket.socket | None = None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


def _drive(sock: socket.socket, action: Callable[[], T], deadline: float, what: str) -> T:
    """Run a pyOpenSSL call on a non-blocking socket until it completes or ``deadline``."""
    while True:
        try:
            return action()
        except SSL.WantReadError:
            readable, writable = [sock], []
        except SSL.WantWriteError:
            readable, writable = [], [sock]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise PartnerTimeout(f"no answer from the server while {what}", reason="tls_timeout")
        select.select(readable, writable, [], remaining)


def handshake(
    target: Target,
    addresses: list[tuple[str, int]],
    context: SSL.Context,
    *,
    sent_certificate: bool,
    timeout: float,
    wait_verdict: bool,
) -> TlsOutcome:
    """Handshake with ``context``; with ``wait_verdict``, read once (briefly) to catch a TLS 1.3
    server's alert about our certificate. The connection is kept open only on success."""
    sock = connect(target, addresses, timeout)
    sock.setblocking(False)
    conn = SSL.Connection(context, sock)
    if target.sni:
        conn.set_tlsext_host_name(target.sni.encode("idna"))
    conn.set_connect_state()
    server = f"{target.host}:{target.port}"
    deadline = time.monotonic() + timeout
    error: PartnerError | None = None
    try:
        _drive(sock, conn.do_handshake, deadline, "the TLS handshake")
        if wait_verdict:
            error = _verdict(conn, sock, sent_certificate=sent_certificate, server=server)
    except SSL.Error as failure:
        error = translate_tls_error(failure, conn, sent_certificate=sent_certificate, server=server)
    except PartnerError as failure:
        error = failure
    outcome = TlsOutcome(
        version=conn.get_protocol_version_name() if conn.get_peer_certificate() else None,
        peer_chain=tuple(conn.get_peer_cert_chain(as_cryptography=True) or ()),
        client_ca_names=tuple(conn.get_client_ca_list(as_cryptography=True)),
        error=error,
        connection=conn if error is None else None,
        sock=sock if error is None else None,
    )
    if error is not None:
        sock.close()
    return outcome


def _verdict(
    conn: SSL.Connection, sock: socket.socket, *, sent_certificate: bool, server: str
) -> PartnerError | None:
    """None when the server stays quiet for :data:`VERDICT_WAIT` (it accepted us), else why it
    did not."""
    deadline = time.monotonic() + VERDICT_WAIT
    try:
        _drive(sock, lambda: conn.recv(1), deadline, "waiting for the server's verdict")
    except PartnerTimeout:
        return None  # quiet: nothing to say, which is what an accepting server does
    except SSL.ZeroReturnError:
        return closed_after_handshake(conn, sent_certificate=sent_certificate, server=server)
    except SSL.SysCallError:
        return closed_after_handshake(conn, sent_certificate=sent_certificate, server=server)
    except SSL.Error as failure:
        return translate_tls_error(failure, conn, sent_certificate=sent_certificate, server=server)
    return None  # the server spoke first (a banner): it did not refuse us


@dataclass(frozen=True, kw_only=True)
class HttpAnswer:
    status: int
    reason: str
    content_type: str
    body: bytes = b""

    def mutls_error(self) -> dict[str, str] | None:
        """``{"code", "message", "hint"}`` when the answer is a mutls error (gateway, egress)."""
        if "json" not in self.content_type:
            return None
        try:
            data = json.loads(self.body)
        except ValueError:
            return None
        error = data.get("error") if isinstance(data, dict) else None
        if not isinstance(error, dict) or not isinstance(error.get("code"), str):
            return None
        return {k: str(error.get(k) or "") for k in ("code", "message", "hint")}


def request(outcome: TlsOutcome, target: Target, timeout: float) -> HttpAnswer:
    """``GET path`` on the open connection of ``outcome``; the status line, headers and body."""
    conn, sock = outcome.connection, outcome.sock
    assert conn is not None
    assert sock is not None
    host = target.servername if target.port == 443 else f"{target.servername}:{target.port}"
    head = (
        f"GET {target.path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: mutls-doctor\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode("ascii", "replace")
    deadline = time.monotonic() + timeout
    server = f"{target.host}:{target.port}"
    data = b""
    try:
        _drive(sock, lambda: conn.sendall(head), deadline, "sending the request")
        while len(data) < _MAX_ANSWER and not _complete(data):
            try:
                data += _drive(sock, lambda: conn.recv(65536), deadline, "reading the answer")
            except (SSL.ZeroReturnError, SSL.SysCallError):
                break
    except SSL.Error as failure:
        raise translate_tls_error(failure, conn, sent_certificate=True, server=server) from None
    return _parse(data, server)


def _complete(data: bytes) -> bool:
    head, found, body = data.partition(b"\r\n\r\n")
    if not found:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return len(body) >= int(value.strip())
    return False  # close-delimited or chunked: read until the server closes (Connection: close)


def _parse(data: bytes, server: str) -> HttpAnswer:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status_line = lines[0].decode("latin-1").split(" ", 2)
    if (
        len(status_line) < 2
        or not status_line[0].startswith("HTTP/")
        or not status_line[1].isdigit()
    ):
        raise PartnerError(
            f"the server {server} did not answer in HTTP (first bytes: {data[:40]!r})",
            hint="the port may speak another protocol over TLS",
            reason="not_http",
        )
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return HttpAnswer(
        status=int(status_line[1]),
        reason=status_line[2] if len(status_line) > 2 else "",
        content_type=headers.get("content-type", ""),
        body=body,
    )


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            return out
        if size == 0:
            return out
        out += rest[:size]
        body = rest[size + 2 :]
    return out
