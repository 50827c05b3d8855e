"""The stand-in partners, called with plain stdlib clients: every endpoint and every refusal."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_plus, urlencode, urlsplit

import pytest

from mutls.egress.oauth2 import OAuth2Client, build_token_request, parse_token_response
from mutls.runtime.partners import (
    ClientIdentity,
    PartnerName,
    Partners,
    PartnerSettings,
    start_partners,
)
from mutls.testing import TestCA
from mutls.vault.payloads import OAuth2AuthMethod
from tests.secretscan import register_secret

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    version: str | None

    def json(self) -> dict[str, object]:
        data = json.loads(self.body)
        assert isinstance(data, dict)
        return data


@pytest.fixture(scope="module")
def partners(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Partners]:
    with start_partners(tmp_path_factory.mktemp("partners")) as running:
        for client in running.tax_clients.values():
            register_secret(client.client_secret)
            register_secret(client.api_key)
        yield running


@pytest.fixture(scope="module")
def own_ca() -> TestCA:
    return TestCA(name="Our Own CA", organization="mutls consumer")


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory, own_ca: TestCA) -> Iterator[Partners]:
    """Partners where the bank pins TLS 1.2 and also trusts our own CA."""
    settings = PartnerSettings(
        tls12_only=frozenset({PartnerName.BANK}), extra_client_cas=(own_ca.root,)
    )
    with start_partners(tmp_path_factory.mktemp("strict"), settings) as running:
        yield running


def _context(
    partners: Partners,
    identity: ClientIdentity | None = None,
    *,
    cert: tuple[Path, Path] | None = None,
    maximum: ssl.TLSVersion | None = None,
    minimum: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(partners.ca_path))
    if identity is not None:
        context.load_cert_chain(identity.cert_path, identity.key_path)
    if cert is not None:
        context.load_cert_chain(*cert)
    if maximum is not None:
        context.maximum_version = maximum
    if minimum is not None:
        context.minimum_version = minimum
    return context


def _call(
    url: str,
    context: ssl.SSLContext,
    method: str = "GET",
    path: str = "/",
    *,
    body: bytes | Iterable[bytes] | None = None,
    headers: Mapping[str, str] | None = None,
    chunked: bool = False,
) -> Answer:
    parts = urlsplit(url)
    assert parts.hostname is not None
    connection = http.client.HTTPSConnection(
        parts.hostname, parts.port, context=context, timeout=10
    )
    try:
        connection.request(
            method, path, body=body, headers=dict(headers or {}), encode_chunked=chunked
        )
        response = connection.getresponse()
        data = response.read()
        sock = connection.sock
        version = sock.version() if isinstance(sock, ssl.SSLSocket) else None
        return Answer(response.status, response.headers, data, version)
    finally:
        connection.close()


def _prod(partners: Partners) -> ClientIdentity:
    return partners.identities["production"]


def _sandbox(partners: Partners) -> ClientIdentity:
    return partners.identities["sandbox"]


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "the server did not record it"
        time.sleep(0.01)


def _refused_handshake(
    partners: Partners, partner: PartnerName, context: ssl.SSLContext, reason: str
) -> None:
    before = partners.counters(partner).handshake_failures
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _call(partners.url(partner), context, path="/accounts")
    _wait_for(lambda: partners.counters(partner).handshake_failures > before)
    assert reason in (partners.counters(partner).last_handshake_error or "")


def _stranger(tmp_path: Path, common_name: str = "mutls-production-client") -> tuple[Path, Path]:
    """A certificate with our name, issued by a CA the partner never heard of."""
    identity = TestCA(name="Stranger CA").issue(common_name)
    cert, key = tmp_path / "stranger.pem", tmp_path / "stranger.key"
    cert.write_bytes(identity.chain_pem)
    key.write_bytes(identity.key_pem())
    return cert, key


# --- bank ---------------------------------------------------------------------------------------


def test_bank_accounts_names_the_production_certificate(partners: Partners) -> None:
    """GET /accounts with the production certificate answers with its CN, serial, environment."""
    identity = _prod(partners)
    answer = _call(partners.bank_url, _context(partners, identity), path="/accounts")
    assert answer.status == 200
    body = answer.json()
    assert body["subject_cn"] == "mutls-production-client"
    assert body["serial"] == format(identity.serial, "x")
    assert body["environment"] == "production"
    assert body["thumbprint"] == identity.thumbprint


def test_bank_accounts_tells_the_sandbox_certificate_apart(partners: Partners) -> None:
    """The twin: the sandbox certificate is recognised as sandbox, not production."""
    answer = _call(partners.bank_url, _context(partners, _sandbox(partners)), path="/accounts")
    assert answer.json()["environment"] == "sandbox"
    assert answer.json()["subject_cn"] == "mutls-sandbox-client"


def test_bank_refuses_a_connection_without_a_certificate(partners: Partners) -> None:
    """No client certificate: the handshake fails (CERT_REQUIRED), nothing reaches HTTP."""
    before = partners.counters(PartnerName.BANK).requests
    _refused_handshake(
        partners, PartnerName.BANK, _context(partners), "PEER_DID_NOT_RETURN_A_CERTIFICATE"
    )
    assert partners.counters(PartnerName.BANK).requests == before


def test_bank_refuses_a_certificate_from_another_ca(partners: Partners, tmp_path: Path) -> None:
    """Same name, unknown CA: a real handshake failure, certificate verification failed."""
    context = _context(partners, cert=_stranger(tmp_path))
    _refused_handshake(partners, PartnerName.BANK, context, "CERTIFICATE_VERIFY_FAILED")


def test_bank_payments_echoes_json(partners: Partners) -> None:
    """POST /payments answers 201 with the JSON it received."""
    payment = {"amount": "12.50", "currency": "EUR", "to": "DE89 3704 0044 0532 0130 00"}
    answer = _call(
        partners.bank_url,
        _context(partners, _prod(partners)),
        "POST",
        "/payments",
        body=json.dumps(payment).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status == 201
    assert answer.json()["received"] == payment


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]"])
def test_bank_payments_refuses_what_is_not_a_json_object(partners: Partners, body: bytes) -> None:
    """The twin: a body that is not a JSON object is answered 400."""
    answer = _call(
        partners.bank_url, _context(partners, _prod(partners)), "POST", "/payments", body=body
    )
    assert answer.status == 400
    assert answer.json()["error"] == "invalid_json"


def test_bank_streams_n_bytes_of_a_known_pattern(partners: Partners) -> None:
    """GET /bytes/N sends exactly N bytes, byte i being i % 256."""
    size = 200_003
    answer = _call(partners.bank_url, _context(partners, _prod(partners)), path=f"/bytes/{size}")
    assert answer.status == 200
    assert answer.body == (bytes(range(256)) * (size // 256 + 1))[:size]


def test_bank_head_sends_headers_only(partners: Partners) -> None:
    """HEAD /bytes/N announces N bytes and sends none; HEAD /accounts works too."""
    context = _context(partners, _prod(partners))
    answer = _call(partners.bank_url, context, "HEAD", "/bytes/4096")
    assert (answer.status, answer.headers["Content-Length"], answer.body) == (200, "4096", b"")
    assert _call(partners.bank_url, context, "HEAD", "/accounts").status == 200


@pytest.mark.parametrize("path", ["/bytes/abc", "/bytes/-1", f"/bytes/{1024**3 + 1}"])
def test_bank_bytes_refuses_a_bad_count(partners: Partners, path: str) -> None:
    """The twin: N that is not a number from 0 to 1 GiB is answered 400."""
    assert _call(partners.bank_url, _context(partners, _prod(partners)), path=path).status == 400


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_bank_upload_counts_and_hashes_the_body(partners: Partners, chunked: bool) -> None:
    """POST /upload returns the byte count and SHA-256, for Content-Length and chunked bodies."""
    data = os.urandom(300_000)
    body: bytes | Iterable[bytes] = (
        (data[i : i + 70_000] for i in range(0, len(data), 70_000)) if chunked else data
    )
    answer = _call(
        partners.bank_url,
        _context(partners, _prod(partners)),
        "POST",
        "/upload",
        body=body,
        chunked=chunked,
    )
    assert answer.status == 200
    assert answer.json() == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _raw(partners: Partners, request: bytes) -> bytes:
    """Send bytes as they are (for requests http.client refuses to make) and read the answer."""
    context = _context(partners, _prod(partners))
    parts = urlsplit(partners.bank_url)
    with (
        socket.create_connection((parts.hostname or "", parts.port or 0), timeout=10) as plain,
        context.wrap_socket(plain, server_hostname=parts.hostname) as tls,
    ):
        tls.sendall(request)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
        return answer


def test_bank_upload_refuses_ambiguous_or_broken_framing(partners: Partners) -> None:
    """The twins: Transfer-Encoding with Content-Length, and a bad chunk size, are answered 400."""
    both = (
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 5\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    )
    assert _raw(partners, both).startswith(b"HTTP/1.1 400")
    broken = (
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
    )
    assert _raw(partners, broken).startswith(b"HTTP/1.1 400")


def test_bank_keeps_the_connection_alive(partners: Partners) -> None:
    """Several requests, HEAD and POST among them, go over one TLS connection (keep-alive)."""
    parts = urlsplit(partners.bank_url)
    context = _context(partners, _prod(partners))
    connection = http.client.HTTPSConnection(parts.hostname or "", parts.port, context=context)
    try:
        for _ in range(3):
            connection.request("GET", "/accounts")
            assert connection.getresponse().read()
        sock = connection.sock
        connection.request("HEAD", "/bytes/10")
        assert connection.getresponse().read() == b""
        connection.request("GET", "/bytes/10")  # a HEAD before does not make this one bodiless
        assert len(connection.getresponse().read()) == 10
        connection.request("POST", "/upload", body=b"abc")
        assert json.loads(connection.getresponse().read())["bytes"] == 3
        assert connection.sock is sock
    finally:
        connection.close()


def test_unknown_path_and_wrong_method(partners: Partners) -> None:
    """404 for an unknown path, 405 with Allow for a known path and the wrong method."""
    context = _context(partners, _prod(partners))
    assert _call(partners.bank_url, context, path="/nope").status == 404
    answer = _call(partners.bank_url, context, "DELETE", "/accounts")
    assert answer.status == 405
    assert answer.headers["Allow"] == "GET, HEAD"


# --- openbanking ----------------------------------------------------------------------------------


def _ob_token(
    partners: Partners,
    identity: ClientIdentity,
    form: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    fields = {"grant_type": "client_credentials", "client_id": f"ob-{identity.environment}"}
    return _call(
        partners.openbanking_url,
        _context(partners, identity),
        "POST",
        "/token",
        body=urlencode(fields if form is None else form).encode(),
        headers={**FORM, **(headers or {})},
    )


def _bearer(answer: Answer) -> dict[str, str]:
    token = answer.json()["access_token"]
    assert isinstance(token, str)
    register_secret(token)
    return {"Authorization": f"Bearer {token}"}


def test_openbanking_issues_a_certificate_bound_token(partners: Partners) -> None:
    """tls_client_auth: certificate + client_id give a token that works with that certificate."""
    identity = _prod(partners)
    before = partners.counters(PartnerName.OPENBANKING).tokens_issued
    answer = _ob_token(partners, identity)
    assert answer.status == 200
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.json()
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 3600, "accounts")
    assert partners.counters(PartnerName.OPENBANKING).tokens_issued == before + 1
    issued = partners.issued(PartnerName.OPENBANKING)[-1]
    assert (issued.client_id, issued.auth_method) == ("ob-production", "tls_client_auth")
    accounts = _call(
        partners.openbanking_url,
        _context(partners, identity),
        path="/accounts",
        headers=_bearer(answer),
    )
    assert accounts.status == 200
    assert accounts.json()["cnf"] == {"x5t#S256": identity.thumbprint}
    assert accounts.json()["client_id"] == "ob-production"


@pytest.mark.parametrize(
    ("form", "headers", "status", "error"),
    [
        (
            {
                "grant_type": "client_credentials",
                "client_id": "ob-production",
                "client_secret": "x",
            },
            {},
            401,
            "invalid_client",
        ),
        (
            {"grant_type": "client_credentials", "client_id": "ob-production"},
            {"Authorization": "Basic b2ItcHJvZHVjdGlvbjp4"},
            401,
            "invalid_client",
        ),
        ({"grant_type": "client_credentials"}, {}, 400, "invalid_request"),
        ({"grant_type": "client_credentials", "client_id": "ob-nobody"}, {}, 401, "invalid_client"),
        (
            {"grant_type": "client_credentials", "client_id": "ob-sandbox"},
            {},
            401,
            "invalid_client",
        ),
        (
            {"grant_type": "password", "client_id": "ob-production"},
            {},
            400,
            "unsupported_grant_type",
        ),
        ({"client_id": "ob-production"}, {}, 400, "invalid_request"),
        (
            {"grant_type": "client_credentials", "client_id": "ob-production", "scope": "admin"},
            {},
            400,
            "invalid_scope",
        ),
    ],
    ids=[
        "client-secret",
        "basic-header",
        "no-client-id",
        "unknown-client",
        "other-environments-client",
        "wrong-grant",
        "no-grant",
        "unknown-scope",
    ],
)
def test_openbanking_token_refusals(
    partners: Partners, form: dict[str, str], headers: dict[str, str], status: int, error: str
) -> None:
    """Each way a tls_client_auth token request can be wrong gets its RFC 6749 5.2 error."""
    before = partners.counters(PartnerName.OPENBANKING).tokens_issued
    answer = _ob_token(partners, _prod(partners), form, headers)
    assert (answer.status, answer.json()["error"]) == (status, error)
    assert partners.counters(PartnerName.OPENBANKING).tokens_issued == before


def test_openbanking_token_refuses_json_and_repeated_parameters(partners: Partners) -> None:
    """A JSON body, or a parameter given twice (RFC 6749 3.2), is invalid_request."""
    context = _context(partners, _prod(partners))
    as_json = _call(
        partners.openbanking_url,
        context,
        "POST",
        "/token",
        body=b'{"grant_type": "client_credentials", "client_id": "ob-production"}',
        headers={"Content-Type": "application/json"},
    )
    assert (as_json.status, as_json.json()["error"]) == (400, "invalid_request")
    twice = _call(
        partners.openbanking_url,
        context,
        "POST",
        "/token",
        body=b"grant_type=client_credentials&client_id=ob-production&client_id=ob-sandbox",
        headers=FORM,
    )
    assert (twice.status, twice.json()["error"]) == (400, "invalid_request")


def test_openbanking_accounts_refuses_a_request_without_a_token(partners: Partners) -> None:
    """No bearer token: 401 with a Bearer challenge."""
    answer = _call(partners.openbanking_url, _context(partners, _prod(partners)), path="/accounts")
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="openbanking"'


def test_openbanking_accounts_refuses_an_unknown_token(partners: Partners) -> None:
    """A token the partner never issued: 401 invalid_token."""
    answer = _call(
        partners.openbanking_url,
        _context(partners, _prod(partners)),
        path="/accounts",
        headers={"Authorization": "Bearer made-up"},
    )
    assert answer.status == 401
    assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]


def test_openbanking_accounts_refuses_a_token_bound_to_another_certificate(
    partners: Partners,
) -> None:
    """RFC 8705 3: the production token over a sandbox-certificate connection is refused."""
    token = _bearer(_ob_token(partners, _prod(partners)))
    answer = _call(
        partners.openbanking_url,
        _context(partners, _sandbox(partners)),
        path="/accounts",
        headers=token,
    )
    assert answer.status == 401
    assert answer.json()["error"] == "invalid_token"
    assert "bound to another client certificate" in answer.headers["WWW-Authenticate"]


def test_openbanking_revoked_tokens_are_refused(partners: Partners) -> None:
    """After revoke_tokens() the token that worked gets 401; a new one works again."""
    context = _context(partners, _prod(partners))
    token = _bearer(_ob_token(partners, _prod(partners)))
    assert _call(partners.openbanking_url, context, path="/accounts", headers=token).status == 200
    assert partners.revoke_tokens(PartnerName.OPENBANKING) >= 1
    assert partners.counters(PartnerName.OPENBANKING).tokens_revoked >= 1
    assert _call(partners.openbanking_url, context, path="/accounts", headers=token).status == 401
    fresh = _bearer(_ob_token(partners, _prod(partners)))
    assert _call(partners.openbanking_url, context, path="/accounts", headers=fresh).status == 200


def test_openbanking_expired_tokens_are_refused(partners: Partners) -> None:
    """A token issued with expires_in 0 is refused as expired."""
    partners.set_token_lifetime(0)
    try:
        answer = _ob_token(partners, _prod(partners))
    finally:
        partners.set_token_lifetime(3600)
    assert answer.json()["expires_in"] == 0
    refused = _call(
        partners.openbanking_url,
        _context(partners, _prod(partners)),
        path="/accounts",
        headers=_bearer(answer),
    )
    assert refused.status == 401
    assert "expired" in refused.headers["WWW-Authenticate"]


def test_openbanking_refuses_a_certificate_from_another_ca(
    partners: Partners, tmp_path: Path
) -> None:
    """The token endpoint too requires a certificate from the partner CA, in the handshake."""
    context = _context(partners, cert=_stranger(tmp_path))
    _refused_handshake(partners, PartnerName.OPENBANKING, context, "CERTIFICATE_VERIFY_FAILED")


# --- tax ------------------------------------------------------------------------------------------


def _basic(client_id: str, secret: str) -> str:
    """RFC 6749 2.3.1 by hand: form-urlencode each part, then Basic."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def _tax_token(
    partners: Partners,
    *,
    environment: str = "production",
    form: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    basic: bool = True,
) -> Answer:
    client = partners.tax_clients[environment]
    if headers is None:
        headers = {"Authorization": _basic(client.client_id, client.client_secret)} if basic else {}
    if form is None:
        form = {"grant_type": "client_credentials"}
        if not basic:
            form = {**form, "client_id": client.client_id, "client_secret": client.client_secret}
    return _call(
        partners.tax_url,
        _context(partners, partners.identities[environment]),
        "POST",
        "/oauth/token",
        body=urlencode(form).encode(),
        headers={**FORM, **headers},
    )


