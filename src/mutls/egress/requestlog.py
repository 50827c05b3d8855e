"""The egress request log (seed 002's ``route_request_log``) and secret-use counts, in batches.

The request path appends a row to a list; a worker task writes the rows in one transaction four
times a second, off the event loop. A row says which route, environment and app, which
certificate (secret, version, fingerprint, serial) over which TLS, whether the OAuth2 token came
from the cache, the partner's status and the latency. Never a key, passphrase, token, header
value, body or query string (the path is logged without its query).

Secret use goes to the audit log without flooding it: one ``secret.use`` row per secret,
environment and version per ``MUTLS_EGRESS_USAGE_AUDIT_SECONDS`` (5 minutes), carrying the count.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert

from mutls.accounts.principal import Principal
from mutls.audit.log import record
from mutls.store.database import Database
from mutls.store.models import EgressRequest

__all__ = ["MAX_PENDING", "RequestLog"]

log = logging.getLogger("mutls.egress")

MAX_PENDING = 100_000
"""Rows kept while the database is unreachable; older ones are dropped (and counted)."""
_PRINCIPAL = Principal.system("system:egress")
_INSERT = insert(EgressRequest)


class RequestLog:
    def __init__(self, db: Database, *, enabled: bool, keep_days: int) -> None:
        self._db = db
        self._enabled = enabled
        self._keep = timedelta(days=keep_days)
        self.pending: list[dict[str, Any]] = []
        self.usage: defaultdict[tuple[str, str, str, int], int] = defaultdict(int)
        """(namespace, secret id, environment, version) -> uses since the last flush."""
        self.dropped = 0

    def add(self, row: dict[str, Any]) -> None:
        if not self._enabled:
            return
        if len(self.pending) >= MAX_PENDING:
            self.pending.pop(0)
            self.dropped += 1
        self.pending.append(row)

    def count_use(self, namespace: str, secret_id: str, environment: str, version: int) -> None:
        self.usage[(namespace, secret_id, environment, version)] += 1

    def take(self) -> list[dict[str, Any]]:
        rows, self.pending = self.pending, []
        return rows

    def take_usage(self) -> dict[tuple[str, str, str, int], int]:
        usage, self.usage = dict(self.usage), defaultdict(int)
        return usage

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Insert ``rows`` (runs in a thread)."""
        if rows:  # a Core executemany: the ORM's bulk path costs several times more per row
            with self._db.write() as session:
                session.connection().execute(_INSERT, rows)

    def write_usage(
        self,
        usage: Mapping[tuple[str, str, str, int], int],
        names: Mapping[str, str],
        now: datetime,
    ) -> None:
        """One audit row per secret version used (runs in a thread)."""
        if not usage:
            return
        with self._db.write() as session:
            for (namespace, secret_id, environment, version), count in sorted(usage.items()):
                record(
                    session,
                    principal=_PRINCIPAL,
                    action="secret.use",
                    account_id=None if namespace.startswith("_") else namespace,
                    resource_type="secret",
                    resource_id=secret_id,
                    environment=environment,
                    details={
                        "name": names.get(secret_id, secret_id),
                        "version": version,
                        "requests": count,
                        "by": "egress proxy",
                    },
                    now=now,
                )

    def prune(self, now: datetime) -> int:
        """Delete rows older than the retention (runs in a thread)."""
        with self._db.write() as session:
            result = session.execute(
                delete(EgressRequest).where(EgressRequest.at < now - self._keep)
            )
            return int(getattr(result, "rowcount", 0) or 0)
