"""Worker processes that share listening sockets: fork, restart the dead, drain on stop.

The parent binds every listener once, then forks ``count`` workers, which inherit the listening
sockets and accept from them (as nginx's workers do). Each worker runs ``main`` (its own event
loop, database connection and snapshot), so nothing is shared on the request path. The parent
restarts a worker that dies, forwards signals, and on stop closes its copies of the sockets,
sends SIGTERM (graceful drain) and waits ``drain_seconds`` (+5) before SIGKILL. The gateway and
the egress proxy both run this way.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

__all__ = ["WorkerProcesses", "run_in_foreground", "serve_metrics"]

log = logging.getLogger("mutls.workers")

_PR_SET_PDEATHSIG = 1


@dataclass
class WorkerProcesses:
    name: str
    """For log lines: ``gateway``, ``egress proxy``."""
    count: int
    sockets: list[socket.socket]
    main: Callable[[], int]
    """Runs in each forked worker; returns its exit code."""
    drain_seconds: float
    children: dict[int, int] = field(default_factory=dict)
    """pid -> worker slot."""
    stopping: bool = False

    def start(self) -> None:
        for slot in range(self.count):
            self._spawn(slot)

    def _spawn(self, slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                with contextlib.suppress(Exception):  # not Linux: no parent-death signal
                    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
                for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                    signal.signal(signum, signal.SIG_DFL)
                code = self.main()
            except BaseException:
                log.exception("%s worker %s crashed", self.name, os.getpid())
            finally:
                logging.shutdown()
                os._exit(code)
        self.children[pid] = slot

    def reap(self, *, block: bool) -> None:
        """Collect this set's exited workers; restart them unless stopping. Only its own pids
        are waited for: ``mutls up`` runs the gateway's and the egress proxy's sets side by side,
        and a ``waitpid(-1)`` here would swallow the other set's exits."""
        for pid in list(self.children):
            try:
                waited, status = os.waitpid(pid, 0 if block else os.WNOHANG)
            except ChildProcessError:
                self.children.pop(pid, None)
                continue
            if waited == 0:
                continue
            slot = self.children.pop(pid)
            if not self.stopping:
                log.error(
                    "%s worker %s exited (%s); starting a new one",
                    self.name,
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
        """Drain: workers finish what is in flight (``drain_seconds``), then exit."""
        self.stopping = True
        # Close our copies first: once the workers close theirs, new connections are refused
        # instead of queueing on a socket nobody accepts from any more.
        for sock in self.sockets:
            sock.close()
        self.signal_workers(signal.SIGTERM)
        deadline = time.monotonic() + self.drain_seconds + 5
        while self.children and time.monotonic() < deadline:
            self.reap(block=False)
            time.sleep(0.05)
        self.signal_workers(signal.SIGKILL)
        self.reap(block=True)


def serve_metrics(listen: tuple[str, int] | None, collector: Collector, *, name: str) -> None:
    """Prometheus text for ``collector`` on ``listen`` (a thread of this process), if set."""
    if listen is None:
        return
    from prometheus_client import CollectorRegistry, start_http_server  # noqa: PLC0415

    registry = CollectorRegistry()
    registry.register(collector)
    start_http_server(listen[1], addr=listen[0], registry=registry)
    log.info("%s metrics on http://%s:%s/metrics", name, *listen)


def run_in_foreground(
    workers: WorkerProcesses,
    *,
    started: Callable[[], None],
    on_hup: Callable[[], None] | None = None,
) -> None:
    """Start ``workers``, call ``started`` (metrics, announcements), restart dead workers until
    SIGINT or SIGTERM, then drain them. ``on_hup`` handles SIGHUP (else it is ignored)."""
    stop = {"now": False}

    def on_stop(_signum: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    if on_hup is not None:
        signal.signal(signal.SIGHUP, lambda *_: on_hup())
    workers.start()
    try:
        started()
        while not stop["now"]:
            workers.reap(block=False)
            time.sleep(0.1)
    finally:
        workers.stop()
