"""Security: no endpoint ever returns a private key, passphrase, client secret or string value.

Each secret type is uploaded with sentinel values; then every endpoint is called, successes and
errors alike, and no response body may contain a sentinel in any encoding we can think of.
"""

from __future__ import annotations

import base64
from typing import Any

from mutls.pki.export import ExportFormat, export_material
from mutls.pki.loader import load_material
from mutls.testing import Identity, TestCA
from tests.loopback.api.conftest import Api
from tests.secretscan import register_secret

PASSPHRASE = "sentinel-passphrase-7f3a9c"
P12_PASSPHRASE = "sentinel-p12-passphrase-41d0"
CLIENT_SECRET = "sentinel-client-secret-b62e"
STRING_VALUE = "sentinel-string-value-0c58"


def _forms(value: str) -> list[str]:
    raw = value.encode()
    return [value, base64.b64encode(raw).decode(), raw.hex()]


def _key_lines(pem: str) -> list[str]:
    """The base64 body lines of a PEM key: any of them in a response means the key leaked."""
    return [line for line in pem.splitlines() if len(line) >= 16 and "-----" not in line]


class Recorder:
    """Calls the API and keeps every response body."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.bodies: list[tuple[str, int, str]] = []

    def __call__(self, method: str, path: str, *, role: str = "admin", **kw: Any) -> Any:
        response = self.api.call(method, path, role=role, **kw)
        self.bodies.append((f"{method} {path}", response.status_code, response.text))
        return response


def test_no_response_contains_a_secret_value(api: Api, ca: TestCA, identity: Identity) -> None:
    """Sentinel keys, passphrases, client secrets and strings never appear in any response."""
    encrypted_key = identity.key_pem(PASSPHRASE.encode()).decode()
    plain_key = identity.key_pem().decode()
    p12_identity = ca.issue("p12-client.example.com")
    p12 = export_material(
        load_material(p12_identity.combined_pem()),
        ExportFormat.P12,
        passphrase=P12_PASSPHRASE.encode(),
    )
    p12_base64 = base64.b64encode(p12).decode()
    p12_key = p12_identity.key_pem().decode()
    for value in (encrypted_key, plain_key, p12_key, p12_base64, PASSPHRASE, P12_PASSPHRASE):
        register_secret(value)
    for value in (CLIENT_SECRET, STRING_VALUE):
        register_secret(value)

    call = Recorder(api)
    certificate = {
        "name": "cert",
        "secret_type": "certificate",
        "certificate_pem": identity.chain_pem.decode(),
        "private_key_pem": encrypted_key,
        "passphrase": PASSPHRASE,
    }
    from_p12 = {
        "name": "cert_p12",
        "secret_type": "certificate",
        "pkcs12_base64": p12_base64,
        "passphrase": P12_PASSPHRASE,
    }
    oauth = {
        "name": "oauth",
        "secret_type": "oauth2",
        "token_url": "https://auth.example.com/token",
        "client_id": "client-id-is-public",
        "client_secret": CLIENT_SECRET,
        "scopes": "read write",
    }
    string = {"name": "string", "secret_type": "string", "value": STRING_VALUE}
    for body in (certificate, from_p12, oauth, string):
        created = call("POST", "/admin/secrets", json=body)
        assert created.status_code == 201, created.text
        # the same upload again: the 409 must not echo it either
        assert call("POST", "/admin/secrets", json=body).status_code == 409

    # reads of every kind
    listed = call("GET", "/admin/secrets").json()["secrets"]
    assert len(listed) == 4
    for secret in listed:
        call("GET", f"/admin/secrets/{secret['id']}")
        call("GET", f"/admin/secrets/{secret['name']}", role="auditor")
    for query in ("?type=certificate", "?name=o", "?environment=production"):
        call("GET", f"/admin/secrets{query}")

    # updates, including a rejected one and ones with unknown fields
    call(
        "PUT",
        "/admin/secrets/cert/environments/sandbox",
        json={
            "certificate_pem": identity.chain_pem.decode(),
            "private_key_pem": plain_key,
        },
    )
    call("PUT", "/admin/secrets/string/environments/sandbox", json={"value": STRING_VALUE})
    oauth_fields = {k: v for k, v in oauth.items() if k not in {"name", "secret_type"}}
    assert call("PUT", "/admin/secrets/oauth/environments/sandbox", json=oauth_fields).is_success
    call("PUT", "/admin/secrets/oauth/environments/sandbox", json=oauth)  # 422: not value fields
    wrong = call(
        "PUT",
        "/admin/secrets/cert/environments/production",
        json={**certificate, "passphrase": PASSPHRASE + "-wrong"},
    )
    assert wrong.status_code == 422
    rejected = call(
        "PUT",
        "/admin/secrets/cert/environments/production",
        json={
            "certificate_pem": identity.chain_pem.decode(),
            "private_key_pem": encrypted_key,
            "passphrase": "not-it-" + PASSPHRASE,
        },
    )
    assert rejected.json()["error"]["code"] == "wrong_passphrase"
    typo = call(
        "POST",
        "/admin/secrets",
        json={"name": "typo", "secret_type": "string", "valu": STRING_VALUE},
    )
    assert typo.status_code == 422
    wrong_type = call(
        "POST",
        "/admin/secrets",
        json={"name": "typo", "secret_type": "certificate", "value": STRING_VALUE},
    )
    assert wrong_type.status_code == 422
    wrong_kind = call("POST", "/admin/secrets", json={**string, "value": [STRING_VALUE]})
    assert wrong_kind.status_code == 422
    too_long = call(
        "POST", "/admin/secrets", json={**string, "name": "long", "value": STRING_VALUE * 3000}
    )
    assert too_long.status_code == 422
    call("DELETE", "/admin/secrets/string/environments/sandbox")
    forbidden = call("POST", "/admin/secrets", json={**string, "name": "nope"}, role="auditor")
    assert forbidden.status_code == 403

    # everything else a client can read
    call("GET", "/admin/audit?limit=1000")
    call("POST", "/admin/audit/verify", json={})
    call("GET", "/metrics")
    call("GET", "/admin/tokens")
    call("GET", "/admin/whoami")
    call("DELETE", "/admin/secrets/string")

    sentinels = [
        *_forms(PASSPHRASE),
        *_forms(P12_PASSPHRASE),
        *_forms(CLIENT_SECRET),
        *_forms(STRING_VALUE),
        *_key_lines(encrypted_key),
        *_key_lines(plain_key),
        *_key_lines(p12_key),
        p12_base64[:64],
        p12_base64[-64:],
    ]
    leaks = [
        (where, status, sentinel[:12])
        for where, status, text in call.bodies
        for sentinel in sentinels
        if sentinel in text
    ]
    assert leaks == []
    assert len(call.bodies) > 25
