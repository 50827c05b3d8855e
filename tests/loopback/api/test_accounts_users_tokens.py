"""Accounts, users, tokens, roles and whoami over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from mutls.accounts.roles import ROLE_PERMISSIONS, Role
from tests.loopback.api.conftest import Api
from tests.secretscan import register_secret


def test_accounts_create_list_get(api: Api) -> None:
    """An account is created (201), listed, and found by id and by name."""
    created = api.call("POST", "/admin/accounts", json={"name": "acme", "display_name": "ACME"})
    assert created.status_code == 201, created.text
    account = created.json()
    assert account["id"].startswith("acc_")
    assert (account["name"], account["display_name"]) == ("acme", "ACME")
    assert api.call("GET", "/admin/accounts").json() == {"accounts": [account]}
    assert api.call("GET", f"/admin/accounts/{account['id']}").json() == account
    assert api.call("GET", "/admin/accounts/acme").json() == account


def test_account_errors(api: Api) -> None:
    """A duplicate name is 409, an unknown account 404, a bad name 422 invalid_request."""
    api.call("POST", "/admin/accounts", json={"name": "acme"})
    again = api.call("POST", "/admin/accounts", json={"name": "acme"})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "name_taken")
    missing = api.call("GET", "/admin/accounts/acc_nothere")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "account_not_found")
    bad = api.call("POST", "/admin/accounts", json={"name": "Not Valid"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_request")
    assert "name" in bad.json()["error"]["message"]


def test_users_create_list_filter_get_disable_enable(api: Api) -> None:
    """Users: create, list with an account filter, read, disable and enable again."""
    acme = api.account("acme")
    other = api.account("other")
    created = api.call(
        "POST",
        "/admin/users",
        json={"email": "Ops@Example.com", "role": "manage-mtls", "account_id": acme},
    )
    assert created.status_code == 201, created.text
    user = created.json()
    assert (user["email"], user["role"], user["account_id"]) == (
        "ops@example.com",
        "manage-mtls",
        acme,
    )
    assert user["disabled"] is False
    api.call("POST", "/admin/users", json={"email": "b@example.com", "role": "auditor"})
    assert len(api.call("GET", "/admin/users").json()["users"]) == 2
    assert api.call("GET", f"/admin/users?account_id={acme}").json()["users"] == [user]
    assert api.call("GET", f"/admin/users?account_id={other}").json()["users"] == []
    assert api.call("GET", f"/admin/users/{user['id']}").json() == user

    disabled = api.call("POST", f"/admin/users/{user['id']}/disable")
    assert disabled.status_code == 200
    assert disabled.json()["disabled"] is True
    assert disabled.json()["disabled_at"]
    enabled = api.call("POST", f"/admin/users/{user['id']}/enable")
    assert enabled.json()["disabled"] is False
    actions = [e["action"] for e in api.call("GET", "/admin/audit").json()["events"]]
    assert {"user.create", "user.disable", "user.enable"} <= set(actions)


def test_user_errors(api: Api) -> None:
    """Duplicate e-mail 409, unknown user 404, unknown role or account 422/404."""
    api.call("POST", "/admin/users", json={"email": "a@example.com", "role": "auditor"})
    again = api.call("POST", "/admin/users", json={"email": "a@example.com", "role": "auditor"})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "name_taken")
    for method, path in (("GET", "/admin/users/usr_nothere"), ("POST", "/admin/users/x/disable")):
        missing = api.call(method, path)
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "user_not_found")
    role = api.call("POST", "/admin/users", json={"email": "c@example.com", "role": "root"})
    assert (role.status_code, role.json()["error"]["code"]) == (422, "invalid_request")
    email = api.call("POST", "/admin/users", json={"email": "not-an-address", "role": "auditor"})
    assert (email.status_code, email.json()["error"]["code"]) == (422, "invalid_argument")
    nul = api.call("POST", "/admin/users", json={"email": "a\u0000@example.com", "role": "app"})
    assert (nul.status_code, nul.json()["error"]["code"]) == (422, "invalid_request")
    account = api.call(
        "POST", "/admin/users", json={"email": "d@example.com", "role": "app", "account_id": "x"}
    )
    assert (account.status_code, account.json()["error"]["code"]) == (404, "account_not_found")


def test_token_is_shown_once_and_works(api: Api) -> None:
    """POST /admin/tokens is the only response with the token; the token then authenticates."""
    created = api.call("POST", "/admin/tokens", json={"name": "ci", "role": "auditor"})
    assert created.status_code == 201, created.text
    body = created.json()
    token = body["token"]
    register_secret(token)
    assert token.startswith(body["prefix"])
    whoami = api.client.get("/admin/whoami", headers={"Authorization": f"Bearer {token}"})
    assert whoami.status_code == 200
    assert whoami.json()["role"] == "auditor"
    assert whoami.json()["token_id"] == body["id"]

    record = api.call("GET", f"/admin/tokens/{body['id']}")
    assert record.status_code == 200
    assert "token" not in record.json()
    assert record.json()["last_used_at"] is not None
    listed = api.call("GET", "/admin/tokens")
    assert body["id"] in {t["id"] for t in listed.json()["tokens"]}
    for response in (record, listed):
        assert token not in response.text


def test_revoked_token_stops_working_and_leaves_the_default_list(api: Api) -> None:
    """DELETE revokes (returns the record); the token is then 401 and listed only on request."""
    created = api.call("POST", "/admin/tokens", json={"name": "old", "role": "admin"}).json()
    register_secret(created["token"])
    revoked = api.call("DELETE", f"/admin/tokens/{created['id']}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert "token" not in revoked.json()
    refused = api.client.get(
        "/admin/whoami", headers={"Authorization": f"Bearer {created['token']}"}
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "invalid_token")
    default = {t["id"] for t in api.call("GET", "/admin/tokens").json()["tokens"]}
    everything = api.call("GET", "/admin/tokens?include_revoked=true").json()["tokens"]
    assert created["id"] not in default
    assert created["id"] in {t["id"] for t in everything}
    assert api.call("DELETE", f"/admin/tokens/{created['id']}").status_code == 200


def test_token_errors(api: Api) -> None:
    """Unknown token 404; bad role, bad expiry and unknown fields are 422."""
    missing = api.call("GET", "/admin/tokens/tok_nothere")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "token_not_found")
    assert api.call("DELETE", "/admin/tokens/tok_nothere").status_code == 404
    for body in (
        {"name": "x", "role": "superuser"},
        {"name": "x", "role": "admin", "expires_in_days": 0},
        {"name": "x", "role": "admin", "expires_in_days": 99999},
        {"name": "x", "role": "admin", "scope": "all"},
        {"name": "", "role": "admin"},
    ):
        response = api.call("POST", "/admin/tokens", json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (422, "invalid_request")


def test_token_for_a_user_carries_the_users_role(api: Api) -> None:
    """A token bound to a user must have the user's role, and dies with the user's disabling."""
    user = api.call(
        "POST", "/admin/users", json={"email": "u@example.com", "role": "auditor"}
    ).json()
    wrong = api.call(
        "POST", "/admin/tokens", json={"name": "t", "role": "admin", "user_id": user["id"]}
    )
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (422, "invalid_argument")
    made = api.call(
        "POST", "/admin/tokens", json={"name": "t", "role": "auditor", "user_id": user["id"]}
    ).json()
    register_secret(made["token"])
    headers = {"Authorization": f"Bearer {made['token']}"}
    assert api.client.get("/admin/whoami", headers=headers).json()["user_id"] == user["id"]
    api.call("POST", f"/admin/users/{user['id']}/disable")
    assert api.client.get("/admin/whoami", headers=headers).status_code == 401


@pytest.mark.parametrize("role", list(Role))
def test_whoami_describes_the_caller(api: Api, role: Role) -> None:
    """whoami returns the role, scope, token id and the role's permissions."""
    account = api.account("acme")
    body = api.call("GET", "/admin/whoami", role=role.value, account_id=account).json()
    assert body["role"] == role.value
    assert body["account_id"] == account
    assert body["token_id"].startswith("tok_")
    assert body["actor"] == f"token:{body['token_id']}"
    assert set(body["permissions"]) == {p.value for p in ROLE_PERMISSIONS[role]}


def test_roles_lists_every_role_with_its_permissions(api: Api) -> None:
    """GET /admin/roles is the roles table."""
    roles = api.call("GET", "/admin/roles", role="app").json()["roles"]
    assert [r["name"] for r in roles] == [r.value for r in Role]
    for item in roles:
        assert set(item["permissions"]) == {p.value for p in ROLE_PERMISSIONS[Role(item["name"])]}
        assert item["description"]
