"""Roles and what each may do (the table in ``mutls.accounts.roles``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from mutls.accounts.principal import Principal
from mutls.accounts.roles import ROLE_PERMISSIONS, Role
from mutls.api.auth import requires
from mutls.api.errors import documented
from mutls.api.schemas import RoleList, RoleOut

__all__ = ["ROLE_DESCRIPTIONS", "router"]

router = APIRouter(prefix="/admin", tags=["roles"], responses=documented(401, 503))

ROLE_DESCRIPTIONS = {
    Role.ADMIN: "everything on the admin API (scoped to one account when the token is)",
    Role.MANAGE_MTLS: "manage an account's mTLS certificates; read its account and users",
    Role.AUDITOR: "read the audit log, metadata and metrics; change nothing",
    Role.APP: "a machine identity for the egress proxy; on this API only whoami and roles",
}


@router.get("/roles", response_model=RoleList)
def list_roles(principal: Annotated[Principal, requires()]) -> RoleList:
    """Every role and its permissions. Any valid token may read this."""
    return RoleList(
        roles=[
            RoleOut(
                name=role,
                permissions=sorted(ROLE_PERMISSIONS[role]),
                description=ROLE_DESCRIPTIONS[role],
            )
            for role in Role
        ]
    )
