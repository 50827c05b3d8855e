"""Run the egress proxy: bind its listener, fork the workers that share it, serve metrics, stop.

Like the gateway (``runtime.workers``): the parent binds once and forks ``MUTLS_EGRESS_WORKERS``
workers, each a single-threaded uvloop with its own snapshot, partner pool and token cache. The
parent loads the snapshot once first, so a broken vault (no master key) fails at start, not in
every worker.
"""

from __future__ import annotations

import logging
import socket
import tempfile
from pathlib import Path

import uvloop

from mutls.config import EgressSettings
from mutls.egress.snapshot import EgressLoader
from mutls.egress.worker import EgressWorker
from mutls.runtime.listeners import bind
from mutls.runtime.platform import Platform
from mutls.runtime.workers import WorkerProcesses, run_in_foreground, serve_metrics

__all__ = ["EgressProcesses", "prepare_egress", "run_egress", "serve_egress_metrics"]

log = logging.getLogger("mutls.egress")


class EgressProcesses:
    """The bound listener and the egress worker processes serving it."""

    def __init__(
        self, *, platform: Platform, settings: EgressSettings, sock: socket.socket, run_dir: Path
    ) -> None:
        self.platform, self.settings, self.sock, self.run_dir = platform, settings, sock, run_dir
        self.workers = WorkerProcesses(
            name="egress proxy",
            count=settings.workers,
            sockets=[sock],
            main=self._worker_main,
            drain_seconds=settings.drain_seconds,
        )

    @property
    def url(self) -> str:
        return f"http://{self.settings.address}"

    def announce(self) -> None:
        log.info(
            "egress proxy listening on %s (%s workers); apps call %s/<route>/<path>",
            self.url,
            self.settings.workers,
            self.url,
        )

    def start(self) -> None:
        self.workers.start()

    def _worker_main(self) -> int:
        platform = self.platform
        platform.db.engine.dispose(close=False)  # the parent's connections are not ours

        async def main() -> None:
            loader = EgressLoader(platform.db, platform.keys)
            snapshot = loader.load(now=platform.clock())
            worker = EgressWorker(
                db=platform.db,
                loader=loader,
                settings=self.settings,
                snapshot=snapshot,
                sock=self.sock,
                clock=platform.clock,
                run_dir=self.run_dir,
            )
            await worker.serve()

        uvloop.run(main())
        return 0

    def reap(self, *, block: bool) -> None:
        self.workers.reap(block=block)

    def stop(self) -> None:
        self.workers.stop()


def prepare_egress(platform: Platform, settings: EgressSettings) -> EgressProcesses:
    """Check that the snapshot loads (store, master key), bind the listener."""
    EgressLoader(platform.db, platform.keys).load(now=platform.clock())
    host, port = settings.listen
    sock = bind(host, port, setting="MUTLS_EGRESS_LISTEN")
    sock.listen(1024)
    sock.setblocking(False)
    run_dir = Path(tempfile.mkdtemp(prefix="mutls-egress-"))
    return EgressProcesses(platform=platform, settings=settings, sock=sock, run_dir=run_dir)


def serve_egress_metrics(processes: EgressProcesses) -> None:
    from mutls.egress.metrics import EgressCollector  # noqa: PLC0415

    listen = processes.settings.metrics_listen
    serve_metrics(listen, EgressCollector(processes.run_dir), name="egress")


def run_egress(platform: Platform, settings: EgressSettings) -> None:
    """``mutls egress``: serve until SIGINT or SIGTERM, then drain and exit."""
    processes = prepare_egress(platform, settings)

    def started() -> None:
        serve_egress_metrics(processes)
        processes.announce()

    try:
        run_in_foreground(processes.workers, started=started)
    finally:
        platform.close()
        log.info("egress proxy stopped")
