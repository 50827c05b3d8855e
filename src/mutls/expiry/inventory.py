"""The expiry inventory (issue 7 item 2): one list of everything with a notAfter.

Kinds, and where each comes from:

- ``platform_ca``: every certificate in the platform CA rows' chains (intermediate and root).
- ``customer_ca``: every certificate in the chains accounts trust (seed 004's own CAs).
- ``issued_certificate``: client certificates the platform CA issued, not revoked, and not
  already replaced by a live renewal (the successor is listed instead; the old one stays
  valid until it expires, but nobody needs to be told to renew it).
- ``secret_certificate``: each current value of a vault certificate secret, per environment,
  from the value's public metadata: the leaf (``valid_until``), and the chain's and the CA
  bundle's certificates (``chain`` and ``ca_bundle``, named ``NAME (chain 1)``, ``NAME (CA
  bundle 1)``). Values stored before those fields existed list their leaf only; uploading them
  again adds the rest. Nothing is decrypted.
- ``gateway_server``: the file in ``MUTLS_GATEWAY_CERT_FILE`` when set. Without it the platform
  CA issues the gateway its certificate at start and renews it as the gateway runs; it is not in
  the store, and the inventory says so in its notes instead of guessing.
- ``partner_server`` / ``gateway_client``: certificates the data planes saw on the wire
  (``observed_certificates``, see :mod:`mutls.expiry.observed`).

Visibility: ``expiry:read``; an account-scoped token sees its own account's items only (never
the platform's CAs or the gateway's certificate). Reading only: no audit row.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.errors import InvalidArgument, MutlsError
from mutls.expiry.levels import ExpiryLevel, days_remaining, level_of, parse_within
from mutls.files import read_input
from mutls.pki.inspect import name_to_text, serial_hex
from mutls.pki.loader import DEFAULT_MAX_INPUT, load_certificates
from mutls.store.database import Database
from mutls.store.models import (
    Account,
    CertificateAuthority,
    IssuedCertificate,
    ObservedCertificate,
    Secret,
    SecretValue,
)

__all__ = [
    "ExpiryFilter",
    "ExpiryInventory",
    "ExpiryItem",
    "ExpiryKind",
    "expiry_inventory",
    "parse_kind",
    "parse_level",
]

_CN = re.compile(r"(?:^|,)CN=((?:[^,\\]|\\.)*)")


class ExpiryKind(enum.StrEnum):
    PLATFORM_CA = "platform_ca"
    CUSTOMER_CA = "customer_ca"
    ISSUED_CERTIFICATE = "issued_certificate"
    SECRET_CERTIFICATE = "secret_certificate"
    GATEWAY_SERVER = "gateway_server"
    PARTNER_SERVER = "partner_server"
    GATEWAY_CLIENT = "gateway_client"


@dataclass(frozen=True, kw_only=True)
class ExpiryItem:
    """One certificate with a notAfter. ``account`` is the account's name (None: platform)."""

    kind: ExpiryKind
    name: str
    id: str
    environment: str | None
    account: str | None
    account_id: str | None
    subject: str
    serial: str
    not_after: datetime
    days_remaining: int
    status: ExpiryLevel

    @property
    def key(self) -> str:
        """Stable identity for alert state: a new certificate (new serial) starts afresh."""
        return f"{self.kind.value}:{self.id}:{self.environment or ''}:{self.serial}"[:255]

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "name": self.name,
            "id": self.id,
            "environment": self.environment,
            "account": self.account,
            "account_id": self.account_id,
            "subject": self.subject,
            "serial": self.serial,
            "not_after": self.not_after.isoformat(),
            "days_remaining": self.days_remaining,
            "status": self.status.value,
        }


@dataclass(frozen=True, kw_only=True)
class ExpiryFilter:
    within_days: int | None = None
    """Only items whose notAfter is at most this many days after ``now`` (expired included)."""
    kind: ExpiryKind | None = None
    status: ExpiryLevel | None = None


@dataclass(frozen=True, kw_only=True)
class ExpiryInventory:
    items: list[ExpiryItem]
    notes: list[str] = field(default_factory=list)


