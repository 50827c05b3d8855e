"""Issuing client certificates to accounts from their CSRs, within a live-certificate quota.

Seed 003's flow: a user with the "Manage mTLS" role of an account (or an admin) uploads a CSR;
the provider checks it against the issuance rules (every broken rule is reported), signs a client
certificate, and counts it against the account's quota of live certificates (five by default, so
a rotation fits). The private key never reaches the provider.

The quota holds under concurrency: the count and the insert happen in one write transaction that
first locks the account row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite write transactions
are exclusive), so twenty parallel requests with two slots left issue exactly two certificates.
The certificate is signed *before* the lock is taken, to keep the critical section short; a
certificate refused by the quota is discarded, never stored or returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.accounts.service import find_account
from mutls.audit.log import record
from mutls.ca.issuer import IssuingCA
from mutls.errors import (
    AccountMtlsDisabled,
    CertificateQuotaExceeded,
    InvalidArgument,
    LiveCertificate,
    PolicyViolation,
    RuleViolation,
    UnsupportedFormat,
)
from mutls.pki.authority import IssuerUrls, Profile, sign_csr
from mutls.pki.inspect import general_names_text, name_to_text, serial_hex, sha256_fingerprint
from mutls.pki.loader import load_material
from mutls.policy.issuance import DEFAULT_RULES, IssuanceRequest, evaluate
from mutls.store.database import Database
from mutls.store.ids import new_id
from mutls.store.models import IssuedCertificate

__all__ = [
    "DEFAULT_VALIDITY_DAYS",
    "MAX_VALIDITY_DAYS",
    "DryRunResult",
    "IssuedView",
    "check_csr",
    "issue_certificate",
    "live_certificates",
]

DEFAULT_VALIDITY_DAYS = 365
MAX_VALIDITY_DAYS = 398
"""Client certificates follow the public-TLS ceiling of 398 days: short enough to rotate yearly."""
MAX_CSR_BYTES = 64 * 1024


@dataclass(frozen=True, kw_only=True)
class IssuedView:
    """An issued certificate: public facts, status at ``now``, and the PEM a customer downloads."""

    id: str
    account_id: str
    ca_id: str
    serial: str
    subject: str
    sans: tuple[str, ...]
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime
    status: str
    api_versions: tuple[str, ...]
    renewed_from_id: str | None
    revoked_at: datetime | None
    revocation_reason: str | None
    created_at: datetime
    created_by: str
    certificate_pem: str

    @classmethod
    def of(cls, row: IssuedCertificate, now: datetime) -> IssuedView:
        if row.revoked_at is not None:
            status = "revoked"
        elif row.not_after <= now:
            status = "expired"
        else:
            status = "live"
        return cls(
            id=row.id,
            account_id=row.account_id,
            ca_id=row.ca_id,
            serial=row.serial,
            subject=row.subject,
            sans=tuple(row.sans),
            fingerprint_sha256=row.fingerprint_sha256,
            not_before=row.not_before,
            not_after=row.not_after,
            status=status,
            api_versions=tuple(row.api_versions),
            renewed_from_id=row.renewed_from_id,
            revoked_at=row.revoked_at,
            revocation_reason=row.revocation_reason,
            created_at=row.created_at,
            created_by=row.created_by,
            certificate_pem=row.certificate_pem,
        )


@dataclass(frozen=True, kw_only=True)
class DryRunResult:
    """What the portal shows while a user edits a CSR: every rule it breaks, nothing issued."""

    ok: bool
    subject: str
    sans: tuple[str, ...]
    violations: tuple[RuleViolation, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "subject": self.subject,
            "sans": list(self.sans),
            "violations": [v.to_dict() for v in self.violations],
        }


def _load_csr(csr_pem: bytes) -> x509.CertificateSigningRequest:
    material = load_material(csr_pem, max_size=MAX_CSR_BYTES)
    if material.csr is None:
        raise UnsupportedFormat(
            "expected a certificate signing request (CSR); the input holds none",
            hint="create one with `mutls csr new --cn NAME` or `openssl req -new`",
        )
    return material.csr


def _validity(days: int | None) -> timedelta:
    chosen = DEFAULT_VALIDITY_DAYS if days is None else days
    return timedelta(days=chosen)


def check_csr(csr_pem: bytes, *, validity_days: int | None = None) -> DryRunResult:
    """Validate without issuing: every broken rule, for live feedback."""
    csr = _load_csr(csr_pem)
    violations = evaluate(
        IssuanceRequest(
            csr=csr,
            validity=_validity(validity_days),
            max_validity=timedelta(days=MAX_VALIDITY_DAYS),
        ),
        DEFAULT_RULES,
    )
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = general_names_text(san)
    except x509.ExtensionNotFound:
        sans = ()
    return DryRunResult(
        ok=not violations,
        subject=name_to_text(csr.subject),
        sans=tuple(sans),
        violations=tuple(violations),
    )


def _live(session: Session, account_id: str, now: datetime) -> list[IssuedCertificate]:
    return list(
        session.execute(
            select(IssuedCertificate)
            .where(
                and_(
                    IssuedCertificate.account_id == account_id,
                    IssuedCertificate.revoked_at.is_(None),
                    IssuedCertificate.not_after > now,
                )
            )
            .order_by(IssuedCertificate.not_after)
        ).scalars()
    )


def live_certificates(
    db: Database, principal: Principal, account_ref: str, *, now: datetime
) -> list[IssuedView]:
    principal.require(Permission.CERTIFICATES_MANAGE)
    with db.read() as session:
        account = find_account(session, principal, account_ref)
        return [IssuedView.of(row, now) for row in _live(session, account.id, now)]


def issue_certificate(
    db: Database,
    issuer: IssuingCA,
    principal: Principal,
    account_ref: str,
    csr_pem: bytes,
    *,
    now: datetime,
    validity_days: int | None = None,
    api_versions: Sequence[str] = (),
    urls: IssuerUrls | None = None,
    renewed_from_id: str | None = None,
    audit_action: str = "certificate.issue",
) -> IssuedView:
    """Check the CSR, sign it, and record it against the account's quota, all or nothing.

    ``renewed_from_id`` records lineage (a renewal names the certificate it succeeds);
    ``audit_action`` names the operation in the audit log (``certificate.renew`` for renewals).
    """
    principal.require(Permission.CERTIFICATES_MANAGE)
    if validity_days is not None and not 1 <= validity_days <= MAX_VALIDITY_DAYS:
        raise InvalidArgument(
            f"expected validity_days between 1 and {MAX_VALIDITY_DAYS}; found {validity_days}"
        )
    dry = check_csr(csr_pem, validity_days=validity_days)
    if not dry.ok:
        raise PolicyViolation(dry.violations)
    with db.read() as session:
        account = find_account(session, principal, account_ref)
        if not account.mtls_enabled:
            raise AccountMtlsDisabled(
                f"expected mTLS to be enabled for account {account.name!r} before issuing "
                "certificates; it is disabled"
            )
    certificate = sign_csr(
        _load_csr(csr_pem),
        issuer=issuer.certificate,
        issuer_key=issuer.key,
        profile=Profile.CLIENT,
        now=now,
        validity=_validity(validity_days),
        urls=urls,
    )
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = list(general_names_text(san))
    except x509.ExtensionNotFound:
        sans = []
    row = IssuedCertificate(
        id=new_id("crt"),
        ca_id=issuer.ca_id,
        serial=serial_hex(certificate.serial_number),
        subject=name_to_text(certificate.subject),
        sans=sans,
        fingerprint_sha256=sha256_fingerprint(certificate),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        api_versions=sorted(set(api_versions)),
        renewed_from_id=renewed_from_id,
        created_at=now,
        created_by=principal.actor,
    )
    with db.write() as session:
        account = find_account(session, principal, account_ref, lock=True)
        live = _live(session, account.id, now)
        if len(live) >= account.certificate_quota:
            raise CertificateQuotaExceeded(
                f"expected fewer than {account.certificate_quota} live certificates for account "
                f"{account.name!r}; it has {len(live)}",
                live=[
                    LiveCertificate(
                        serial=c.serial,
                        subject=c.subject,
                        not_after=c.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    )
                    for c in live
                ],
            )
        row.account_id = account.id
        session.add(row)
        session.flush()
        record(
            session,
            principal=principal,
            action=audit_action,
            account_id=account.id,
            resource_type="certificate",
            resource_id=row.id,
            details={
                "serial": row.serial,
                "subject": row.subject,
                "fingerprint": row.fingerprint_sha256,
                "not_after": row.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "live_after": len(live) + 1,
                "quota": account.certificate_quota,
                **({"renewed_from": renewed_from_id} if renewed_from_id else {}),
            },
            now=now,
        )
        return IssuedView.of(row, now)


def count_live(db: Database, account_id: str, *, now: datetime) -> int:
    with db.read() as session:
        return int(
            session.execute(
                select(func.count())
                .select_from(IssuedCertificate)
                .where(
                    IssuedCertificate.account_id == account_id,
                    IssuedCertificate.revoked_at.is_(None),
                    IssuedCertificate.not_after > now,
                )
            ).scalar_one()
        )
