"""What both data planes need of HTTP/1.1 besides the relay: the request path they match routes
on, and the JSON answers they write themselves (errors, ``/mutls/whoami``)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from http import HTTPStatus
from urllib.parse import unquote

__all__ = ["json_response", "request_path"]

_NEEDS_CARE = re.compile(rb"[%.\\\x00-\x1f\x7f-\xff]")
_REFUSED_IN_PATH = re.compile(r"[\x00-\x1f\x7f\\]")


def request_path(target: bytes) -> str | None:
    """The decoded path routes are matched on, or None if the target must be refused.

    Dot segments, backslashes and control characters are refused rather than normalised: the
    upstream might resolve ``/public/../private`` differently from the gateway, and a route's
    checks must apply to the path the upstream serves.
    """
    if not target.startswith(b"/"):
        return None
    raw = target.split(b"?", 1)[0].split(b"#", 1)[0]
    if not _NEEDS_CARE.search(raw):  # the common case: nothing to decode, no dots to look at
        return raw.decode("ascii")
    try:
        path = unquote(raw.decode("ascii"), errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    if _REFUSED_IN_PATH.search(path):
        return None
    segments = path.split("/")
    if "." in segments or ".." in segments:
        return None
    return path


def json_response(
    status: int,
    body: object,
    *,
    close: bool = False,
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
    phrase = HTTPStatus(status).phrase.encode("ascii")
    head = [
        b"HTTP/1.1 %d %s\r\n" % (status, phrase),
        b"Content-Type: application/json\r\n",
        b"Content-Length: %d\r\n" % len(payload),
        b"Cache-Control: no-store\r\n",
    ]
    for name, value in extra_headers:
        head.append(name + b": " + value + b"\r\n")
    if close:
        head.append(b"Connection: close\r\n")
    head.append(b"\r\n")
    return b"".join(head) + payload
