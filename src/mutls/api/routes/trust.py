"""An account's own CAs (seed 004): upload a customer's CA chain, list, remove.

Adding and removing need a platform-wide admin (trusting a CA decides who may call the API);
the account's ``manage-mtls`` users may list what their account trusts.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.api.auth import platform_of, requires
from mutls.api.errors import documented
from mutls.api.schemas import REF_PATTERN
from mutls.api.schemas_trust import TrustedCACreate, TrustedCAList, TrustedCAOut, trusted_ca_out
from mutls.ca.trust import add_account_ca, list_account_cas, remove_account_ca

__all__ = ["router"]

router = APIRouter(
    prefix="/admin/accounts", tags=["trusted CAs"], responses=documented(401, 403, 422, 503)
)

AccountRef = Annotated[str, Path(pattern=REF_PATTERN, description="the account's id or name")]
CaRef = Annotated[str, Path(pattern=REF_PATTERN, description="the trusted CA's id or name")]


@router.post(
    "/{ref}/cas", status_code=201, response_model=TrustedCAOut, responses=documented(404, 409, 413)
)
def add_ca(
    ref: AccountRef,
    body: TrustedCACreate,
    request: Request,
    principal: Annotated[Principal, requires(Permission.ACCOUNTS_WRITE, platform_wide=True)],
) -> TrustedCAOut:
    """Trust the account's own CA chain (root and intermediates, any order): client certificates
    that chain to it map to the account, optionally only those matching `subject_patterns`.
    Refuses a leaf (`not_a_ca`), an expired CA (`certificate_expired`), a chain without its
    root (`unknown_issuer`) and a CA trusted already (`ca_already_trusted`)."""
    platform = platform_of(request)
    view = add_account_ca(
        platform.db,
        principal,
        ref,
        body.chain_pem.encode("utf-8"),
        name=body.name,
        subject_patterns=body.subject_patterns,
        now=platform.clock(),
    )
    return trusted_ca_out(view)


@router.get("/{ref}/cas", response_model=TrustedCAList, responses=documented(404))
def list_cas(
    ref: AccountRef,
    request: Request,
    principal: Annotated[Principal, requires(Permission.CERTIFICATES_MANAGE)],
) -> TrustedCAList:
    """The CAs the account trusts, oldest first."""
    views = list_account_cas(platform_of(request).db, principal, ref)
    return TrustedCAList(cas=[trusted_ca_out(v) for v in views])


@router.delete("/{ref}/cas/{ca}", response_model=TrustedCAOut, responses=documented(404))
def remove_ca(
    ref: AccountRef,
    ca: CaRef,
    request: Request,
    principal: Annotated[Principal, requires(Permission.ACCOUNTS_WRITE, platform_wide=True)],
) -> TrustedCAOut:
    """Stop trusting the CA: its certificates no longer map to the account. Answers with what
    was removed."""
    platform = platform_of(request)
    return trusted_ca_out(remove_account_ca(platform.db, principal, ref, ca, now=platform.clock()))
