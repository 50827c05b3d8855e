"""Run the gateway: bind the listeners, fork N workers that share them, serve metrics, stop.

The parent binds every listener once, then forks the workers (``runtime.workers``), which inherit
the listening sockets and accept from them (as nginx's workers do). Each worker is a
single-threaded uvloop with its own database connection, snapshot and upstream pool, so nothing is
shared on the request path. The parent restarts a worker that dies, forwards SIGTERM/SIGINT
(graceful drain) and SIGHUP (certificate reload), and serves ``/metrics`` summed over the workers.
"""

from __future__ import annotations

import logging
import signal
import socket
import tempfile
from datetime import timedelta
from pathlib import Path

import uvloop

from mutls.config import GatewaySettings
from mutls.errors import CANotInitialized
from mutls.gateway.identity import ServerIdentity
from mutls.gateway.snapshot import load_snapshot
from mutls.gateway.worker import Worker
from mutls.runtime.listeners import bind
from mutls.runtime.platform import Platform
from mutls.runtime.workers import WorkerProcesses, run_in_foreground
from mutls.runtime.workers import serve_metrics as workers_serve_metrics

__all__ = ["GatewayProcesses", "prepare_gateway", "run_gateway", "serve_metrics"]

log = logging.getLogger("mutls.gateway")


def _server_identity(platform: Platform, settings: GatewaySettings) -> ServerIdentity:
    if settings.cert_file is not None and settings.key_file is not None:
        return ServerIdentity.from_files(settings.cert_file, settings.key_file)
    from mutls.ca.issuer import IssuerCache  # noqa: PLC0415
    from mutls.ca.server_identity import node_identity_issuer  # noqa: PLC0415

    now = platform.clock()
    issuers = IssuerCache(platform.db, platform.keys, platform.settings.ca_dir)
    try:
        issuers.platform(now=now)
    except CANotInitialized:
        raise CANotInitialized(
            "the gateway has no server certificate: MUTLS_GATEWAY_CERT_FILE is not set and this "
            f"node has no platform CA in {platform.settings.ca_dir}",
            hint="set MUTLS_GATEWAY_CERT_FILE and MUTLS_GATEWAY_KEY_FILE, or run `mutls up` once",
        ) from None
    issue = node_identity_issuer(
        issuers, platform.settings.server_names, timedelta(days=platform.settings.server_cert_days)
    )
    return ServerIdentity.issued(issue(now), issue=issue, now=now)


class GatewayProcesses:
    """The bound listeners and the worker processes serving them."""

    def __init__(
        self,
        *,
        platform: Platform,
        settings: GatewaySettings,
        identity: ServerIdentity,
        sockets: list[socket.socket],
        run_dir: Path,
    ) -> None:
        self.platform, self.settings, self.identity = platform, settings, identity
        self.sockets, self.run_dir = sockets, run_dir
        self.workers = WorkerProcesses(
            name="gateway",
            count=settings.workers,
            sockets=sockets,
            main=self._worker_main,
            drain_seconds=settings.drain_seconds,
        )

    @property
    def urls(self) -> list[str]:
        return [f"https://{listen.address}" for listen in self.settings.listeners]

    def announce(self) -> None:
        for url, listen in zip(self.urls, self.settings.listeners, strict=True):
            log.info(
                "mTLS gateway listening on %s (TLS %s-%s, %s ciphers, %s workers)",
                url,
                listen.tls_min,
                listen.tls_max,
                listen.ciphers,
                self.settings.workers,
            )

    def start(self) -> None:
        self.workers.start()

    def _worker_main(self) -> int:
        platform = self.platform
        platform.db.engine.dispose(close=False)  # the parent's connections are not ours
        snapshot = load_snapshot(platform.db, now=platform.clock())

        async def main() -> None:
            worker = Worker(
                db=platform.db,
                settings=self.settings,
                identity=self.identity,
                snapshot=snapshot,
                sockets=list(zip(self.settings.listeners, self.sockets, strict=True)),
                clock=platform.clock,
                run_dir=self.run_dir,
            )
            await worker.serve()

        uvloop.run(main())
        return 0

    def reap(self, *, block: bool) -> None:
        self.workers.reap(block=block)

    def signal_workers(self, signum: int) -> None:
        self.workers.signal_workers(signum)

    def stop(self) -> None:
        """Drain: workers finish what is in flight (MUTLS_GATEWAY_DRAIN_SECONDS), then exit."""
        self.workers.stop()


def prepare_gateway(platform: Platform, settings: GatewaySettings) -> GatewayProcesses:
    """Check what the workers need (store, snapshot, certificate), bind the listeners."""
    load_snapshot(platform.db, now=platform.clock())  # fail here, not in N workers
    identity = _server_identity(platform, settings)
    sockets: list[socket.socket] = []
    try:
        for listen in settings.listeners:
            sock = bind(listen.host, listen.port, setting="MUTLS_GATEWAY_LISTEN")
            sock.listen(1024)
            sock.setblocking(False)
            sockets.append(sock)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    run_dir = Path(tempfile.mkdtemp(prefix="mutls-gateway-"))
    return GatewayProcesses(
        platform=platform, settings=settings, identity=identity, sockets=sockets, run_dir=run_dir
    )


def serve_metrics(processes: GatewayProcesses) -> None:
    from mutls.gateway.metrics import GatewayCollector  # noqa: PLC0415

    listen = processes.settings.metrics_listen
    workers_serve_metrics(listen, GatewayCollector(processes.run_dir), name="gateway")


def run_gateway(platform: Platform, settings: GatewaySettings) -> None:
    """``mutls gateway``: serve until SIGINT or SIGTERM, then drain and exit."""
    processes = prepare_gateway(platform, settings)

    def started() -> None:
        serve_metrics(processes)
        processes.announce()

    try:
        run_in_foreground(
            processes.workers,
            started=started,
            on_hup=lambda: processes.signal_workers(signal.SIGHUP),
        )
    finally:
        platform.close()
        log.info("gateway stopped")
