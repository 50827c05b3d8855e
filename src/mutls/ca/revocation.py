"""Taking issued certificates back: one by id or serial, or all of a retired API version.

Each revocation is one write transaction that sets ``revoked_at`` and the RFC 5280 reason, bumps
the issuing CA's ``crl_number`` (the revision every CRL and OCSP cache compares against), and
writes the audit row; no audit, no revocation.

Visibility is the inventory's: an account-scoped token reaches its own account's certificates
only, and another account's certificate is the same 404 as one that does not exist. Revoking a
certificate twice is a 409 ``already_revoked`` that changes nothing (the first reason and time
stay on the CRL).

Bulk revocation of an API version (seed 001: a version is retired, so every certificate allowed
on it goes) is platform-wide and admin only. It writes **one audit row per certificate**
(``certificate.revoke`` with ``bulk: api_version``), so the history of any one certificate is
found by its id like any other revocation, plus nothing else: the rows share the transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.audit.log import record
from mutls.ca.issuance import IssuedView
from mutls.errors import AlreadyRevoked, CertificateNotFound, InvalidArgument, PermissionDenied
from mutls.pki.authority import RevocationReason, RevokedEntry
from mutls.store.database import Database
from mutls.store.models import CertificateAuthority, IssuedCertificate

__all__ = [
    "MAX_BULK_REVOCATIONS",
    "CaStatuses",
    "KnownSerial",
    "ca_revision",
    "ca_statuses",
    "revoke_api_version",
    "revoke_certificate",
    "revoked_entries",
]

MAX_BULK_REVOCATIONS = 100_000
"""A bound on one bulk revocation; quotas keep live certificates per account few."""
_HEX = re.compile(r"^[0-9A-F]{1,128}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True, kw_only=True)
class KnownSerial:
    """What the responders need to know about one issued serial."""

    serial: int
    revoked_at: datetime | None
    reason: RevocationReason | None


@dataclass(frozen=True, kw_only=True)
class CaStatuses:
    """Every serial a CA issued, read together with the revision they belong to."""

    revision: int
    serials: dict[int, KnownSerial]


def _serial_key(value: str) -> str | None:
    """The stored form of a serial (upper-case hex padded to whole bytes), or None."""
    cleaned = value.strip().replace(":", "").upper()
    if not _HEX.fullmatch(cleaned):
        return None
    cleaned = cleaned.lstrip("0") or "0"
    return cleaned.zfill(len(cleaned) + len(cleaned) % 2)


def _find(session: Session, principal: Principal, ref: str) -> IssuedCertificate:
    missing = CertificateNotFound(
        f"expected a certificate with id or serial {ref!r}; there is none",
        hint="list the account's certificates with GET /admin/accounts/{account}/certificates",
    )
    row = session.execute(
        select(IssuedCertificate).where(IssuedCertificate.id == ref).with_for_update()
    ).scalar()
    if row is None:
        key = _serial_key(ref)
        if key is None:
            raise missing
        matches = [
            match
            for match in session.execute(
                select(IssuedCertificate).where(IssuedCertificate.serial == key).with_for_update()
            ).scalars()
            if principal.sees(match.account_id)
        ]
        # The same serial from two CAs is ambiguous: ask for the id instead of guessing.
        row = matches[0] if len(matches) == 1 else None
    if row is None or not principal.sees(row.account_id):
        raise missing
    return row


def _bump_revision(session: Session, ca_id: str) -> None:
    # An atomic increment in SQL: concurrent revocations each move the revision on.
    session.execute(
        update(CertificateAuthority)
        .where(CertificateAuthority.id == ca_id)
        .values(crl_number=CertificateAuthority.crl_number + 1)
    )


def _revoke_row(
    session: Session,
    principal: Principal,
    row: IssuedCertificate,
    *,
    reason: RevocationReason,
    now: datetime,
    bulk: dict[str, str] | None = None,
) -> None:
    row.revoked_at = now
    row.revocation_reason = reason.value
    details: dict[str, object] = {
        "serial": row.serial,
        "reason": reason.value,
        "subject": row.subject,
        "ca_id": row.ca_id,
    }
    if bulk:
        details.update(bulk)
    record(
        session,
        principal=principal,
        action="certificate.revoke",
        account_id=row.account_id,
        resource_type="certificate",
        resource_id=row.id,
        details=details,
        now=now,
    )


def revoke_certificate(
    db: Database,
    principal: Principal,
    ref: str,
    *,
    reason: RevocationReason = RevocationReason.UNSPECIFIED,
    now: datetime,
) -> IssuedView:
    """Revoke one certificate by id (``crt_...``) or serial (hex, colons allowed)."""
    principal.require(Permission.CERTIFICATES_MANAGE)
    with db.write() as session:
        row = _find(session, principal, ref)
        if row.revoked_at is not None:
            raise AlreadyRevoked(
                f"expected a certificate that is not revoked; serial {row.serial} was revoked "
                f"on {row.revoked_at.strftime('%Y-%m-%dT%H:%M:%SZ')} "
                f"({row.revocation_reason or 'unspecified'})",
                hint="nothing to do: the CRL and OCSP responder already report it revoked",
            )
        _revoke_row(session, principal, row, reason=reason, now=now)
        _bump_revision(session, row.ca_id)
        session.flush()
        return IssuedView.of(row, now)


def revoke_api_version(
    db: Database,
    principal: Principal,
    version: str,
    *,
    reason: RevocationReason = RevocationReason.CESSATION_OF_OPERATION,
    now: datetime,
) -> list[IssuedView]:
    """Revoke every live certificate allowed on API ``version`` (seed 001: a retired version).

    Expired and already revoked certificates are left as they are. Admin with a platform-wide
    token only: it reaches every account.
    """
    principal.require(Permission.ACCOUNTS_WRITE)
    principal.require(Permission.CERTIFICATES_MANAGE)
    if principal.account_id is not None:
        raise PermissionDenied(
            "expected a platform-wide admin token; this token is scoped to account "
            f"{principal.account_id}",
            hint="retiring an API version revokes certificates of every account",
        )
    if not _VERSION.fullmatch(version):
        raise InvalidArgument(
            f"expected an API version name like v1 or 2024-01 (letters, digits, . _ -); "
            f"found {version!r}"
        )
    with db.write() as session:
        candidates = session.execute(
            select(IssuedCertificate)
            .where(IssuedCertificate.revoked_at.is_(None), IssuedCertificate.not_after > now)
            .order_by(IssuedCertificate.id)
            .with_for_update()
        ).scalars()
        # api_versions is a JSON list: filtered here, the same way on SQLite and PostgreSQL.
        rows = [row for row in candidates if version in row.api_versions]
        if len(rows) > MAX_BULK_REVOCATIONS:
            raise InvalidArgument(
                f"expected at most {MAX_BULK_REVOCATIONS} certificates in one bulk revocation; "
                f"API version {version!r} has {len(rows)}"
            )
        for row in rows:
            _revoke_row(
                session,
                principal,
                row,
                reason=reason,
                now=now,
                bulk={"bulk": "api_version", "api_version": version},
            )
        for ca_id in sorted({row.ca_id for row in rows}):
            _bump_revision(session, ca_id)
        session.flush()
        return [IssuedView.of(row, now) for row in rows]


def _reason(value: str | None) -> RevocationReason:
    try:
        return RevocationReason(value) if value else RevocationReason.UNSPECIFIED
    except ValueError:  # a reason written by a newer version: still revoked
        return RevocationReason.UNSPECIFIED


def revoked_entries(db: Database, ca_id: str) -> list[RevokedEntry]:
    """The CA's revoked serials for its CRL, in serial order."""
    return [
        RevokedEntry(
            serial=s.serial,
            revoked_at=s.revoked_at,
            reason=s.reason or RevocationReason.UNSPECIFIED,
        )
        for s in sorted(ca_statuses(db, ca_id).serials.values(), key=lambda s: s.serial)
        if s.revoked_at is not None
    ]


