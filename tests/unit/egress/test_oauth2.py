"""OAuth2 client credentials: request bytes, response parsing and the token cache (no sockets)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest

from mutls.egress.oauth2 import (
    DEFAULT_LIFETIME,
    MAX_LIFETIME,
    NEGATIVE_TTL,
    AccessToken,
    OAuth2Client,
    TokenCache,
    TokenKey,
    TokenRequest,
    build_token_request,
    parse_token_response,
)
from mutls.errors import OAuth2TokenFailed, PartnerError, PartnerUnreachable
from mutls.vault.payloads import OAuth2AuthMethod, OAuth2Input, SecretType, prepare_oauth2, reveal
from tests.secretscan import register_secret

SECRET = "p@ss word/+:%=&s3cr3t"  # every character RFC 6749 2.3.1 makes us encode
TOKEN = "tok_5b1d6f0e9a8c4d2b"
register_secret(SECRET)
register_secret(TOKEN)
JSON = {"Content-Type": "application/json"}


def _client(
    method: OAuth2AuthMethod = OAuth2AuthMethod.CLIENT_SECRET_BASIC,
    *,
    url: str = "https://auth.partner.test/oauth/token",
    scopes: tuple[str, ...] = ("accounts", "payments"),
    audience: str | None = None,
) -> OAuth2Client:
    secret = None if method.uses_certificate else SECRET
    return OAuth2Client(
        token_url=url,
        client_id="my client:1",
        client_secret=secret,
        scopes=scopes,
        auth_method=method,
        certificate_secret="bank_cert" if method.uses_certificate else None,
        audience=audience,
    )


def _form(request: TokenRequest) -> list[tuple[str, str]]:
    return parse_qsl(request.body.decode("ascii"), strict_parsing=True)


def _ok(body: dict[str, object], *, now: float = 1000.0, status: int = 200) -> AccessToken:
    return parse_token_response(
        status, JSON, json.dumps(body).encode(), now_monotonic=now, client=_client()
    )


def _refused(
    status: int,
    body: bytes,
    headers: dict[str, str] | None = None,
) -> OAuth2TokenFailed:
    with pytest.raises(OAuth2TokenFailed) as caught:
        parse_token_response(
            status, JSON if headers is None else headers, body, now_monotonic=0.0, client=_client()
        )
    assert SECRET not in str(caught.value)
    assert SECRET not in json.dumps(caught.value.to_dict())
    return caught.value


# --- the request ------------------------------------------------------------------------------


def test_basic_request_encodes_id_and_secret_per_rfc6749_before_base64() -> None:
    """client_secret_basic form-urlencodes id and secret, then base64s them, exactly."""
    request = build_token_request(_client(audience="https://api.partner.test"))
    headers = dict(request.headers)
    assert headers == {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
        "Authorization": headers["Authorization"],
    }
    decoded = base64.b64decode(headers["Authorization"].removeprefix("Basic ")).decode()
    assert decoded == "my+client%3A1:p%40ss+word%2F%2B%3A%25%3D%26s3cr3t"
    assert request.body == (
        b"grant_type=client_credentials&scope=accounts+payments"
        b"&audience=https%3A%2F%2Fapi.partner.test"
    )
    assert (request.method, request.host, request.port, request.path) == (
        "POST",
        "auth.partner.test",
        443,
        "/oauth/token",
    )
    assert not request.uses_certificate


def test_basic_request_percent_encodes_non_ascii_as_utf8() -> None:
    """A non-ASCII secret is sent as percent-encoded UTF-8 inside Basic, so the header is ASCII."""
    client = OAuth2Client(
        token_url="https://a.test/t", client_id="caf\u00e9", client_secret="\u20ac1"
    )
    basic = dict(build_token_request(client).headers)["Authorization"]
    assert base64.b64decode(basic.removeprefix("Basic ")) == b"caf%C3%A9:%E2%82%AC1"


def test_post_request_puts_id_and_secret_in_the_body() -> None:
    """client_secret_post sends client_id and client_secret as form fields, no Authorization."""
    request = build_token_request(_client(OAuth2AuthMethod.CLIENT_SECRET_POST))
    assert "Authorization" not in dict(request.headers)
    assert _form(request) == [
        ("grant_type", "client_credentials"),
        ("client_id", "my client:1"),
        ("client_secret", SECRET),
        ("scope", "accounts payments"),
    ]
    assert request.body.startswith(
        b"grant_type=client_credentials&client_id=my+client%3A1&client_secret=p%40ss+word"
    )


@pytest.mark.parametrize(
    "method",
    [OAuth2AuthMethod.TLS_CLIENT_AUTH, OAuth2AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH],
)
def test_rfc8705_request_sends_client_id_and_no_secret(method: OAuth2AuthMethod) -> None:
    """tls_client_auth: grant_type, client_id, scope and audience only; the certificate is sent."""
    request = build_token_request(_client(method, audience="bank"), scopes=["accounts"])
    assert request.uses_certificate
    assert "Authorization" not in dict(request.headers)
    assert request.body == (
        b"grant_type=client_credentials&client_id=my+client%3A1&scope=accounts&audience=bank"
    )


def test_request_without_scopes_has_no_scope_field() -> None:
    """No scopes at all: the scope parameter is left out, not sent empty."""
    request = build_token_request(_client(scopes=()))
    assert request.body == b"grant_type=client_credentials"


def test_route_scopes_replace_the_secret_scopes_and_repeat_once() -> None:
    """Scopes passed in (the route's) replace the secret's, in order, without duplicates."""
    request = build_token_request(_client(), scopes=["b", "a", "b"])
    assert ("scope", "b a") in _form(request)


def test_token_url_port_query_and_ipv6_are_kept() -> None:
    """An explicit port, a query (RFC 6749 3.2 allows one) and an IPv6 host come through."""
    request = build_token_request(_client(url="https://[::1]:9443/t/token?tenant=acme"))
    assert (request.host, request.port, request.path) == ("::1", 9443, "/t/token?tenant=acme")
    assert request.authority == "[::1]:9443"
    assert build_token_request(_client(url="https://a.test")).path == "/"
    assert build_token_request(_client(url="https://a.test")).authority == "a.test"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://localhost:8080/token", "token_url_not_https"),
        ("http://auth.partner.test/token", "token_url_not_https"),
        ("ftp://auth.partner.test/token", "token_url_not_https"),
        ("https:///token", "invalid_token_url"),
        ("https://auth.partner.test:99999/token", "invalid_token_url"),
    ],
)
def test_token_url_that_is_not_https_is_refused(url: str, reason: str) -> None:
    """Credentials travel over TLS only: plain HTTP (even loopback) and broken URLs are refused."""
    with pytest.raises(OAuth2TokenFailed) as caught:
        build_token_request(_client(url=url))
    assert caught.value.reason == reason
    assert caught.value.hint


def test_scope_with_a_space_is_refused() -> None:
    """A scope token with a space would split into two scopes; it is refused."""
    with pytest.raises(OAuth2TokenFailed) as caught:
        build_token_request(_client(), scopes=["read write"])
    assert caught.value.reason == "invalid_scope_syntax"


def test_secret_method_without_a_secret_is_refused() -> None:
    """client_secret_basic without a secret cannot authenticate: refused before sending."""
    client = OAuth2Client(token_url="https://a.test/t", client_id="c")
    with pytest.raises(OAuth2TokenFailed) as caught:
        build_token_request(client)
    assert caught.value.reason == "invalid_oauth2_secret"


def test_client_from_a_revealed_vault_secret() -> None:
    """The fields prepare_oauth2 seals and reveal returns make a working client."""
    prepared = prepare_oauth2(
        OAuth2Input(
            token_url="https://auth.partner.test/token",
            client_id="cid",
            client_secret=SECRET,
            scopes=["accounts"],
            auth_method="client_secret_post",
            audience="aud",
        ),
        now=datetime.now(UTC),
    )
    client = OAuth2Client.from_secret(reveal(SecretType.OAUTH2, prepared.plaintext))
    assert client.auth_method is OAuth2AuthMethod.CLIENT_SECRET_POST
    assert (client.client_secret, client.scopes, client.audience) == (SECRET, ("accounts",), "aud")
    assert client.endpoint == "https://auth.partner.test/token"


@pytest.mark.parametrize(
    "fields",
    [
        {"token_url": "https://a.test/t", "client_id": "c", "auth_method": "password"},
        {"token_url": "https://a.test/t", "client_id": "c", "auth_method": "client_secret_basic"},
        {
            "token_url": "https://a.test/t",
            "client_id": "c",
            "auth_method": "tls_client_auth",
            "client_secret": SECRET,
        },
        {"token_url": "https://a.test/t", "client_id": 7, "auth_method": "tls_client_auth"},
        {
            "token_url": "https://a.test/t",
            "client_id": "c",
            "auth_method": "tls_client_auth",
            "scopes": "a b",
        },
    ],
    ids=["unknown-method", "basic-without-secret", "mtls-with-secret", "id-not-text", "scopes"],
)
def test_client_from_an_inconsistent_secret_is_refused(fields: dict[str, object]) -> None:
    """A secret whose fields cannot make a request is refused by name, never echoing the secret."""
    with pytest.raises(OAuth2TokenFailed) as caught:
        OAuth2Client.from_secret(fields)
    assert caught.value.reason == "invalid_oauth2_secret"
    assert SECRET not in str(caught.value)


# --- the response -----------------------------------------------------------------------------


def test_token_response_is_parsed() -> None:
    """access_token, token_type (case-insensitive), expires_in and scope become an AccessToken."""
    token = _ok(
        {"access_token": TOKEN, "token_type": "bearer", "expires_in": 3600, "scope": "a b"},
        now=1000.0,
    )
    assert (token.value, token.token_type, token.scope) == (TOKEN, "Bearer", ("a", "b"))
    assert (token.obtained_at, token.expires_at, token.lifetime) == (1000.0, 4600.0, 3600.0)
    assert token.authorization == f"Bearer {TOKEN}"
    assert not token.expired(4599.9)
    assert token.expired(4600.0)


@pytest.mark.parametrize(
    ("token_type", "kept", "scheme"),
    [("DPoP", "DPoP", "DPoP"), ("N_A", "N_A", "Bearer"), (None, "Bearer", "Bearer")],
)
def test_other_accepted_token_types(token_type: str | None, kept: str, scheme: str) -> None:
    """DPoP and N_A are accepted; a missing token_type is taken as Bearer."""
    body: dict[str, object] = {"access_token": TOKEN}
    if token_type is not None:
        body["token_type"] = token_type
    token = _ok(body)
    assert token.token_type == kept
    assert token.authorization == f"{scheme} {TOKEN}"


@pytest.mark.parametrize(
    ("expires_in", "lifetime"),
    [
        (None, DEFAULT_LIFETIME),
        ("3599", 3599.0),
        (59.5, 59.5),
        (0, 0.0),
        (10**9, MAX_LIFETIME),
        (10**30, MAX_LIFETIME),
    ],
)
def test_expires_in_default_digits_and_clamp(expires_in: object, lifetime: float) -> None:
    """Missing means 300 s, digits in a string count, absurd lifetimes are clamped to a day."""
    body: dict[str, object] = {"access_token": TOKEN, "token_type": "Bearer"}
    if expires_in is not None:
        body["expires_in"] = expires_in
    assert _ok(body, now=10.0).lifetime == lifetime


def test_expires_in_of_json_infinity_is_clamped() -> None:
    """1e999 parses as infinity in JSON; it is clamped like any other absurd lifetime."""
    body = b'{"access_token": "%s", "token_type": "Bearer", "expires_in": 1e999}' % TOKEN.encode()
    token = parse_token_response(200, JSON, body, now_monotonic=0.0)
    assert token.lifetime == MAX_LIFETIME


def test_form_encoded_token_response_is_read() -> None:
    """A legacy endpoint that answers with a form (GitHub's old API) still gives a token."""
    token = parse_token_response(
        200,
        [("content-type", "application/x-www-form-urlencoded")],
        f"access_token={TOKEN}&token_type=bearer&expires_in=60".encode(),
        now_monotonic=0.0,
    )
    assert (token.value, token.lifetime) == (TOKEN, 60.0)


def test_invalid_client_with_description_is_reported() -> None:
    """400 invalid_client: the RFC 6749 5.2 code and description reach the message and reason."""
    error = _refused(
        400,
        b'{"error": "invalid_client", "error_description": "Client authentication failed"}',
    )
    assert error.reason == "invalid_client"
    assert error.code == "oauth2_token_failed"
    assert isinstance(error, PartnerError)
    assert "HTTP 400 invalid_client: Client authentication failed" in error.message
    assert "https://auth.partner.test/oauth/token" in error.message
    assert "client_id" in error.hint


def test_description_is_stripped_truncated_and_never_echoes_the_secret() -> None:
    """Control characters go, long text is cut, and an echoed client secret is redacted."""
    description = f"bad secret {SECRET}\r\nX-Injected: 1\x1b[31m" + "x" * 500
    body = json.dumps({"error": "invalid_client", "error_description": description}).encode()
    error = _refused(401, body)
    assert "\r" not in error.message
    assert "\n" not in error.message
    assert "\x1b" not in error.message
    assert "[redacted]" in error.message
    assert len(error.message) < 400


def test_error_code_that_is_not_rfc_text_is_not_echoed() -> None:
    """An error field with characters RFC 6749 forbids is described, not quoted."""
    error = _refused(400, b'{"error": "bad\\"code\\n"}')
    assert error.reason == "http_400"
    assert "not RFC 6749 text" in error.message


def test_401_without_body_shows_the_challenge() -> None:
    """401 with only WWW-Authenticate: the status and the challenge are reported."""
    error = _refused(401, b"", {"WWW-Authenticate": 'Basic realm="tax"'})
    assert error.reason == "http_401"
    assert 'WWW-Authenticate: Basic realm="tax"' in error.message
    assert "client_secret" in error.hint


def test_500_html_page_is_reported_without_its_content() -> None:
    """A 500 HTML page: status and content type are reported, the page itself is not."""
    page = b"<html><body>Internal error " + SECRET.encode() + b"</body></html>"
    error = _refused(500, page, {"Content-Type": "text/html; charset=utf-8"})
    assert error.reason == "http_500"
    assert "text/html" in error.message
    assert "Internal error" not in error.message
    assert "retries" in error.hint


def test_200_html_body_is_not_json() -> None:
    """A login page answered with 200 is refused as not JSON, with a hint about token_url."""
    error = _refused(200, b"<!doctype html><title>Sign in</title>", {"Content-Type": "text/html"})
    assert error.reason == "not_json"
    assert "an HTML page" in error.message
    assert "token_url" in error.hint


@pytest.mark.parametrize(
    "body", [b"[1, 2]", b"not json", b"\xff\xfe", b'{"access_token": NaN}'], ids=repr
)
def test_200_body_that_is_not_a_json_object(body: bytes) -> None:
    """Arrays, text, bytes that are not UTF-8 and NaN constants are all "not JSON"."""
    assert _refused(200, body).reason == "not_json"


@pytest.mark.parametrize(
    "body",
    [{"token_type": "Bearer"}, {"access_token": ""}, {"access_token": 42}],
    ids=["missing", "empty", "number"],
)
def test_missing_access_token(body: dict[str, object]) -> None:
    """No usable access_token in a 200 answer is refused as no_access_token."""
    assert _refused(200, json.dumps(body).encode()).reason == "no_access_token"


def test_access_token_with_header_breaking_characters_is_refused() -> None:
    """A token with CR/LF or spaces would break the Authorization header: refused."""
    body = json.dumps({"access_token": "abc\r\nX-Evil: 1", "token_type": "Bearer"}).encode()
    error = _refused(200, body)
    assert error.reason == "invalid_access_token"
    assert "X-Evil" not in error.message


def test_200_with_an_error_and_no_token_is_a_refusal() -> None:
    """Some endpoints answer 200 with an error object; it is reported as the error it is."""
    error = _refused(200, b'{"error": "invalid_scope", "error_description": "no such scope"}')
    assert error.reason == "invalid_scope"
    assert "scopes" in error.hint


@pytest.mark.parametrize("token_type", ["mac", "Basic", 7])
def test_unsupported_token_type_is_refused_clearly(token_type: object) -> None:
    """A token_type the proxy cannot present is refused, naming what was expected."""
    body = json.dumps({"access_token": TOKEN, "token_type": token_type}).encode()
    error = _refused(200, body)
    assert error.reason == "unsupported_token_type"
    assert "expected token_type Bearer, DPoP or N_A" in error.message
    assert TOKEN not in error.message


@pytest.mark.parametrize("expires_in", ["soon", "-5", -5, True, [3600], "1e3"])
def test_malformed_expires_in_is_refused(expires_in: object) -> None:
    """expires_in that is not a number of seconds, 0 or more, is refused."""
    body = json.dumps({"access_token": TOKEN, "expires_in": expires_in}).encode()
    assert _refused(200, body).reason == "invalid_expires_in"


def test_malformed_scope_is_refused() -> None:
    """A scope that is neither a string nor a list of strings is refused."""
    body = json.dumps({"access_token": TOKEN, "scope": {"a": 1}}).encode()
    assert _refused(200, body).reason == "invalid_scope_response"


def test_oversized_response_is_refused() -> None:
    """A token response past 64 KiB is refused before parsing."""
    assert _refused(200, b" " * (64 * 1024 + 1)).reason == "response_too_large"


def test_no_object_shows_the_secret_or_the_token() -> None:
    """repr and str of the client, the request and the token hold neither secret nor token."""
    client = _client()
    request = build_token_request(client)
    token = _ok({"access_token": TOKEN, "token_type": "Bearer"})
    basic = dict(request.headers)["Authorization"]
    for obj in (client, request, token):
        for text in (repr(obj), str(obj)):
            assert SECRET not in text
            assert TOKEN not in text
            assert basic not in text
            assert "p%40ss" not in text


# --- the cache --------------------------------------------------------------------------------

KEY = TokenKey(secret_id="sec_1", secret_version=3, environment="production", scopes=("a",))


class Endpoint:
    """A token endpoint seen through the fetch seam: counts calls, can fail or be held."""

    def __init__(self, *, lifetime: float = 300.0) -> None:
        self.calls = 0
        self.lifetime = lifetime
        self.now = 0.0
        self.fail: Exception | None = None
        self.gate: asyncio.Event | None = None

    async def fetch(self) -> AccessToken:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return AccessToken(
            value=f"{TOKEN}-{self.calls}",
            token_type="Bearer",
            obtained_at=self.now,
            expires_at=self.now + self.lifetime,
        )


def _run(test: Callable[[], Coroutine[None, None, None]]) -> None:
    asyncio.run(test())


def test_cache_miss_then_hit() -> None:
    """The first get fetches; the next one, before the refresh point, is a hit."""

    async def scenario() -> None:
        cache, endpoint = TokenCache(rng=lambda: 0.0), Endpoint()
        first, hit = await cache.get(KEY, endpoint.fetch, now=0.0)
        assert not hit
        second, hit = await cache.get(KEY, endpoint.fetch, now=200.0)
        assert hit
        assert second is first
        assert endpoint.calls == 1
        assert len(cache) == 1

    _run(scenario)


def test_keys_that_differ_in_any_part_get_their_own_token() -> None:
    """Version, environment and scopes each make a different key."""

    async def scenario() -> None:
        cache, endpoint = TokenCache(), Endpoint()
        keys = [
            KEY,
            TokenKey(secret_id="sec_1", secret_version=4, environment="production", scopes=("a",)),
            TokenKey(secret_id="sec_1", secret_version=3, environment="sandbox", scopes=("a",)),
            TokenKey(secret_id="sec_1", secret_version=3, environment="production", scopes=()),
        ]
        tokens = {(await cache.get(k, endpoint.fetch, now=0.0))[0].value for k in keys}
        assert len(tokens) == 4
        assert endpoint.calls == 4

    _run(scenario)


def test_fifty_concurrent_gets_make_one_request() -> None:
    """Single flight: 50 callers for one key share one fetch and one token."""

    async def scenario() -> None:
        cache, endpoint = TokenCache(), Endpoint()
        endpoint.gate = asyncio.Event()
        callers = [asyncio.create_task(cache.get(KEY, endpoint.fetch, now=0.0)) for _ in range(50)]
        await asyncio.sleep(0)
        endpoint.gate.set()
        results = await asyncio.gather(*callers)
        assert endpoint.calls == 1
        assert {token.value for token, _ in results} == {f"{TOKEN}-1"}
        assert not any(hit for _, hit in results)

    _run(scenario)


def test_fifty_concurrent_gets_share_one_failure() -> None:
    """Single flight on failure too: one request, and every caller gets the error."""

    async def scenario() -> None:
        cache, endpoint = TokenCache(), Endpoint()
        endpoint.gate = asyncio.Event()
        endpoint.fail = OAuth2TokenFailed("refused", reason="invalid_client")
        callers = [asyncio.create_task(cache.get(KEY, endpoint.fetch, now=0.0)) for _ in range(50)]
        await asyncio.sleep(0)
        endpoint.gate.set()
        results = await asyncio.gather(*callers, return_exceptions=True)
        assert endpoint.calls == 1
        assert all(isinstance(r, OAuth2TokenFailed) for r in results)
        assert {r.reason for r in results if isinstance(r, OAuth2TokenFailed)} == {"invalid_client"}

    _run(scenario)


def test_token_is_refreshed_after_its_refresh_point() -> None:
    """A 300 s token is served until 30 s before it expires (no jitter), then fetched again."""

    async def scenario() -> None:
        cache, endpoint = TokenCache(rng=lambda: 0.0), Endpoint(lifetime=300.0)
        first, _ = await cache.get(KEY, endpoint.fetch, now=0.0)
        assert (await cache.get(KEY, endpoint.fetch, now=269.9)) == (first, True)
        endpoint.now = 270.0
        second, hit = await cache.get(KEY, endpoint.fetch, now=270.0)
        assert not hit
        assert second.value != first.value
        assert endpoint.calls == 2

    _run(scenario)


@pytest.mark.parametrize(
    ("lifetime", "margin"),
    [(300.0, 30.0), (3600.0, 360.0), (60.0, 30.0), (20.0, 10.0)],
)
def test_refresh_point_jitter_is_bounded(lifetime: float, margin: float) -> None:
    """Refresh comes max(30 s, 10 %) before expiry, earlier by at most half that at random."""
    token = AccessToken(value=TOKEN, token_type="Bearer", obtained_at=0.0, expires_at=lifetime)
    assert TokenCache(rng=lambda: 0.0).refresh_point(token) == lifetime - margin
    latest = lifetime - 1.5 * margin
    assert TokenCache(rng=lambda: 1.0).refresh_point(token) == latest
    cache = TokenCache()
    points = [cache.refresh_point(token) for _ in range(500)]
    assert all(latest <= p <= lifetime - margin for p in points)
    assert len(set(points)) > 400  # it does vary, so workers spread out


def test_short_lived_token_margin_is_at_most_half_its_life() -> None:
    """A 10 s token is not refreshed at once (30 s margin): 5 s before expiry, up to 2.5 s more."""
    token = AccessToken(value=TOKEN, token_type="Bearer", obtained_at=100.0, expires_at=110.0)
    assert TokenCache(rng=lambda: 0.0).refresh_point(token) == 105.0
    assert TokenCache(rng=lambda: 1.0).refresh_point(token) == 102.5


def test_failed_refresh_serves_the_still_valid_token_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Refresh fails, the old token is still valid: it is served (a hit), and a warning logged."""

    async def scenario() -> None:
        cache, endpoint = TokenCache(rng=lambda: 0.0), Endpoint(lifetime=300.0)
        first, _ = await cache.get(KEY, endpoint.fetch, now=0.0)
        endpoint.fail = PartnerUnreachable("connection refused by auth.partner.test:443")
        with caplog.at_level(logging.WARNING, logger="mutls.egress.oauth2"):
            assert await cache.get(KEY, endpoint.fetch, now=280.0) == (first, True)
        assert endpoint.calls == 2
        assert "partner_unreachable" in caplog.text
        assert "sec_1" in caplog.text
        assert TOKEN not in caplog.text
        # Within the negative cache the old token is served without asking again.
        assert await cache.get(KEY, endpoint.fetch, now=281.0) == (first, True)
        assert endpoint.calls == 2
        # Past it, the endpoint is asked again; once the old token is gone, the error shows.
        with pytest.raises(PartnerUnreachable):
            await cache.get(KEY, endpoint.fetch, now=300.0)
        assert endpoint.calls == 3

    _run(scenario)


def test_negative_cache_holds_a_failure_briefly() -> None:
    """After a failure, callers within 2 s get the same error without a request; then it retries."""

    async def scenario() -> None:
        cache, endpoint = TokenCache(), Endpoint()
        endpoint.fail = OAuth2TokenFailed("refused", reason="invalid_client")
        with pytest.raises(OAuth2TokenFailed):
            await cache.get(KEY, endpoint.fetch, now=10.0)
        with pytest.raises(OAuth2TokenFailed) as caught:
            await cache.get(KEY, endpoint.fetch, now=10.0 + NEGATIVE_TTL - 0.01)
        assert caught.value.reason == "invalid_client"
        assert endpoint.calls == 1
        endpoint.fail = None
        _, hit = await cache.get(KEY, endpoint.fetch, now=10.0 + NEGATIVE_TTL)
        assert not hit
        assert endpoint.calls == 2

    _run(scenario)


def test_invalidate_drops_only_the_token_it_names() -> None:
    """invalidate(key, token) forgets that token; a stale token's 401 leaves the new one alone."""

    async def scenario() -> None:
        cache, endpoint = TokenCache(), Endpoint()
        old, _ = await cache.get(KEY, endpoint.fetch, now=0.0)
        assert cache.invalidate(KEY, old)
        assert not cache.invalidate(KEY, old)  # a second 401 for the same token: nothing to do
        new, hit = await cache.get(KEY, endpoint.fetch, now=1.0)
        assert not hit
        assert new.value != old.value
        assert not cache.invalidate(KEY, old)  # a late 401 for the old token
        assert (await cache.get(KEY, endpoint.fetch, now=2.0)) == (new, True)
        assert endpoint.calls == 2
        other = TokenKey(secret_id="x", secret_version=1, environment="e", scopes=())
        assert not cache.invalidate(other, new)

    _run(scenario)


def test_concurrent_401s_cause_one_refetch() -> None:
    """Ten requests get a 401 for one token, during and after the refetch: one new fetch."""

    async def scenario() -> None:
        cache, endpoint = TokenCache(), Endpoint()
        old, _ = await cache.get(KEY, endpoint.fetch, now=0.0)

        async def retry() -> AccessToken:
            cache.invalidate(KEY, old)
            token, _ = await cache.get(KEY, endpoint.fetch, now=5.0)
            return token

        endpoint.gate = asyncio.Event()
        early = [asyncio.create_task(retry()) for _ in range(5)]  # while the refetch runs
        await asyncio.sleep(0)
        endpoint.gate.set()
        tokens = await asyncio.gather(*early)
        tokens += [await retry() for _ in range(5)]  # 401s that arrive after the new token
        assert endpoint.calls == 2
        assert {t.value for t in tokens} == {f"{TOKEN}-2"}

    _run(scenario)


def test_cache_is_bounded_and_evicts_the_least_recently_used() -> None:
    """With room for two keys, a third evicts the one used longest ago."""

    async def scenario() -> None:
        cache, endpoint = TokenCache(max_entries=2), Endpoint()
        keys = [
            TokenKey(secret_id=f"sec_{i}", secret_version=1, environment="e", scopes=())
            for i in range(3)
        ]
        await cache.get(keys[0], endpoint.fetch, now=0.0)
        await cache.get(keys[1], endpoint.fetch, now=0.0)
        assert (await cache.get(keys[0], endpoint.fetch, now=1.0))[1]  # key 0 is now recent
        await cache.get(keys[2], endpoint.fetch, now=1.0)  # evicts key 1
        assert len(cache) == 2
        assert (await cache.get(keys[0], endpoint.fetch, now=2.0))[1]
        assert not (await cache.get(keys[1], endpoint.fetch, now=2.0))[1]
        assert endpoint.calls == 4

    _run(scenario)


def test_cancelled_caller_does_not_cancel_the_shared_fetch() -> None:
    """The caller that started the fetch is cancelled; the others still get the token."""

    async def scenario() -> None:
        cache, endpoint = TokenCache(), Endpoint()
        endpoint.gate = asyncio.Event()
        first = asyncio.create_task(cache.get(KEY, endpoint.fetch, now=0.0))
        await asyncio.sleep(0)
        second = asyncio.create_task(cache.get(KEY, endpoint.fetch, now=0.0))
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.sleep(0)
        endpoint.gate.set()
        token, hit = await second
        assert first.cancelled()
        assert (token.value, hit, endpoint.calls) == (f"{TOKEN}-1", False, 1)

    _run(scenario)


def test_fetch_completes_into_the_cache_when_every_caller_is_cancelled() -> None:
    """Nobody waits any more, the fetch still ends and fills the cache (no orphaned failure)."""

    async def scenario() -> None:
        cache, endpoint = TokenCache(), Endpoint()
        endpoint.gate = asyncio.Event()
        caller = asyncio.create_task(cache.get(KEY, endpoint.fetch, now=0.0))
        await asyncio.sleep(0)
        caller.cancel()
        endpoint.gate.set()
        for _ in range(5):
            await asyncio.sleep(0)
        assert (await cache.get(KEY, endpoint.fetch, now=1.0))[1]
        assert endpoint.calls == 1

    _run(scenario)


def test_aclose_cancels_running_fetches() -> None:
    """aclose() cancels a fetch still waiting on the endpoint and leaves no task behind."""

    async def scenario() -> None:
        cache, endpoint = TokenCache(), Endpoint()
        endpoint.gate = asyncio.Event()
        caller = asyncio.create_task(cache.get(KEY, endpoint.fetch, now=0.0))
        await asyncio.sleep(0)
        await cache.aclose()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert len(asyncio.all_tasks()) == 1  # only this scenario

    _run(scenario)


def test_tokens_and_errors_in_the_cache_never_show_secrets() -> None:
    """Errors replayed from the negative cache are copies without the secret."""

    async def scenario() -> None:
        cache = TokenCache()

        async def failing() -> AccessToken:
            parse_token_response(
                401,
                JSON,
                json.dumps({"error": "invalid_client", "error_description": SECRET}).encode(),
                now_monotonic=0.0,
                client=_client(),
            )
            raise AssertionError("unreachable")

        for now in (0.0, 0.5):
            with pytest.raises(OAuth2TokenFailed) as caught:
                await cache.get(KEY, failing, now=now)
            assert SECRET not in str(caught.value)
            assert caught.value.reason == "invalid_client"

    _run(scenario)
