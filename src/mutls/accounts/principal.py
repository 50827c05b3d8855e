"""Who is calling: the verified identity behind a request, and the checks made against it."""

from __future__ import annotations

from dataclasses import dataclass

from mutls.accounts.roles import ROLE_PERMISSIONS, Permission, Role
from mutls.errors import NotFound, PermissionDenied

__all__ = ["Principal"]


@dataclass(frozen=True, kw_only=True)
class Principal:
    """An authenticated caller. ``account_id`` None means platform-wide."""

    actor: str
    role: Role
    account_id: str | None = None
    token_id: str | None = None
    user_id: str | None = None
    source_ip: str | None = None

    @classmethod
    def system(cls, what: str, *, source_ip: str | None = None) -> Principal:
        """The platform itself or a local operator command (``system:bootstrap``, ``cli:...``)."""
        return cls(actor=what, role=Role.ADMIN, source_ip=source_ip)

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise PermissionDenied(
                f"expected a role allowed {permission.value}; this token has role "
                f"{self.role.value}",
            )

    def sees(self, account_id: str | None) -> bool:
        """Whether a resource of ``account_id`` (None: platform-owned) is visible at all."""
        return self.account_id is None or self.account_id == account_id

    def require_visible(self, account_id: str | None, missing: NotFound) -> None:
        """Hide other accounts' resources behind the same 404 as a resource that does not exist."""
        if not self.sees(account_id):
            raise missing
