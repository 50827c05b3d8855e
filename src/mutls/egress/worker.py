"""One egress worker process: its listener, snapshot, partner pool, token cache and log writer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httptools
from cryptography.hazmat.primitives import hashes

from mutls.config import EgressSettings
from mutls.egress.connection import AppConnection, Exchange
from mutls.egress.metrics import EgressStats
from mutls.egress.oauth2 import (
    AccessToken,
    OAuth2Client,
    TokenCache,
    TokenKey,
    build_token_request,
    parse_token_response,
)
from mutls.egress.partner import PartnerConnection, PartnerPool
from mutls.egress.requestlog import RequestLog
from mutls.egress.snapshot import (
    CertificateInfo,
    EgressLoader,
    EgressSnapshot,
    Endpoint,
    OAuth2Binding,
    PartnerTarget,
)
from mutls.errors import (
    MutlsError,
    OAuth2TokenFailed,
    PartnerConnectionClosed,
    PartnerError,
    PartnerTimeout,
    SecretExpired,
)
from mutls.expiry.observed import (
    ObservationBuffer,
    ObservedKind,
    observe,
    record_observations,
)
from mutls.proxy.watcher import SnapshotWatcher
from mutls.store.database import Database

__all__ = ["EgressWorker"]

log = logging.getLogger("mutls.egress")
access_log = logging.getLogger("mutls.egress.access")

_PRUNE_SECONDS = 3600.0
_FLUSH_SECONDS = 0.25
_EXPIRED_LOG_SECONDS = 60.0


class EgressWorker:
    def __init__(
        self,
        *,
        db: Database,
        loader: EgressLoader,
        settings: EgressSettings,
        snapshot: EgressSnapshot,
        sock: socket.socket,
        clock: Callable[[], datetime],
        run_dir: Path | None,
    ) -> None:
        self.db, self.loader, self.settings, self.clock = db, loader, settings, clock
        self.snapshot = snapshot
        self.sock = sock
        self.run_dir = run_dir
        self.stats = EgressStats()
        self.stats.snapshot_revision = snapshot.revision
        self.pool = PartnerPool(
            connect_timeout=settings.connect_timeout,
            max_idle=settings.max_idle_per_partner,
            idle_seconds=settings.partner_idle_seconds,
        )
        self.tokens = TokenCache()
        self.requests = RequestLog(
            db, enabled=settings.request_log, keep_days=settings.request_log_days
        )
        self.connections: set[AppConnection] = set()
        self.draining = False
        self.server: asyncio.Server | None = None
        self.loop: asyncio.AbstractEventLoop = asyncio.get_event_loop_policy().get_event_loop()
        self._stop = asyncio.Event()
        self._secret_names: dict[str, str] = {}
        self._expired_logged: dict[tuple[str, str, int], float] = {}
        self.now = clock()
        self.observed = ObservationBuffer()
        """Partner server certificates seen, for the expiry inventory."""
        """The wall clock, refreshed every second: expiry checks on the request path need no
        finer grain than that, and reading it per request costs."""
        self._note_snapshot(snapshot)

    # --- snapshot --------------------------------------------------------------------------

    def _note_snapshot(self, snapshot: EgressSnapshot) -> None:
        live: set[object] = set()
        days: dict[str, float] = {}
        now = self.clock()
        for route in snapshot.routes.values():
            for target in route.targets.values():
                if not isinstance(target, PartnerTarget):
                    continue
                live.add(target.endpoint.pool_key)
                if target.oauth2 is not None:
                    live.add(target.oauth2.endpoint.pool_key)
                certificate = target.certificate
                if certificate is not None:
                    self._secret_names[certificate.secret_id] = certificate.secret_name
                    seconds = (certificate.not_after - now).total_seconds()
                    days[f"{certificate.secret_name}/{certificate.environment}"] = round(
                        seconds / 86400, 2
                    )
        self.stats.certificate_days_left = days
        self.pool.retire(live)

    def swap(self, snapshot: EgressSnapshot) -> None:
        """New requests use the new snapshot; requests in flight finish on what they have."""
        self.snapshot = snapshot
        self.stats.snapshot_revision = snapshot.revision
        self.stats.snapshot_reloads += 1
        self._note_snapshot(snapshot)
        log.debug("egress snapshot revision %s in force", snapshot.revision)

    # --- OAuth2 ----------------------------------------------------------------------------

    @staticmethod
    def _token_key(target: PartnerTarget, binding: OAuth2Binding) -> TokenKey:
        return TokenKey(
            secret_id=binding.secret_id,
            secret_version=binding.version,
            environment=target.environment,
            scopes=binding.scopes,
        )

    async def access_token(self, target: PartnerTarget) -> tuple[AccessToken, bool]:
        binding = target.oauth2
        assert binding is not None
        token, hit = await self.tokens.get(
            self._token_key(target, binding),
            lambda: self._fetch_token(binding),
            now=self.loop.time(),
        )
        self.stats.tokens["hit" if hit else "miss"] += 1
        return token, hit

    def invalidate_token(self, target: PartnerTarget, token: AccessToken) -> None:
        binding = target.oauth2
        if binding is not None:
            self.tokens.invalidate(self._token_key(target, binding), token)

    async def _fetch_token(self, binding: OAuth2Binding) -> AccessToken:
        client = OAuth2Client.from_secret(binding.fields)
        request = build_token_request(client, binding.scopes or None)
        lines = [f"{request.method} {request.path} HTTP/1.1", f"Host: {request.authority}"]
        lines += [f"{name}: {value}" for name, value in request.headers]
        lines += [f"Content-Length: {len(request.body)}", "", ""]
        data = "\r\n".join(lines).encode("latin-1") + request.body
        try:
            status, headers, body = await self.exchange(
                binding.endpoint, data, sends_certificate=binding.presents_certificate
            )
        except PartnerError as error:
            raise OAuth2TokenFailed(
                f"could not get a token from {client.endpoint}: {error.message}",
                hint=error.hint,
                reason=error.code,
            ) from None
        return parse_token_response(
            status, headers, body, now_monotonic=self.loop.time(), client=client
        )

    async def exchange(
        self, endpoint: Endpoint, data: bytes, *, sends_certificate: bool
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """One buffered request over the pool (the token endpoint's; answers are small). A
        pooled connection the endpoint closed while idle is replaced by a new one, once."""
        connection = self.pool.take_idle(endpoint)
        while True:
            if connection is None:
                connection = await self.pool.connect(endpoint, sends_certificate=sends_certificate)
            collector = _Collector(self.loop, connection)
            connection.begin(collector, head_only=False)
            connection.write(data)
            try:
                async with asyncio.timeout(self.settings.timeout):
                    raw = await collector.done
            except TimeoutError:
                connection.abort()
                raise PartnerTimeout(
                    f"the token endpoint did not answer within {self.settings.timeout:g} s",
                    reason="token_timeout",
                ) from None
            except PartnerError:
                # Nothing of this answer came (``answered`` is about the connection's first
                # answer, long past on a pooled one): the endpoint closed it while idle.
                if connection.reused and not collector.data:
                    connection = None
                    continue
                raise
            return _parse_response(raw)

    def saw_partner(self, connection: PartnerConnection, *, route: str, environment: str) -> None:
        """A new connection's server certificate, for the expiry inventory (deduplicated)."""
        peer = connection.tls.get_peer_certificate()
        if peer is None:
            return
        certificate = peer.to_cryptography()
        fingerprint = certificate.fingerprint(hashes.SHA256())
        if self.observed.due(ObservedKind.PARTNER_SERVER, fingerprint, time.monotonic()):
            self.observed.add(
                observe(
                    ObservedKind.PARTNER_SERVER,
                    certificate,
                    seen_at=self.now,
                    route=route,
                    environment=environment,
                )
            )

    # --- per request -----------------------------------------------------------------------

    def expired(self, certificate: CertificateInfo) -> MutlsError:
        return SecretExpired(
            f"expected secret {certificate.secret_name!r} ({certificate.environment}) to hold a "
            f"current certificate; it expired on {certificate.not_after.isoformat()} and the "
            "secret enforces expiry strictly",
            hint="upload the renewed certificate with `mutls secret set`",
        )

    def warn_expired(self, certificate: CertificateInfo) -> None:
        key = (certificate.secret_id, certificate.environment, certificate.version)
        now = self.loop.time()
        if now - self._expired_logged.get(key, -_EXPIRED_LOG_SECONDS) >= _EXPIRED_LOG_SECONDS:
            self._expired_logged[key] = now
            log.warning(
                "secret %s (%s) presents a certificate that expired on %s; partners will refuse "
                "it. Upload the renewed one, or set strict_expiry_enforcement to stop using it",
                certificate.secret_name,
                certificate.environment,
                certificate.not_after.isoformat(),
            )

    def record(self, connection: AppConnection, exchange: Exchange) -> None:
        target = exchange.partner
        environment = exchange.environment or "-"
        self.stats.requests[
            (exchange.route_name or "-", environment, exchange.code or "unknown", exchange.status)
        ] += 1
        elapsed = self.loop.time() - exchange.started
        token = exchange.token
        certificate = target.certificate if target is not None else None
        if certificate is not None and exchange.dispatched and token is not None:
            self.requests.count_use(
                token.namespace, certificate.secret_id, certificate.environment, certificate.version
            )
        oauth2 = target.oauth2 if target is not None else None
        if oauth2 is not None and exchange.oauth2_hit is not None and token is not None:
            self.requests.count_use(token.namespace, oauth2.secret_id, environment, oauth2.version)
        if not (self.settings.request_log or self.settings.access_log):
            return
        path = exchange.path.split(b"?", 1)[0].decode("latin-1")[:512]
        row = {
            "at": self.clock(),
            "namespace": token.namespace if token is not None else "-",
            "route_id": target.route_id if target is not None else None,
            "route_name": (exchange.route_name or "-")[:64],
            "environment": exchange.environment,
            "token_id": token.id if token is not None else None,
            "client_ip": connection.client_ip[:64],
            "method": exchange.method.decode("ascii", "replace")[:16],
            "path": path,
            "status": exchange.status,
            "code": exchange.code[:64],
            "upstream_status": exchange.upstream_status,
            "certificate_secret_id": certificate.secret_id if certificate else None,
            "certificate_version": certificate.version if certificate else None,
            "certificate_fingerprint": certificate.fingerprint if certificate else None,
            "certificate_serial": certificate.serial if certificate else None,
            "oauth2_secret_id": oauth2.secret_id if oauth2 is not None else None,
            "oauth2_token": None
            if exchange.oauth2_hit is None
            else ("hit" if exchange.oauth2_hit else "miss"),
            "tls_version": exchange.tls_version,
            "tls_cipher": exchange.tls_cipher,
            "connection_reused": exchange.reused,
            "latency_ms": round(elapsed * 1000, 3),
            "bytes_sent": exchange.body_bytes,
            "bytes_received": exchange.received_bytes,
        }
        self.requests.add(row)
        if self.settings.access_log:
            access_log.info(
                json.dumps(
                    {
                        k: row[k]
                        for k in (
                            "route_name",
                            "environment",
                            "method",
                            "path",
                            "status",
                            "code",
                            "upstream_status",
                            "certificate_serial",
                            "oauth2_token",
                            "tls_version",
                            "latency_ms",
                        )
                    },
                    separators=(",", ":"),
                )
            )

    # --- lifecycle -------------------------------------------------------------------------

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = self.loop.time()
            for connection in list(self.connections):
                connection.check_timeouts(now)
            self.pool.sweep(time.monotonic())
            self.now = self.clock()
            self.stats.open_connections = len(self.connections)
            self.stats.idle_connections = self.pool.idle_count()
            self.stats.connections_opened = self.pool.opened
            self.stats.connections_retired = self.pool.retired
            self.stats.request_log_pending = len(self.requests.pending)
            self.stats.request_log_dropped = self.requests.dropped
            if self.run_dir is not None:
                with contextlib.suppress(OSError):
                    self.stats.dump(self.run_dir)

    async def _flush_logs(self) -> None:
        last_usage = last_prune = self.loop.time()
        while True:
            # Small batches: a second's worth of rows at thousands of requests per second holds
            # the GIL long enough to show in the request path's p99.
            await asyncio.sleep(_FLUSH_SECONDS)
            usage = self.loop.time() - last_usage >= self.settings.usage_audit_seconds
            await self._flush(usage=usage)
            if usage:
                last_usage = self.loop.time()
            if self.loop.time() - last_prune >= _PRUNE_SECONDS:
                last_prune = self.loop.time()
                try:
                    await asyncio.to_thread(self.requests.prune, self.clock())
                except Exception as error:
                    log.warning("egress request log prune failed: %s", type(error).__name__)

    async def _flush(self, *, usage: bool) -> None:
        seen = self.observed.take()
        if seen:
            try:
                await asyncio.to_thread(record_observations, self.db, seen)
            except Exception as error:
                log.warning("recording partner certificates failed: %s", type(error).__name__)
        rows = self.requests.take()
        try:
            await asyncio.to_thread(self.requests.write, rows)
        except Exception as error:
            log.warning("egress request log write failed (%s); retrying", type(error).__name__)
            self.requests.pending[:0] = rows
        if usage:
            counts = self.requests.take_usage()
            try:
                await asyncio.to_thread(
                    self.requests.write_usage, counts, dict(self._secret_names), self.clock()
                )
            except Exception as error:
                log.warning("secret use audit failed: %s", type(error).__name__)

    def stop(self) -> None:
        self._stop.set()

    async def serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.server = await self.loop.create_server(
            lambda: AppConnection(self), sock=self.sock, backlog=1024
        )
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(signum, self.stop)
        watcher: SnapshotWatcher[EgressSnapshot] = SnapshotWatcher(
            self.db,
            clock=self.clock,
            on_change=self.swap,
            current=self.snapshot,
            load=lambda now: self.loader.load(now=now),
            poll_seconds=self.settings.poll_seconds,
        )
        tasks = [
            asyncio.create_task(watcher.run(), name="egress-snapshot-watcher"),
            asyncio.create_task(self._tick(), name="egress-ticker"),
            asyncio.create_task(self._flush_logs(), name="egress-request-log"),
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
            with contextlib.suppress(Exception):
                await self._flush(usage=True)
            await self.tokens.aclose()
            self.pool.close()
            if self.run_dir is not None:
                with contextlib.suppress(OSError):
                    (self.run_dir / f"egress-{os.getpid()}.json").unlink()

    async def _drain(self) -> None:
        self.draining = True
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections):
            connection.shutdown()
        deadline = time.monotonic() + self.settings.drain_seconds
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self.connections):
            connection._abort()


