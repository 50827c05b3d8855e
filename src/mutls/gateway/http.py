"""HTTP/1.1 bytes the gateway writes: forwarded request heads and its own answers.

Pure functions over bytes. The request head is rebuilt, not copied: hop-by-hop headers
(RFC 9110 7.6.1) and every incoming copy of the identity headers the gateway sets are dropped,
so a client cannot claim another certificate or account; then the verified identity is added.
"""

from __future__ import annotations

from collections.abc import Sequence

from mutls.errors import MutlsError
from mutls.proxy.http import json_response

__all__ = [
    "DROPPED_REQUEST_HEADERS",
    "error_response",
    "forward_head",
]

DROPPED_REQUEST_HEADERS = frozenset(
    {
        # hop-by-hop: this connection's business only
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",  # the gateway re-frames a chunked body itself
        b"upgrade",
        # identity the gateway vouches for: never trust a client's copy
        b"client-cert",
        b"client-cert-chain",
        b"x-mutls-account",
        b"x-mutls-account-id",
        b"x-mutls-cert-serial",
        b"x-mutls-cert-fingerprint",
        b"x-mutls-route",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-real-ip",
    }
)


def forward_head(
    method: bytes,
    target: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    *,
    identity: bytes,
    client_ip: bytes,
    host: bytes,
    chunked: bool,
    close: bool,
    http10: bool = False,
    add_host: bool = False,
) -> bytes:
    """The head sent upstream: the request line, the kept headers, then the gateway's own
    (``identity`` is already rendered as header lines, each ending in CRLF)."""
    # An HTTP/1.0 request stays 1.0 upstream: its client could not read a chunked answer.
    lines = [method, b" ", target, b" HTTP/1.0\r\n" if http10 else b" HTTP/1.1\r\n"]
    if add_host:  # HTTP/1.1 requires Host; an HTTP/1.0 client may have sent none
        lines += [b"Host: ", host, b"\r\n"]
    forwarded_for = b""
    forwarded = b""
    for name, value in headers:
        lower = name.lower()
        if lower in DROPPED_REQUEST_HEADERS:
            continue
        if lower == b"x-forwarded-for":
            forwarded_for = value
            continue
        if lower == b"forwarded":
            forwarded = value
            continue
        lines += [name, b": ", value, b"\r\n"]
    lines.append(identity)  # pre-rendered "Name: value\r\n" lines
    node = b'"[' + client_ip + b']"' if b":" in client_ip else client_ip
    lines += [
        b"X-Forwarded-For: ",
        forwarded_for + b", " + client_ip if forwarded_for else client_ip,
        b"\r\nForwarded: ",
        (forwarded + b", " if forwarded else b"") + b"for=" + node + b";proto=https;host=" + host,
        b"\r\nX-Forwarded-Proto: https\r\n",
    ]
    if chunked:
        lines.append(b"Transfer-Encoding: chunked\r\n")
    if close:
        lines.append(b"Connection: close\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def error_response(status: int, error: MutlsError, *, close: bool = False) -> bytes:
    """``{"error": {"code", "message", "hint"}}`` with the status; 401 also names the scheme."""
    extra: list[tuple[bytes, bytes]] = []
    if status == 401:
        extra.append((b"WWW-Authenticate", b'Mutual-TLS realm="mutls"'))
    return json_response(status, {"error": error.to_dict()}, close=close, extra_headers=extra)
