"""Load the gateway's :class:`GatewaySnapshot` from the store, and watch the store for changes.

The store's revision is the audit chain's head: every change that matters to the gateway
(issuance, revocation, account settings, trusted CAs, routes) is audited in its own transaction,
so the head's sequence number moves exactly when something may have changed. On PostgreSQL the
audit append also sends ``NOTIFY mutls_changes`` (delivered at commit), and a watcher thread
``LISTEN``s; on SQLite a revision poll costs one primary-key read. Either way a slow poll runs as a
safety net, and a failed reload keeps the old snapshot (logged), like ghostunnel's certloader.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Generic, Protocol, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select

from mutls.audit.log import CHANGES_CHANNEL
from mutls.ca.trust import KIND_CUSTOMER
from mutls.pki.loader import load_certificates
from mutls.policy.snapshot import (
    AccountPolicy,
    CustomerCA,
    GatewaySnapshot,
    IssuedEntry,
    Network,
)
from mutls.routing.service import load_route_table
from mutls.store.database import Database
from mutls.store.models import Account, AuditHead, CertificateAuthority, IssuedCertificate

__all__ = ["CHANNEL", "Revisioned", "SnapshotWatcher", "load_snapshot", "store_revision"]

log = logging.getLogger("mutls.gateway")

CHANNEL = CHANGES_CHANNEL
EXPIRED_GRACE = timedelta(days=1)
"""Expired certificates stay in the snapshot a day, so a late client still hears "revoked"."""


def _network(text: str) -> Network:
    """An allowlist entry; ``::ffff:10.0.0.0/104`` becomes ``10.0.0.0/8``, because the policy
    compares IPv4-mapped sources as IPv4."""
    network = ipaddress.ip_network(text, strict=False)
    if isinstance(network, ipaddress.IPv6Network):
        mapped = network.network_address.ipv4_mapped
        if mapped is not None and network.prefixlen >= 96:
            return ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}", strict=False)
    return network


def store_revision(db: Database) -> int:
    with db.read() as session:
        return int(session.execute(select(AuditHead.seq)).scalar() or 0)


def _fingerprint(cert: x509.Certificate) -> bytes:
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()


def load_snapshot(db: Database, *, now: datetime) -> GatewaySnapshot:
    """Everything the request path needs, read in one transaction."""
    with db.read() as session:
        revision = int(session.execute(select(AuditHead.seq)).scalar() or 0)
        accounts = {
            a.id: AccountPolicy(
                id=a.id,
                name=a.name,
                mtls_enabled=a.mtls_enabled,
                allowed_routes=frozenset(a.allowed_routes),
                networks=tuple(_network(n) for n in a.ip_allowlist),
            )
            for a in session.execute(select(Account)).scalars()
        }
        issued: dict[bytes, IssuedEntry] = {}
        rows = session.execute(
            select(
                IssuedCertificate.fingerprint_sha256,
                IssuedCertificate.account_id,
                IssuedCertificate.serial,
                IssuedCertificate.api_versions,
                IssuedCertificate.revoked_at,
            ).where(IssuedCertificate.not_after > now - EXPIRED_GRACE)
        )
        for fingerprint, account_id, serial, versions, revoked_at in rows:
            issued[bytes.fromhex(fingerprint.replace(":", ""))] = IssuedEntry(
                account_id=account_id,
                serial=serial,
                api_versions=frozenset(versions or ()),
                revoked_at=revoked_at,
            )
        anchors: list[bytes] = []
        customer: dict[bytes, list[CustomerCA]] = {}
        cas = session.execute(
            select(CertificateAuthority).order_by(
                CertificateAuthority.created_at, CertificateAuthority.id
            )
        ).scalars()
        for ca in cas:
            chain = load_certificates(ca.chain_pem.encode("ascii"))
            anchors.extend(c.public_bytes(Encoding.DER) for c in chain)
            if ca.kind != KIND_CUSTOMER or ca.account_id is None:
                continue
            entry = CustomerCA(
                id=ca.id, account_id=ca.account_id, patterns=tuple(ca.subject_patterns)
            )
            for cert in chain:
                customer.setdefault(_fingerprint(cert), []).append(entry)
        routes = load_route_table(session)
    return GatewaySnapshot(
        revision=revision,
        routes=routes,
        accounts=accounts,
        issued=issued,
        customer_cas={k: tuple(v) for k, v in customer.items()},
        anchors_der=tuple(dict.fromkeys(anchors)),
        loaded_at=now,
    )


class Revisioned(Protocol):
    @property
    def revision(self) -> int: ...


S = TypeVar("S", bound=Revisioned)


class SnapshotWatcher(Generic[S]):
    """Calls ``on_change`` (in the event loop) with a fresh snapshot whenever the revision moves.

    ``load(now)`` builds the snapshot: the gateway's :func:`load_snapshot`, or the egress
    proxy's loader; both data planes share this watcher.

    ``poll_seconds`` is the revision poll (SQLite) and the safety net (PostgreSQL, which is woken
    by ``LISTEN`` at once). Reloads run in a worker thread so the event loop never blocks on the
    database; at most one runs at a time, and changes during a reload trigger one more.
    """

    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], datetime],
        on_change: Callable[[S], None],
        current: S,
        load: Callable[[datetime], S],
        poll_seconds: float = 0.5,
    ) -> None:
        self._db, self._clock, self._on_change, self._load = db, clock, on_change, load
        self._revision = current.revision
        self._poll = poll_seconds if db.engine.dialect.name == "sqlite" else max(poll_seconds, 5.0)
        self._wake = asyncio.Event()
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        if self._db.engine.dialect.name == "postgresql":
            self._listener = threading.Thread(
                target=self._listen, args=(loop,), name="mutls-listen", daemon=True
            )
            self._listener.start()
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll)
                self._wake.clear()
                await self._check()
        finally:
            self._stop.set()

    async def _check(self) -> None:
        try:
            revision = await asyncio.to_thread(store_revision, self._db)
            if revision == self._revision:
                return
            snapshot = await asyncio.to_thread(self._load, self._clock())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("snapshot reload failed; keeping revision %s", self._revision)
            return
        self._revision = snapshot.revision
        self._on_change(snapshot)

    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        """LISTEN on a dedicated autocommit connection; reconnect after a failure."""
        import psycopg  # noqa: PLC0415  (PostgreSQL only)

        url = self._db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    loop.call_soon_threadsafe(self._wake.set)  # catch up after (re)connecting
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            loop.call_soon_threadsafe(self._wake.set)
            except Exception as error:
                if self._stop.is_set():
                    return
                log.warning("LISTEN %s failed (%s); retrying in 1 s", CHANNEL, type(error).__name__)
                self._stop.wait(1.0)
