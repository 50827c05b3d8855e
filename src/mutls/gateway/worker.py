"""One gateway worker process: its listeners, snapshot, upstream pool, counters and timers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from OpenSSL import SSL

from mutls.ca.server_identity import RENEW_RETRY
from mutls.config import GatewayListen, GatewaySettings
from mutls.expiry.observed import (
    ObservationBuffer,
    ObservedKind,
    observe,
    record_observations,
)
from mutls.gateway.connection import ClientConnection, Exchange, access_line
from mutls.gateway.identity import ServerIdentity
from mutls.gateway.metrics import WorkerStats
from mutls.gateway.peer import PeerCache
from mutls.gateway.snapshot import load_snapshot
from mutls.policy.snapshot import GatewaySnapshot, Peer
from mutls.proxy.upstream import UpstreamPool
from mutls.proxy.watcher import SnapshotWatcher
from mutls.store.database import Database
from mutls.tls.gateway_context import (
    CipherPreset,
    GatewayTlsPolicy,
    TlsVersion,
    gateway_server_context,
)

__all__ = ["ListenerState", "Worker", "policy_of"]

log = logging.getLogger("mutls.gateway")
access_log = logging.getLogger("mutls.gateway.access")


def policy_of(listen: GatewayListen) -> GatewayTlsPolicy:
    return GatewayTlsPolicy(
        minimum=TlsVersion(listen.tls_min),
        maximum=TlsVersion(listen.tls_max),
        ciphers=CipherPreset(listen.ciphers),
    )


@dataclass(kw_only=True)
class ListenerState:
    config: GatewayListen
    policy: GatewayTlsPolicy
    sock: socket.socket
    context: SSL.Context
    server: asyncio.Server | None = None


def _parsed(anchors_der: Sequence[bytes]) -> list[x509.Certificate]:
    return [x509.load_der_x509_certificate(der) for der in anchors_der]


class Worker:
    def __init__(
        self,
        *,
        db: Database,
        settings: GatewaySettings,
        identity: ServerIdentity,
        snapshot: GatewaySnapshot,
        sockets: Sequence[tuple[GatewayListen, socket.socket]],
        clock: Callable[[], datetime],
        run_dir: Path | None,
    ) -> None:
        self.db, self.settings, self.identity, self.clock = db, settings, identity, clock
        self.snapshot = snapshot
        self.run_dir = run_dir
        self.stats = WorkerStats()
        self.observed = ObservationBuffer()
        """Client certificates presented, for the expiry inventory (per account)."""
        self.stats.snapshot_revision = snapshot.revision
        self.pool = UpstreamPool(connect_timeout=settings.upstream_connect_timeout)
        self._anchors = snapshot.anchors_der
        self._anchor_certs = _parsed(self._anchors)
        self.peers = PeerCache(anchors=self._anchor_certs)
        self.connections: set[ClientConnection] = set()
        self.draining = False
        self._renew_retry_at = 0.0
        """Loop time before which a failed certificate renewal is not tried again."""
        self.listeners = []
        for listen, sock in sockets:
            policy = policy_of(listen)
            context = gateway_server_context(identity.material, self._anchor_certs, policy)
            self.listeners.append(
                ListenerState(config=listen, policy=policy, sock=sock, context=context)
            )
        self._stop = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop = asyncio.get_event_loop_policy().get_event_loop()

    def _rebuild_contexts(self) -> None:
        """New handshakes get the new context; connections keep theirs (no drops)."""
        for state in self.listeners:
            try:
                state.context = gateway_server_context(
                    self.identity.material, self._anchor_certs, state.policy
                )
            except Exception:
                log.exception("TLS context rebuild failed; keeping the previous one")

    # --- snapshot --------------------------------------------------------------------------

    def swap(self, snapshot: GatewaySnapshot) -> None:
        self.snapshot = snapshot
        self.stats.snapshot_revision = snapshot.revision
        self.stats.snapshot_reloads += 1
        if snapshot.anchors_der != self._anchors:
            self._anchors = snapshot.anchors_der
            self._anchor_certs = _parsed(self._anchors)
            self.peers.clear(self._anchor_certs)
            self._rebuild_contexts()
        now = self.clock()
        for connection in list(self.connections):
            connection.on_snapshot(now)
        log.debug("snapshot revision %s in force", snapshot.revision)

    # --- per request -----------------------------------------------------------------------

    def record(self, connection: ClientConnection, exchange: Exchange) -> None:
        decision = exchange.decision
        route = getattr(decision, "route", None)
        name = route.name if route is not None else "-"
        self.stats.requests[(name, exchange.code or "unknown", exchange.status)] += 1
        if self.settings.access_log:
            access_log.info(access_line(connection, exchange, self.loop.time() - exchange.started))

    # --- lifecycle -------------------------------------------------------------------------

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = self.loop.time()
            for connection in list(self.connections):
                connection.check_timeouts(now)
            if self.identity.changed():
                try:
                    self.identity = self.identity.reload()
                except Exception as error:
                    log.warning("gateway certificate reload failed, keeping the old one: %s", error)
                else:
                    log.info("gateway certificate replaced; new handshakes use it")
                    self._rebuild_contexts()
            if self.identity.renewal_due(self.clock()) and now >= self._renew_retry_at:
                await self._renew_identity()
            if self.run_dir is not None:
                with contextlib.suppress(OSError):
                    self.stats.dump(self.run_dir)

    async def _renew_identity(self) -> None:
        """Issue this worker a new server certificate from the platform CA (in a thread); open
        connections keep the old one. A failure keeps the current certificate, retried after
        ``RENEW_RETRY``."""
        current = self.identity
        try:
            renewed = await asyncio.to_thread(current.renewed, self.clock())
        except Exception as error:
            self._renew_retry_at = self.loop.time() + RENEW_RETRY.total_seconds()
            log.warning(
                "issuing the gateway a new certificate failed (%s: %s); keeping the current one "
                "until %s, retrying in %d s",
                type(error).__name__,
                error,
                current.material.leaf.not_valid_after_utc.isoformat()
                if current.material.leaf is not None
                else "?",
                RENEW_RETRY.total_seconds(),
            )
            return
        if self.identity is not current:  # replaced meanwhile (a SIGHUP reload)
            return
        self.identity = renewed
        self._rebuild_contexts()
        leaf = renewed.material.leaf
        assert leaf is not None
        log.info(
            "gateway certificate renewed: serial %X, valid until %s; new handshakes use it",
            leaf.serial_number,
            leaf.not_valid_after_utc.isoformat(),
        )

    def saw_client(self, connection: SSL.Connection, peer: Peer, account_id: str) -> None:
        """A client certificate that mapped to an account, for the expiry inventory; once per
        certificate per interval (the certificate is parsed only then)."""
        if not self.observed.due(ObservedKind.GATEWAY_CLIENT, peer.fingerprint, time.monotonic()):
            return
        presented = connection.get_peer_certificate()
        if presented is not None:
            self.observed.add(
                observe(
                    ObservedKind.GATEWAY_CLIENT,
                    presented.to_cryptography(),
                    seen_at=self.clock(),
                    account_id=account_id,
                )
            )

    async def _record_observed(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            batch = self.observed.take()
            if batch:
                try:
                    await asyncio.to_thread(record_observations, self.db, batch)
                except Exception as error:
                    log.warning("recording client certificates failed: %s", type(error).__name__)

    def stop(self) -> None:
        self._stop.set()

    def _on_sighup(self) -> None:
        # Looked up at signal time: a reload replaces self.identity.
        self.identity.request_reload()

    async def serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        for state in self.listeners:
            state.server = await self.loop.create_server(
                lambda state=state: ClientConnection(self, state),  # type: ignore[misc]
                sock=state.sock,
                backlog=1024,
            )
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(signum, self.stop)
        self.loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        watcher = SnapshotWatcher(
            self.db,
            clock=self.clock,
            on_change=self.swap,
            current=self.snapshot,
            load=lambda now: load_snapshot(self.db, now=now),
            poll_seconds=self.settings.poll_seconds,
        )
        tasks = [
            asyncio.create_task(watcher.run(), name="snapshot-watcher"),
            asyncio.create_task(self._tick(), name="ticker"),
            asyncio.create_task(self._record_observed(), name="observed-certificates"),
        ]
        try:
            await self._stop.wait()
            await self._drain()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.pool.close()

    async def _drain(self) -> None:
        self.draining = True
        for state in self.listeners:
            if state.server is not None:
                state.server.close()
        for connection in list(self.connections):
            connection.shutdown()
        deadline = time.monotonic() + self.settings.drain_seconds
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self.connections):
            connection._abort()
        if self.run_dir is not None:
            with contextlib.suppress(OSError):
                (self.run_dir / f"worker-{__import__('os').getpid()}.json").unlink()
