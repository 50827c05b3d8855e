"""Security: every role on every endpoint, no token anywhere, and account isolation.

The table ``ENDPOINTS`` lists every route of the app with the permission it needs; a test checks
that no route is missing from it, so a new endpoint cannot skip the matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mutls.accounts import service
from mutls.accounts.mtls import update_mtls_settings
from mutls.accounts.roles import ROLE_PERMISSIONS, Permission, Role
from mutls.ca.issuance import issue_certificate
from mutls.ca.trust import add_account_ca
from mutls.pki.csr import SubjectSpec, build_csr
from mutls.pki.keys import generate_key
from mutls.routing import create_route
from mutls.routing.egress import create_egress_route
from mutls.routing.egress_fields import EgressRouteSpec
from mutls.testing import TestCA
from mutls.vault.secrets import create_secret
from tests.loopback.api.conftest import SYSTEM, Api
from tests.secretscan import register_secret

STRING_VALUE = "matrix-string-secret-value"
ROUTE_UPSTREAM = "http://127.0.0.1:9000"
EGRESS_TARGET = "https://partner.example"


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    method: str
    path: str  # the route template
    permission: Permission | None  # None: any valid token
    platform_wide: bool = False
    body: Callable[[dict[str, str]], dict[str, Any]] | None = None

    def url(self, ids: dict[str, str]) -> str:
        return self.path.format(**ids)


ENDPOINTS = [
    Endpoint(method="GET", path="/metrics", permission=Permission.METRICS_READ),
    Endpoint(method="GET", path="/admin/whoami", permission=None),
    Endpoint(method="GET", path="/admin/roles", permission=None),
    Endpoint(
        method="POST",
        path="/admin/secrets",
        permission=Permission.SECRETS_WRITE,
        body=lambda ids: {"name": "created", "secret_type": "string", "value": STRING_VALUE},
    ),
    Endpoint(method="GET", path="/admin/secrets", permission=Permission.SECRETS_READ),
    Endpoint(method="GET", path="/admin/secrets/{ref}", permission=Permission.SECRETS_READ),
    Endpoint(
        method="PUT",
        path="/admin/secrets/{ref}/environments/{environment}",
        permission=Permission.SECRETS_WRITE,
        body=lambda ids: {"value": STRING_VALUE},
    ),
    Endpoint(
        method="DELETE",
        path="/admin/secrets/{ref}/environments/{environment}",
        permission=Permission.SECRETS_WRITE,
    ),
    Endpoint(method="DELETE", path="/admin/secrets/{doomed}", permission=Permission.SECRETS_WRITE),
    Endpoint(method="GET", path="/admin/audit", permission=Permission.AUDIT_READ),
    Endpoint(
        method="POST",
        path="/admin/audit/verify",
        permission=Permission.AUDIT_READ,
        platform_wide=True,
        body=lambda ids: {},
    ),
    Endpoint(
        method="POST",
        path="/admin/accounts",
        permission=Permission.ACCOUNTS_WRITE,
        platform_wide=True,
        body=lambda ids: {"name": "new-account"},
    ),
    Endpoint(method="GET", path="/admin/accounts", permission=Permission.ACCOUNTS_READ),
    Endpoint(method="GET", path="/admin/accounts/{account}", permission=Permission.ACCOUNTS_READ),
    Endpoint(
        method="GET", path="/admin/accounts/{account}/mtls", permission=Permission.ACCOUNTS_READ
    ),
    Endpoint(
        method="PUT",
        path="/admin/accounts/{account}/mtls",
        permission=Permission.ACCOUNTS_WRITE,
        platform_wide=True,
        body=lambda ids: {"enabled": True},
    ),
    Endpoint(
        method="POST",
        path="/admin/accounts/{account}/certificates",
        permission=Permission.CERTIFICATES_MANAGE,
        body=lambda ids: {"csr_pem": ids["csr_pem"]},
    ),
    Endpoint(
        method="GET",
        path="/admin/accounts/{account}/certificates",
        permission=Permission.CERTIFICATES_MANAGE,
    ),
    Endpoint(
        method="GET",
        path="/admin/certificates/{certificate}",
        permission=Permission.CERTIFICATES_MANAGE,
    ),
    Endpoint(
        method="POST",
        path="/admin/users",
        permission=Permission.USERS_WRITE,
        body=lambda ids: {
            "email": "new@example.com",
            "role": "auditor",
            "account_id": ids["account"],
        },
    ),
    Endpoint(method="GET", path="/admin/users", permission=Permission.USERS_READ),
    Endpoint(method="GET", path="/admin/users/{user_id}", permission=Permission.USERS_READ),
    Endpoint(
        method="POST", path="/admin/users/{user_id}/disable", permission=Permission.USERS_WRITE
    ),
    Endpoint(
        method="POST", path="/admin/users/{user_id}/enable", permission=Permission.USERS_WRITE
    ),
    Endpoint(
        method="POST",
        path="/admin/tokens",
        permission=Permission.TOKENS_WRITE,
        body=lambda ids: {"name": "new token", "role": "auditor", "account_id": ids["account"]},
    ),
    Endpoint(method="GET", path="/admin/tokens", permission=Permission.TOKENS_READ),
    Endpoint(method="GET", path="/admin/tokens/{token_id}", permission=Permission.TOKENS_READ),
    Endpoint(method="DELETE", path="/admin/tokens/{token_id}", permission=Permission.TOKENS_WRITE),
    Endpoint(
        method="POST",
        path="/admin/certificates/{certificate}/revoke",
        permission=Permission.CERTIFICATES_MANAGE,
        body=lambda ids: {"reason": "superseded"},
    ),
    Endpoint(
        method="POST",
        path="/admin/api-versions/v1/revoke",
        permission=Permission.ACCOUNTS_WRITE,
        platform_wide=True,
    ),
    Endpoint(
        method="POST",
        path="/admin/accounts/{account}/cas",
        permission=Permission.ACCOUNTS_WRITE,
        platform_wide=True,
        body=lambda ids: {"chain_pem": ids["customer_chain_pem"]},
    ),
    Endpoint(
        method="GET",
        path="/admin/accounts/{account}/cas",
        permission=Permission.CERTIFICATES_MANAGE,
    ),
    Endpoint(
        method="DELETE",
        path="/admin/accounts/{account}/cas/{trusted_ca}",
        permission=Permission.ACCOUNTS_WRITE,
        platform_wide=True,
    ),
    Endpoint(
        method="POST",
        path="/admin/routes",
        permission=Permission.ROUTES_WRITE,
        platform_wide=True,
        body=lambda ids: {"name": "created", "upstream_url": ROUTE_UPSTREAM, "path_prefix": "/c"},
    ),
    Endpoint(
        method="GET", path="/admin/routes", permission=Permission.ROUTES_READ, platform_wide=True
    ),
    Endpoint(
        method="GET",
        path="/admin/routes/{route}",
        permission=Permission.ROUTES_READ,
        platform_wide=True,
    ),
    Endpoint(
        method="PUT",
        path="/admin/routes/{route}",
        permission=Permission.ROUTES_WRITE,
        platform_wide=True,
        body=lambda ids: {"description": "changed"},
    ),
    Endpoint(
        method="DELETE",
        path="/admin/routes/{doomed_route}",
        permission=Permission.ROUTES_WRITE,
        platform_wide=True,
    ),
    Endpoint(
        method="PATCH",
        path="/admin/secrets/{ref}",
        permission=Permission.SECRETS_WRITE,
        body=lambda ids: {"description": "changed"},
    ),
    Endpoint(
        method="POST",
        path="/admin/egress-routes",
        permission=Permission.EGRESS_WRITE,
        body=lambda ids: {"name": "created", "target_url": EGRESS_TARGET},
    ),
    Endpoint(method="GET", path="/admin/egress-routes", permission=Permission.EGRESS_READ),
    Endpoint(method="GET", path="/admin/egress-requests", permission=Permission.EGRESS_READ),
    Endpoint(method="GET", path="/admin/expiry", permission=Permission.EXPIRY_READ),
    Endpoint(
        method="POST",
        path="/admin/expiry/check",
        permission=Permission.EXPIRY_CHECK,
        platform_wide=True,
    ),
    Endpoint(
        method="POST",
        path="/admin/doctor",
        permission=Permission.DOCTOR_RUN,
        platform_wide=True,
        body=lambda ids: {"url": "https://127.0.0.1:9/"},  # refused at once: a quick report
    ),
    Endpoint(
        method="GET", path="/admin/egress-routes/{egress_route}", permission=Permission.EGRESS_READ
    ),
    Endpoint(
        method="PUT",
        path="/admin/egress-routes/{egress_route}",
        permission=Permission.EGRESS_WRITE,
        body=lambda ids: {"description": "changed"},
    ),
    Endpoint(
        method="PATCH",
        path="/admin/egress-routes/{egress_route}",
        permission=Permission.EGRESS_WRITE,
        body=lambda ids: {"timeout_seconds": 5},
    ),
    Endpoint(
        method="DELETE",
        path="/admin/egress-routes/{doomed_egress_route}",
        permission=Permission.EGRESS_WRITE,
    ),
]
TEMPLATES = {
    "/admin/secrets/{doomed}": "/admin/secrets/{ref}",
    "/admin/accounts/{account}": "/admin/accounts/{ref}",
    "/admin/accounts/{account}/mtls": "/admin/accounts/{ref}/mtls",
    "/admin/accounts/{account}/certificates": "/admin/accounts/{ref}/certificates",
    "/admin/certificates/{certificate}": "/admin/certificates/{ref}",
    "/admin/certificates/{certificate}/revoke": "/admin/certificates/{ref}/revoke",
    "/admin/api-versions/v1/revoke": "/admin/api-versions/{version}/revoke",
    "/admin/accounts/{account}/cas": "/admin/accounts/{ref}/cas",
    "/admin/accounts/{account}/cas/{trusted_ca}": "/admin/accounts/{ref}/cas/{ca}",
    "/admin/routes/{route}": "/admin/routes/{ref}",
    "/admin/routes/{doomed_route}": "/admin/routes/{ref}",
    "/admin/egress-routes/{egress_route}": "/admin/egress-routes/{ref}",
    "/admin/egress-routes/{doomed_egress_route}": "/admin/egress-routes/{ref}",
}


def csr_pem() -> bytes:
    cn = "matrix.acme.example"
    csr = build_csr(generate_key(), SubjectSpec(common_name=cn), [x509.DNSName(cn)])
    return csr.public_bytes(serialization.Encoding.PEM)


def populate(api: Api) -> dict[str, str]:
    """One of everything the endpoints name, made through the services, in account acme (so
    platform-wide and acme-scoped tokens both see it)."""
    register_secret(STRING_VALUE)
    now = api.now()
    account = api.account("acme")
    secrets: dict[str, str] = {}
    for name, envs in (("kept", ("production", "sandbox")), ("doomed", ("production",))):
        secrets[name] = create_secret(
            api.db,
            api.platform.keys,
            SYSTEM,
            name=name,
            secret_type="string",
            values={env: {"value": STRING_VALUE} for env in envs},
            account_id=account,
            now=now,
        ).id
    user = service.create_user(
        api.db,
        SYSTEM,
        email="someone@example.com",
        display_name=None,
        role="auditor",
        account_id=account,
        now=now,
    )
    issued = service.create_token(
        api.db, SYSTEM, name="victim", role="auditor", account_id=account, now=now
    )
    register_secret(issued.token)
    update_mtls_settings(api.db, SYSTEM, account, enabled=True, now=now)
    issuer = api.app.state.issuers.platform(now=now)
    certificate = issue_certificate(api.db, issuer, SYSTEM, account, csr_pem(), now=now)
    trusted = add_account_ca(
        api.db, SYSTEM, account, TestCA(name="Matrix Trusted CA").root_pem, now=now
    )
    routes = {
        name: create_route(
            api.db, SYSTEM, now=now, name=name, upstream_url=ROUTE_UPSTREAM, path_prefix=f"/{name}"
        ).id
        for name in ("kept", "doomed")
    }
    egress_routes = {
        name: create_egress_route(
            api.db,
            SYSTEM,
            EgressRouteSpec(name=name, target_url=EGRESS_TARGET),
            account_id=account,
            now=now,
        ).id
        for name in ("kept", "doomed")
    }
    return {
        "route": routes["kept"],
        "doomed_route": routes["doomed"],
        "egress_route": egress_routes["kept"],
        "doomed_egress_route": egress_routes["doomed"],
        "ref": secrets["kept"],
        "doomed": secrets["doomed"],
        "environment": "sandbox",
        "account": account,
        "user_id": user.id,
        "token_id": issued.record.id,
        "certificate": certificate.id,
        "csr_pem": csr_pem().decode(),
        "trusted_ca": trusted.id,
        "customer_chain_pem": TestCA(name="Matrix Upload CA").root_pem.decode(),
    }


def allowed(role: Role, endpoint: Endpoint, *, scoped: bool) -> bool:
    if endpoint.permission is not None and endpoint.permission not in ROLE_PERMISSIONS[role]:
        return False
    return not (endpoint.platform_wide and scoped)


def test_the_matrix_covers_every_route(api: Api) -> None:
    """Every operation in /openapi.json but /healthz is in ENDPOINTS with its method."""
    listed = {(e.method, TEMPLATES.get(e.path, e.path)) for e in ENDPOINTS}
    paths = api.client.get("/openapi.json").json()["paths"]
    operations = {
        (method.upper(), path)
        for path, item in paths.items()
        if path != "/healthz"
        for method in item
    }
    assert operations == listed


@pytest.mark.usefixtures("platform_ca")
@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("scoped", [False, True], ids=["platform", "account"])
def test_each_role_is_allowed_or_refused_with_403_on_each_endpoint(
    api: Api, role: Role, scoped: bool
) -> None:
    """A role's token either gets a 2xx or a 403 permission_denied, as its permissions say."""
    ids = populate(api)
    account = ids["account"] if scoped else None
    headers = api.auth(role.value, account)
    wrong: list[str] = []
    for endpoint in ENDPOINTS:
        body = endpoint.body(ids) if endpoint.body else None
        response = api.client.request(
            endpoint.method, endpoint.url(ids), headers=headers, json=body
        )
        status = response.status_code
        label = f"{endpoint.method} {endpoint.path}: {status} {response.text[:200]}"
        if allowed(role, endpoint, scoped=scoped):
            if not 200 <= status < 300:
                wrong.append("expected allowed, " + label)
        elif status != 403 or response.json()["error"]["code"] != "permission_denied":
            wrong.append("expected 403 permission_denied, " + label)
    assert wrong == []