def _returns(
    partners: Partners, headers: Mapping[str, str], environment: str = "production"
) -> Answer:
    return _call(
        partners.tax_url,
        _context(partners, partners.identities[environment]),
        path="/returns",
        headers=headers,
    )


def _tax_headers(partners: Partners, token: Mapping[str, str], environment: str) -> dict[str, str]:
    key = partners.tax_clients[environment].api_key
    return {**token, "X-Api-Key": key, "X-Environment": environment}


@pytest.mark.parametrize("basic", [True, False], ids=["client_secret_basic", "client_secret_post"])
def test_tax_token_and_returns(partners: Partners, basic: bool) -> None:
    """Token by Basic or by form, then GET /returns with token, API key and environment."""
    answer = _tax_token(partners, basic=basic)
    assert answer.status == 200, answer.body
    issued = partners.issued(PartnerName.TAX)[-1]
    assert issued.auth_method == ("client_secret_basic" if basic else "client_secret_post")
    assert (issued.environment, issued.scopes) == ("production", ("read:returns",))
    returns = _returns(partners, _tax_headers(partners, _bearer(answer), "production"))
    assert returns.status == 200
    assert returns.json()["environment"] == "production"
    assert returns.json()["returns"]


def test_tax_sandbox_client_gets_a_sandbox_token(partners: Partners) -> None:
    """The sandbox client's token works with the sandbox API key and X-Environment: sandbox."""
    token = _bearer(_tax_token(partners, environment="sandbox"))
    returns = _returns(partners, _tax_headers(partners, token, "sandbox"), "sandbox")
    assert (returns.status, returns.json()["environment"]) == (200, "sandbox")


