"""The API of the egress proxy's routes (issue 6 item 2) on SQLite and PostgreSQL: add, list,
show, update, delete; every refusal with its code; who may; the audit rows. Also the app token
environments and the secrets' strict expiry setting the egress proxy reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from mutls.accounts import service
from mutls.testing import Identity, TestCA
from mutls.vault.secrets import create_secret
from tests.loopback.api.conftest import SYSTEM, Api
from tests.secretscan import register_secret

TARGET = "https://api.bank.example/v1"
API_KEY = "egress-api-key-value-1"
CLIENT_SECRET = "egress-oauth-client-secret-1"


def assert_error(response: Any, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    error: dict[str, str] = response.json()["error"]
    assert error["code"] == code, response.text
    assert error["message"]
    assert isinstance(error["hint"], str)
    return error


def audit(api: Api, action: str) -> list[dict[str, Any]]:
    response = api.call("GET", f"/admin/audit?action={action}&limit=1000")
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


@dataclass(frozen=True, kw_only=True)
class Owned:
    """What one owner (the platform or an account) has: secrets by name and an app token."""

    secrets: dict[str, str]
    app_token: str
    auditor_token: str


def seed(api: Api, identity: Identity, ca: TestCA, account_id: str | None = None) -> Owned:
    """A certificate, an oauth2, a string (API key) and a CA bundle secret, an app token and
    an auditor token, all of ``account_id`` (None: the platform), made through the services."""
    register_secret(identity.key_pem().decode())
    register_secret(API_KEY)
    register_secret(CLIENT_SECRET)
    values: dict[str, tuple[str, dict[str, object]]] = {
        "bank_client": (
            "certificate",
            {
                "certificate_pem": identity.chain_pem.decode(),
                "private_key_pem": identity.key_pem().decode(),
            },
        ),
        "bank_oauth": (
            "oauth2",
            {
                "token_url": "https://auth.bank.example/token",
                "client_id": "mutls",
                "client_secret": CLIENT_SECRET,
            },
        ),
        "bank_api_key": ("string", {"value": API_KEY}),
        "bank_ca": ("string", {"value": ca.root_pem.decode()}),
    }
    secrets = {
        name: create_secret(
            api.db,
            api.platform.keys,
            SYSTEM,
            name=name,
            secret_type=kind,
            values={"production": fields, "sandbox": fields},
            account_id=account_id,
            now=api.now(),
        ).id
        for name, (kind, fields) in values.items()
    }
    tokens = {}
    for role in ("app", "auditor"):
        issued = service.create_token(
            api.db, SYSTEM, name=f"billing-{role}", role=role, account_id=account_id, now=api.now()
        )
        register_secret(issued.token)
        tokens[role] = issued.record.id
    return Owned(secrets=secrets, app_token=tokens["app"], auditor_token=tokens["auditor"])


@pytest.fixture
def owned(api: Api, identity: Identity, ca: TestCA) -> Owned:
    return seed(api, identity, ca)


def full_route(owned: Owned) -> dict[str, Any]:
    return {
        "name": "bank-api",
        "target_url": "https://API.bank.example:443/v1/",
        "certificate_secret": "bank_client",
        "oauth2_secret": "{{secret:bank_oauth}}",
        "ca_bundle_secret": owned.secrets["bank_ca"],
        "oauth2_scopes": ["accounts", "payments"],
        "headers": {"API-Key": "{{secret:bank_api_key}}", "Gov-Vendor-Version": "1.0"},
        "tls_servername": "Api.Bank.Example.",
        "tls_preset": "fapi",
        "tls_reject_unauthorized": True,
        "environments": {
            "sandbox": {
                "target_url": "https://sandbox.bank.example/v1",
                "tls_reject_unauthorized": False,
            },
            "production": {"tls_servername": "prod.bank.example"},
        },
        "allowed_tokens": ["billing-app"],
        "timeout_seconds": 20,
        "description": "seed 002: mTLS + OAuth2 + API key",
    }


def test_add_list_show_update_delete(api: Api, owned: Owned) -> None:
    """201 with every field normalised and secrets as links; listed; shown by name and id; PUT
    and PATCH change only what is given; DELETE is 204 then 404; each change has its audit row."""
    created = api.call("POST", "/admin/egress-routes", json=full_route(owned))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"].startswith("egr_")
    link = {"id": owned.secrets["bank_client"], "name": "bank_client", "secret_type": "certificate"}
    expected = {
        "name": "bank-api",
        "account_id": None,
        "target_url": "https://api.bank.example/v1",
        "certificate_secret": link,
        "oauth2_secret": {
            "id": owned.secrets["bank_oauth"],
            "name": "bank_oauth",
            "secret_type": "oauth2",
        },
        "ca_bundle_secret": {
            "id": owned.secrets["bank_ca"],
            "name": "bank_ca",
            "secret_type": "string",
        },
        "oauth2_scopes": ["accounts", "payments"],
        "headers": {"API-Key": "{{secret:bank_api_key}}", "Gov-Vendor-Version": "1.0"},
        "tls_servername": "api.bank.example",
        "tls_preset": "fapi",
        "tls_reject_unauthorized": True,
        "environments": {
            "production": {
                "target_url": None,
                "tls_servername": "prod.bank.example",
                "tls_reject_unauthorized": None,
            },
            "sandbox": {
                "target_url": "https://sandbox.bank.example/v1",
                "tls_servername": None,
                "tls_reject_unauthorized": False,
            },
        },
        "allowed_tokens": [owned.app_token],
        "timeout_seconds": 20,
        "description": "seed 002: mTLS + OAuth2 + API key",
    }
    assert {k: body[k] for k in expected} == expected
    assert [w["code"] for w in body["warnings"]] == ["tls_verification_off"]
    assert "sandbox" in body["warnings"][0]["message"]
    assert API_KEY not in created.text

    plain = api.call("POST", "/admin/egress-routes", json={"name": "a-plain", "target_url": TARGET})
    assert plain.status_code == 201, plain.text
    assert plain.json()["tls_preset"] == "default"
    assert plain.json()["warnings"] == []
    listed = api.call("GET", "/admin/egress-routes").json()["egress_routes"]
    assert [r["name"] for r in listed] == ["a-plain", "bank-api"]
    assert api.call("GET", "/admin/egress-routes/bank-api").json() == body
    assert api.call("GET", f"/admin/egress-routes/{body['id']}").json() == body

    put = api.call(
        "PUT",
        "/admin/egress-routes/bank-api",
        json={"environments": {}, "headers": {"Gov-Vendor-Version": "2.0"}},
    )
    assert put.status_code == 200, put.text
    after = put.json()
    assert (after["environments"], after["headers"]) == ({}, {"Gov-Vendor-Version": "2.0"})
    assert after["warnings"] == []
    assert after["certificate_secret"] == link  # left out: kept
    patched = api.call(
        "PATCH",
        f"/admin/egress-routes/{body['id']}",
        json={"oauth2_secret": None, "oauth2_scopes": None, "allowed_tokens": None},
    )
    assert patched.status_code == 200, patched.text
    after = patched.json()
    assert (after["oauth2_secret"], after["oauth2_scopes"], after["allowed_tokens"]) == (
        None,
        None,
        [],
    )
    assert after["tls_preset"] == "fapi"
    same = api.call("PATCH", "/admin/egress-routes/bank-api", json={"tls_preset": "fapi"})
    assert same.json() == after

    deleted = api.call("DELETE", "/admin/egress-routes/bank-api")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert_error(api.call("GET", "/admin/egress-routes/bank-api"), 404, "route_not_found")

    (create,) = [e for e in audit(api, "egress_route.create") if e["resource_id"] == body["id"]]
    assert create["details"]["certificate_secret"] == owned.secrets["bank_client"]
    updates = audit(api, "egress_route.update")
    assert len(updates) == 2  # the PATCH that changed nothing wrote nothing
    assert updates[0]["details"]["changed"]["oauth2_secret"] == {
        "before": owned.secrets["bank_oauth"],
        "after": None,
    }
    assert set(updates[1]["details"]["changed"]) == {"environments", "headers"}
    (delete,) = audit(api, "egress_route.delete")
    assert (delete["resource_id"], delete["details"]["name"]) == (body["id"], "bank-api")


def test_a_seed_002_route_is_accepted_as_written(api: Api, owned: Owned) -> None:
    """Seed 002's field names (certificate_secret_id, oauth2_secret_id with {{secret:NAME}})
    are accepted; giving both spellings of one field is refused."""
    seed_route = {
        "name": "hmrc",
        "target_url": "https://api.service.hmrc.gov.uk",
        "certificate_secret_id": "{{secret:bank_client}}",
        "oauth2_secret_id": "{{secret:bank_oauth}}",
        "headers": {"Gov-Vendor-Public-Key": "{{secret:bank_api_key}}"},
    }
    created = api.call("POST", "/admin/egress-routes", json=seed_route)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["certificate_secret"]["name"] == "bank_client"
    assert body["oauth2_secret"]["name"] == "bank_oauth"
    both = {**seed_route, "name": "x", "certificate_secret": "bank_client"}
    assert_error(api.call("POST", "/admin/egress-routes", json=both), 422, "invalid_request")


REFUSED: list[tuple[str, dict[str, Any], int, str, str]] = [
    ("unknown secret", {"certificate_secret": "nope"}, 404, "secret_not_found", "'nope'"),
    (
        "string secret as certificate",
        {"certificate_secret": "bank_api_key"},
        422,
        "invalid_argument",
        "certificate secret",
    ),
    (
        "certificate as oauth2",
        {"oauth2_secret": "bank_client"},
        422,
        "invalid_argument",
        "oauth2 secret",
    ),
    (
        "oauth2 as CA bundle",
        {"ca_bundle_secret": "bank_oauth"},
        422,
        "invalid_argument",
        "string or certificate",
    ),
    (
        "verification off at the top",
        {"tls_reject_unauthorized": False},
        422,
        "insecure_tls_refused",
        "top level",
    ),
    (
        "verification off in production",
        {"environments": {"production": {"tls_reject_unauthorized": False}}},
        422,
        "insecure_tls_refused",
        "production",
    ),
    ("plain http", {"target_url": "http://api.bank.example"}, 422, "invalid_argument", "http://"),
    (
        "plain http in an environment",
        {"environments": {"sandbox": {"target_url": "http://sandbox.bank.example"}}},
        422,
        "invalid_argument",
        "environments.sandbox.target_url",
    ),
    (
        "credentials in the URL",
        {"target_url": "https://user:pw@api.bank.example"},
        422,
        "invalid_argument",
        "password",
    ),
    ("reserved header", {"headers": {"Host": "evil.example"}}, 422, "invalid_argument", "'Host'"),
    (
        "Authorization with oauth2",
        {"oauth2_secret": "bank_oauth", "headers": {"Authorization": "Basic x"}},
        422,
        "invalid_argument",
        "Authorization",
    ),
    (
        "header naming a missing secret",
        {"headers": {"API-Key": "{{secret:missing_key}}"}},
        404,
        "secret_not_found",
        "'missing_key'",
    ),
    (
        "header naming a certificate secret",
        {"headers": {"API-Key": "{{secret:bank_client}}"}},
        422,
        "invalid_argument",
        "string secrets",
    ),
    (
        "mistyped placeholder",
        {"headers": {"API-Key": "{{secrets:bank_api_key}}"}},
        422,
        "invalid_argument",
        "",
    ),
    (
        "a token that is not an app token",
        {"allowed_tokens": ["billing-auditor"]},
        422,
        "invalid_argument",
        "app tokens",
    ),
    ("an unknown token", {"allowed_tokens": ["tok_nope"]}, 404, "token_not_found", "tok_nope"),
    (
        "scopes without oauth2",
        {"oauth2_scopes": ["accounts"]},
        422,
        "invalid_argument",
        "oauth2_secret",
    ),
    ("timeout 0", {"timeout_seconds": 0}, 422, "invalid_argument", "timeout_seconds"),
    ("timeout true", {"timeout_seconds": True}, 422, "invalid_request", ""),
    ("bad name", {"name": "Bank API"}, 422, "invalid_argument", "route name"),
    ("bad preset", {"tls_preset": "ssl3"}, 422, "invalid_request", ""),
    ("unknown field", {"colour": "blue"}, 422, "invalid_request", ""),
    (
        "a secret in an environment override",
        {"environments": {"sandbox": {"certificate_secret": "bank_client"}}},
        422,
        "invalid_request",
        "",
    ),
    ("bad environment name", {"environments": {"Prod!": {}}}, 422, "invalid_request", ""),
]


def test_every_refusal_has_its_code_and_stores_nothing(api: Api, owned: Owned) -> None:
    """Each bad route gets its status and code and a message saying what was expected; no
    route and no audit row is written."""
    wrong: list[str] = []
    for label, change, status, code, words in REFUSED:
        body = {"name": "r", "target_url": TARGET, **change}
        response = api.call("POST", "/admin/egress-routes", json=body)
        error = response.json().get("error", {}) if response.status_code >= 400 else {}
        if (response.status_code, error.get("code")) != (status, code):
            wrong.append(f"{label}: {response.status_code} {response.text[:300]}")
        elif words not in error["message"] or not error["message"].startswith("expected"):
            wrong.append(f"{label}: message {error['message']!r} lacks {words!r}")
    assert wrong == []
    assert api.call("GET", "/admin/egress-routes").json()["egress_routes"] == []
    assert audit(api, "egress_route.create") == []


def test_names_clash_with_409_and_bad_updates_change_nothing(api: Api, owned: Owned) -> None:
    """A second route of one name, or a rename onto one, is 409 name_taken; an update that
    switches verification off or nulls a required field is refused and the route is kept."""
    for name in ("one", "two"):
        created = api.call(
            "POST", "/admin/egress-routes", json={"name": name, "target_url": TARGET}
        )
        assert created.status_code == 201, created.text
    again = {"name": "one", "target_url": "https://other.example"}
    assert_error(api.call("POST", "/admin/egress-routes", json=again), 409, "name_taken")
    before = api.call("GET", "/admin/egress-routes/two").json()
    assert_error(
        api.call("PATCH", "/admin/egress-routes/two", json={"name": "one"}), 409, "name_taken"
    )
    assert_error(
        api.call("PUT", "/admin/egress-routes/two", json={"tls_reject_unauthorized": False}),
        422,
        "insecure_tls_refused",
    )
    assert_error(
        api.call("PATCH", "/admin/egress-routes/two", json={"target_url": None}),
        422,
        "invalid_argument",
    )
    assert_error(
        api.call("PATCH", "/admin/egress-routes/two", json={"headers": {"Connection": "close"}}),
        422,
        "invalid_argument",
    )
    assert api.call("GET", "/admin/egress-routes/two").json() == before
    assert audit(api, "egress_route.update") == []
    for method, body in (("GET", None), ("PUT", {}), ("PATCH", {}), ("DELETE", None)):
        error = assert_error(
            api.call(method, "/admin/egress-routes/nope", json=body), 404, "route_not_found"
        )
        assert "nope" in error["message"]


def test_who_may_read_and_write(api: Api, owned: Owned) -> None:
    """Admins write, auditors read but change nothing, app and manage-mtls tokens get 403
    permission_denied (audited), no token is 401."""
    route = {"name": "r", "target_url": TARGET}
    assert api.call("POST", "/admin/egress-routes", json=route).status_code == 201
    assert api.call("GET", "/admin/egress-routes", role="auditor").status_code == 200
    assert api.call("GET", "/admin/egress-routes/r", role="auditor").json()["name"] == "r"
    for method, path, body in (
        ("POST", "/admin/egress-routes", {**route, "name": "s"}),
        ("PUT", "/admin/egress-routes/r", {"description": "x"}),
        ("PATCH", "/admin/egress-routes/r", {"description": "x"}),
        ("DELETE", "/admin/egress-routes/r", None),
    ):
        response = api.call(method, path, role="auditor", json=body)
        assert_error(response, 403, "permission_denied")
    for role in ("app", "manage-mtls"):
        assert_error(api.call("GET", "/admin/egress-routes", role=role), 403, "permission_denied")
        assert_error(api.call("GET", "/admin/egress-routes/r", role=role), 403, "permission_denied")
    response = api.call("GET", "/admin/egress-routes", role=None)
    assert_error(response, 401, "authentication_required")
    denied = api.call("GET", "/admin/audit?outcome=denied&limit=1000").json()["events"]
    assert {e["details"]["route"] for e in denied} == {
        "/admin/egress-routes",
        "/admin/egress-routes/{ref}",
    }
    assert api.call("GET", "/admin/egress-routes/r").json()["description"] == ""


def test_account_scoped_tokens_see_and_use_their_own_account_only(
    api: Api, identity: Identity, ca: TestCA
) -> None:
    """An account-scoped admin's routes go to its account and use its secrets and tokens; it
    never sees another account's routes (404, like nothing); platform admins see all and pick
    an account with account_id."""
    alpha, bravo = api.account("alpha"), api.account("bravo")
    mine = seed(api, identity, ca, alpha)
    seed(api, identity, ca, bravo)
    route = {
        "name": "bank-api",
        "target_url": TARGET,
        "certificate_secret": "bank_client",
        "allowed_tokens": ["billing-app"],
    }
    created = api.call("POST", "/admin/egress-routes", json=route, account_id=alpha)
    assert created.status_code == 201, created.text
    ours = created.json()
    assert ours["account_id"] == alpha
    assert ours["certificate_secret"]["id"] == mine.secrets["bank_client"]
    assert ours["allowed_tokens"] == [mine.app_token]
    theirs = api.call(
        "POST", "/admin/egress-routes", json={**route, "account_id": "bravo", "allowed_tokens": []}
    )
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["account_id"] == bravo
    platform = api.call("POST", "/admin/egress-routes", json={**route, "allowed_tokens": []})
    assert_error(platform, 404, "secret_not_found")  # the platform has no bank_client

    def scoped(method: str, path: str, role: str = "admin", **kw: Any) -> Any:
        return api.call(method, path, role=role, account_id=alpha, **kw)

    for role in ("admin", "auditor"):
        listed = scoped("GET", "/admin/egress-routes", role=role).json()["egress_routes"]
        assert [r["id"] for r in listed] == [ours["id"]]
    other = theirs.json()["id"]
    for method, path, body in (
        ("GET", f"/admin/egress-routes/{other}", None),
        ("PATCH", f"/admin/egress-routes/{other}", {"description": "x"}),
        ("DELETE", f"/admin/egress-routes/{other}", None),
        ("GET", "/admin/egress-routes/bank-api?account_id=bravo", None),
        ("GET", "/admin/egress-routes?account_id=bravo", None),
        ("POST", "/admin/egress-routes", {**route, "name": "x", "account_id": bravo}),
    ):
        response = scoped(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
    foreign = {**route, "name": "y", "certificate_secret": other}
    assert_error(scoped("POST", "/admin/egress-routes", json=foreign), 404, "secret_not_found")

    everything = api.call("GET", "/admin/egress-routes").json()["egress_routes"]
    assert sorted(r["id"] for r in everything) == sorted([ours["id"], other])
    only_bravo = api.call("GET", "/admin/egress-routes?account_id=bravo").json()["egress_routes"]
    assert [r["id"] for r in only_bravo] == [other]
    by_name = api.call("GET", "/admin/egress-routes/bank-api?account_id=bravo")
    assert by_name.json()["id"] == other
    assert_error(api.call("GET", "/admin/egress-routes/bank-api"), 404, "route_not_found")
    (event,) = [e for e in audit(api, "egress_route.create") if e["resource_id"] == ours["id"]]
    assert event["account_id"] == alpha


def test_a_secret_a_route_uses_cannot_be_deleted(api: Api, owned: Owned) -> None:
    """Deleting a secret a route links to, or names in a header template, is 409
    resource_in_use naming the route; after the route goes, the secret can go."""
    route = {
        "name": "bank-api",
        "target_url": TARGET,
        "certificate_secret": "bank_client",
        "headers": {"API-Key": "{{secret:bank_api_key}}"},
    }
    assert api.call("POST", "/admin/egress-routes", json=route).status_code == 201
    for name in ("bank_client", "bank_api_key"):
        error = assert_error(api.call("DELETE", f"/admin/secrets/{name}"), 409, "resource_in_use")
        assert "bank-api" in error["message"]
    assert api.call("DELETE", "/admin/egress-routes/bank-api").status_code == 204
    for name in ("bank_client", "bank_api_key"):
        assert api.call("DELETE", f"/admin/secrets/{name}").status_code == 204


# --- app token environments ------------------------------------------------------------------


def test_app_tokens_carry_their_environments(api: Api) -> None:
    """An app token may be limited to environments, with a default; a sandbox-only token
    defaults to the sandbox; both are shown and audited."""
    created = api.call(
        "POST",
        "/admin/tokens",
        json={"name": "billing", "role": "app", "environments": ["sandbox", "staging"]},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    register_secret(body["token"])
    assert (body["environments"], body["default_environment"]) == (["sandbox", "staging"], None)
    sandbox_only = api.call(
        "POST", "/admin/tokens", json={"name": "sb", "role": "app", "environments": ["sandbox"]}
    ).json()
    register_secret(sandbox_only["token"])
    assert sandbox_only["default_environment"] == "sandbox"
    defaulted = api.call(
        "POST", "/admin/tokens", json={"name": "d", "role": "app", "default_environment": "sandbox"}
    ).json()
    register_secret(defaulted["token"])
    assert (defaulted["environments"], defaulted["default_environment"]) == ([], "sandbox")

    shown = api.call("GET", f"/admin/tokens/{body['id']}").json()
    assert shown["environments"] == ["sandbox", "staging"]
    listed = {t["id"]: t for t in api.call("GET", "/admin/tokens").json()["tokens"]}
    assert listed[sandbox_only["id"]]["default_environment"] == "sandbox"
    assert all(t["environments"] == [] for t in listed.values() if t["role"] != "app")
    (event,) = [e for e in audit(api, "token.create") if e["resource_id"] == body["id"]]
    assert event["details"]["environments"] == ["sandbox", "staging"]


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ({"role": "auditor", "environments": ["sandbox"]}, "invalid_argument", "app tokens"),
        ({"role": "admin", "default_environment": "sandbox"}, "invalid_argument", "app tokens"),
        (
            {"role": "app", "environments": ["sandbox"], "default_environment": "production"},
            "invalid_argument",
            "one of the token's environments",
        ),
        ({"role": "app", "environments": ["Prod!"]}, "invalid_request", ""),
        ({"role": "app", "default_environment": ""}, "invalid_request", ""),
    ],
)
def test_token_environments_are_refused_where_they_mean_nothing(
    api: Api, body: dict[str, Any], code: str, words: str
) -> None:
    """Environments on a non-app token, a default outside the list, or a bad name: 422, and
    no token is made."""
    before = len(api.call("GET", "/admin/tokens").json()["tokens"])
    error = assert_error(api.call("POST", "/admin/tokens", json={"name": "t", **body}), 422, code)
    assert words in error["message"]
    assert len(api.call("GET", "/admin/tokens").json()["tokens"]) == before


# --- secrets: strict expiry --------------------------------------------------------------------


def test_secret_settings_strict_expiry_and_description(api: Api) -> None:
    """strict_expiry_enforcement is off unless asked for on create; PATCH changes it and the
    description (audited as secret.settings with before and after); a PATCH that changes
    nothing writes nothing."""
    register_secret("strict-expiry-string-1")
    plain = api.call(
        "POST",
        "/admin/secrets",
        json={"name": "plain", "secret_type": "string", "value": "strict-expiry-string-1"},
    ).json()
    assert plain["strict_expiry_enforcement"] is False
    strict = api.call(
        "POST",
        "/admin/secrets",
        json={
            "name": "strict",
            "secret_type": "string",
            "value": "strict-expiry-string-1",
            "strict_expiry_enforcement": True,
        },
    )
    assert strict.status_code == 201, strict.text
    assert strict.json()["strict_expiry_enforcement"] is True
    assert "strict_expiry_enforcement" not in strict.json()["metadata"]

    changed = api.call(
        "PATCH",
        "/admin/secrets/plain",
        json={"strict_expiry_enforcement": True, "description": "bank's key"},
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["strict_expiry_enforcement"], changed.json()["description"]) == (
        True,
        "bank's key",
    )
    assert api.call("GET", f"/admin/secrets/{plain['id']}").json()["strict_expiry_enforcement"]
    off = api.call(
        "PATCH", f"/admin/secrets/{plain['id']}", json={"strict_expiry_enforcement": False}
    )
    assert off.json()["strict_expiry_enforcement"] is False
    assert off.json()["description"] == "bank's key"  # left out: kept
    assert api.call("PATCH", "/admin/secrets/plain", json={}).status_code == 200

    events = audit(api, "secret.settings")
    assert [e["details"]["changed"] for e in events] == [
        {"strict_expiry_enforcement": {"before": True, "after": False}},
        {
            "description": {"before": "", "after": "bank's key"},
            "strict_expiry_enforcement": {"before": False, "after": True},
        },
    ]
    assert {e["resource_id"] for e in events} == {plain["id"]}


def test_secret_settings_refusals(api: Api) -> None:
    """An unknown secret is 404, an unknown field or a control character 422 invalid_request,
    an auditor 403; none of them changes anything."""
    register_secret("strict-expiry-string-2")
    api.call(
        "POST",
        "/admin/secrets",
        json={"name": "s", "secret_type": "string", "value": "strict-expiry-string-2"},
    )
    assert_error(
        api.call("PATCH", "/admin/secrets/nope", json={"description": "x"}), 404, "secret_not_found"
    )
    for body in ({"value": "x"}, {"description": "bad\x00"}, {"strict_expiry_enforcement": "x"}):
        assert_error(api.call("PATCH", "/admin/secrets/s", json=body), 422, "invalid_request")
    assert_error(
        api.call("PATCH", "/admin/secrets/s", role="auditor", json={"description": "x"}),
        403,
        "permission_denied",
    )
    assert api.call("GET", "/admin/secrets/s").json()["description"] == ""
    assert audit(api, "secret.settings") == []
