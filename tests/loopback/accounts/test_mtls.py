"""An account's mTLS settings: validated, audited, and only platform admins change them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mutls.accounts.mtls import get_mtls_settings, update_mtls_settings
from mutls.accounts.principal import Principal
from mutls.accounts.roles import Role
from mutls.accounts.service import create_account
from mutls.audit.log import AuditQuery, query
from mutls.errors import AccountNotFound, InvalidArgument, PermissionDenied
from mutls.store.database import Database

NOW = datetime(2026, 11, 23, tzinfo=UTC)
ADMIN = Principal.system("test:admin")


def test_defaults_then_changes_are_applied_and_audited(db: Database) -> None:
    acc = create_account(db, ADMIN, name="acme", display_name=None, now=NOW)
    before = get_mtls_settings(db, ADMIN, "acme")
    assert (before.enabled, before.enforced, before.certificate_quota) == (False, False, 5)
    after = update_mtls_settings(
        db,
        ADMIN,
        acc.id,
        enabled=True,
        certificate_quota=3,
        allowed_routes=["v2", "v1", "v2"],
        ip_allowlist=["203.0.113.7", "198.51.100.0/24"],
        now=NOW,
    )
    assert after.enabled is True
    assert after.allowed_routes == ("v1", "v2")
    assert after.ip_allowlist == ("198.51.100.0/24", "203.0.113.7/32")
    with db.read() as session:
        (event,) = query(session, ADMIN, AuditQuery(action="account.mtls_update"))
    assert event.details["changed"]["certificate_quota"] == 3


@pytest.mark.parametrize(
    "change",
    [
        {"certificate_quota": 0},
        {"certificate_quota": 101},
        {"ip_allowlist": ["10.0.0.0/33"]},
        {"ip_allowlist": ["not-an-ip"]},
        {"allowed_routes": ["has space"]},
    ],
)
def test_bad_settings_are_refused_and_change_nothing(
    db: Database, change: dict[str, object]
) -> None:
    acc = create_account(db, ADMIN, name="acme", display_name=None, now=NOW)
    with pytest.raises(InvalidArgument):
        update_mtls_settings(db, ADMIN, acc.id, now=NOW, enabled=True, **change)  # type: ignore[arg-type]
    assert get_mtls_settings(db, ADMIN, acc.id).enabled is False


def test_customers_cannot_change_their_own_settings(db: Database) -> None:
    acc = create_account(db, ADMIN, name="acme", display_name=None, now=NOW)
    scoped_admin = Principal(actor="token:tok_a", role=Role.ADMIN, account_id=acc.id)
    with pytest.raises(AccountNotFound):
        update_mtls_settings(db, scoped_admin, acc.id, certificate_quota=50, now=NOW)
    manager = Principal(actor="token:tok_m", role=Role.MANAGE_MTLS, account_id=acc.id)
    with pytest.raises(PermissionDenied):
        update_mtls_settings(db, manager, acc.id, enabled=True, now=NOW)
    assert get_mtls_settings(db, manager, acc.id).certificate_quota == 5
