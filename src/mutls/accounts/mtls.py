"""An account's mTLS settings: opt-in, enforcement, certificate quota, routes, IP allowlist.

Seed 003: mTLS is opt-in per (parent) account and can be enforced for the whole organisation; an
account holds at most five live certificates by default so it can rotate without downtime.
Seed 004: the provider allowlists the customer's source addresses. Seed 001: certificates are
scoped to API versions.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.accounts.service import find_account
from mutls.audit.log import record
from mutls.errors import AccountNotFound, InvalidArgument
from mutls.store.database import Database
from mutls.store.models import Account

__all__ = ["MAX_QUOTA", "MtlsSettings", "get_mtls_settings", "update_mtls_settings"]

MAX_QUOTA = 100
MAX_LIST = 256
ROUTE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./:-]{0,127}$")


@dataclass(frozen=True, kw_only=True)
class MtlsSettings:
    account_id: str
    enabled: bool
    enforced: bool
    certificate_quota: int
    allowed_routes: tuple[str, ...]
    ip_allowlist: tuple[str, ...]

    @classmethod
    def of(cls, account: Account) -> MtlsSettings:
        return cls(
            account_id=account.id,
            enabled=account.mtls_enabled,
            enforced=account.mtls_enforced,
            certificate_quota=account.certificate_quota,
            allowed_routes=tuple(account.allowed_routes),
            ip_allowlist=tuple(account.ip_allowlist),
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "account_id": self.account_id,
            "enabled": self.enabled,
            "enforced": self.enforced,
            "certificate_quota": self.certificate_quota,
            "allowed_routes": list(self.allowed_routes),
            "ip_allowlist": list(self.ip_allowlist),
        }


def _networks(values: Sequence[str]) -> list[str]:
    if len(values) > MAX_LIST:
        raise InvalidArgument(f"expected at most {MAX_LIST} allowlist entries; found {len(values)}")
    out: list[str] = []
    for value in values:
        try:
            out.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            raise InvalidArgument(
                f"expected an IP address or CIDR block like 203.0.113.0/24; found {value!r}"
            ) from None
    return sorted(set(out))


def _routes(values: Sequence[str]) -> list[str]:
    if len(values) > MAX_LIST:
        raise InvalidArgument(f"expected at most {MAX_LIST} routes; found {len(values)}")
    for value in values:
        if not ROUTE.fullmatch(value):
            raise InvalidArgument(
                f"expected a route or API version name like v2 or payments-api; found {value!r}"
            )
    return sorted(set(values))


def get_mtls_settings(db: Database, principal: Principal, account_ref: str) -> MtlsSettings:
    principal.require(Permission.ACCOUNTS_READ)
    with db.read() as session:
        return MtlsSettings.of(find_account(session, principal, account_ref))


def update_mtls_settings(
    db: Database,
    principal: Principal,
    account_ref: str,
    *,
    now: datetime,
    enabled: bool | None = None,
    enforced: bool | None = None,
    certificate_quota: int | None = None,
    allowed_routes: Sequence[str] | None = None,
    ip_allowlist: Sequence[str] | None = None,
) -> MtlsSettings:
    """Change what is given, leave the rest; platform admins only (a customer cannot raise its
    own quota)."""
    principal.require(Permission.ACCOUNTS_WRITE)
    if principal.account_id is not None:
        raise AccountNotFound(f"expected an account with id {account_ref!r}; there is none")
    if certificate_quota is not None and not 1 <= certificate_quota <= MAX_QUOTA:
        raise InvalidArgument(
            f"expected a certificate quota between 1 and {MAX_QUOTA}; found {certificate_quota}",
            hint="two or more leave room to rotate without downtime",
        )
    routes = _routes(allowed_routes) if allowed_routes is not None else None
    networks = _networks(ip_allowlist) if ip_allowlist is not None else None
    with db.write() as session:
        account = find_account(session, principal, account_ref)
        before = MtlsSettings.of(account).to_dict()
        if enabled is not None:
            account.mtls_enabled = enabled
        if enforced is not None:
            account.mtls_enforced = enforced
        if certificate_quota is not None:
            account.certificate_quota = certificate_quota
        if routes is not None:
            account.allowed_routes = routes
        if networks is not None:
            account.ip_allowlist = networks
        after = MtlsSettings.of(account)
        changed = {k: v for k, v in after.to_dict().items() if before[k] != v}
        if changed:
            record(
                session,
                principal=principal,
                action="account.mtls_update",
                account_id=account.id,
                resource_type="account",
                resource_id=account.id,
                details={"changed": changed},
                now=now,
            )
        return after