def parse_kind(raw: str) -> ExpiryKind:
    try:
        return ExpiryKind(raw.strip().lower())
    except ValueError:
        raise InvalidArgument(
            f"expected kind as one of {', '.join(k.value for k in ExpiryKind)}; found {raw[:40]!r}"
        ) from None


def parse_level(raw: str) -> ExpiryLevel:
    try:
        return ExpiryLevel(raw.strip().lower())
    except ValueError:
        raise InvalidArgument(
            f"expected status as one of {', '.join(s.value for s in ExpiryLevel)}; "
            f"found {raw[:40]!r}"
        ) from None


def common_name(subject: str) -> str:
    """The CN of an RFC 4514 subject, or the whole subject when it has none."""
    match = _CN.search(subject)
    return match.group(1).replace("\\", "") if match else subject


@dataclass(frozen=True, kw_only=True)
class _Row:
    """An item before ``now`` is applied."""

    kind: ExpiryKind
    name: str
    id: str
    environment: str | None
    account_id: str | None
    subject: str
    serial: str
    not_after: datetime


def _chain_rows(ca: CertificateAuthority, kind: ExpiryKind, notes: list[str]) -> Iterator[_Row]:
    try:
        chain = load_certificates(ca.chain_pem.encode())
    except MutlsError:
        notes.append(f"{kind.value} {ca.name}: its stored chain could not be read")
        return
    for position, certificate in enumerate(chain):
        subject = name_to_text(certificate.subject)
        yield _Row(
            kind=kind,
            name=ca.name if position == 0 else f"{ca.name}/{common_name(subject)}",
            id=ca.id,
            environment=None,
            account_id=ca.account_id,
            subject=subject,
            serial=serial_hex(certificate.serial_number),
            not_after=certificate.not_valid_after_utc,
        )


def _ca_rows(session: Session, notes: list[str]) -> Iterator[_Row]:
    for ca in session.execute(
        select(CertificateAuthority).order_by(CertificateAuthority.name)
    ).scalars():
        kind = ExpiryKind.PLATFORM_CA if ca.kind == "platform" else ExpiryKind.CUSTOMER_CA
        yield from _chain_rows(ca, kind, notes)


def _issued_rows(session: Session) -> Iterator[_Row]:
    successor = IssuedCertificate.__table__.alias("successor")
    replaced = (
        select(successor.c.renewed_from_id)
        .where(successor.c.renewed_from_id.is_not(None), successor.c.revoked_at.is_(None))
        .scalar_subquery()
    )
    rows = session.execute(
        select(IssuedCertificate).where(
            IssuedCertificate.revoked_at.is_(None), IssuedCertificate.id.not_in(replaced)
        )
    ).scalars()
    for row in rows:
        yield _Row(
            kind=ExpiryKind.ISSUED_CERTIFICATE,
            name=common_name(row.subject),
            id=row.id,
            environment=None,
            account_id=row.account_id,
            subject=row.subject,
            serial=row.serial,
            not_after=row.not_after,
        )


def _secret_rows(session: Session) -> Iterator[_Row]:
    rows = session.execute(
        select(Secret, SecretValue)
        .join(SecretValue, SecretValue.secret_id == Secret.id)
        .where(
            Secret.secret_type == "certificate",
            Secret.internal.is_(False),
            SecretValue.current.is_(True),
            SecretValue.destroyed_at.is_(None),
            SecretValue.valid_until.is_not(None),
        )
    ).all()
    for secret, value in rows:
        assert value.valid_until is not None  # filtered above
        yield _Row(
            kind=ExpiryKind.SECRET_CERTIFICATE,
            name=secret.name,
            id=secret.id,
            environment=value.environment,
            account_id=secret.account_id,
            subject=str(value.meta.get("subject", "")),
            serial=str(value.meta.get("serial", "")),
            not_after=value.valid_until,
        )
        for field_name, label in (("chain", "chain"), ("ca_bundle", "CA bundle")):
            entries = value.meta.get(field_name)
            for number, entry in enumerate(entries if isinstance(entries, list) else [], 1):
                not_after = _parsed_time(
                    entry.get("valid_until") if isinstance(entry, dict) else None
                )
                if not_after is None:
                    continue
                yield _Row(
                    kind=ExpiryKind.SECRET_CERTIFICATE,
                    name=f"{secret.name} ({label} {number})",
                    id=secret.id,
                    environment=value.environment,
                    account_id=secret.account_id,
                    subject=str(entry.get("subject", "")),
                    serial=str(entry.get("serial", "")),
                    not_after=not_after,
                )


