"""The periodic expiry check of ``mutls up``: at start, then every ``MUTLS_EXPIRY_CHECK_SECONDS``.

One daemon thread, owned by the supervisor: started after the data-plane workers fork, stopped
and joined on shutdown. A failing check (database down, a bug) is logged and retried at the
next tick; it never takes the node down. Several nodes may run it against one PostgreSQL
database: the notification claims in ``expiry_notifications`` keep each alert to one sender.
"""

from __future__ import annotations

import logging
import threading

from mutls.expiry.alerts import run_expiry_check
from mutls.runtime.platform import Platform

__all__ = ["ExpiryScheduler"]

log = logging.getLogger("mutls.expiry")


class ExpiryScheduler:
    def __init__(self, platform: Platform) -> None:
        self._platform = platform
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mutls-expiry", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def run_once(self) -> None:
        platform = self._platform
        try:
            report = run_expiry_check(
                platform.db,
                platform.settings.expiry,
                platform.clock(),
                sleep=self._stop.wait,  # a shutdown cuts a webhook backoff short
            )
        except Exception:
            log.exception("expiry check failed; trying again at the next interval")
            return
        failed = sum(1 for n in report.notifications for d in n.deliveries if not d.delivered)
        log.info(
            "expiry check: %d certificates, %d notification(s) sent, %d delivery failure(s)",
            report.items,
            len(report.notifications),
            failed,
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self._platform.settings.expiry.check_seconds)
