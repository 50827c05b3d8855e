"""Run the gateway: bind the listeners, fork N workers that share them, serve metrics, stop.

The parent binds every listener once, then forks the workers, which inherit the listening sockets
and accept from them (as nginx's workers do). Each worker is a single-threaded uvloop with its own
database connection, snapshot and upstream pool, so nothing is shared on the request path. The
parent restarts a worker that dies, forwards SIGTERM/SIGINT (graceful drain) and SIGHUP
(certificate reload), and serves ``/metrics`` summed over the workers.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

from mutls.config import GatewaySettings
from mutls.errors import CANotInitialized
from mutls.gateway.identity import ServerIdentity
from mutls.gateway.snapshot import load_snapshot
from mutls.gateway.worker import Worker
from mutls.runtime.listeners import bind
from mutls.runtime.platform import Platform

__all__ = ["GatewayProcesses", "prepare_gateway", "run_gateway", "serve_metrics"]

log = logging.getLogger("mutls.gateway")

_PR_SET_PDEATHSIG = 1


def _server_identity(platform: Platform, settings: GatewaySettings) -> ServerIdentity:
    if settings.cert_file is not None and settings.key_file is not None:
        return ServerIdentity.from_files(settings.cert_file, settings.key_file)
    from mutls.ca.issuer import IssuerCache  # noqa: PLC0415
    from mutls.ca.server_identity import issue_server_identity  # noqa: PLC0415

    now = platform.clock()
    try:
        issuer = IssuerCache(platform.db, platform.keys, platform.settings.ca_dir).platform(now=now)
    except CANotInitialized:
        raise CANotInitialized(
            "the gateway has no server certificate: MUTLS_GATEWAY_CERT_FILE is not set and this "
            f"node has no platform CA in {platform.settings.ca_dir}",
            hint="set MUTLS_GATEWAY_CERT_FILE and MUTLS_GATEWAY_KEY_FILE, or run `mutls up` once",
        ) from None
    return ServerIdentity.issued(
        issue_server_identity(issuer, platform.settings.server_names, now=now)
    )


@dataclass
class GatewayProcesses:
    """The bound listeners and the worker processes serving them."""

    platform: Platform
    settings: GatewaySettings
    identity: ServerIdentity
    sockets: list[socket.socket]
    run_dir: Path
    children: dict[int, int] = field(default_factory=dict)
    """pid -> worker slot."""
    stopping: bool = False

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
        for slot in range(self.settings.workers):
            self._spawn(slot)

    def _spawn(self, slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                code = self._worker_main()
            except BaseException:
                log.exception("gateway worker %s crashed", os.getpid())
            finally:
                logging.shutdown()
                os._exit(code)
        self.children[pid] = slot

    def _worker_main(self) -> int:
        with contextlib.suppress(Exception):  # not Linux: no parent-death signal
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)  # die with the parent
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
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
        """Collect exited workers; restart them unless stopping."""
        while self.children:
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            slot = self.children.pop(pid, None)
            if slot is None:
                continue
            if not self.stopping:
                log.error(
                    "gateway worker %s exited (%s); starting a new one",
                    pid,
                    os.waitstatus_to_exitcode(status),
                )
                time.sleep(0.2)
                self._spawn(slot)

    def signal_workers(self, signum: int) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                self.children.pop(pid, None)

    def stop(self) -> None:
        """Drain: workers finish what is in flight (MUTLS_GATEWAY_DRAIN_SECONDS), then exit."""
        self.stopping = True
        # Close our copies first: once the workers close theirs, new connections are refused
        # instead of queueing on a socket nobody accepts from any more.
        for sock in self.sockets:
            sock.close()
        self.signal_workers(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.drain_seconds + 5
        while self.children and time.monotonic() < deadline:
            self.reap(block=False)
            time.sleep(0.05)
        self.signal_workers(signal.SIGKILL)
        self.reap(block=True)


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
    listen = processes.settings.metrics_listen
    if listen is None:
        return
    from prometheus_client import CollectorRegistry, start_http_server  # noqa: PLC0415

    from mutls.gateway.metrics import GatewayCollector  # noqa: PLC0415

    registry = CollectorRegistry()
    registry.register(GatewayCollector(processes.run_dir))
    start_http_server(listen[1], addr=listen[0], registry=registry)
    log.info("gateway metrics on http://%s:%s/metrics", *listen)


def run_gateway(platform: Platform, settings: GatewaySettings) -> None:
    """``mutls gateway``: serve until SIGINT or SIGTERM, then drain and exit."""
    processes = prepare_gateway(platform, settings)
    stop = {"now": False}

    def on_stop(_signum: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, lambda *_: processes.signal_workers(signal.SIGHUP))
    processes.start()
    try:
        serve_metrics(processes)
        processes.announce()
        while not stop["now"]:
            processes.reap(block=False)
            time.sleep(0.1)
    finally:
        processes.stop()
        platform.close()
        log.info("gateway stopped")
