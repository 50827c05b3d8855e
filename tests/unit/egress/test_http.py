"""The request head the egress proxy sends to partners, and where it finds the app's token."""

from __future__ import annotations

import pytest

from mutls.egress.http import partner_head, relocate, token_of

TOKEN = "mutls_" + "a" * 43


@pytest.mark.parametrize(
    "headers",
    [
        [(b"X-Mutls-Token", TOKEN.encode())],
        [(b"Proxy-Authorization", b"Bearer " + TOKEN.encode())],
        [(b"authorization", b"bearer " + TOKEN.encode())],
    ],
)
def test_token_is_found_in_each_place(headers: list[tuple[bytes, bytes]]) -> None:
    assert token_of(headers) == TOKEN


def test_an_authorization_for_the_partner_is_not_taken_for_a_token() -> None:
    assert token_of([(b"Authorization", b"Bearer partner-token")]) is None
    assert token_of([(b"Authorization", b"Basic dXNlcjpwdw==")]) is None
    assert token_of([]) is None


def _head(**changes: object) -> bytes:
    arguments: dict[str, object] = {
        "authority": b"api.bank.example",
        "route_headers": b"X-Api-Key: k\r\n",
        "route_header_names": {b"x-api-key"},
        "authorization": None,
        "chunked": False,
    }
    arguments.update(changes)
    headers = [
        (b"Host", b"127.0.0.1:7080"),
        (b"X-Mutls-Token", TOKEN.encode()),
        (b"X-Mutls-Environment", b"sandbox"),
        (b"Connection", b"keep-alive"),
        (b"Transfer-Encoding", b"chunked"),
        (b"X-Api-Key", b"app-tried-to-set-it"),
        (b"Authorization", b"Basic dXNlcjpwdw=="),
        (b"Content-Type", b"application/json"),
    ]
    return partner_head(b"POST", b"/v1/pay?x=1", headers, **arguments)  # type: ignore[arg-type]


def test_head_drops_proxy_and_hop_headers_and_lets_the_route_win() -> None:
    head = _head()
    assert head.startswith(b"POST /v1/pay?x=1 HTTP/1.1\r\nHost: api.bank.example\r\n")
    assert b"mutls" not in head.lower()
    assert b"127.0.0.1:7080" not in head
    assert b"Connection" not in head
    assert b"app-tried-to-set-it" not in head
    assert head.count(b"X-Api-Key") == 1
    assert b"Authorization: Basic dXNlcjpwdw==\r\n" in head  # the app's own credentials pass
    assert b"Content-Type: application/json\r\n" in head
    assert head.endswith(b"\r\n\r\n")


def test_oauth2_token_replaces_the_apps_authorization_and_chunked_is_reframed() -> None:
    head = _head(authorization=b"Bearer at-1", chunked=True)
    assert b"Basic" not in head
    assert head.count(b"Authorization") == 1
    assert b"Authorization: Bearer at-1\r\n" in head
    assert head.count(b"Transfer-Encoding: chunked\r\n") == 1


def _relocated(location: bytes) -> bytes:
    head = b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n"
    out = relocate(head, authority=b"api.bank.example", base_path=b"/v1", route=b"bank")
    return out.split(b"\r\nLocation: ", 1)[1].split(b"\r\n", 1)[0]


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        (b"https://api.bank.example/v1/accounts/2?x=1", b"/bank/accounts/2?x=1"),
        (b"HTTPS://API.BANK.EXAMPLE/v1", b"/bank/"),
        (b"/v1/accounts/2", b"/bank/accounts/2"),
        (b"/v1?page=2", b"/bank/?page=2"),
    ],
)
def test_redirects_into_the_route_come_back_through_the_proxy(
    location: bytes, expected: bytes
) -> None:
    assert _relocated(location) == expected


@pytest.mark.parametrize(
    "location",
    [
        b"https://login.bank.example/v1/x",  # another host
        b"https://api.bank.example.evil/v1/x",  # a host that starts with the same name
        b"https://api.bank.example/v2/x",  # outside the base path
        b"/v10/x",  # a sibling path that starts with the base path's text
        b"//api.bank.example/v1/x",  # scheme-relative
        b"accounts/2",  # relative to the current path: already right through the proxy
    ],
)
def test_other_redirects_are_left_as_they_are(location: bytes) -> None:
    assert _relocated(location) == location