def test_tax_token_refusals(partners: Partners) -> None:
    """Wrong secret, unencoded Basic, both methods, none, unknown client: each refused."""
    client = partners.tax_clients["production"]
    wrong = _tax_token(partners, headers={"Authorization": _basic(client.client_id, "nope")})
    assert (wrong.status, wrong.json()["error"]) == (401, "invalid_client")
    assert wrong.headers["WWW-Authenticate"] == 'Basic realm="tax"'
    raw_pair = f"{client.client_id}:{client.client_secret}".encode()
    unencoded = _tax_token(
        partners, headers={"Authorization": "Basic " + base64.b64encode(raw_pair).decode()}
    )
    assert (unencoded.status, unencoded.json()["error"]) == (401, "invalid_client")
    both = _tax_token(
        partners,
        form={
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": client.client_secret,
        },
    )
    assert (both.status, both.json()["error"]) == (400, "invalid_request")
    none = _tax_token(partners, headers={})
    assert (none.status, none.json()["error"]) == (401, "invalid_client")
    assert none.headers["WWW-Authenticate"] == 'Basic realm="tax"'
    unknown = _tax_token(
        partners,
        basic=False,
        form={"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"},
    )
    assert (unknown.status, unknown.json()["error"]) == (401, "invalid_client")
    assert "WWW-Authenticate" not in unknown.headers


