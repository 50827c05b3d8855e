"""Revoking client certificates: one by id or serial, or every one of a retired API version.

What a revocation changes is published at once by this process's CRL and OCSP responder (the
publisher is told) and within about a second by every other process (they poll the CA's
revision); see ``mutls.ca.publication``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Request

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.api.auth import platform_of, requires
from mutls.api.errors import documented
from mutls.api.routes.ca_public import publisher_of
from mutls.api.routes.certificates import certificate_out
from mutls.api.schemas import REF_PATTERN, CertificateOut
from mutls.api.schemas_ca import REASONS, RevokedList, RevokeRequest
from mutls.ca.revocation import revoke_api_version, revoke_certificate
from mutls.pki.authority import RevocationReason

__all__ = ["router"]

router = APIRouter(prefix="/admin", tags=["revocation"], responses=documented(401, 403, 422, 503))

CertificateRef = Annotated[
    str, Path(pattern=REF_PATTERN, description="the certificate's id (crt_...) or serial (hex)")
]
ApiVersion = Annotated[
    str,
    Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="the API version, e.g. v1"),
]
Manager = Annotated[Principal, requires(Permission.CERTIFICATES_MANAGE)]
PlatformAdmin = Annotated[Principal, requires(Permission.ACCOUNTS_WRITE, platform_wide=True)]
OptionalRevoke = Annotated[RevokeRequest | None, Body()]


def _reason(body: RevokeRequest | None, default: RevocationReason) -> RevocationReason:
    if body is None or body.reason is None:
        return default
    return REASONS[body.reason]


@router.post(
    "/certificates/{ref}/revoke", response_model=CertificateOut, responses=documented(404, 409)
)
def revoke(
    ref: CertificateRef, request: Request, principal: Manager, body: OptionalRevoke = None
) -> CertificateOut:
    """Revoke one certificate; the CRL and OCSP answers reflect it at once.

    Audited as ``certificate.revoke``. Revoking twice is 409 ``already_revoked``; another
    account's certificate is the same 404 as an unknown one.
    """
    platform = platform_of(request)
    view = revoke_certificate(
        platform.db,
        principal,
        ref,
        reason=_reason(body, RevocationReason.UNSPECIFIED),
        now=platform.clock(),
    )
    publisher_of(request).invalidate()
    return certificate_out(view)


@router.post("/api-versions/{version}/revoke", response_model=RevokedList)
def revoke_version(
    version: ApiVersion, request: Request, principal: PlatformAdmin, body: OptionalRevoke = None
) -> RevokedList:
    """Retire an API version (seed 001): revoke every live certificate allowed on it.

    Admin with a platform-wide token only. Reason ``cessation_of_operation`` unless given;
    one ``certificate.revoke`` audit row per certificate. Revoking a version with no live
    certificates is not an error: the answer lists none.
    """
    platform = platform_of(request)
    views = revoke_api_version(
        platform.db,
        principal,
        version,
        reason=_reason(body, RevocationReason.CESSATION_OF_OPERATION),
        now=platform.clock(),
    )
    publisher_of(request).invalidate()
    return RevokedList(api_version=version, revoked=[certificate_out(v) for v in views])
