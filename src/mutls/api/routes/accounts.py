"""Accounts (organisations): create, list, read; their mTLS settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from mutls.accounts import service
from mutls.accounts.mtls import MtlsSettings, get_mtls_settings, update_mtls_settings
from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.api.auth import platform_of, requires
from mutls.api.errors import documented
from mutls.api.schemas import (
    REF_PATTERN,
    AccountCreate,
    AccountList,
    AccountOut,
    MtlsSettingsOut,
    MtlsSettingsUpdate,
)
from mutls.errors import PermissionDenied
from mutls.store.models import Account

__all__ = ["account_out", "mtls_out", "router"]

router = APIRouter(
    prefix="/admin/accounts", tags=["accounts"], responses=documented(401, 403, 422, 503)
)

AccountRef = Annotated[str, Path(pattern=REF_PATTERN, description="the account's id or name")]


def account_out(account: Account) -> AccountOut:
    return AccountOut(
        id=account.id,
        name=account.name,
        display_name=account.display_name,
        created_at=account.created_at,
        created_by=account.created_by,
    )


@router.post("", status_code=201, response_model=AccountOut, responses=documented(409, 413))
def create_account(
    body: AccountCreate,
    request: Request,
    principal: Annotated[Principal, requires(Permission.ACCOUNTS_WRITE)],
) -> AccountOut:
    """Create an account. Needs a platform-wide admin token."""
    platform = platform_of(request)
    account = service.create_account(
        platform.db,
        principal,
        name=body.name,
        display_name=body.display_name,
        now=platform.clock(),
    )
    return account_out(account)


@router.get("", response_model=AccountList)
def list_accounts(
    request: Request, principal: Annotated[Principal, requires(Permission.ACCOUNTS_READ)]
) -> AccountList:
    """Accounts by name; an account-scoped token sees only its own."""
    accounts = service.list_accounts(platform_of(request).db, principal)
    return AccountList(accounts=[account_out(a) for a in accounts])


@router.get("/{ref}", response_model=AccountOut, responses=documented(404))
def get_account(
    ref: AccountRef,
    request: Request,
    principal: Annotated[Principal, requires(Permission.ACCOUNTS_READ)],
) -> AccountOut:
    """One account, by id or name."""
    return account_out(service.get_account(platform_of(request).db, principal, ref))


def mtls_out(settings: MtlsSettings) -> MtlsSettingsOut:
    return MtlsSettingsOut(
        account_id=settings.account_id,
        enabled=settings.enabled,
        enforced=settings.enforced,
        certificate_quota=settings.certificate_quota,
        allowed_routes=list(settings.allowed_routes),
        ip_allowlist=list(settings.ip_allowlist),
    )


@router.get("/{ref}/mtls", response_model=MtlsSettingsOut, responses=documented(404))
def get_mtls(
    ref: AccountRef,
    request: Request,
    principal: Annotated[Principal, requires(Permission.ACCOUNTS_READ)],
) -> MtlsSettingsOut:
    """The account's mTLS settings: opt-in, enforcement, quota, routes, source allowlist."""
    return mtls_out(get_mtls_settings(platform_of(request).db, principal, ref))


@router.put("/{ref}/mtls", response_model=MtlsSettingsOut, responses=documented(404, 413))
def put_mtls(
    ref: AccountRef,
    body: MtlsSettingsUpdate,
    request: Request,
    principal: Annotated[Principal, requires(Permission.ACCOUNTS_WRITE)],
) -> MtlsSettingsOut:
    """Change the fields given, keep the rest. Platform admins only: an account cannot raise its
    own quota or widen its own allowlist."""
    if principal.account_id is not None:
        # The service would answer 404 (it hides every account from a scoped writer); a 403 is
        # the honest answer here, since the caller can read its own settings.
        raise PermissionDenied(
            "expected a platform-wide admin token to change mTLS settings; this token is "
            f"scoped to account {principal.account_id}",
            hint="an account cannot raise its own quota or widen its own allowlist; ask the "
            "platform's admin",
        )
    platform = platform_of(request)
    settings = update_mtls_settings(
        platform.db,
        principal,
        ref,
        now=platform.clock(),
        enabled=body.enabled,
        enforced=body.enforced,
        certificate_quota=body.certificate_quota,
        allowed_routes=body.allowed_routes,
        ip_allowlist=body.ip_allowlist,
    )
    return mtls_out(settings)
