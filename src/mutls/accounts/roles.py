"""Roles and what each may do. A pure table; the API and services both check against it.

``manage-mtls`` is the "Manage mTLS" role of seed 003: it manages its own account's
certificates and nothing else. ``auditor`` reads the audit log and metadata (gateway and egress
routes, the egress request log included, and the expiry inventory), never changes anything.
``expiry:check`` (send due expiry notifications now) is an admin's. ``app`` is a machine identity
for the egress proxy and has no admin permissions.
"""

from __future__ import annotations

import enum

__all__ = ["ROLE_PERMISSIONS", "Permission", "Role"]


class Role(enum.StrEnum):
    ADMIN = "admin"
    MANAGE_MTLS = "manage-mtls"
    AUDITOR = "auditor"
    APP = "app"


class Permission(enum.StrEnum):
    SECRETS_READ = "secrets:read"
    SECRETS_WRITE = "secrets:write"
    AUDIT_READ = "audit:read"
    ACCOUNTS_READ = "accounts:read"
    ACCOUNTS_WRITE = "accounts:write"
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    TOKENS_READ = "tokens:read"
    TOKENS_WRITE = "tokens:write"
    METRICS_READ = "metrics:read"
    CERTIFICATES_MANAGE = "certificates:manage"
    EGRESS_USE = "egress:use"
    ROUTES_READ = "routes:read"
    ROUTES_WRITE = "routes:write"
    EGRESS_READ = "egress:read"
    EGRESS_WRITE = "egress:write"
    DOCTOR_RUN = "doctor:run"  # admins only: it makes outbound connections and reveals secrets
    EXPIRY_READ = "expiry:read"
    EXPIRY_CHECK = "expiry:check"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission) - {Permission.EGRESS_USE},
    Role.MANAGE_MTLS: frozenset(
        {Permission.ACCOUNTS_READ, Permission.USERS_READ, Permission.CERTIFICATES_MANAGE}
    ),
    Role.AUDITOR: frozenset(
        {
            Permission.SECRETS_READ,
            Permission.AUDIT_READ,
            Permission.ACCOUNTS_READ,
            Permission.USERS_READ,
            Permission.TOKENS_READ,
            Permission.METRICS_READ,
            Permission.ROUTES_READ,
            Permission.EGRESS_READ,
            Permission.EXPIRY_READ,
        }
    ),
    Role.APP: frozenset({Permission.EGRESS_USE}),
}
