"""Bring your own CA (seed 004): an account's own CA chain in the provider's trust store.

A platform admin uploads the customer's CA chain (the root and any intermediates, in any order);
client certificates that chain to it map to that account, optionally restricted by glob patterns
on the leaf's subject CN or DNS SANs. The gateway asks :func:`match_account` for that mapping.

Decisions, and why:

- **Trust is a trust decision**, so adding or removing a CA needs a platform-wide admin; an
  account's ``manage-mtls`` users may only list what their account trusts.
- **Every upload ends in a self-signed root.** An intermediate alone would make the trust depend on
  whatever root the client happens to send; with the root stored, the gateway verifies the full
  path to a known anchor, as any RFC 5280 verifier does. Intermediates in the upload are stored
  too, so clients need not send them; clients may also send intermediates that were not uploaded
  (trusting a root trusts what it signs; subject patterns narrow that down).
- **One chain per upload, one row per upload.** ``chain_pem`` is stored issuing CA first, root
  last; ``subject`` and ``fingerprint_sha256`` describe the issuing (first) certificate, which is
  unique per account.
- **A root belongs to one account.** If two accounts trusted the same root, a certificate under it
  would map to either; that ambiguity is refused on upload (``ca_already_trusted``), and so is a
  chain that contains one of the platform's own CA certificates.
- **Expired, not-yet-valid and non-CA certificates are refused on upload** with the certificate
  named; a leaf uploaded by mistake is ``not_a_ca``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.accounts.service import find_account
from mutls.audit.log import record
from mutls.errors import (
    CAAlreadyTrusted,
    CertificateError,
    CertificateExpired,
    CertificateNotYetValid,
    ChainInvalid,
    InvalidArgument,
    NameTaken,
    NotACA,
    PermissionDenied,
    TrustedCANotFound,
    UnknownIssuer,
    WeakKey,
)
from mutls.pki.chain import is_self_signed, order_chain
from mutls.pki.inspect import leaf_names, name_to_text, serial_hex, sha256_fingerprint
from mutls.pki.keys import key_weakness
from mutls.pki.loader import load_certificates
from mutls.pki.verify import Purpose, verify_chain
from mutls.policy.authorize import names_match
from mutls.store.database import Database
from mutls.store.ids import new_id
from mutls.store.models import CertificateAuthority

__all__ = [
    "KIND_CUSTOMER",
    "MAX_CHAIN_LENGTH",
    "MAX_PATTERNS",
    "AccountMatch",
    "TrustedCAView",
    "add_account_ca",
    "list_account_cas",
    "match_account",
    "remove_account_ca",
    "subject_matches",
    "validate_patterns",
]

KIND_CUSTOMER = "customer"
MAX_CHAIN_LENGTH = 8
"""Real PKIs are two or three deep; the bound keeps hostile uploads cheap to check."""
MAX_PATTERNS = 64
MAX_PATTERN_LENGTH = 253
CA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# Glob patterns of ``*`` and ``?`` over the characters of host names and common names. Character
# classes (``[...]``) are left out on purpose: they are rarely what people mean and easy to get
# wrong in a trust rule.
PATTERN = re.compile(r"^[A-Za-z0-9*?][A-Za-z0-9*?. _@:-]*$")


@dataclass(frozen=True, kw_only=True)
class TrustedCAView:
    """One uploaded chain as the API shows it (all public facts)."""

    id: str
    name: str
    account_id: str
    subject: str
    fingerprint_sha256: str
    not_after: datetime
    subject_patterns: tuple[str, ...]
    chain_subjects: tuple[str, ...]  # issuing CA first, root last
    chain_pem: str
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, row: CertificateAuthority) -> TrustedCAView:
        chain = load_certificates(row.chain_pem.encode("ascii"))
        return cls(
            id=row.id,
            name=row.name,
            account_id=str(row.account_id),
            subject=row.subject,
            fingerprint_sha256=row.fingerprint_sha256,
            not_after=row.not_after,
            subject_patterns=tuple(row.subject_patterns),
            chain_subjects=tuple(name_to_text(c.subject) for c in chain),
            chain_pem=row.chain_pem,
            created_at=row.created_at,
            created_by=row.created_by,
        )


@dataclass(frozen=True, kw_only=True)
class AccountMatch:
    """The account a client certificate belongs to, and the customer CA that vouched for it."""

    account_id: str
    ca_id: str
    ca_name: str


# --- validation -----------------------------------------------------------------------------


def _label(cert: x509.Certificate) -> str:
    return f"{name_to_text(cert.subject)} (serial {serial_hex(cert.serial_number)})"


def validate_patterns(patterns: Sequence[str]) -> tuple[str, ...]:
    """Normalised (lower-case, sorted, unique) glob patterns, or ``invalid_argument``."""
    if len(patterns) > MAX_PATTERNS:
        raise InvalidArgument(
            f"expected at most {MAX_PATTERNS} subject patterns; found {len(patterns)}"
        )
    out: set[str] = set()
    for raw in patterns:
        value = raw.lower()
        if not value or len(value) > MAX_PATTERN_LENGTH or not PATTERN.fullmatch(value):
            raise InvalidArgument(
                "expected a subject pattern: a host name or common name where * matches any "
                f"characters and ? one character, like *.acme.example; found {raw[:80]!r}",
                hint="patterns match the leaf's subject CN or a DNS subjectAltName; "
                "character classes ([...]) are not supported",
            )
        out.add(value)
    return tuple(sorted(out))


def _ca_certificates(certs: Sequence[x509.Certificate], now: datetime) -> None:
    for position, cert in enumerate(certs, start=1):
        where = f"certificate {position} in the upload, {_label(cert)},"
        try:
            basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            basic = None
        if basic is None or not basic.ca:
            raise NotACA(
                f"expected CA certificates only; {where} is not a CA (no basicConstraints "
                "CA:TRUE): it looks like a client or server certificate",
                hint="upload the CA chain that issues the client certificates (root and "
                "intermediates), not a certificate it issued",
            )
        try:
            usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        if usage is not None and not usage.key_cert_sign:
            raise NotACA(f"expected a CA that may sign certificates; {where} lacks keyCertSign")
        weakness = key_weakness(cert.public_key())
        if weakness:
            raise WeakKey(
                f"expected CA keys the gateway accepts; {where} has a weak key: {weakness}"
            )
        if now >= cert.not_valid_after_utc:
            raise CertificateExpired(
                f"expected CA certificates valid now; {where} expired on "
                f"{cert.not_valid_after_utc.isoformat()}",
                hint="upload the CA's renewed certificate; the customer's CA publishes it",
            )
        if now < cert.not_valid_before_utc:
            raise CertificateNotYetValid(
                f"expected CA certificates valid now; {where} is valid only from "
                f"{cert.not_valid_before_utc.isoformat()}"
            )


def _ordered(certs: Sequence[x509.Certificate]) -> tuple[x509.Certificate, ...]:
    """The upload as one chain, issuing CA first and self-signed root last."""
    unique: list[x509.Certificate] = []
    for cert in certs:
        if cert not in unique:
            unique.append(cert)
    ordered = order_chain(unique)
    if ordered.extras:
        raise ChainInvalid(
            "expected one chain (each CA issued by the next, up to one root); "
            f"{', '.join(_label(c) for c in ordered.extras)} is not on the chain of "
            f"{_label(ordered.leaf)}",
            hint="upload each issuing CA's chain separately (each with its root)",
        )
    top = ordered.chain[-1]
    if not is_self_signed(top):
        raise UnknownIssuer(
            f"expected the chain to end in a self-signed root; {_label(top)} was issued by "
            f"{name_to_text(top.issuer)}, which is not in the upload",
            hint="append the root CA certificate to the upload; mutls anchors trust at the "
            "customer's root, so an intermediate alone is not accepted",
        )
    return ordered.chain


def _pem(certs: Sequence[x509.Certificate]) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certs)


# --- store helpers --------------------------------------------------------------------------


def _require_platform_admin(principal: Principal, what: str) -> None:
    principal.require(Permission.ACCOUNTS_WRITE)
    if principal.account_id is not None:
        raise PermissionDenied(
            f"expected a platform-wide admin token to {what}; this token is scoped to account "
            f"{principal.account_id}",
            hint="trusting a CA decides who may call the API; ask the platform's admin",
        )


def _conflicts(
    session: Session, account_id: str, chain: Sequence[x509.Certificate], name: str
) -> None:
    fingerprints = {sha256_fingerprint(c) for c in chain}
    root = sha256_fingerprint(chain[-1])
    for row in session.execute(select(CertificateAuthority)).scalars():
        stored = load_certificates(row.chain_pem.encode("ascii"))
        if row.kind != KIND_CUSTOMER:
            if fingerprints & {sha256_fingerprint(c) for c in stored}:
                raise CAAlreadyTrusted(
                    f"expected a customer's own CA; the upload contains the platform's CA "
                    f"{row.name!r}",
                    hint="certificates the platform issues map to accounts already; upload only "
                    "a CA the customer runs",
                )
            continue
        if row.account_id == account_id and row.fingerprint_sha256 == sha256_fingerprint(chain[0]):
            raise CAAlreadyTrusted(
                f"expected a CA the account does not trust yet; it trusts {row.subject} "
                f"already as {row.name!r} ({row.id})",
                hint="to change its subject patterns, remove it and upload it again",
            )
        if row.account_id != account_id and sha256_fingerprint(stored[-1]) == root:
            raise CAAlreadyTrusted(
                f"expected a root no other account trusts; root {_label(chain[-1])} is "
                f"trusted by another account ({row.name!r})",
                hint="a root maps its certificates to one account; the customer needs its own CA",
            )
    if session.execute(
        select(CertificateAuthority.id).where(CertificateAuthority.name == name)
    ).first():
        raise NameTaken(f"expected a new CA name; {name!r} is already taken")


# --- operations -----------------------------------------------------------------------------


def add_account_ca(
    db: Database,
    principal: Principal,
    account_ref: str,
    chain_pem: bytes,
    *,
    name: str | None = None,
    subject_patterns: Sequence[str] = (),
    now: datetime,
) -> TrustedCAView:
    """Trust an account's own CA chain; platform-wide admins only. Audited."""
    _require_platform_admin(principal, "add a CA to an account's trust")
    if name is not None and not CA_NAME.fullmatch(name):
        raise InvalidArgument(
            "expected a CA name of letters, digits, '.', '_' and '-', 1-128 long; "
            f"found {name[:80]!r}",
            hint="for example: acme-issuing-2026",
        )
    patterns = validate_patterns(subject_patterns)
    certs = load_certificates(chain_pem)
    if len(certs) > MAX_CHAIN_LENGTH:
        raise InvalidArgument(
            f"expected a CA chain of at most {MAX_CHAIN_LENGTH} certificates; found {len(certs)}"
        )
    _ca_certificates(certs, now)
    chain = _ordered(certs)
    issuing = chain[0]
    fingerprint = sha256_fingerprint(issuing)
    try:
        with db.write() as session:
            account = find_account(session, principal, account_ref)
            chosen = name or f"{account.name}-{fingerprint.replace(':', '')[:12].lower()}"
            _conflicts(session, account.id, chain, chosen)
            row = CertificateAuthority(
                id=new_id("ca"),
                name=chosen,
                kind=KIND_CUSTOMER,
                account_id=account.id,
                chain_pem=_pem(chain),
                subject=name_to_text(issuing.subject),
                fingerprint_sha256=fingerprint,
                not_after=min(c.not_valid_after_utc for c in chain),
                subject_patterns=list(patterns),
                crl_number=0,
                created_at=now,
                created_by=principal.actor,
            )
            session.add(row)
            session.flush()
            record(
                session,
                principal=principal,
                action="account.ca_add",
                account_id=account.id,
                resource_type="certificate_authority",
                resource_id=row.id,
                details={
                    "name": chosen,
                    "subject": row.subject,
                    "fingerprint_sha256": fingerprint,
                    "root": name_to_text(chain[-1].subject),
                    "subject_patterns": list(patterns),
                },
                now=now,
            )
            return TrustedCAView.of(row)
    except IntegrityError:
        raise CAAlreadyTrusted(
            "expected a CA the account does not trust yet, with a new name; "
            f"{name_to_text(issuing.subject)} or the name was added at the same time"
        ) from None