def test_tax_returns_refusals(partners: Partners) -> None:
    """No token 401; no API key 401; another environment's key 403; wrong environment 403."""
    token = _bearer(_tax_token(partners))
    good = _tax_headers(partners, token, "production")
    no_token = _returns(partners, {k: v for k, v in good.items() if k != "Authorization"})
    assert (no_token.status, no_token.json()["error"]) == (401, "invalid_token")
    no_key = _returns(partners, {k: v for k, v in good.items() if k != "X-Api-Key"})
    assert (no_key.status, no_key.json()["error"]) == (401, "missing_api_key")
    sandbox_key = {**good, "X-Api-Key": partners.tax_clients["sandbox"].api_key}
    assert _returns(partners, sandbox_key).json()["error"] == "invalid_api_key"
    assert _returns(partners, sandbox_key).status == 403
    no_env = _returns(partners, {k: v for k, v in good.items() if k != "X-Environment"})
    assert (no_env.status, no_env.json()["error"]) == (403, "environment_mismatch")
    other_env = _returns(partners, {**good, "X-Environment": "sandbox"})
    assert (other_env.status, other_env.json()["error"]) == (403, "environment_mismatch")
    assert _returns(partners, good).status == 200  # and the request they each spoil works


def test_tax_returns_needs_the_read_scope(partners: Partners) -> None:
    """A token for write:returns only is refused with 403 insufficient_scope."""
    client = partners.tax_clients["production"]
    answer = _tax_token(
        partners,
        form={"grant_type": "client_credentials", "scope": "write:returns"},
        headers={"Authorization": _basic(client.client_id, client.client_secret)},
    )
    returns = _returns(partners, _tax_headers(partners, _bearer(answer), "production"))
    assert (returns.status, returns.json()["error"]) == (403, "insufficient_scope")