def ca_revision(db: Database, ca_id: str) -> int | None:
    """The CA's revision (its ``crl_number``), None if there is no such CA. One cheap query."""
    with db.read() as session:
        value = session.execute(
            select(CertificateAuthority.crl_number).where(CertificateAuthority.id == ca_id)
        ).scalar()
        return None if value is None else int(value)


def ca_statuses(db: Database, ca_id: str) -> CaStatuses:
    """Every serial the CA issued with its revocation, and the revision read *before* them, so
    a revocation committed in between shows up as a newer revision on the next check."""
    with db.read() as session:
        revision = session.execute(
            select(CertificateAuthority.crl_number).where(CertificateAuthority.id == ca_id)
        ).scalar()
        rows = session.execute(
            select(
                IssuedCertificate.serial,
                IssuedCertificate.revoked_at,
                IssuedCertificate.revocation_reason,
            ).where(IssuedCertificate.ca_id == ca_id)
        ).all()
    serials: dict[int, KnownSerial] = {}
    for serial_text, revoked_at, reason in rows:
        serial = int(serial_text, 16)
        serials[serial] = KnownSerial(
            serial=serial,
            revoked_at=revoked_at,
            reason=_reason(reason) if revoked_at is not None else None,
        )
    return CaStatuses(revision=int(revision or 0), serials=serials)
