"""EgressAdapter / egress_session (requests) and egress_transport (httpx) against a real local
HTTP server standing in for the egress proxy: what reaches it, and that the token stays secret."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
import requests

from mutls.accounts.tokens import new_token
from mutls.client import (
    AsyncEgressTransport,
    EgressAdapter,
    EgressConfig,
    EgressTransport,
    async_egress_transport,
    egress_session,
    egress_transport,
)
from mutls.errors import MutlsError
from tests.loopback.client.conftest import EgressStandIn
from tests.secretscan import register_secret


@pytest.fixture
def token() -> str:
    value = new_token()
    register_secret(value)
    return value


def test_a_mounted_adapter_maps_the_route_url_and_adds_both_headers(
    egress_proxy: EgressStandIn, token: str
) -> None:
    with requests.Session() as session:
        session.mount("mutls://", EgressAdapter(token, egress_proxy.url, "sandbox"))
        response = session.get("mutls://bank_api/accounts?x=1&y=a%20b", timeout=10)
    assert response.status_code == 200
    seen = egress_proxy.last()
    assert (seen.method, seen.target) == ("GET", "/bank_api/accounts?x=1&y=a%20b")
    assert seen.headers["x-mutls-token"] == token
    assert seen.headers["x-mutls-environment"] == "sandbox"
    assert seen.headers["host"] == egress_proxy.url.removeprefix("http://")
    assert response.request.url == "mutls://bank_api/accounts?x=1&y=a%20b"  # the caller's
    assert "X-Mutls-Token" not in response.request.headers


def test_egress_session_takes_params_bodies_and_a_per_request_environment(
    egress_proxy: EgressStandIn, token: str
) -> None:
    with egress_session(token, egress_proxy.url) as session:
        session.post("mutls://bank_api/payments", params={"x": 1}, json={"amount": 5}, timeout=10)
        post = egress_proxy.last()
        session.get(
            "mutls://bank_api/accounts",
            headers={"X-Mutls-Environment": "staging"},
            timeout=10,
        )
        get = egress_proxy.last()
    assert (post.method, post.target, post.body) == (
        "POST",
        "/bank_api/payments?x=1",
        b'{"amount": 5}',
    )
    assert "x-mutls-environment" not in post.headers  # none chosen: the token's default
    assert post.headers["x-mutls-token"] == token
    assert get.headers["x-mutls-environment"] == "staging"


def test_token_and_proxy_come_from_the_environment(
    egress_proxy: EgressStandIn, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MUTLS_APP_TOKEN", token)
    monkeypatch.setenv("MUTLS_EGRESS_URL", egress_proxy.url + "/")
    with egress_session() as session:
        session.get("mutls://bank_api/", timeout=10)
    with httpx.Client(transport=egress_transport(), base_url="mutls://bank_api") as client:
        client.get("/status")
    first, second = egress_proxy.recorded
    assert (first.target, second.target) == ("/bank_api/", "/bank_api/status")
    assert first.headers["x-mutls-token"] == second.headers["x-mutls-token"] == token


def test_the_default_proxy_is_the_loopback_listener(
    token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MUTLS_EGRESS_URL", raising=False)
    assert EgressConfig.resolve(token=token).proxy == "http://127.0.0.1:7080"


def test_httpx_with_base_url_maps_path_query_and_body(
    egress_proxy: EgressStandIn, token: str
) -> None:
    transport = egress_transport(token, egress_proxy.url, environment="sandbox")
    with httpx.Client(transport=transport, base_url="mutls://bank_api") as client:
        response = client.put("/accounts/7", params={"q": "a b"}, json={"n": 1})
    assert response.status_code == 200
    seen = egress_proxy.last()
    assert (seen.method, seen.target) == ("PUT", "/bank_api/accounts/7?q=a+b")
    assert seen.body == b'{"n":1}'
    assert seen.headers["x-mutls-token"] == token
    assert seen.headers["x-mutls-environment"] == "sandbox"
    assert seen.headers["host"] == egress_proxy.url.removeprefix("http://")
    assert str(response.request.url) == "mutls://bank_api/accounts/7?q=a+b"


def test_async_httpx_through_the_proxy(egress_proxy: EgressStandIn, token: str) -> None:
    async def main() -> int:
        transport = async_egress_transport(token, egress_proxy.url)
        async with httpx.AsyncClient(transport=transport, base_url="mutls://bank_api") as client:
            return (await client.get("/accounts", params={"x": 1})).status_code

    assert asyncio.run(main()) == 200
    assert egress_proxy.last().target == "/bank_api/accounts?x=1"
    assert egress_proxy.last().headers["x-mutls-token"] == token


def test_the_proxys_error_answers_pass_through(egress_proxy: EgressStandIn, token: str) -> None:
    """A 502 from the proxy (the partner is down) is an answer for the app, not swallowed."""
    with egress_session(token, egress_proxy.url) as session:
        response = session.get("mutls://bank_api/partner-down", timeout=10)
    assert response.status_code == 502
    assert response.json() == {"error": {"code": "partner_unreachable"}}
    with httpx.Client(transport=egress_transport(token, egress_proxy.url)) as client:
        assert client.get("mutls://bank_api/partner-down").status_code == 502


# --- rejection twins, and the token kept out of sight ---------------------------------------------


def test_no_token_is_authentication_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MUTLS_APP_TOKEN", raising=False)
    for factory in (EgressAdapter, EgressTransport, AsyncEgressTransport, egress_session):
        with pytest.raises(MutlsError) as caught:
            factory()
        assert caught.value.code == "authentication_required"
        assert "MUTLS_APP_TOKEN" in caught.value.message


@pytest.mark.parametrize("suffix", ["\n", "x", ""], ids=["newline", "too long", "unprefixed"])
def test_a_malformed_token_is_invalid_token_and_not_echoed(token: str, suffix: str) -> None:
    bad = token + suffix if suffix else token.removeprefix("mutls_")
    with pytest.raises(MutlsError) as caught:
        EgressAdapter(bad)
    assert caught.value.code == "invalid_token"
    assert token.removeprefix("mutls_") not in str(caught.value)
    assert token.removeprefix("mutls_") not in repr(caught.value.to_dict())


@pytest.mark.parametrize(
    "proxy",
    ["127.0.0.1:7080", "ftp://127.0.0.1", "http://user:pw@127.0.0.1:7080", "http://h:99999"],
)
def test_a_bad_proxy_address_is_invalid_argument(token: str, proxy: str) -> None:
    with pytest.raises(MutlsError) as caught:
        egress_transport(token, proxy)
    assert caught.value.code == "invalid_argument"
    assert "pw" not in caught.value.message
    assert token not in caught.value.message


@pytest.mark.parametrize(
    "url", ["https://bank_api/accounts", "mutls://Bank API/x", "mutls://user:secret@bank_api/"]
)
def test_a_url_that_names_no_route_is_refused(
    egress_proxy: EgressStandIn, token: str, url: str
) -> None:
    with pytest.raises(MutlsError) as caught:
        EgressConfig.resolve(token=token, proxy=egress_proxy.url).url_for(url)
    assert caught.value.code == "invalid_argument"
    assert "secret" not in caught.value.message
    assert egress_proxy.recorded == []


def test_an_invalid_environment_name_is_refused(token: str) -> None:
    with pytest.raises(MutlsError) as caught:
        EgressAdapter(token, environment="Sandbox!")
    assert caught.value.code == "invalid_argument"


def test_the_token_is_in_no_repr_str_error_or_log_line(
    token: str, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    proxy = f"http://127.0.0.1:{closed_port}"
    adapter = EgressAdapter(token, proxy, "sandbox")
    transport = egress_transport(token, proxy)
    async_transport = async_egress_transport(token, proxy)
    session = egress_session(token, proxy)
    config = EgressConfig.resolve(token=token, proxy=proxy)
    shown = [repr(adapter), repr(transport), repr(async_transport), repr(session), repr(config)]
    shown += [str(adapter), str(transport), str(config)]
    with session, pytest.raises(requests.exceptions.ConnectionError) as refused_rq:
        session.get("mutls://bank_api/accounts", timeout=5)
    error_rq = refused_rq.value
    assert error_rq.request is not None
    assert "X-Mutls-Token" not in error_rq.request.headers  # the caller's request, not the copy
    with (
        httpx.Client(transport=transport) as client,
        pytest.raises(httpx.ConnectError) as refused_hx,
    ):
        client.get("mutls://bank_api/accounts")
    shown += [str(error_rq), repr(error_rq), str(refused_hx.value), repr(refused_hx.value)]
    shown += [caplog.text]
    for text in shown:
        assert token not in text
        assert token.removeprefix("mutls_") not in text
    assert "token=<hidden>" in repr(adapter)
    adapter.close()
