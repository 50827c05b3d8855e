"""Client certificates of accounts: issue from a CSR (or dry-run it), list and search, read one.

Seed 003's portal flow over HTTP: a "Manage mTLS" user of the account (or an admin) posts a CSR
and gets the certificate back, with the chain and the root so that the customer can build its
client bundle and check it with ``openssl verify``. The private key never reaches the provider.

Download formats (``?format=``): ``pem`` (default) is the JSON view with ``certificate_pem``,
``chain_pem`` (intermediates, no root: what a client sends) and ``ca_pem`` (the root); ``der`` is
the leaf alone as ``application/pkix-cert`` (RFC 2585); ``p7b`` is a degenerate PKCS#7 with the
leaf and the intermediates as ``application/pkcs7-mime`` (what Windows and Java import).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from mutls.accounts.mtls import get_mtls_settings
from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.api.auth import platform_of, requires
from mutls.api.errors import documented
from mutls.api.schemas import (
    REF_PATTERN,
    CertificateIssue,
    CertificateIssued,
    CertificateList,
    CertificateOut,
    DryRunOut,
)
from mutls.ca.inventory import CertificateStatus, InventoryEntry, get_certificate, list_certificates
from mutls.ca.issuance import IssuedView, check_csr, issue_certificate
from mutls.ca.issuer import IssuerCache, IssuingCA
from mutls.ca.publication import issuer_urls

__all__ = ["certificate_out", "issued_out", "issuers_of", "router"]

router = APIRouter(prefix="/admin", tags=["certificates"], responses=documented(401, 403, 422, 503))

AccountRef = Annotated[str, Path(pattern=REF_PATTERN, description="the account's id or name")]
CertificateRef = Annotated[
    str, Path(pattern=REF_PATTERN, description="the certificate's id (crt_...) or serial (hex)")
]
Manager = Annotated[Principal, requires(Permission.CERTIFICATES_MANAGE)]

PKIX_CERT = "application/pkix-cert"
PKCS7_MIME = "application/pkcs7-mime"
DownloadFormat = Literal["pem", "der", "p7b"]

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_ISSUE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": DryRunOut, "description": "dry_run: every broken rule, nothing issued"},
    201: {
        "description": "the certificate: JSON (format=pem), the DER leaf (format=der) or a "
        "PKCS#7 bundle of the leaf and intermediates (format=p7b)",
        "content": {PKIX_CERT: _BINARY, PKCS7_MIME: _BINARY},
    },
    **documented(404, 409, 413),
}


def issuers_of(request: Request) -> IssuerCache:
    issuers = getattr(request.app.state, "issuers", None)
    if not isinstance(issuers, IssuerCache):  # pragma: no cover - create_app always sets it
        raise TypeError("the app was not built by mutls.api.app.create_app")
    return issuers


def certificate_out(view: IssuedView, renewed_by_id: str | None = None) -> CertificateOut:
    return CertificateOut(**_fields(view), renewed_by_id=renewed_by_id)


def _fields(view: IssuedView) -> dict[str, Any]:
    return {
        "id": view.id,
        "account_id": view.account_id,
        "ca_id": view.ca_id,
        "serial": view.serial,
        "subject": view.subject,
        "sans": list(view.sans),
        "fingerprint_sha256": view.fingerprint_sha256,
        "not_before": view.not_before,
        "not_after": view.not_after,
        "status": view.status,
        "api_versions": list(view.api_versions),
        "renewed_from_id": view.renewed_from_id,
        "revoked_at": view.revoked_at,
        "revocation_reason": view.revocation_reason,
        "created_at": view.created_at,
        "created_by": view.created_by,
        "certificate_pem": view.certificate_pem,
    }


def issued_out(view: IssuedView, issuer: IssuingCA) -> CertificateIssued:
    """A newly issued certificate with what the customer installs beside it."""
    return CertificateIssued(
        **_fields(view),
        renewed_by_id=None,
        chain_pem=issuer.chain_pem(include_root=False),
        ca_pem=issuer.root.public_bytes(serialization.Encoding.PEM).decode(),
    )


def _entry_out(entry: InventoryEntry) -> CertificateOut:
    return certificate_out(entry.certificate, entry.renewed_by_id)


@router.post(
    "/accounts/{ref}/certificates",
    status_code=201,
    response_model=CertificateIssued,
    responses=_ISSUE_RESPONSES,
)
def issue(
    ref: AccountRef,
    body: CertificateIssue,
    request: Request,
    principal: Manager,
    download: Annotated[
        DownloadFormat, Query(alias="format", description="pem (JSON, default), der or p7b")
    ] = "pem",
) -> Any:
    """Issue a client certificate from a CSR, within the account's live-certificate quota.

    Every broken issuance rule is reported at once (422 ``csr_policy_violation``); with
    ``dry_run`` the same check answers 200 with ``ok`` and the violations, and nothing is issued.
    A full quota is 409 ``certificate_quota_exceeded`` naming the live certificates. The
    certificate carries this platform's CRL distribution point and OCSP URL (``MUTLS_PUBLIC_URL``).
    """
    platform = platform_of(request)
    csr_pem = body.csr_pem.encode()
    if body.dry_run:
        get_mtls_settings(platform.db, principal, ref)  # the account exists and is visible
        result = check_csr(csr_pem, validity_days=body.validity_days)
        return JSONResponse(DryRunOut.model_validate(result.to_dict()).model_dump(mode="json"))
    now = platform.clock()
    issuer = issuers_of(request).platform(now=now)
    view = issue_certificate(
        platform.db,
        issuer,
        principal,
        ref,
        csr_pem,
        now=now,
        validity_days=body.validity_days,
        api_versions=body.api_versions,
        urls=issuer_urls(platform.settings.effective_public_url),
    )
    if download == "pem":
        return issued_out(view, issuer)
    leaf = x509.load_pem_x509_certificate(view.certificate_pem.encode())
    if download == "der":
        data, media_type, suffix = leaf.public_bytes(serialization.Encoding.DER), PKIX_CERT, "cer"
    else:
        data = pkcs7.serialize_certificates([leaf, *issuer.chain[:-1]], serialization.Encoding.DER)
        media_type, suffix = PKCS7_MIME, "p7b"
    return Response(
        content=data,
        status_code=201,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{view.serial}.{suffix}"'},
    )


@router.get(
    "/accounts/{ref}/certificates", response_model=CertificateList, responses=documented(404)
)
def list_account_certificates(
    ref: AccountRef,
    request: Request,
    principal: Manager,
    *,
    status: Annotated[CertificateStatus | None, Query(description="live, expired or revoked")] = (
        None
    ),
    expiring_within_days: Annotated[
        int | None, Query(ge=0, le=3650, description="live ones expiring within N days")
    ] = None,
    serial: Annotated[str | None, Query(max_length=130, description="hex, colons allowed")] = None,
    fingerprint: Annotated[
        str | None, Query(max_length=130, description="SHA-256, hex, colons allowed")
    ] = None,
    subject: Annotated[
        str | None, Query(max_length=200, description="a part of the subject, any case")
    ] = None,
) -> CertificateList:
    """The account's certificates, soonest expiry first, with lineage (renewed from / by)."""
    platform = platform_of(request)
    entries = list_certificates(
        platform.db,
        principal,
        ref,
        now=platform.clock(),
        status=status,
        expiring_within_days=expiring_within_days,
        serial=serial,
        fingerprint=fingerprint,
        subject=subject,
    )
    return CertificateList(certificates=[_entry_out(e) for e in entries])


@router.get("/certificates/{ref}", response_model=CertificateOut, responses=documented(404))
def get_one(ref: CertificateRef, request: Request, principal: Manager) -> CertificateOut:
    """One certificate by id or serial, if it belongs to an account the token may see."""
    platform = platform_of(request)
    return _entry_out(get_certificate(platform.db, principal, ref, now=platform.clock()))
