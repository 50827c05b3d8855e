"""Renewal without downtime: a live certificate proves itself and gets its successor.

Seed 003 asks for rotation without downtime, which is why the quota leaves room for one more
certificate than a customer runs. The customer's client presents its current certificate over
mTLS (``POST /renew`` on the renewal listener) with a new CSR; the platform checks that the
certificate is one it issued to an account, that it is still valid and not revoked, and that the
CSR asks for the same names, then issues the successor through the normal issuance path (policy,
quota under the account lock, audit) with the same lifetime and API versions, and records
lineage (``renewed_from_id``). The old certificate keeps working until it expires or is revoked,
so the customer swaps certificates at its own pace.

The presented certificate's chain was verified by the TLS handshake against the platform CA; this
module re-checks everything it decides on (registry, dates, revocation) from the database, so a
handshake that skipped the time check (``check_time=False``, to answer in HTTP) is still safe.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from sqlalchemy import select

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Role
from mutls.ca.issuance import MAX_VALIDITY_DAYS, IssuedView, issue_certificate, load_csr
from mutls.ca.issuer import IssuingCA
from mutls.errors import (
    AccountMtlsDisabled,
    CertificateExpired,
    CertificateNotRenewable,
    CertificateNotYetValid,
    CertificateRevoked,
    RenewalNamesChanged,
)
from mutls.pki.authority import IssuerUrls
from mutls.pki.inspect import general_names_text, name_to_text, serial_hex, sha256_fingerprint
from mutls.store.database import Database
from mutls.store.models import Account, IssuedCertificate

__all__ = ["RENEW_ACTION", "renew_certificate", "renewal_validity_days"]

RENEW_ACTION = "certificate.renew"
_DATE = "%Y-%m-%d %H:%M UTC"


def renewal_validity_days(current: IssuedCertificate) -> int:
    """The successor lives as long as its predecessor did (whole days, within the maximum)."""
    lifetime = current.not_after - current.not_before
    return max(1, min(MAX_VALIDITY_DAYS, round(lifetime / timedelta(days=1))))


def _names(name: x509.Name, extensions: x509.Extensions) -> tuple[str, frozenset[str]]:
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = frozenset(general_names_text(san))
    except x509.ExtensionNotFound:
        sans = frozenset()
    return name_to_text(name), sans


def _check_usable(row: IssuedCertificate, account: Account, now: datetime) -> None:
    if row.revoked_at is not None:
        raise CertificateRevoked(
            f"expected a certificate that is not revoked; serial {row.serial} was revoked on "
            f"{row.revoked_at.strftime(_DATE)} ({row.revocation_reason or 'unspecified'})",
            hint="a revoked certificate cannot renew itself; issue a new one with "
            "`mutls cert issue` or in the portal",
        )
    if now >= row.not_after:
        raise CertificateExpired(
            f"expected a certificate that is still valid; serial {row.serial} expired on "
            f"{row.not_after.strftime(_DATE)}",
            hint="an expired certificate cannot renew itself; issue a new one with "
            "`mutls cert issue` or in the portal, and run `mutls renew --daemon` so it renews "
            "before it expires",
        )
    if now < row.not_before:
        raise CertificateNotYetValid(
            f"expected a certificate that is already valid; serial {row.serial} is valid from "
            f"{row.not_before.strftime(_DATE)}",
            hint="check this machine's clock",
        )
    if not account.mtls_enabled:
        raise AccountMtlsDisabled(
            f"expected mTLS to be enabled for account {account.name!r}; it is disabled"
        )


def renew_certificate(
    db: Database,
    issuer: IssuingCA,
    presented: x509.Certificate,
    csr_pem: bytes,
    *,
    now: datetime,
    urls: IssuerUrls | None = None,
    source_ip: str | None = None,
) -> IssuedView:
    """Issue the successor of ``presented`` (the verified client certificate) from ``csr_pem``.

    Refusals: ``certificate_not_renewable`` (not issued to an account by this CA),
    ``certificate_revoked``, ``certificate_expired``, ``certificate_not_yet_valid``,
    ``account_mtls_disabled``, ``renewal_names_changed``, every issuance rule
    (``csr_policy_violation``) and ``certificate_quota_exceeded``. Nothing is stored on refusal.
    """
    fingerprint = sha256_fingerprint(presented)
    with db.read() as session:
        row = session.execute(
            select(IssuedCertificate).where(IssuedCertificate.fingerprint_sha256 == fingerprint)
        ).scalar_one_or_none()
        if row is None or row.ca_id != issuer.ca_id:
            raise CertificateNotRenewable(
                f"expected a client certificate issued to an account by this platform; serial "
                f"{serial_hex(presented.serial_number)} ({name_to_text(presented.subject)}) is "
                "not one"
            )
        account = session.get(Account, row.account_id)
        if account is None:  # pragma: no cover - foreign key
            raise CertificateNotRenewable(f"serial {row.serial} belongs to no account")
        _check_usable(row, account, now)
        current_id, current_serial = row.id, row.serial
        api_versions = tuple(row.api_versions)
        validity_days = renewal_validity_days(row)
        principal = Principal(
            actor=f"certificate:{row.serial}",
            role=Role.MANAGE_MTLS,
            account_id=account.id,
            source_ip=source_ip,
        )
        account_id = account.id

    csr = load_csr(csr_pem)
    wanted = _names(csr.subject, csr.extensions)
    current = _names(presented.subject, presented.extensions)
    if wanted != current:
        raise RenewalNamesChanged(
            f"expected the CSR to ask for the names of serial {current_serial} (subject "
            f"{current[0]!r}, SANs {sorted(current[1])}); it asks for subject {wanted[0]!r}, "
            f"SANs {sorted(wanted[1])}"
        )
    return issue_certificate(
        db,
        issuer,
        principal,
        account_id,
        csr_pem,
        now=now,
        validity_days=validity_days,
        api_versions=api_versions,
        urls=urls,
        renewed_from_id=current_id,
        audit_action=RENEW_ACTION,
    )