def test_tax_refuses_another_partners_token(partners: Partners) -> None:
    """An openbanking token means nothing to the tax authority: 401."""
    token = _bearer(_ob_token(partners, _prod(partners)))
    answer = _returns(partners, _tax_headers(partners, token, "production"))
    assert (answer.status, answer.json()["error"]) == (401, "invalid_token")


def test_tax_refuses_a_connection_without_a_certificate(partners: Partners) -> None:
    """mTLS comes first: without a client certificate the token endpoint is unreachable."""
    _refused_handshake(
        partners, PartnerName.TAX, _context(partners), "PEER_DID_NOT_RETURN_A_CERTIFICATE"
    )


# --- TLS versions and extra CAs -----------------------------------------------------------------


def test_tls12_only_partner_speaks_tls12(strict: Partners) -> None:
    """A partner pinned to TLS 1.2 negotiates TLS 1.2 with a client that offers 1.2 and 1.3."""
    answer = _call(strict.bank_url, _context(strict, _prod(strict)), path="/accounts")
    assert (answer.status, answer.version) == (200, "TLSv1.2")
    other = _call(strict.tax_url, _context(strict, _prod(strict)), path="/")
    assert other.version == "TLSv1.3"


def test_tls12_only_partner_refuses_a_tls13_only_client(strict: Partners) -> None:
    """The twin: a client that insists on TLS 1.3 fails the handshake."""
    context = _context(strict, _prod(strict), minimum=ssl.TLSVersion.TLSv1_3)
    before = strict.counters(PartnerName.BANK).handshake_failures
    with pytest.raises(ssl.SSLError):
        _call(strict.bank_url, context, path="/accounts")
    _wait_for(lambda: strict.counters(PartnerName.BANK).handshake_failures > before)