class _Collector:
    """A response sink that keeps the whole answer (for the token endpoint)."""

    __slots__ = ("connection", "data", "done")

    def __init__(self, loop: asyncio.AbstractEventLoop, connection: PartnerConnection) -> None:
        self.connection = connection
        self.data: list[bytes] = []
        self.done: asyncio.Future[bytes] = loop.create_future()

    def upstream_data(self, data: bytes) -> None:
        self.data.append(data)
        if sum(len(d) for d in self.data) > 1024 * 1024:
            self.connection.abort()

    def upstream_head(self, status: int) -> None:
        del status

    def upstream_done(self, reusable: bool, client_must_close: bool) -> None:
        del reusable, client_must_close
        if not self.done.done():
            self.done.set_result(b"".join(self.data))

    def upstream_failed(self, started: bool) -> None:
        del started
        if not self.done.done():
            self.done.set_exception(
                self.connection.failure
                or PartnerConnectionClosed(
                    "the token endpoint closed the connection before a whole answer",
                    reason="closed_before_answer",
                )
            )

    def upstream_paused(self, paused: bool) -> None:
        del paused

    def closes_after(self) -> bool:
        return False

    def finish_head(self, head: bytes) -> bytes:
        return head


class _Parsed:
    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)


def _parse_response(raw: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    parsed = _Parsed()
    parser = httptools.HttpResponseParser(parsed)
    try:
        parser.feed_data(raw)
    except httptools.HttpParserError:
        raise PartnerConnectionClosed(
            "the token endpoint's answer is not valid HTTP/1.1", reason="bad_http"
        ) from None
    return parser.get_status_code(), parsed.headers, b"".join(parsed.body)
