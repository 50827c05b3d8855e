"""The bytes the gateway forwards and answers with (pure functions, no sockets)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mutls.errors import RouteForbidden
from mutls.gateway.http import DROPPED_REQUEST_HEADERS, error_response, forward_head
from mutls.proxy.http import request_path

IDENTITY = b"X-Mutls-Account: acme\r\nClient-Cert: :AAAA:\r\n"


def _head(headers: list[tuple[bytes, bytes]], **kwargs: object) -> list[bytes]:
    options: dict[str, object] = {
        "identity": IDENTITY,
        "client_ip": b"192.0.2.7",
        "host": b"api.example",
        "chunked": False,
        "close": False,
        **kwargs,
    }
    head = forward_head(b"GET", b"/v2/x?a=1", headers, **options)  # type: ignore[arg-type]
    assert head.endswith(b"\r\n\r\n")
    return head[:-4].split(b"\r\n")


def test_request_line_and_kept_headers_pass_unchanged() -> None:
    lines = _head([(b"Host", b"api.example"), (b"Accept", b"application/json")])
    assert lines[0] == b"GET /v2/x?a=1 HTTP/1.1"
    assert b"Host: api.example" in lines
    assert b"Accept: application/json" in lines


@pytest.mark.parametrize("name", sorted(DROPPED_REQUEST_HEADERS))
def test_a_client_copy_of_identity_or_hop_by_hop_headers_is_dropped(name: bytes) -> None:
    spoofed = name.title()
    lines = _head([(spoofed, b"evil")])
    assert not any(line.lower().startswith(name + b":") and b"evil" in line for line in lines)


def test_spoofed_account_is_replaced_by_the_verified_one() -> None:
    lines = _head([(b"x-mutls-account", b"evil"), (b"CLIENT-CERT", b":evil:")])
    assert b"X-Mutls-Account: acme" in lines
    assert b"Client-Cert: :AAAA:" in lines
    assert not any(b"evil" in line for line in lines)


def test_forwarded_for_is_appended_to_an_existing_chain() -> None:
    lines = _head([(b"X-Forwarded-For", b"203.0.113.1"), (b"Forwarded", b"for=203.0.113.1")])
    assert b"X-Forwarded-For: 203.0.113.1, 192.0.2.7" in lines
    assert b"Forwarded: for=203.0.113.1, for=192.0.2.7;proto=https;host=api.example" in lines
    assert b"X-Forwarded-Proto: https" in lines


def test_forwarded_quotes_an_ipv6_client() -> None:
    lines = _head([], client_ip=b"2001:db8::1")
    assert b'Forwarded: for="[2001:db8::1]";proto=https;host=api.example' in lines


def test_chunked_and_close_are_the_gateways_own_framing() -> None:
    lines = _head([(b"Transfer-Encoding", b"gzip, chunked")], chunked=True, close=True)
    assert lines.count(b"Transfer-Encoding: chunked") == 1
    assert b"Connection: close" in lines
    assert not any(b"gzip" in line for line in lines)


def test_error_response_is_the_json_error_shape_with_its_status() -> None:
    raw = error_response(403, RouteForbidden("account acme may not use route payments"))
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert f"Content-Length: {len(body)}".encode() in head
    error = json.loads(body)["error"]
    assert error["code"] == "route_forbidden"
    assert error["hint"]


def test_a_401_names_an_authentication_scheme_and_can_close() -> None:
    from mutls.errors import ClientCertificateRequired

    raw = error_response(401, ClientCertificateRequired("no certificate"), close=True)
    assert b"WWW-Authenticate: " in raw
    assert b"Connection: close\r\n" in raw


@pytest.mark.parametrize(
    ("target", "path"),
    [
        (b"/", "/"),
        (b"/v2/accounts?x=1", "/v2/accounts"),
        (b"/%61pi/x", "/api/x"),
        (b"/a//b", "/a//b"),
        (b"/a/b.c/..d", "/a/b.c/..d"),
    ],
)
def testrequest_path_is_decoded_for_matching(target: bytes, path: str) -> None:
    assert request_path(target) == path


@pytest.mark.parametrize(
    "target",
    [
        b"/public/../private",
        b"/public/%2e%2e/private",
        b"/public/%2E%2E%2Fprivate",
        b"/./x",
        b"/a\\b",
        b"/a%5cb",
        b"/a%00b",
        b"http://evil.example/x",
        b"*",
        b"/%ff",
    ],
)
def testrequest_path_refuses_what_an_upstream_could_resolve_elsewhere(target: bytes) -> None:
    assert request_path(target) is None


@given(st.binary(max_size=64))
def testrequest_path_never_raises_and_never_returns_a_dot_segment(raw: bytes) -> None:
    path = request_path(b"/" + raw)
    if path is not None:
        assert "." not in path.split("/")
        assert ".." not in path.split("/")


def test_a_request_without_host_gets_one_and_http10_stays_http10() -> None:
    lines = _head([(b"Accept", b"*/*")], http10=True, add_host=True)
    assert lines[0] == b"GET /v2/x?a=1 HTTP/1.0"
    assert b"Host: api.example" in lines


def test_a_request_with_host_keeps_its_own() -> None:
    lines = _head([(b"Host", b"api.example:8443")])
    assert [line for line in lines if line.lower().startswith(b"host:")] == [
        b"Host: api.example:8443"
    ]


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("API.Example.com:8443", "api.example.com"),
        ("api.example.com", "api.example.com"),
        ("[::1]:8443", "::1"),
        ("[2001:DB8::1]", "2001:db8::1"),
        ("127.0.0.1:8443", "127.0.0.1"),
    ],
)
def test_host_header_is_reduced_to_the_host(header: str, host: str) -> None:
    from mutls.gateway.connection import _host_of

    assert _host_of(header) == host