def test_extra_client_ca_is_accepted(strict: Partners, own_ca: TestCA, tmp_path: Path) -> None:
    """A partner told to trust our own CA accepts its certificates (environment unknown)."""
    identity = own_ca.issue("our-own-client")
    cert, key = tmp_path / "own.pem", tmp_path / "own.key"
    cert.write_bytes(identity.chain_pem)
    key.write_bytes(identity.key_pem())
    answer = _call(strict.bank_url, _context(strict, cert=(cert, key)), path="/accounts")
    assert answer.status == 200
    assert (answer.json()["subject_cn"], answer.json()["environment"]) == ("our-own-client", None)


def test_partner_without_the_extra_ca_refuses_it(
    partners: Partners, own_ca: TestCA, tmp_path: Path
) -> None:
    """The twin: the default partners do not trust our own CA."""
    identity = own_ca.issue("our-own-client")
    cert, key = tmp_path / "own.pem", tmp_path / "own.key"
    cert.write_bytes(identity.chain_pem)
    key.write_bytes(identity.key_pem())
    context = _context(partners, cert=(cert, key))
    _refused_handshake(partners, PartnerName.BANK, context, "CERTIFICATE_VERIFY_FAILED")


# --- mutls's OAuth2 request builder against the real endpoints ------------------------------------


