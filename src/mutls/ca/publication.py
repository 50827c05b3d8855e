"""Publishing revocation: the CA chain, the CRL and the OCSP responder of each issuing CA.

Relying parties poll these, so they are served from memory: per process, per CA, the known
serials with their status (read once per revision), the current CRL, and pre-signed OCSP
responses keyed by (serial, CertID hash algorithm). The store is consulted only

* to check the CA's revision (its ``crl_number``, bumped by every revocation in the same
  transaction) at most once per :data:`REVISION_CHECK_INTERVAL`, so a revocation made by any
  process reaches every responder within about a second; a revocation in this process calls
  :meth:`Publisher.invalidate` and is seen at once;
* for a serial the cached list does not know, with one indexed lookup: certificates issued after
  the list was read do not change the revision (they are not revoked), and must not be reported
  ``unknown``.

Choices, each with its reason:

* **CRL**: valid :data:`CRL_VALIDITY` (7 days) and regenerated when half of that passed or the
  revision changed. Its ``thisUpdate`` starts a fixed time bucket (or is the latest revocation,
  if later) and its number is ``revision << 32 | bucket``: every process makes the same CRL at
  the same time, and numbers only grow, as RFC 5280 section 5.2.3 asks, without a shared write.
* **OCSP**: responses signed by a delegated signer (``mutls.pki.ocsp.build_ocsp_signer``) made
  per process at first use and kept in memory only, valid :data:`SIGNER_VALIDITY`, re-made when
  within :data:`SIGNER_RENEW_BEFORE` of expiry; the CA key signs certificates and CRLs, nothing
  else online. Responses are valid :data:`OCSP_VALIDITY` and re-signed at half of it; they carry
  no nonce (RFC 5019: a cached response cannot echo one). ``unknown`` answers are cached for
  :data:`UNKNOWN_VALIDITY` only.
* A request for another issuer is answered ``unauthorized`` and a request that does not parse
  ``malformedRequest`` (RFC 6960 section 2.3), both as successful HTTP exchanges.

Only CAs whose keys the platform holds publish here: today the platform CA. Accounts' own CAs
(seed 004) are trust anchors, not ours to publish, and their names are not revealed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from mutls.ca.issuer import PLATFORM_CA, IssuingCA
from mutls.ca.revocation import CaStatuses, KnownSerial, ca_revision, ca_statuses
from mutls.errors import NotFound, UnsupportedFormat
from mutls.pki.authority import IssuerUrls, RevocationReason, RevokedEntry, build_crl
from mutls.pki.inspect import serial_hex
from mutls.pki.keys import SigningKey
from mutls.pki.ocsp import (
    CertIdHash,
    CertificateStatus,
    CertStatus,
    FailureStatus,
    build_ocsp_signer,
    build_response,
    error_response,
    matches_issuer,
    parse_request,
)
from mutls.store.database import Database
from mutls.store.models import CertificateAuthority, IssuedCertificate

__all__ = [
    "CRL_VALIDITY",
    "MAX_CACHED_RESPONSES",
    "OCSP_VALIDITY",
    "REVISION_CHECK_INTERVAL",
    "SIGNER_RENEW_BEFORE",
    "SIGNER_VALIDITY",
    "UNKNOWN_VALIDITY",
    "IssuerSource",
    "OcspAnswer",
    "PublishedCrl",
    "Publisher",
    "issuer_urls",
]

CRL_VALIDITY = timedelta(days=7)
OCSP_VALIDITY = timedelta(days=1)
UNKNOWN_VALIDITY = timedelta(minutes=5)
SIGNER_VALIDITY = timedelta(days=30)
SIGNER_RENEW_BEFORE = timedelta(days=7)
REVISION_CHECK_INTERVAL = timedelta(seconds=1)
MAX_CACHED_RESPONSES = 100_000
"""Per CA. Past it the cache starts over: random serials cannot grow memory without bound."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BUCKET = CRL_VALIDITY / 2


class IssuerSource(Protocol):
    """Where the platform CA's signing material comes from: ``mutls.ca.issuer.IssuerCache``."""

    def platform(self, *, now: datetime) -> IssuingCA: ...


def issuer_urls(base_url: str, ca: str = PLATFORM_CA) -> IssuerUrls:
    """The CRL distribution point and OCSP URL that certificates of ``ca`` carry."""
    base = base_url.rstrip("/")
    return IssuerUrls(crl=f"{base}/ca/{ca}/crl", ocsp=f"{base}/ca/{ca}/ocsp")


def _max_age(next_update: datetime, refresh_at: datetime, now: datetime) -> int:
    # An HTTP cache may keep the answer until we would make a new one ourselves, and never past
    # nextUpdate (RFC 5019 section 6.2).
    return max(0, int((min(refresh_at, next_update) - now).total_seconds()))


