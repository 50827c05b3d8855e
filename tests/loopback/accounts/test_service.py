"""Accounts, users and tokens through the services, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mutls.accounts import service
from mutls.accounts.principal import Principal
from mutls.accounts.roles import Role
from mutls.accounts.tokens import hash_token, looks_like_token
from mutls.audit.log import AuditQuery, query
from mutls.errors import (
    AccountNotFound,
    AuthenticationRequired,
    InvalidArgument,
    InvalidToken,
    NameTaken,
    PermissionDenied,
    TokenNotFound,
)
from mutls.store.database import Database
from mutls.store.models import ApiToken
from tests.secretscan import register_secret

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ROOT = Principal.system("test:root")


def issue(
    db: Database, role: str, account_id: str | None = None, *, expires_in_days: int | None = None
) -> str:
    issued = service.create_token(
        db,
        ROOT,
        name=f"{role} token",
        role=role,
        account_id=account_id,
        expires_in_days=expires_in_days,
        now=NOW,
    )
    register_secret(issued.token)
    return issued.token


def test_token_is_shown_once_and_stored_only_as_a_hash(db: Database) -> None:
    issued = service.create_token(db, ROOT, name="ci", role="admin", now=NOW)
    register_secret(issued.token)
    assert looks_like_token(issued.token)
    assert issued.token not in repr(issued)
    with db.read() as session:
        row = session.execute(select(ApiToken)).scalar_one()
    assert row.token_hash == hash_token(issued.token)
    assert issued.token not in (row.token_hash, row.prefix, row.name)
    assert issued.token.startswith(row.prefix)


def test_authenticate_returns_the_tokens_role_and_scope(db: Database) -> None:
    account = service.create_account(db, ROOT, name="acme", display_name=None, now=NOW)
    token = issue(db, "manage-mtls", account.id)
    principal = service.authenticate(db, token, source_ip="10.0.0.1", now=NOW)
    assert (principal.role, principal.account_id) == (Role.MANAGE_MTLS, account.id)
    assert principal.actor.startswith("token:tok_")


@pytest.mark.parametrize(
    ("presented", "error"),
    [
        (None, AuthenticationRequired),
        ("", AuthenticationRequired),
        ("Basic abc", InvalidToken),
        ("mutls_" + "A" * 43, InvalidToken),
    ],
)
def test_missing_malformed_and_unknown_tokens_are_refused(
    db: Database, presented: str | None, error: type[Exception]
) -> None:
    with pytest.raises(error):
        service.authenticate(db, presented, source_ip=None, now=NOW)


def test_revoked_and_expired_tokens_are_refused(db: Database) -> None:
    revoked = issue(db, "auditor")
    expiring = issue(db, "auditor", expires_in_days=1)
    token_id = service.authenticate(db, revoked, source_ip=None, now=NOW).token_id
    assert token_id is not None
    service.revoke_token(db, ROOT, token_id, now=NOW)
    with pytest.raises(InvalidToken, match="revoked"):
        service.authenticate(db, revoked, source_ip=None, now=NOW)
    assert service.authenticate(db, expiring, source_ip=None, now=NOW)
    with pytest.raises(InvalidToken, match="expired"):
        service.authenticate(db, expiring, source_ip=None, now=NOW + timedelta(days=2))


def test_a_disabled_users_tokens_stop_working(db: Database) -> None:
    user = service.create_user(
        db,
        ROOT,
        email="Ops@Example.com",
        display_name=None,
        role="auditor",
        account_id=None,
        now=NOW,
    )
    assert user.email == "ops@example.com"
    issued = service.create_token(db, ROOT, name="t", role="auditor", user_id=user.id, now=NOW)
    register_secret(issued.token)
    service.authenticate(db, issued.token, source_ip=None, now=NOW)
    service.set_user_disabled(db, ROOT, user.id, disabled=True, now=NOW)
    with pytest.raises(InvalidToken, match="disabled"):
        service.authenticate(db, issued.token, source_ip=None, now=NOW)


def test_a_users_token_must_carry_the_users_role(db: Database) -> None:
    user = service.create_user(
        db,
        ROOT,
        email="a@example.com",
        display_name=None,
        role="auditor",
        account_id=None,
        now=NOW,
    )
    with pytest.raises(InvalidArgument, match="role auditor"):
        service.create_token(db, ROOT, name="t", role="admin", user_id=user.id, now=NOW)


def test_token_use_is_audited_once_per_interval_and_address(db: Database) -> None:
    token = issue(db, "auditor")
    for minute in range(3):
        service.authenticate(db, token, source_ip="10.0.0.1", now=NOW + timedelta(minutes=minute))
    service.authenticate(db, token, source_ip="10.0.0.2", now=NOW + timedelta(minutes=3))
    service.authenticate(db, token, source_ip="10.0.0.2", now=NOW + timedelta(minutes=9))
    with db.read() as session:
        uses = query(session, ROOT, AuditQuery(action="token.use"))
    assert [u.source_ip for u in reversed(uses)] == ["10.0.0.1", "10.0.0.2", "10.0.0.2"]


def test_account_scoped_tokens_never_see_other_accounts(db: Database) -> None:
    one = service.create_account(db, ROOT, name="one", display_name=None, now=NOW)
    two = service.create_account(db, ROOT, name="two", display_name=None, now=NOW)
    scoped = Principal(actor="token:tok_x", role=Role.ADMIN, account_id=one.id)
    assert [a.name for a in service.list_accounts(db, scoped)] == ["one"]
    assert service.get_account(db, scoped, "one").id == one.id  # by name, its own
    with pytest.raises(AccountNotFound):
        service.get_account(db, scoped, two.id)
    with pytest.raises(AccountNotFound):
        service.get_account(db, scoped, "two")
    with pytest.raises(AccountNotFound):
        service.create_token(db, scoped, name="t", role="app", account_id=two.id, now=NOW)
    other = service.create_token(db, ROOT, name="t2", role="app", account_id=two.id, now=NOW)
    register_secret(other.token)
    with pytest.raises(TokenNotFound):
        service.revoke_token(db, scoped, other.record.id, now=NOW)
    mine = service.create_token(db, scoped, name="mine", role="app", now=NOW)
    register_secret(mine.token)
    assert mine.record.account_id == one.id
    assert [t.id for t in service.list_tokens(db, scoped)] == [mine.record.id]
    with pytest.raises(PermissionDenied):
        service.create_account(db, scoped, name="three", display_name=None, now=NOW)


@pytest.mark.parametrize("role", ["auditor", "app", "manage-mtls"])
def test_roles_without_write_permission_are_refused(db: Database, role: str) -> None:
    principal = Principal(actor="token:tok_x", role=Role(role))
    with pytest.raises(PermissionDenied, match=f"role {role}"):
        service.create_account(db, principal, name="x", display_name=None, now=NOW)
    with pytest.raises(PermissionDenied):
        service.create_token(db, principal, name="x", role="admin", now=NOW)


def test_names_are_validated_and_unique(db: Database) -> None:
    service.create_account(db, ROOT, name="acme-bank", display_name="ACME", now=NOW)
    with pytest.raises(NameTaken):
        service.create_account(db, ROOT, name="acme-bank", display_name=None, now=NOW)
    for bad in ["", "ACME", "-x", "a" * 64, "a b", "a_b"]:
        with pytest.raises(InvalidArgument):
            service.create_account(db, ROOT, name=bad, display_name=None, now=NOW)
    with pytest.raises(InvalidArgument):
        service.create_user(
            db,
            ROOT,
            email="not-an-email",
            display_name=None,
            role="admin",
            account_id=None,
            now=NOW,
        )
    with pytest.raises(InvalidArgument, match="expected role"):
        service.create_token(db, ROOT, name="t", role="root", now=NOW)