def test_permission_denials_are_audited(api: Api) -> None:
    """A 403 writes an audit row with outcome denied, naming the token and the route."""
    response = api.call("GET", "/admin/secrets", role="app")
    assert response.status_code == 403
    events = api.call("GET", "/admin/audit?outcome=denied").json()["events"]
    assert len(events) == 1
    event = events[0]
    assert event["action"] == "request.authorize"
    assert event["actor_role"] == "app"
    assert event["actor"].startswith("token:tok_")
    assert event["details"]["route"] == "/admin/secrets"
    assert event["details"]["reason"] == "permission_denied"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_no_token_is_401_with_a_bearer_challenge(api: Api, endpoint: Endpoint) -> None:
    """Without a token every endpoint answers 401 authentication_required and WWW-Authenticate."""
    ids = {"ref": "x", "doomed": "x", "environment": "x", "account": "x", "user_id": "x"}
    ids["token_id"] = ids["certificate"] = "x"
    ids["csr_pem"] = ids["trusted_ca"] = ids["customer_chain_pem"] = "x"
    ids["route"] = ids["doomed_route"] = "x"
    ids["egress_route"] = ids["doomed_egress_route"] = "x"
    body = endpoint.body(ids) if endpoint.body else None
    response = api.client.request(endpoint.method, endpoint.url(ids), json=body)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_required"
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer mutls_" + "A" * 43,  # well-formed, unknown
        "Bearer not-a-token",
        "bearer mutls_" + "B" * 43,  # scheme is case-insensitive; still unknown
    ],
)
def test_invalid_tokens_are_401_invalid_token(api: Api, header: str) -> None:
    """A token that is not ours is 401 invalid_token with error="invalid_token" (RFC 6750)."""
    response = api.client.get("/admin/whoami", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


@pytest.mark.parametrize(
    "header", ["Basic basic-password-value", "basic-password-value", "Bearer", "Bearer   "]
)
def test_other_auth_schemes_are_401_authentication_required(api: Api, header: str) -> None:
    """Anything but a bearer token is a 401 asking for one, and the header is not echoed."""
    register_secret("basic-password-value")
    response = api.client.get("/admin/whoami", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_required"
    assert "basic-password-value" not in response.text
    assert events_denied(api) == []


def events_denied(api: Api) -> list[object]:
    result: list[object] = api.call("GET", "/admin/audit?outcome=denied").json()["events"]
    return result


def test_failed_authentication_is_audited_and_throttled(api: Api) -> None:
    """An unknown token writes one anonymous denied row per source and minute; a revoked token's
    row names the token."""
    for _ in range(3):
        unknown = api.client.get(
            "/admin/whoami", headers={"Authorization": "Bearer mutls_" + "C" * 43}
        )
        assert unknown.status_code == 401
    issued = service.create_token(api.db, SYSTEM, name="revoked", role="auditor", now=api.now())
    register_secret(issued.token)
    service.revoke_token(api.db, SYSTEM, issued.record.id, now=api.now())
    denied_revoked = api.client.get(
        "/admin/whoami", headers={"Authorization": f"Bearer {issued.token}"}
    )
    assert denied_revoked.status_code == 401
    events = api.call("GET", "/admin/audit?action=token.use&outcome=denied").json()["events"]
    actors = sorted(e["actor"] for e in events)
    assert actors == sorted(["anonymous", f"token:{issued.record.id}"])
    for event in events:
        assert event["details"]["reason"] == "invalid_token"
        assert event["source_ip"] == "testclient"


@pytest.mark.usefixtures("platform_ca")
def test_account_scoped_tokens_never_see_another_account(api: Api) -> None:
    """An account-scoped admin sees its own secrets, users, tokens and audit rows, never B's."""
    register_secret(STRING_VALUE)
    now = api.now()
    a, b = api.account("alpha"), api.account("bravo")
    created: dict[str, dict[str, str]] = {}
    for account in (a, b):
        view = create_secret(
            api.db,
            api.platform.keys,
            SYSTEM,
            name=f"secret-{account}",
            secret_type="string",
            values={"production": {"value": STRING_VALUE}},
            account_id=account,
            now=now,
        )
        user = service.create_user(
            api.db,
            SYSTEM,
            email=f"user-{account}@example.com",
            display_name=None,
            role="auditor",
            account_id=account,
            now=now,
        )
        token = service.create_token(
            api.db, SYSTEM, name=f"t-{account}", role="auditor", account_id=account, now=now
        )
        register_secret(token.token)
        update_mtls_settings(api.db, SYSTEM, account, enabled=True, now=now)
        certificate = issue_certificate(
            api.db, api.app.state.issuers.platform(now=now), SYSTEM, account, csr_pem(), now=now
        )
        created[account] = {
            "secret": view.id,
            "user": user.id,
            "token": token.record.id,
            "certificate": certificate.id,
            "serial": certificate.serial,
        }

    def call(method: str, path: str, **kw: Any) -> Any:
        return api.call(method, path, role="admin", account_id=a, **kw)

    mine, theirs = created[a], created[b]
    listed = call("GET", "/admin/secrets").json()["secrets"]
    assert [s["id"] for s in listed] == [mine["secret"]]
    assert call("GET", f"/admin/secrets?account_id={b}").status_code == 404
    users = call("GET", "/admin/users").json()["users"]
    assert [u["id"] for u in users] == [mine["user"]]
    token_ids = {t["id"] for t in call("GET", "/admin/tokens").json()["tokens"]}
    assert mine["token"] in token_ids
    assert theirs["token"] not in token_ids
    accounts = call("GET", "/admin/accounts").json()["accounts"]
    assert [x["id"] for x in accounts] == [a]
    events = call("GET", "/admin/audit?limit=1000").json()["events"]
    assert events
    assert {e["account_id"] for e in events} == {a}
    assert call("GET", f"/admin/audit?account_id={b}").json()["events"] == []

    for method, path, body in (
        ("GET", f"/admin/secrets/{theirs['secret']}", None),
        ("PUT", f"/admin/secrets/{theirs['secret']}/environments/x", {"value": STRING_VALUE}),
        ("DELETE", f"/admin/secrets/{theirs['secret']}", None),
        ("GET", f"/admin/users/{theirs['user']}", None),
        ("POST", f"/admin/users/{theirs['user']}/disable", None),
        ("GET", f"/admin/tokens/{theirs['token']}", None),
        ("DELETE", f"/admin/tokens/{theirs['token']}", None),
        ("GET", f"/admin/accounts/{b}", None),
        ("GET", "/admin/accounts/bravo", None),
        ("GET", f"/admin/users?account_id={b}", None),
        ("GET", f"/admin/accounts/{b}/mtls", None),
        ("GET", f"/admin/accounts/{b}/certificates", None),
        ("POST", f"/admin/accounts/{b}/certificates", {"csr_pem": csr_pem().decode()}),
        ("GET", f"/admin/certificates/{theirs['certificate']}", None),
        ("GET", f"/admin/certificates/{theirs['serial']}", None),
        (
            "POST",
            "/admin/secrets",
            {"name": "x", "secret_type": "string", "value": STRING_VALUE, "account_id": b},
        ),
        ("POST", "/admin/tokens", {"name": "x", "role": "admin", "account_id": b}),
        ("POST", "/admin/users", {"email": "x@example.com", "role": "admin", "account_id": b}),
    ):
        response = call(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)

    # B's resources are untouched
    assert api.call("GET", f"/admin/secrets/{theirs['secret']}").status_code == 200
    assert api.call("GET", f"/admin/tokens/{theirs['token']}").json()["revoked_at"] is None
    assert api.call("GET", f"/admin/users/{theirs['user']}").json()["disabled"] is False
    # and a token made by A's admin is A's, whatever it asked for
    made = call("POST", "/admin/tokens", json={"name": "mine", "role": "auditor"})
    assert made.status_code == 201
    register_secret(made.json()["token"])
    assert made.json()["account_id"] == a
    assert call("POST", "/admin/audit/verify").status_code == 403
