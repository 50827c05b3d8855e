"""/admin/secrets end to end over HTTP, on SQLite and PostgreSQL: shapes, filters, bad uploads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mutls.testing import Identity, TestCA
from tests.loopback.api.conftest import Api
from tests.secretscan import register_secret

PASSPHRASE = "correct horse battery staple"


def cert_body(identity: Identity, name: str = "bank_client", **extra: Any) -> dict[str, Any]:
    key = identity.key_pem().decode()
    register_secret(key)
    return {
        "name": name,
        "secret_type": "certificate",
        "certificate_pem": identity.chain_pem.decode(),
        "private_key_pem": key,
        **extra,
    }


def secret_names(api: Api, query: str = "") -> list[str]:
    response = api.call("GET", f"/admin/secrets{query}")
    assert response.status_code == 200, response.text
    return [s["name"] for s in response.json()["secrets"]]


def audit_actions(api: Api) -> list[str]:
    response = api.call("GET", "/admin/audit?limit=1000")
    assert response.status_code == 200, response.text
    return [e["action"] for e in response.json()["events"]]


def test_certificate_upload_returns_seed_002_metadata(api: Api, identity: Identity) -> None:
    """POST answers 201 with the metadata of seed 002's example (days remaining included)."""
    response = api.call("POST", "/admin/secrets", json=cert_body(identity))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("sec_")
    assert (body["name"], body["secret_type"], body["default_environment"]) == (
        "bank_client",
        "certificate",
        "production",
    )
    meta = body["metadata"]
    for key in ("subject", "issuer", "serial", "valid_from", "valid_until", "fingerprint_sha256"):
        assert meta[key], key
    assert meta["subject"] == "CN=partner-client.example.com"
    assert meta["has_private_key"] is True
    assert meta["has_passphrase"] is False
    assert 360 <= meta["days_remaining"] <= 366
    assert meta["expiry_status"] == "ok"
    assert body["environments"]["production"]["version"] == 1
    assert body["environments"]["production"]["metadata"] == meta


def test_get_by_id_and_by_name_and_list(api: Api, identity: Identity) -> None:
    """A secret is found by id and by name, and listed, with the same view everywhere."""
    created = api.call("POST", "/admin/secrets", json=cert_body(identity)).json()
    by_id = api.call("GET", f"/admin/secrets/{created['id']}")
    by_name = api.call("GET", "/admin/secrets/bank_client")
    assert by_id.status_code == by_name.status_code == 200
    assert by_id.json() == by_name.json() == created
    assert api.call("GET", "/admin/secrets").json() == {"secrets": [created]}