def list_account_cas(db: Database, principal: Principal, account_ref: str) -> list[TrustedCAView]:
    """The CAs an account trusts, oldest first; an account's manage-mtls users see their own."""
    principal.require(Permission.CERTIFICATES_MANAGE)
    with db.read() as session:
        account = find_account(session, principal, account_ref)
        rows = session.execute(
            select(CertificateAuthority)
            .where(
                CertificateAuthority.account_id == account.id,
                CertificateAuthority.kind == KIND_CUSTOMER,
            )
            .order_by(CertificateAuthority.created_at, CertificateAuthority.id)
        ).scalars()
        return [TrustedCAView.of(row) for row in rows]


def remove_account_ca(
    db: Database, principal: Principal, account_ref: str, ca_ref: str, *, now: datetime
) -> TrustedCAView:
    """Stop trusting one uploaded chain (by id or name); platform-wide admins only. Audited."""
    _require_platform_admin(principal, "remove a CA from an account's trust")
    with db.write() as session:
        account = find_account(session, principal, account_ref)
        row = session.execute(
            select(CertificateAuthority).where(
                (CertificateAuthority.id == ca_ref) | (CertificateAuthority.name == ca_ref),
                CertificateAuthority.account_id == account.id,
                CertificateAuthority.kind == KIND_CUSTOMER,
            )
        ).scalar()
        if row is None:
            raise TrustedCANotFound(
                f"expected a CA trusted by account {account.name!r} with id or name "
                f"{ca_ref[:80]!r}; there is none"
            )
        view = TrustedCAView.of(row)
        session.delete(row)
        record(
            session,
            principal=principal,
            action="account.ca_remove",
            account_id=account.id,
            resource_type="certificate_authority",
            resource_id=row.id,
            details={"name": row.name, "fingerprint_sha256": row.fingerprint_sha256},
            now=now,
        )
        return view


