"""HTTP/1.1 bytes the egress proxy writes to partners: request heads. Pure functions over bytes.

The head is rebuilt, not copied. Dropped from the app's request: hop-by-hop headers (RFC 9110
7.6.1), ``Host`` (the partner's authority replaces it), every ``X-Mutls-*`` header (the proxy's
own controls), the app's mutls token wherever it came, and any header the route sets itself
(the route wins). ``Authorization`` passes through unless it carries the mutls token or the
route sets it (OAuth2, or a header template). Nothing about the app's network is added: an
egress proxy tells the partner nothing it does not need.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from mutls.accounts.tokens import TOKEN_PREFIX

__all__ = ["DROPPED", "partner_head", "relocate", "token_of"]

DROPPED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",  # re-framed: chunked in, chunked out
        b"upgrade",
        b"host",
    }
)
_BEARER = b"bearer "
_PREFIX = TOKEN_PREFIX.encode("ascii")


def token_of(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The app's mutls token: ``X-Mutls-Token``, ``Proxy-Authorization: Bearer`` or
    ``Authorization: Bearer`` (only when it holds a ``mutls_`` token)."""
    for name, value in headers:
        lower = name.lower()
        if lower == b"x-mutls-token":
            return value.strip().decode("latin-1")
        if lower in (b"proxy-authorization", b"authorization") and value[:7].lower() == _BEARER:
            token = value[7:].strip()
            if token.startswith(_PREFIX):
                return token.decode("latin-1")
    return None


def partner_head(
    method: bytes,
    path: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    *,
    authority: bytes,
    route_headers: bytes,
    route_header_names: Collection[bytes],
    authorization: bytes | None,
    chunked: bool,
) -> bytes:
    """The head sent to the partner. ``route_headers`` are rendered ``Name: value\\r\\n`` lines;
    ``authorization`` (``Bearer ...``) replaces the app's Authorization when given."""
    lines = [method, b" ", path, b" HTTP/1.1\r\nHost: ", authority, b"\r\n"]
    for name, value in headers:
        lower = name.lower()
        if lower in DROPPED or lower.startswith(b"x-mutls-") or lower in route_header_names:
            continue
        if lower == b"authorization" and (
            authorization is not None or value.strip()[7:].lstrip().startswith(_PREFIX)
        ):
            continue
        lines += [name, b": ", value, b"\r\n"]
    lines.append(route_headers)
    if authorization is not None:
        lines += [b"Authorization: ", authorization, b"\r\n"]
    if chunked:
        lines.append(b"Transfer-Encoding: chunked\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


_LOCATION = re.compile(rb"\r\nlocation:[ \t]*([^\r\n]*)", re.I)


def relocate(head: bytes, *, authority: bytes, base_path: bytes, route: bytes) -> bytes:
    """Rewrite a ``Location`` that points into the route's target (absolute, or an absolute
    path under its base path) to the proxy's ``/<route>/...``, so an app that follows the
    redirect comes back through the proxy and its certificate. Other locations are left."""
    found = _LOCATION.search(head)
    if found is None:
        return head
    value = found.group(1).strip()
    base = base_path
    origin = b"https://" + authority
    if value.lower().startswith(origin.lower()):
        rest = value[len(origin) :]
        if rest[:1] not in (b"", b"/", b"?"):
            return head  # another host that merely starts with the same name
    elif value.startswith(b"/") and not value.startswith(b"//"):
        rest = value
    else:
        return head
    if base and not (rest == base or rest.startswith((base + b"/", base + b"?"))):
        return head  # outside the route's base path: the proxy cannot map it
    rest = rest[len(base) :] or b"/"
    if rest.startswith(b"?"):
        rest = b"/" + rest
    start, end = found.span(1)
    return head[:start] + b"/" + route + rest + head[end:]
