"""The certificate inventory: an account's issued certificates, searched, with their lineage.

Issue 4, item 5: list and search by account, status (live, expired, revoked), expiry window,
serial, fingerprint and subject, each with where it came from (``renewed_from_id``) and what
replaced it (``renewed_by_id``, computed: the newest certificate renewed from it).

Visibility follows the account rules everywhere else: an account-scoped token sees its own
account only, and another account's certificate is the same 404 as one that does not exist.
Serials and fingerprints are matched in any case and with or without colons, as people paste
them from ``openssl x509 -serial`` or a browser's certificate viewer.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.accounts.service import find_account
from mutls.ca.issuance import IssuedView
from mutls.errors import CertificateNotFound, InvalidArgument
from mutls.store.database import Database
from mutls.store.models import IssuedCertificate

__all__ = [
    "MAX_EXPIRING_WITHIN_DAYS",
    "MAX_LISTED",
    "CertificateStatus",
    "InventoryEntry",
    "get_certificate",
    "list_certificates",
]

MAX_LISTED = 1000
"""A listing is bounded; quotas keep live certificates few, history is what grows."""
MAX_EXPIRING_WITHIN_DAYS = 3650
MAX_SUBJECT_FILTER = 200
_HEX = re.compile(r"^[0-9A-F]+$")


class CertificateStatus(enum.StrEnum):
    LIVE = "live"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True, kw_only=True)
class InventoryEntry:
    """An issued certificate as the inventory shows it: the view plus its successor."""

    certificate: IssuedView
    renewed_by_id: str | None


def _hex_filter(value: str, what: str, example: str) -> str:
    """Upper-case hex without separators, or an InvalidArgument naming the problem."""
    cleaned = value.strip().replace(":", "").replace(" ", "").upper()
    if not cleaned or not _HEX.fullmatch(cleaned) or len(cleaned) > 128:
        raise InvalidArgument(f"expected a {what} in hex like {example}; found {value!r}")
    return cleaned


def _serial_key(value: str) -> str:
    """Serials are stored padded to whole bytes, as openssl prints them."""
    cleaned = _hex_filter(value, "serial", "3A7F09").lstrip("0") or "0"
    return cleaned.zfill(len(cleaned) + len(cleaned) % 2)


def _fingerprint_key(value: str) -> str:
    cleaned = _hex_filter(value, "SHA-256 fingerprint", "AB:CD:...")
    if len(cleaned) != 64:
        raise InvalidArgument(
            f"expected a SHA-256 fingerprint of 32 bytes (64 hex digits); found {len(cleaned)} "
            "hex digits"
        )
    return ":".join(cleaned[i : i + 2] for i in range(0, 64, 2))


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _status_clause(status: CertificateStatus, now: datetime) -> ColumnElement[bool]:
    if status is CertificateStatus.REVOKED:
        return IssuedCertificate.revoked_at.is_not(None)
    if status is CertificateStatus.EXPIRED:
        return and_(IssuedCertificate.revoked_at.is_(None), IssuedCertificate.not_after <= now)
    return and_(IssuedCertificate.revoked_at.is_(None), IssuedCertificate.not_after > now)


def _successors(session: Session, ids: Sequence[str]) -> dict[str, str]:
    """For each id, the newest certificate renewed from it."""
    if not ids:
        return {}
    rows = session.execute(
        select(IssuedCertificate.renewed_from_id, IssuedCertificate.id)
        .where(IssuedCertificate.renewed_from_id.in_(list(ids)))
        .order_by(IssuedCertificate.created_at, IssuedCertificate.id)
    ).all()
    return {str(parent): str(child) for parent, child in rows}  # the newest wins


def list_certificates(
    db: Database,
    principal: Principal,
    account_ref: str,
    *,
    now: datetime,
    status: CertificateStatus | None = None,
    expiring_within_days: int | None = None,
    serial: str | None = None,
    fingerprint: str | None = None,
    subject: str | None = None,
) -> list[InventoryEntry]:
    """An account's certificates matching every filter given, soonest expiry first.

    ``expiring_within_days`` keeps live certificates whose ``not_after`` falls within that many
    days of ``now`` (the ones to rotate); ``subject`` is a case-insensitive substring.
    """
    principal.require(Permission.CERTIFICATES_MANAGE)
    clauses: list[ColumnElement[bool]] = []
    if status is not None:
        clauses.append(_status_clause(status, now))
    if expiring_within_days is not None:
        if not 0 <= expiring_within_days <= MAX_EXPIRING_WITHIN_DAYS:
            raise InvalidArgument(
                f"expected expiring_within_days between 0 and {MAX_EXPIRING_WITHIN_DAYS}; "
                f"found {expiring_within_days}"
            )
        clauses.append(_status_clause(CertificateStatus.LIVE, now))
        clauses.append(IssuedCertificate.not_after <= now + timedelta(days=expiring_within_days))
    if serial is not None:
        clauses.append(IssuedCertificate.serial == _serial_key(serial))
    if fingerprint is not None:
        clauses.append(IssuedCertificate.fingerprint_sha256 == _fingerprint_key(fingerprint))
    if subject is not None:
        if len(subject) > MAX_SUBJECT_FILTER:
            raise InvalidArgument(
                f"expected a subject filter of at most {MAX_SUBJECT_FILTER} characters; found "
                f"{len(subject)}"
            )
        pattern = f"%{_like_escaped(subject)}%"
        clauses.append(IssuedCertificate.subject.ilike(pattern, escape="\\"))
    with db.read() as session:
        account = find_account(session, principal, account_ref)
        rows = list(
            session.execute(
                select(IssuedCertificate)
                .where(IssuedCertificate.account_id == account.id, *clauses)
                .order_by(IssuedCertificate.not_after, IssuedCertificate.id)
                .limit(MAX_LISTED)
            ).scalars()
        )
        successors = _successors(session, [row.id for row in rows])
    return [
        InventoryEntry(certificate=IssuedView.of(row, now), renewed_by_id=successors.get(row.id))
        for row in rows
    ]


def get_certificate(
    db: Database, principal: Principal, ref: str, *, now: datetime
) -> InventoryEntry:
    """One certificate by id (``crt_...``) or serial, within the caller's account scope."""
    principal.require(Permission.CERTIFICATES_MANAGE)
    missing = CertificateNotFound(
        f"expected a certificate with id or serial {ref!r}; there is none"
    )
    with db.read() as session:
        row = session.get(IssuedCertificate, ref)
        if row is None:
            try:
                key = _serial_key(ref)
            except InvalidArgument:
                raise missing from None
            matches = [
                match
                for match in session.execute(
                    select(IssuedCertificate).where(IssuedCertificate.serial == key)
                ).scalars()
                if principal.sees(match.account_id)
            ]
            row = matches[0] if len(matches) == 1 else None
        if row is None or not principal.sees(row.account_id):
            raise missing
        successors = _successors(session, [row.id])
    return InventoryEntry(certificate=IssuedView.of(row, now), renewed_by_id=successors.get(row.id))
