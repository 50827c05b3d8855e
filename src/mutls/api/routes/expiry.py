"""Expiry monitoring (issue 7): the inventory, and the alert check on demand.

``GET /admin/expiry`` needs ``expiry:read`` (admins, auditors; an account-scoped token sees its
own account's items). ``POST /admin/expiry/check`` needs ``expiry:check`` and a platform-wide
token: it sends the notifications that are due, exactly as the periodic check in ``mutls up``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.api.auth import platform_of, requires
from mutls.api.errors import documented
from mutls.expiry.alerts import run_expiry_check
from mutls.expiry.inventory import ExpiryFilter, expiry_inventory, parse_kind, parse_level
from mutls.expiry.levels import parse_within

__all__ = ["router"]

router = APIRouter(prefix="/admin/expiry", tags=["expiry"], responses=documented(401, 403, 503))
Filter = Annotated[str | None, Query(max_length=40)]


class ExpiryPage(BaseModel):
    items: list[dict[str, Any]]
    notes: list[str]


class ExpiryCheck(BaseModel):
    checked_at: str
    items: int
    channels: list[str]
    notifications: list[dict[str, Any]]
    notes: list[str]


@router.get("", response_model=ExpiryPage, responses=documented(422))
def list_expiry(
    *,
    request: Request,
    principal: Annotated[Principal, requires(Permission.EXPIRY_READ)],
    within: Annotated[
        str | None, Query(max_length=40, description="days, like 90d or 30; expired included")
    ] = None,
    kind: Filter = None,
    status: Filter = None,
) -> ExpiryPage:
    """Everything with a notAfter, soonest first: CAs, issued and vault certificates, the
    gateway's certificate and the certificates the data planes saw."""
    platform = platform_of(request)
    filters = ExpiryFilter(
        within_days=parse_within(within) if within is not None else None,
        kind=parse_kind(kind) if kind is not None else None,
        status=parse_level(status) if status is not None else None,
    )
    inventory = expiry_inventory(
        platform.db,
        principal,
        now=platform.clock(),
        filters=filters,
        gateway_cert_file=platform.settings.expiry.gateway_cert_file,
    )
    return ExpiryPage(items=[i.to_dict() for i in inventory.items], notes=inventory.notes)


@router.post("/check", response_model=ExpiryCheck)
def check_expiry(
    *, request: Request, principal: Annotated[Principal, requires(Permission.EXPIRY_CHECK)]
) -> ExpiryCheck:
    """Send the expiry notifications that are due now (each once); report what went out."""
    platform = platform_of(request)
    report = run_expiry_check(
        platform.db, platform.settings.expiry, platform.clock(), principal=principal
    )
    return ExpiryCheck.model_validate(report.to_dict())
