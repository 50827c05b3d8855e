"""The snapshot watcher: a data plane's worker swaps its in-memory snapshot when the store moves.

The store's revision is the audit chain's head: every audited change moves it. On PostgreSQL the
audit append also sends ``NOTIFY mutls_changes`` (delivered at commit), and a watcher thread
``LISTEN``s; on SQLite a revision poll costs one primary-key read. Either way a slow poll runs as
a safety net, and a failed reload keeps the old snapshot (logged), like ghostunnel's certloader.
The gateway and the egress proxy run one per worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from sqlalchemy import select

from mutls.audit.log import CHANGES_CHANNEL
from mutls.store.database import Database
from mutls.store.models import AuditHead

__all__ = ["CHANNEL", "Revisioned", "SnapshotWatcher", "store_revision"]

log = logging.getLogger("mutls.proxy")

CHANNEL = CHANGES_CHANNEL


def store_revision(db: Database) -> int:
    """The store's revision: the audit chain's head sequence number."""
    with db.read() as session:
        return int(session.execute(select(AuditHead.seq)).scalar() or 0)


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
