"""The API of the gateway's routes (issue 5 item 2): add, list, show, update, delete, who may,
and every error in the one JSON shape."""

from __future__ import annotations

from typing import Any

import pytest

from mutls.accounts.roles import ROLE_PERMISSIONS, Permission, Role
from mutls.routing import create_route, load_route_table
from tests.loopback.api.conftest import SYSTEM, Api

UPSTREAM = "http://127.0.0.1:9000"


def assert_error(response: Any, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    error: dict[str, str] = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert isinstance(error["hint"], str)
    return error


def test_add_list_show_update_delete(api: Api) -> None:
    """201 with every field, listed in match order, shown by name or id, PUT is partial (null
    clears), DELETE is 204 and then 404."""
    account = api.account("acme")
    created = api.call(
        "POST",
        "/admin/routes",
        json={
            "name": "payments-v2",
            "upstream_url": "http://Payments.internal:8080",
            "host": "api.example.com",
            "path_prefix": "/payments/",
            "api_version": "v2",
            "version_header": "Api-Version",
            "mtls": "required",
            "allowed_accounts": ["acme"],
            "authorization": "basic",
            "description": "seed 003: Basic over mTLS",
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"].startswith("rte_")
    expected = {
        "name": "payments-v2",
        "host": "api.example.com",
        "path_prefix": "/payments",
        "api_version": "v2",
        "version_header": "api-version",
        "upstream_url": "http://payments.internal:8080",
        "mtls": "required",
        "allowed_accounts": [account],
        "authorization": "basic",
        "description": "seed 003: Basic over mTLS",
    }
    assert {k: body[k] for k in expected} == expected
    assert {"created_at", "created_by", "updated_at"} <= body.keys()

    fallback = api.call("POST", "/admin/routes", json={"name": "rest", "upstream_url": UPSTREAM})
    assert fallback.status_code == 201, fallback.text
    assert fallback.json()["mtls"] == "required"
    listed = api.call("GET", "/admin/routes").json()["routes"]
    assert [r["name"] for r in listed] == ["payments-v2", "rest"]  # most specific first

    assert api.call("GET", "/admin/routes/payments-v2").json() == body
    assert api.call("GET", f"/admin/routes/{body['id']}").json() == body

    updated = api.call(
        "PUT",
        "/admin/routes/payments-v2",
        json={"host": None, "mtls": "optional", "allowed_accounts": []},
    )
    assert updated.status_code == 200, updated.text
    after = updated.json()
    assert (after["host"], after["mtls"], after["allowed_accounts"]) == (None, "optional", [])
    assert after["api_version"] == "v2"  # left out: kept
    assert after["upstream_url"] == "http://payments.internal:8080"

    deleted = api.call("DELETE", f"/admin/routes/{body['id']}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(api.call("GET", "/admin/routes/payments-v2"), 404, "route_not_found")
    actions = [e["action"] for e in api.call("GET", "/admin/audit").json()["events"]]
    assert actions[:4] == ["route.delete", "route.update", "route.create", "route.create"]


def test_the_gateway_loader_sees_what_the_api_wrote(api: Api) -> None:
    api.call("POST", "/admin/routes", json={"name": "a", "upstream_url": UPSTREAM, "mtls": "off"})
    with api.db.read() as session:
        (route,) = load_route_table(session).routes
    assert (route.name, route.upstream.authority, route.mtls.value) == (
        "a",
        "127.0.0.1:9000",
        "off",
    )


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ({"upstream_url": "https://127.0.0.1:9443"}, "invalid_argument", "not supported yet"),
        ({"upstream_url": "http://127.0.0.1:9000/base"}, "invalid_argument", "path"),
        ({"path_prefix": "api"}, "invalid_argument", "'/'"),
        ({"host": "api.example.com:8443"}, "invalid_argument", "host"),
        ({"version_header": "api-version"}, "invalid_argument", "api_version"),
        ({"name": "Bad Name"}, "invalid_argument", "route name"),
        ({"mtls": "sometimes"}, "invalid_request", ""),
        ({"colour": "blue"}, "invalid_request", ""),
    ],
)
def test_bad_routes_are_422_with_what_was_expected(
    api: Api, body: dict[str, Any], code: str, words: str
) -> None:
    """Our validation says what was expected and found (invalid_argument); the schema refuses
    unknown fields and enum values (invalid_request). Nothing is stored."""
    full = {"name": "r", "upstream_url": UPSTREAM, **body}
    error = assert_error(api.call("POST", "/admin/routes", json=full), 422, code)
    assert words in error["message"]
    if code == "invalid_argument":
        assert error["message"].startswith("expected")
        assert error["hint"]
    assert api.call("GET", "/admin/routes").json()["routes"] == []


def test_conflicts_are_409_name_taken_and_unknown_accounts_404(api: Api) -> None:
    assert (
        api.call("POST", "/admin/routes", json={"name": "r", "upstream_url": UPSTREAM}).status_code
        == 201
    )
    same_name = {"name": "r", "upstream_url": UPSTREAM, "path_prefix": "/other"}
    assert_error(api.call("POST", "/admin/routes", json=same_name), 409, "name_taken")
    same_match = {"name": "s", "upstream_url": UPSTREAM, "path_prefix": "/"}
    error = assert_error(api.call("POST", "/admin/routes", json=same_match), 409, "name_taken")
    assert "'r'" in error["message"]
    unknown = {
        "name": "t",
        "upstream_url": UPSTREAM,
        "path_prefix": "/t",
        "allowed_accounts": ["x"],
    }
    assert_error(api.call("POST", "/admin/routes", json=unknown), 404, "account_not_found")
    assert [r["name"] for r in api.call("GET", "/admin/routes").json()["routes"]] == ["r"]


def test_unknown_routes_are_404_on_every_verb(api: Api) -> None:
    for method, body in (("GET", None), ("PUT", {"mtls": "off"}), ("DELETE", None)):
        error = assert_error(
            api.call(method, "/admin/routes/nope", json=body), 404, "route_not_found"
        )
        assert "nope" in error["message"]


def test_without_a_token_every_endpoint_is_401(api: Api) -> None:
    for method, path in (
        ("GET", "/admin/routes"),
        ("POST", "/admin/routes"),
        ("GET", "/admin/routes/r"),
        ("PUT", "/admin/routes/r"),
        ("DELETE", "/admin/routes/r"),
    ):
        response = api.call(method, path, role=None, json={})
        assert_error(response, 401, "authentication_required")
        assert response.headers["www-authenticate"].startswith("Bearer")


ENDPOINTS: list[tuple[str, str, Permission, dict[str, Any] | None]] = [
    ("POST", "/admin/routes", Permission.ROUTES_WRITE, {"name": "n", "upstream_url": UPSTREAM}),
    ("GET", "/admin/routes", Permission.ROUTES_READ, None),
    ("GET", "/admin/routes/r", Permission.ROUTES_READ, None),
    ("PUT", "/admin/routes/r", Permission.ROUTES_WRITE, {"description": "changed"}),
    ("DELETE", "/admin/routes/r", Permission.ROUTES_WRITE, None),
]


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("scoped", [False, True], ids=["platform", "account"])
def test_each_role_is_allowed_or_refused_with_403(api: Api, role: Role, scoped: bool) -> None:
    """Only platform-wide tokens with the permission pass: admins write, auditors read;
    manage-mtls, app and every account-scoped token get 403 permission_denied."""
    account = api.account("acme")
    create_route(api.db, SYSTEM, now=api.now(), name="r", upstream_url=UPSTREAM, path_prefix="/r")
    wrong: list[str] = []
    for method, path, permission, body in ENDPOINTS:
        response = api.call(
            method, path, role=role.value, account_id=account if scoped else None, json=body
        )
        allowed = permission in ROLE_PERMISSIONS[role] and not scoped
        label = f"{role} {'scoped' if scoped else 'platform'} {method} {path}: {response.text}"
        if allowed and not 200 <= response.status_code < 300:
            wrong.append("expected allowed, " + label)
        if not allowed and (
            response.status_code != 403 or response.json()["error"]["code"] != "permission_denied"
        ):
            wrong.append("expected 403, " + label)
    assert wrong == []


def test_auditors_read_routes_but_change_nothing(api: Api) -> None:
    assert Permission.ROUTES_READ in ROLE_PERMISSIONS[Role.AUDITOR]
    assert Permission.ROUTES_WRITE not in ROLE_PERMISSIONS[Role.AUDITOR]
    assert {Permission.ROUTES_READ, Permission.ROUTES_WRITE} <= ROLE_PERMISSIONS[Role.ADMIN]
    roles = api.call("GET", "/admin/roles", role="auditor").json()["roles"]
    auditor = next(r for r in roles if r["name"] == "auditor")
    assert "routes:read" in auditor["permissions"]
    assert "routes:write" not in auditor["permissions"]