@dataclass(frozen=True, kw_only=True)
class PublishedCrl:
    """One signed CRL in both encodings, with its times."""

    der: bytes
    pem: bytes
    number: int
    revision: int
    this_update: datetime
    next_update: datetime
    refresh_at: datetime

    def max_age(self, now: datetime) -> int:
        return _max_age(self.next_update, self.refresh_at, now)


@dataclass(frozen=True, kw_only=True)
class OcspAnswer:
    """A DER OCSPResponse; ``next_update`` None for an unsigned error response."""

    der: bytes
    status: CertStatus | FailureStatus
    next_update: datetime | None = None
    refresh_at: datetime | None = None

    def max_age(self, now: datetime) -> int:
        if self.next_update is None or self.refresh_at is None:
            return 0
        return _max_age(self.next_update, self.refresh_at, now)


@dataclass(kw_only=True)
class _CaState:
    issuer: IssuingCA
    statuses: CaStatuses
    checked_at: datetime | None
    crl: PublishedCrl | None = None
    responses: dict[tuple[int, CertIdHash], OcspAnswer] = field(default_factory=dict)


class Publisher:
    """The chain, CRL and OCSP answers of the CAs the platform signs with. Thread-safe."""

    def __init__(self, db: Database, issuers: IssuerSource) -> None:
        self._db, self._issuers = db, issuers
        self._lock = threading.RLock()
        self._states: dict[str, _CaState] = {}
        self._chains: dict[str, str] = {}
        self._signers: dict[str, tuple[x509.Certificate, SigningKey]] = {}

    # --- lookups ---------------------------------------------------------------------------------

    def _row(self, ca: str) -> CertificateAuthority:
        missing = NotFound(
            f"expected a CA this platform publishes, like {PLATFORM_CA!r}; found {ca[:64]!r}",
            hint=f"the platform CA's endpoints are under /ca/{PLATFORM_CA}/",
        )
        if ca != PLATFORM_CA:  # no query for names that can never exist
            raise missing
        with self._db.read() as session:
            row = session.execute(
                select(CertificateAuthority).where(CertificateAuthority.name == ca)
            ).scalar()
            if row is None:
                raise missing
            session.expunge(row)
            return row

    def chain_pem(self, ca: str) -> str:
        """The CA's chain, issuing certificate first and root last, as PEM."""
        with self._lock:
            cached = self._chains.get(ca)
        if cached is None:
            cached = self._row(ca).chain_pem
            with self._lock:
                self._chains[ca] = cached
        return cached

    def invalidate(self) -> None:
        """Check every CA's revision on next use (after a revocation in this process)."""
        with self._lock:
            for state in self._states.values():
                state.checked_at = None

    def _state(self, ca: str, now: datetime) -> _CaState:
        with self._lock:
            state = self._states.get(ca)
            if state is None:
                self._row(ca)  # 404 before anything loads a key
                issuer = self._issuers.platform(now=now)
                state = _CaState(
                    issuer=issuer, statuses=ca_statuses(self._db, issuer.ca_id), checked_at=now
                )
                self._states[ca] = state
            elif state.checked_at is None or now - state.checked_at >= REVISION_CHECK_INTERVAL:
                revision = ca_revision(self._db, state.issuer.ca_id)
                if revision != state.statuses.revision:
                    state.statuses = ca_statuses(self._db, state.issuer.ca_id)
                    state.crl = None
                    state.responses = {}
                state.checked_at = now
            return state

    # --- CRL -------------------------------------------------------------------------------------

    def crl(self, ca: str, *, now: datetime) -> PublishedCrl:
        """The current CRL of ``ca``: cached until a revocation or half of its validity."""
        with self._lock:
            state = self._state(ca, now)
            current = state.crl
            if current is None or now >= current.refresh_at:
                current = self._build_crl(state, now)
                state.crl = current
            return current

    def _build_crl(self, state: _CaState, now: datetime) -> PublishedCrl:
        entries = [
            RevokedEntry(
                serial=known.serial,
                revoked_at=known.revoked_at,
                reason=known.reason or RevocationReason.UNSPECIFIED,
            )
            for known in sorted(state.statuses.serials.values(), key=lambda k: k.serial)
            if known.revoked_at is not None
        ]
        bucket = (now - _EPOCH) // _BUCKET
        bucket_start = _EPOCH + bucket * _BUCKET
        latest = max((e.revoked_at for e in entries), default=bucket_start)
        this_update = min(max(bucket_start, latest), now).replace(microsecond=0)
        number = (state.statuses.revision << 32) | bucket
        crl = build_crl(
            issuer=state.issuer.certificate,
            issuer_key=state.issuer.key,
            revoked=entries,
            now=this_update,
            next_update=CRL_VALIDITY,
            crl_number=number,
        )
        return PublishedCrl(
            der=crl.public_bytes(serialization.Encoding.DER),
            pem=crl.public_bytes(serialization.Encoding.PEM),
            number=number,
            revision=state.statuses.revision,
            this_update=this_update,
            next_update=this_update + CRL_VALIDITY,
            refresh_at=bucket_start + _BUCKET,
        )

    # --- OCSP ------------------------------------------------------------------------------------

    def ocsp(self, ca: str, request_der: bytes, *, now: datetime) -> OcspAnswer:
        """The answer to one DER OCSPRequest. Raises only :class:`NotFound` for an unknown CA;
        every problem with the request itself is an OCSP error response."""
        with self._lock:
            state = self._state(ca, now)  # an unknown CA is a 404 whatever the request
        try:
            query = parse_request(request_der)
        except UnsupportedFormat:
            return _failure(FailureStatus.MALFORMED_REQUEST)
        with self._lock:
            if not matches_issuer(query, state.issuer.certificate):
                return _failure(FailureStatus.UNAUTHORIZED)
            key = (query.serial, query.hash_algorithm)
            cached = state.responses.get(key)
            if cached is not None and cached.refresh_at is not None and now < cached.refresh_at:
                return cached
            known = state.statuses.serials.get(query.serial)
            if known is None:
                known = self._lookup(state, query.serial)
            answer = self._sign(
                ca,
                state=state,
                serial=query.serial,
                known=known,
                cert_id_hash=query.hash_algorithm,
                now=now,
            )
            if len(state.responses) >= MAX_CACHED_RESPONSES:
                state.responses = {}
            state.responses[key] = answer
            return answer

    def _lookup(self, state: _CaState, serial: int) -> KnownSerial | None:
        """A serial issued after the list was read: one indexed query, remembered if found."""
        with self._db.read() as session:
            row = session.execute(
                select(IssuedCertificate.revoked_at).where(
                    IssuedCertificate.ca_id == state.issuer.ca_id,
                    IssuedCertificate.serial == serial_hex(serial),
                )
            ).first()
        if row is None:
            return None
        if row.revoked_at is not None:
            # Revoked since the list was read: the revision moved; read everything again.
            state.checked_at = None
            return KnownSerial(
                serial=serial, revoked_at=row.revoked_at, reason=RevocationReason.UNSPECIFIED
            )
        known = KnownSerial(serial=serial, revoked_at=None, reason=None)
        state.statuses.serials[serial] = known
        return known

    def _signer(
        self, ca: str, state: _CaState, now: datetime
    ) -> tuple[x509.Certificate, SigningKey]:
        signer = self._signers.get(ca)
        if signer is None or signer[0].not_valid_after_utc - now < SIGNER_RENEW_BEFORE:
            signer = build_ocsp_signer(
                issuer=state.issuer.certificate,
                issuer_key=state.issuer.key,
                now=now,
                validity=SIGNER_VALIDITY,
            )
            self._signers[ca] = signer
        return signer

    def _sign(
        self,
        ca: str,
        *,
        state: _CaState,
        serial: int,
        known: KnownSerial | None,
        cert_id_hash: CertIdHash,
        now: datetime,
    ) -> OcspAnswer:
        if known is None:
            status = CertificateStatus(serial=serial, status=CertStatus.UNKNOWN)
            validity = UNKNOWN_VALIDITY
        elif known.revoked_at is None:
            status = CertificateStatus(serial=serial, status=CertStatus.GOOD)
            validity = OCSP_VALIDITY
        else:
            status = CertificateStatus(
                serial=serial,
                status=CertStatus.REVOKED,
                revoked_at=known.revoked_at,
                reason=known.reason,
            )
            validity = OCSP_VALIDITY
        signer_cert, signer_key = self._signer(ca, state, now)
        this_update = now.replace(microsecond=0)
        next_update = min(this_update + validity, signer_cert.not_valid_after_utc)
        der = build_response(
            issuer=state.issuer.certificate,
            signer_cert=signer_cert,
            signer_key=signer_key,
            certificate_serial_status=status,
            this_update=this_update,
            next_update=next_update,
            cert_id_hash=cert_id_hash,
        )
        return OcspAnswer(
            der=der,
            status=status.status,
            next_update=next_update,
            refresh_at=this_update + (next_update - this_update) / 2,
        )


def _failure(status: FailureStatus) -> OcspAnswer:
    return OcspAnswer(der=error_response(status), status=status)
