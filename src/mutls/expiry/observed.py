"""Certificates the data planes saw on the wire, kept for the expiry inventory.

A partner's server certificate at the egress proxy and a client certificate presented at the
gateway are nowhere else in the store. The data planes collect :class:`Observation` values in
memory and hand them over in batches, off the request path (as the egress request log does);
:func:`record_observations` upserts a batch in one transaction: one row per (kind, fingerprint),
``last_seen`` and the context (route, account, environment) refreshed on every sighting.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from sqlalchemy.dialects import postgresql, sqlite

from mutls.pki.inspect import name_to_text, serial_hex, sha256_fingerprint
from mutls.store.database import Database
from mutls.store.models import ObservedCertificate

__all__ = [
    "MAX_BATCH",
    "Observation",
    "ObservationBuffer",
    "ObservedKind",
    "observe",
    "record_observations",
]

MAX_BATCH = 500


class ObservedKind(enum.StrEnum):
    PARTNER_SERVER = "partner_server"
    GATEWAY_CLIENT = "gateway_client"


@dataclass(frozen=True, kw_only=True)
class Observation:
    kind: ObservedKind
    fingerprint_sha256: str
    subject: str
    issuer: str
    serial: str
    not_after: datetime
    seen_at: datetime
    route: str | None = None
    account_id: str | None = None
    environment: str | None = None


def observe(
    kind: ObservedKind,
    certificate: x509.Certificate,
    *,
    seen_at: datetime,
    route: str | None = None,
    account_id: str | None = None,
    environment: str | None = None,
) -> Observation:
    """An observation of ``certificate`` (public facts only)."""
    return Observation(
        kind=kind,
        fingerprint_sha256=sha256_fingerprint(certificate),
        subject=name_to_text(certificate.subject)[:2000],
        issuer=name_to_text(certificate.issuer)[:2000],
        serial=serial_hex(certificate.serial_number)[:64],
        not_after=certificate.not_valid_after_utc,
        seen_at=seen_at,
        route=route[:64] if route else None,
        account_id=account_id,
        environment=environment[:64] if environment else None,
    )


def record_observations(db: Database, observations: Sequence[Observation]) -> int:
    """Upsert a batch (the last sighting of a certificate in the batch wins); returns rows."""
    latest: dict[tuple[str, str], Observation] = {}
    for item in observations:
        key = (item.kind.value, item.fingerprint_sha256)
        if key not in latest or latest[key].seen_at <= item.seen_at:
            latest[key] = item
    batch = list(latest.values())
    dialect: Any = sqlite if db.is_sqlite else postgresql
    with db.write_connection() as connection:
        for start in range(0, len(batch), MAX_BATCH):
            rows = [
                {
                    "kind": o.kind.value,
                    "fingerprint_sha256": o.fingerprint_sha256,
                    "subject": o.subject,
                    "issuer": o.issuer,
                    "serial": o.serial,
                    "not_after": o.not_after,
                    "first_seen": o.seen_at,
                    "last_seen": o.seen_at,
                    "route": o.route,
                    "account_id": o.account_id,
                    "environment": o.environment,
                }
                for o in batch[start : start + MAX_BATCH]
            ]
            statement = dialect.insert(ObservedCertificate).values(rows)
            excluded = statement.excluded
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["kind", "fingerprint_sha256"],
                    set_={
                        "last_seen": excluded.last_seen,
                        "route": excluded.route,
                        "account_id": excluded.account_id,
                        "environment": excluded.environment,
                    },
                )
            )
    return len(batch)


class ObservationBuffer:
    """A data plane's sightings, deduplicated: a certificate seen again within ``every`` seconds
    is not recorded again, so a busy gateway writes one row per certificate per interval, not
    one per handshake. Only the event loop touches it; :meth:`take` hands a batch to a thread."""

    def __init__(self, *, every: float = 600.0, max_pending: int = 10_000) -> None:
        self._every = every
        self._max_pending = max_pending
        self._last: dict[tuple[str, bytes | str], float] = {}
        self.pending: list[Observation] = []

    def due(self, kind: ObservedKind, fingerprint: bytes | str, now: float) -> bool:
        """Whether this certificate should be recorded now (and remember that it was)."""
        key = (kind.value, fingerprint)
        last = self._last.get(key)
        if last is not None and now - last < self._every:
            return False
        if len(self._last) > 4 * self._max_pending:
            self._last.clear()
        self._last[key] = now
        return True

    def add(self, observation: Observation) -> None:
        if len(self.pending) < self._max_pending:
            self.pending.append(observation)

    def take(self) -> list[Observation]:
        batch, self.pending = self.pending, []
        return batch