# --- the gateway's mapping ------------------------------------------------------------------


def subject_matches(leaf: x509.Certificate, patterns: Sequence[str]) -> bool:
    """True when there are no patterns, or one matches the leaf's CN or a DNS SAN.

    ``*`` matches any characters including dots: ``*.acme.example`` also matches
    ``a.b.acme.example``.
    """
    if not patterns:
        return True
    return names_match(leaf_names(leaf), patterns)


@dataclass(frozen=True, kw_only=True)
class _Trusted:
    row_id: str
    name: str
    account_id: str
    created_at: datetime
    chain: tuple[x509.Certificate, ...]
    patterns: tuple[str, ...]


def _load_trusted(db: Database) -> list[_Trusted]:
    with db.read() as session:
        rows = session.execute(
            select(CertificateAuthority)
            .where(CertificateAuthority.kind == KIND_CUSTOMER)
            .order_by(CertificateAuthority.created_at, CertificateAuthority.id)
        ).scalars()
        return [
            _Trusted(
                row_id=r.id,
                name=r.name,
                account_id=str(r.account_id),
                created_at=r.created_at,
                chain=tuple(load_certificates(r.chain_pem.encode("ascii"))),
                patterns=tuple(r.subject_patterns),
            )
            for r in rows
        ]


def match_account(
    db: Database,
    leaf: x509.Certificate,
    presented_chain: Sequence[x509.Certificate] = (),
    *,
    now: datetime,
) -> AccountMatch | None:
    """The account whose own CA issued ``leaf`` (verified for client use at ``now``), or None.

    Candidates are the uploads holding a CA named as the issuer of the leaf or of a presented
    intermediate (an in-memory index per call); each is verified with its root as the only
    anchor and its stored intermediates plus the presented ones as the path, then its subject
    patterns are applied. The oldest matching upload wins. The gateway's snapshot will hold
    :func:`_load_trusted`'s result instead of reading the store on the request path.
    """
    trusted = _load_trusted(db)
    by_subject: dict[bytes, list[_Trusted]] = {}
    for entry in trusted:
        for cert in entry.chain:
            by_subject.setdefault(cert.subject.public_bytes(), []).append(entry)
    presented = [c for c in presented_chain if c != leaf]
    wanted = {leaf.issuer.public_bytes(), *(c.issuer.public_bytes() for c in presented)}
    candidates = {e.row_id: e for key in wanted for e in by_subject.get(key, [])}
    for entry in sorted(candidates.values(), key=lambda e: (e.created_at, e.row_id)):
        if not subject_matches(leaf, entry.patterns):
            continue
        try:
            verify_chain(
                leaf,
                anchors=[entry.chain[-1]],
                intermediates=[*entry.chain[:-1], *presented],
                purpose=Purpose.CLIENT,
                at=now,
            )
        except (CertificateError, WeakKey):
            continue
        return AccountMatch(account_id=entry.account_id, ca_id=entry.row_id, ca_name=entry.name)
    return None
