"""Issuing client certificates to accounts from their CSRs, within a live-certificate quota.

Seed 003's flow: a user with the "Manage mTLS" role of an account (or an admin) uploads a CSR;
the provider checks it against the issuance rules (every broken rule is reported), signs a client
certificate, and counts it against the account's quota of live certificates (five by default, so
a rotation fits). The private key never reaches the provider.

The quota holds under concurrency: the count and the insert happen in one write transaction that
first locks the account row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite write transactions
are exclusive), so twenty parallel requests with two slots left issue exactly two certificates.
The certificate is signed *before* the transaction starts, to keep the critical section short; a
certificate refused inside it (account unknown or not visible, mTLS disabled, quota full) is
discarded, never stored or returned.

``issue_certificate`` is the CA's hot path (issue 4; ``bench/ca_bench.py`` measures it), so it
parses the CSR once, checks the issuing CA once per :class:`IssuingCA` (:func:`prepare_issuer`),
and makes one transaction of a few pre-built SQLAlchemy Core statements (lock the account, count
its live certificates, insert the certificate, append the audit row) instead of an ORM unit of
work with a separate read transaction for the account.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Connection, Table, and_, bindparam, func, insert, or_, select
from sqlalchemy.orm import Session

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.accounts.service import find_account
from mutls.audit.log import append
from mutls.ca.issuer import IssuingCA
from mutls.errors import (
    AccountMtlsDisabled,
    AccountNotFound,
    CertificateQuotaExceeded,
    InvalidArgument,
    LiveCertificate,
    PolicyViolation,
    RuleViolation,
    UnsupportedFormat,
)
from mutls.pki.authority import IssuerUrls, PreparedIssuer, Profile, prepare_issuer
from mutls.pki.inspect import general_names_text, name_to_text, serial_hex, sha256_fingerprint
from mutls.pki.loader import load_material
from mutls.policy.issuance import DEFAULT_RULES, IssuanceRequest, evaluate
from mutls.store.database import Database
from mutls.store.ids import new_id
from mutls.store.models import Account, IssuedCertificate

__all__ = [
    "DEFAULT_VALIDITY_DAYS",
    "MAX_VALIDITY_DAYS",
    "DryRunResult",
    "IssuedView",
    "check_csr",
    "issue_certificate",
    "live_certificates",
    "load_csr",
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


def load_csr(csr_pem: bytes) -> x509.CertificateSigningRequest:
    """The CSR in ``csr_pem`` (PEM or DER), or ``unsupported_format`` naming what it holds."""
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
    return _dry_run(load_csr(csr_pem), validity_days)


def _dry_run(csr: x509.CertificateSigningRequest, validity_days: int | None) -> DryRunResult:
    request = IssuanceRequest(
        csr=csr,
        validity=_validity(validity_days),
        max_validity=timedelta(days=MAX_VALIDITY_DAYS),
    )
    violations = evaluate(request, DEFAULT_RULES)
    san = request.san
    return DryRunResult(
        ok=not violations,
        subject=name_to_text(request.subject),
        sans=general_names_text(san) if san is not None else (),
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


_prepared: weakref.WeakKeyDictionary[IssuingCA, PreparedIssuer] = weakref.WeakKeyDictionary()


def _prepared_issuer(issuer: IssuingCA) -> PreparedIssuer:
    """The issuing CA checked (CA flag, key match) once per ``IssuingCA`` object, not per CSR."""
    prepared = _prepared.get(issuer)
    if prepared is None:
        prepared = _prepared[issuer] = prepare_issuer(issuer.certificate, issuer.key)
    return prepared


# The hot path's statements, built once so each execution is a compiled-cache hit.
_accounts = cast("Table", Account.__table__)
_certificates = cast("Table", IssuedCertificate.__table__)
_LOCK_ACCOUNT = (
    select(
        _accounts.c.id,
        _accounts.c.name,
        _accounts.c.mtls_enabled,
        _accounts.c.certificate_quota,
    )
    .where(or_(_accounts.c.id == bindparam("ref"), _accounts.c.name == bindparam("ref")))
    .with_for_update()
)
_LIVE_CONDITION = and_(
    _certificates.c.account_id == bindparam("account_id"),
    _certificates.c.revoked_at.is_(None),
    _certificates.c.not_after > bindparam("now", type_=_certificates.c.not_after.type),
)
_COUNT_LIVE = select(func.count()).select_from(_certificates).where(_LIVE_CONDITION)
_LIST_LIVE = (
    select(_certificates.c.serial, _certificates.c.subject, _certificates.c.not_after)
    .where(_LIVE_CONDITION)
    .order_by(_certificates.c.not_after)
)
_INSERT_CERTIFICATE = insert(_certificates)


def _quota_exceeded(
    connection: Connection, account_id: str, name: str, quota: int, now: datetime
) -> CertificateQuotaExceeded:
    live = connection.execute(_LIST_LIVE, {"account_id": account_id, "now": now}).all()
    return CertificateQuotaExceeded(
        f"expected fewer than {quota} live certificates for account {name!r}; it has {len(live)}",
        live=[
            LiveCertificate(
                serial=c.serial,
                subject=c.subject,
                not_after=c.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            for c in live
        ],
    )


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
    csr = load_csr(csr_pem)
    dry = _dry_run(csr, validity_days)
    if not dry.ok:
        raise PolicyViolation(dry.violations)
    certificate = _prepared_issuer(issuer).sign_csr(
        csr, profile=Profile.CLIENT, now=now, validity=_validity(validity_days), urls=urls
    )
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = list(general_names_text(san))
    except x509.ExtensionNotFound:
        sans = []
    values: dict[str, Any] = {
        "id": new_id("crt"),
        "ca_id": issuer.ca_id,
        "account_id": None,
        "serial": serial_hex(certificate.serial_number),
        "subject": name_to_text(certificate.subject),
        "sans": sans,
        "fingerprint_sha256": sha256_fingerprint(certificate),
        "not_before": certificate.not_valid_before_utc,
        "not_after": certificate.not_valid_after_utc,
        "certificate_pem": certificate.public_bytes(serialization.Encoding.PEM).decode(),
        "api_versions": sorted(set(api_versions)),
        "renewed_from_id": renewed_from_id,
        "revoked_at": None,
        "revocation_reason": None,
        "created_at": now,
        "created_by": principal.actor,
    }
    with db.write_connection() as connection:
        # The row lock serialises every issuance to this account until commit; SQLite's write
        # transaction (BEGIN IMMEDIATE) already excludes every other writer.
        account = connection.execute(_LOCK_ACCOUNT, {"ref": account_ref}).first()
        if account is None or not principal.sees(account.id):
            raise AccountNotFound(f"expected an account with id {account_ref!r}; there is none")
        if not account.mtls_enabled:
            raise AccountMtlsDisabled(
                f"expected mTLS to be enabled for account {account.name!r} before issuing "
                "certificates; it is disabled"
            )
        # Counted after the lock is held, in a statement of its own: on PostgreSQL (READ
        # COMMITTED) each statement sees every transaction that committed before it began,
        # including the one whose lock we waited for.
        live = connection.execute(_COUNT_LIVE, {"account_id": account.id, "now": now}).scalar_one()
        if live >= account.certificate_quota:
            raise _quota_exceeded(
                connection, account.id, account.name, account.certificate_quota, now
            )
        values["account_id"] = account.id
        connection.execute(_INSERT_CERTIFICATE, values)
        append(
            connection,
            principal=principal,
            action=audit_action,
            account_id=account.id,
            resource_type="certificate",
            resource_id=values["id"],
            details={
                "serial": values["serial"],
                "subject": values["subject"],
                "fingerprint": values["fingerprint_sha256"],
                "not_after": values["not_after"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                "live_after": live + 1,
                "quota": account.certificate_quota,
                **({"renewed_from": renewed_from_id} if renewed_from_id else {}),
            },
            now=now,
        )
    return IssuedView(
        id=values["id"],
        account_id=account.id,
        ca_id=issuer.ca_id,
        serial=values["serial"],
        subject=values["subject"],
        sans=tuple(sans),
        fingerprint_sha256=values["fingerprint_sha256"],
        not_before=values["not_before"],
        not_after=values["not_after"],
        status="live" if values["not_after"] > now else "expired",
        api_versions=tuple(values["api_versions"]),
        renewed_from_id=renewed_from_id,
        revoked_at=None,
        revocation_reason=None,
        created_at=now,
        created_by=principal.actor,
        certificate_pem=values["certificate_pem"],
    )


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