def _parsed_time(value: object) -> datetime | None:
    """An ISO 8601 time from stored metadata, timezone-aware, or None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _observed_rows(session: Session) -> Iterator[_Row]:
    for row in session.execute(select(ObservedCertificate)).scalars():
        kind = ExpiryKind(row.kind)
        name = common_name(row.subject)
        if kind is ExpiryKind.PARTNER_SERVER and row.route:
            name = f"{row.route}/{name}"
        yield _Row(
            kind=kind,
            name=name,
            id=row.fingerprint_sha256,
            environment=row.environment,
            account_id=row.account_id,
            subject=row.subject,
            serial=row.serial,
            not_after=row.not_after,
        )


def _gateway_rows(cert_file: Path | None, notes: list[str]) -> Iterator[_Row]:
    if cert_file is None:
        notes.append(
            "gateway_server: not listed; without MUTLS_GATEWAY_CERT_FILE the platform CA issues "
            "the gateway its certificate at start and again at two thirds of its life "
            "(MUTLS_SERVER_CERT_DAYS), so it cannot expire while the gateway runs"
        )
        return
    try:
        chain: Sequence[x509.Certificate] = load_certificates(
            read_input(cert_file, max_size=DEFAULT_MAX_INPUT)
        )
    except MutlsError as error:
        notes.append(f"gateway_server: {cert_file} could not be read ({error.code})")
        return
    if chain:
        leaf = chain[0]
        subject = name_to_text(leaf.subject)
        yield _Row(
            kind=ExpiryKind.GATEWAY_SERVER,
            name=common_name(subject),
            id=str(cert_file),
            environment=None,
            account_id=None,
            subject=subject,
            serial=serial_hex(leaf.serial_number),
            not_after=leaf.not_valid_after_utc,
        )


def expiry_inventory(
    db: Database,
    principal: Principal,
    *,
    now: datetime,
    filters: ExpiryFilter | None = None,
    gateway_cert_file: Path | None = None,
) -> ExpiryInventory:
    """Every item the caller may see that matches ``filters``, soonest notAfter first."""
    principal.require(Permission.EXPIRY_READ)
    wanted = filters or ExpiryFilter()
    if wanted.within_days is not None:
        parse_within(wanted.within_days)  # range check
    notes: list[str] = []
    with db.read() as session:
        accounts = {str(i): str(n) for i, n in session.execute(select(Account.id, Account.name))}
        rows = [
            *_ca_rows(session, notes),
            *_issued_rows(session),
            *_secret_rows(session),
            *_observed_rows(session),
        ]
    if principal.account_id is None:
        rows.extend(_gateway_rows(gateway_cert_file, notes))
    items: list[ExpiryItem] = []
    for row in rows:
        if principal.account_id is not None and row.account_id != principal.account_id:
            continue
        if wanted.kind is not None and row.kind is not wanted.kind:
            continue
        remaining = days_remaining(row.not_after, now)
        if wanted.within_days is not None and (row.not_after - now).total_seconds() > (
            wanted.within_days * 86400
        ):
            continue
        status = level_of(row.not_after, now)
        if wanted.status is not None and status is not wanted.status:
            continue
        items.append(
            ExpiryItem(
                kind=row.kind,
                name=row.name,
                id=row.id,
                environment=row.environment,
                account=accounts.get(row.account_id) if row.account_id else None,
                account_id=row.account_id,
                subject=row.subject,
                serial=row.serial,
                not_after=row.not_after,
                days_remaining=remaining,
                status=status,
            )
        )
    items.sort(key=lambda item: (item.not_after, item.kind.value, item.name))
    if principal.account_id is not None:
        notes = []  # notes speak of platform-wide things
    return ExpiryInventory(items=items, notes=notes)