@pytest.mark.parametrize(
    "method",
    [
        OAuth2AuthMethod.CLIENT_SECRET_BASIC,
        OAuth2AuthMethod.CLIENT_SECRET_POST,
        OAuth2AuthMethod.TLS_CLIENT_AUTH,
    ],
)
def test_oauth2_module_requests_are_accepted(partners: Partners, method: OAuth2AuthMethod) -> None:
    """build_token_request's bytes get a token from RFC-following endpoints; parse reads it."""
    if method.uses_certificate:
        client = OAuth2Client(
            token_url=partners.token_url,
            client_id=partners.openbanking_client_ids["production"],
            auth_method=method,
            certificate_secret="ob_cert",
            scopes=("accounts",),
        )
        api, path = partners.openbanking_url, "/accounts"
    else:
        tax = partners.tax_clients["production"]
        client = OAuth2Client(
            token_url=partners.tax_token_url,
            client_id=tax.client_id,
            client_secret=tax.client_secret,
            auth_method=method,
            scopes=("read:returns",),
        )
        api, path = partners.tax_url, "/returns"
    request = build_token_request(client)
    context = _context(partners, _prod(partners))
    connection = http.client.HTTPSConnection(
        request.host, request.port, context=context, timeout=10
    )
    try:
        connection.request(
            request.method, request.path, body=request.body, headers=dict(request.headers)
        )
        response = connection.getresponse()
        token = parse_token_response(
            response.status,
            list(response.headers.items()),
            response.read(),
            now_monotonic=time.monotonic(),
            client=client,
        )
    finally:
        connection.close()
    register_secret(token.value)
    assert token.scope == client.scopes
    headers = {"Authorization": token.authorization, "X-Environment": "production"}
    if not method.uses_certificate:
        headers["X-Api-Key"] = partners.tax_clients["production"].api_key
    assert _call(api, context, path=path, headers=headers).status == 200


# --- as a process -------------------------------------------------------------------------------


def test_partners_run_as_a_process_until_interrupted(tmp_path: Path) -> None:
    """`python -m mutls.runtime.partners --dir D --port 0` serves, writes its files, stops on ^C."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mutls.runtime.partners", "--dir", str(tmp_path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        printed = "".join(lines)
        bank = re.search(r"bank\s+(https://\S+)", printed)
        assert bank, printed
        manifest = json.loads((tmp_path / "partners.json").read_text())
        assert manifest["bank"]["url"] == bank.group(1)
        for name in ("partner-ca.pem", "production-client.pem", "sandbox-client.key"):
            assert (tmp_path / name).is_file()
        assert (tmp_path / "production-client.key").stat().st_mode & 0o077 == 0
        context = ssl.create_default_context(cafile=str(tmp_path / "partner-ca.pem"))
        context.load_cert_chain(
            tmp_path / "production-client.pem", tmp_path / "production-client.key"
        )
        assert _call(bank.group(1), context, path="/accounts").json()["environment"] == "production"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