def test_encrypted_key_with_passphrase_is_accepted(api: Api, identity: Identity) -> None:
    """An encrypted key with its passphrase uploads; the metadata says a passphrase exists."""
    register_secret(PASSPHRASE)
    key = identity.key_pem(PASSPHRASE.encode()).decode()
    register_secret(key)
    body = {**cert_body(identity), "private_key_pem": key, "passphrase": PASSPHRASE}
    response = api.call("POST", "/admin/secrets", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["metadata"]["has_passphrase"] is True


def test_environments_form_and_put_and_delete_value(api: Api, ca: TestCA) -> None:
    """Values per environment: create two, replace one (new version), delete one."""
    prod, sandbox, renewed = (ca.issue(f"{n}.example.com") for n in ("prod", "sandbox", "new"))
    for item in (prod, sandbox, renewed):
        register_secret(item.key_pem().decode())
    body = {
        "name": "partner",
        "secret_type": "certificate",
        "environments": {
            "production": {
                "certificate_pem": prod.chain_pem.decode(),
                "private_key_pem": prod.key_pem().decode(),
            },
            "sandbox": {
                "certificate_pem": sandbox.chain_pem.decode(),
                "private_key_pem": sandbox.key_pem().decode(),
            },
        },
    }
    created = api.call("POST", "/admin/secrets", json=body)
    assert created.status_code == 201, created.text
    envs = created.json()["environments"]
    assert sorted(envs) == ["production", "sandbox"]
    assert envs["sandbox"]["metadata"]["subject"] == "CN=sandbox.example.com"

    put = api.call(
        "PUT",
        "/admin/secrets/partner/environments/sandbox",
        json={
            "certificate_pem": renewed.chain_pem.decode(),
            "private_key_pem": renewed.key_pem().decode(),
        },
    )
    assert put.status_code == 200, put.text
    sandbox_view = put.json()["environments"]["sandbox"]
    assert sandbox_view["version"] == 2
    assert sandbox_view["metadata"]["subject"] == "CN=new.example.com"
    assert put.json()["environments"]["production"]["version"] == 1

    deleted = api.call("DELETE", "/admin/secrets/partner/environments/sandbox")
    assert deleted.status_code == 200, deleted.text
    assert list(deleted.json()["environments"]) == ["production"]
    again = api.call("DELETE", "/admin/secrets/partner/environments/sandbox")
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "environment_value_missing"
    actions = audit_actions(api)
    assert {"secret.create", "secret.update", "secret.value_delete"} <= set(actions)


def test_inline_environment_names_the_environment(api: Api, identity: Identity) -> None:
    """Inline fields with ``environment`` store the value there; the default is production."""
    response = api.call("POST", "/admin/secrets", json=cert_body(identity, environment="sandbox"))
    assert response.status_code == 201, response.text
    assert list(response.json()["environments"]) == ["sandbox"]
    assert response.json()["default_environment"] == "sandbox"


def test_oauth2_and_string_secrets(api: Api) -> None:
    """oauth2 and string secrets upload; their metadata has no secret field."""
    register_secret("oauth-client-secret-1")
    register_secret("string-secret-value-1")
    oauth = api.call(
        "POST",
        "/admin/secrets",
        json={
            "name": "partner_oauth",
            "secret_type": "oauth2",
            "token_url": "https://auth.example.com/token",
            "client_id": "mutls-client",
            "client_secret": "oauth-client-secret-1",
            "scopes": ["payments:read", "payments:write"],
        },
    )
    assert oauth.status_code == 201, oauth.text
    meta = oauth.json()["metadata"]
    assert meta["client_id"] == "mutls-client"
    assert meta["scopes"] == ["payments:read", "payments:write"]
    assert "client_secret" not in meta
    string = api.call(
        "POST",
        "/admin/secrets",
        json={"name": "api_key", "secret_type": "string", "value": "string-secret-value-1"},
    )
    assert string.status_code == 201, string.text
    assert "value" not in string.json()["metadata"]


def test_list_filters(api: Api, ca: TestCA) -> None:
    """type, name (substring, any case), environment and expiring_within_days filter the list."""
    short = ca.issue("short.example.com", validity=timedelta(days=10))
    long = ca.issue("long.example.com", validity=timedelta(days=300))
    for item, name in ((short, "Short_Lived"), (long, "long_lived")):
        assert api.call("POST", "/admin/secrets", json=cert_body(item, name)).status_code == 201
    register_secret("string-secret-value-2")
    api.call(
        "POST",
        "/admin/secrets",
        json={
            "name": "token_x",
            "secret_type": "string",
            "value": "string-secret-value-2",
            "environment": "sandbox",
        },
    )
    assert secret_names(api) == ["Short_Lived", "long_lived", "token_x"]
    assert secret_names(api, "?type=string") == ["token_x"]
    assert secret_names(api, "?type=certificate") == ["Short_Lived", "long_lived"]
    assert secret_names(api, "?name=LIVED") == ["Short_Lived", "long_lived"]
    assert secret_names(api, "?environment=sandbox") == ["token_x"]
    assert secret_names(api, "?expiring_within_days=30") == ["Short_Lived"]
    assert secret_names(api, "?expiring_within_days=400") == ["Short_Lived", "long_lived"]
    bad = api.call("GET", "/admin/secrets?type=password")
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_request"
    assert "type (query)" in bad.json()["error"]["message"]


def test_delete_secret_then_it_is_gone(api: Api, identity: Identity) -> None:
    """DELETE answers 204 with no body; the secret is then a 404 everywhere."""
    created = api.call("POST", "/admin/secrets", json=cert_body(identity)).json()
    response = api.call("DELETE", f"/admin/secrets/{created['id']}")
    assert response.status_code == 204
    assert response.content == b""
    for method, path in (
        ("GET", f"/admin/secrets/{created['id']}"),
        ("DELETE", f"/admin/secrets/{created['id']}"),
        ("DELETE", f"/admin/secrets/{created['id']}/environments/production"),
    ):
        gone = api.call(method, path)
        assert gone.status_code == 404, (method, path)
        assert gone.json()["error"]["code"] == "secret_not_found"
    assert secret_names(api) == []
    assert "secret.delete" in audit_actions(api)


def test_unknown_secret_is_404(api: Api) -> None:
    """Unknown ids and names are 404 secret_not_found, for reads and writes."""
    register_secret("string-secret-value-3")
    for method, path, body in (
        ("GET", "/admin/secrets/sec_doesnotexist", None),
        ("GET", "/admin/secrets/no_such_name", None),
        ("PUT", "/admin/secrets/nope/environments/production", {"value": "string-secret-value-3"}),
        ("DELETE", "/admin/secrets/nope", None),
    ):
        response = api.call(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "secret_not_found"
        assert response.json()["error"]["hint"]


def test_duplicate_name_is_409(api: Api, identity: Identity) -> None:
    """A second secret with the same name is 409 name_taken; the first stays."""
    assert api.call("POST", "/admin/secrets", json=cert_body(identity)).status_code == 201
    again = api.call("POST", "/admin/secrets", json=cert_body(identity))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "name_taken"
    assert secret_names(api) == ["bank_client"]


def _expired(ca: TestCA) -> dict[str, Any]:
    now = datetime.now(UTC)
    old = ca.issue("old.example.com", now=now - timedelta(days=400), validity=timedelta(days=30))
    return {"certificate_pem": old.chain_pem.decode(), "private_key_pem": old.key_pem().decode()}


BadUpload = Callable[[TestCA, Identity], dict[str, Any]]

BAD_UPLOADS: dict[str, BadUpload] = {
    "missing_private_key": lambda ca, idn: {"certificate_pem": idn.chain_pem.decode()},
    "key_mismatch": lambda ca, idn: {
        "certificate_pem": idn.chain_pem.decode(),
        "private_key_pem": ca.issue("other.example.com").key_pem().decode(),
    },
    "passphrase_required": lambda ca, idn: {
        "certificate_pem": idn.chain_pem.decode(),
        "private_key_pem": idn.key_pem(PASSPHRASE.encode()).decode(),
    },
    "wrong_passphrase": lambda ca, idn: {
        "certificate_pem": idn.chain_pem.decode(),
        "private_key_pem": idn.key_pem(PASSPHRASE.encode()).decode(),
        "passphrase": "not the passphrase",
    },
    "unsupported_format": lambda ca, idn: {
        "certificate_pem": "this is not certificate material at all"
    },
    "not_a_certificate": lambda ca, idn: {"certificate_pem": idn.key_pem().decode()},
    "certificate_expired": lambda ca, idn: _expired(ca),
    "invalid_argument": lambda ca, idn: {"private_key_pem": idn.key_pem().decode()},
}


@pytest.mark.parametrize("code", sorted(BAD_UPLOADS))
def test_bad_certificate_upload_is_422_with_the_loader_code_and_writes_nothing(
    api: Api, ca: TestCA, identity: Identity, code: str
) -> None:
    """Each foundation-loader failure is a 422 with its code; no secret and no audit row."""
    fields = BAD_UPLOADS[code](ca, identity)
    for value in fields.values():
        register_secret(value)
    register_secret(PASSPHRASE)
    body = {"name": "bad", "secret_type": "certificate", **fields}
    response = api.call("POST", "/admin/secrets", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["hint"]
    assert secret_names(api) == []
    assert "secret.create" not in audit_actions(api)


def test_too_large_string_value_is_422_input_too_large(api: Api) -> None:
    """A string secret past the vault's limit is 422 input_too_large, and nothing is written."""
    response = api.call(
        "POST",
        "/admin/secrets",
        json={"name": "big", "secret_type": "string", "value": "x" * 70_000},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "input_too_large"
    assert secret_names(api) == []


def test_bad_put_leaves_the_current_version(api: Api, identity: Identity, ca: TestCA) -> None:
    """A rejected replacement is a 422 and the stored value stays at its version."""
    api.call("POST", "/admin/secrets", json=cert_body(identity))
    bad = BAD_UPLOADS["key_mismatch"](ca, identity)
    register_secret(str(bad["private_key_pem"]))
    response = api.call("PUT", "/admin/secrets/bank_client/environments/production", json=bad)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "key_mismatch"
    view = api.call("GET", "/admin/secrets/bank_client").json()
    assert view["environments"]["production"]["version"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"secret_type": "string", "value": "abcdefgh-1"}, "name"),
        ({"name": "x", "secret_type": "password", "value": "abcdefgh-1"}, "secret_type"),
        ({"name": "x", "secret_type": "string", "valeu": "abcdefgh-1"}, "valeu"),
        ({"name": "x y", "secret_type": "string", "value": "abcdefgh-1"}, "name"),
        ({"name": "x", "secret_type": "string", "value": 12345678}, "value"),
        (
            {"name": "x", "secret_type": "string", "description": "a\x00b", "value": "abcdefgh-1"},
            "description",
        ),
        (
            {
                "name": "x",
                "secret_type": "string",
                "value": "abcdefgh-1",
                "environments": {"sandbox": {"value": "abcdefgh-1"}},
            },
            "body",
        ),
        ({"name": "x", "secret_type": "string", "environments": {"Bad Env": {}}}, "environments"),
    ],
)
def test_invalid_request_is_422_naming_the_field(
    api: Api, body: dict[str, Any], field: str
) -> None:
    """Schema violations are 422 invalid_request, naming the field and never echoing values."""
    register_secret("abcdefgh-1")
    response = api.call("POST", "/admin/secrets", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert field in error["message"]
    assert "abcdefgh-1" not in response.text
    assert secret_names(api) == []


def test_invalid_json_is_422_invalid_request(api: Api) -> None:
    """A body that is not JSON is 422 invalid_request."""
    response = api.call(
        "POST",
        "/admin/secrets",
        content=b'{"name": "x", "secret_type": ',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert "JSON" in response.json()["error"]["fields"][0]["problem"]


def test_declared_too_large_body_is_413(api: Api) -> None:
    """A Content-Length above max_body_bytes is refused before the body is read."""
    limit = api.platform.settings.max_body_bytes
    response = api.call(
        "POST",
        "/admin/secrets",
        content=b"x" * (limit + 1),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_streamed_too_large_body_is_413(api: Api) -> None:
    """A chunked body without Content-Length is counted as it arrives and refused past the limit."""
    limit = api.platform.settings.max_body_bytes

    def chunks() -> Any:
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    response = api.call(
        "POST", "/admin/secrets", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert str(limit) in response.json()["error"]["message"]
