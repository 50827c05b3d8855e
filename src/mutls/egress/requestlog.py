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

import functools
import logging
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete

from mutls.accounts.principal import Principal
from mutls.audit.log import record
from mutls.store.database import Database
from mutls.store.models import EgressRequest

__all__ = ["MAX_PENDING", "RequestLog"]

log = logging.getLogger("mutls.egress")

MAX_PENDING = 100_000
"""Rows kept while the database is unreachable; older ones are dropped (and counted)."""
_PRINCIPAL = Principal.system("system:egress")
_COLUMNS = tuple(column.name for column in EgressRequest.__table__.columns if column.name != "id")
assert _COLUMNS[0] == "at"


_COPY = f"COPY {EgressRequest.__tablename__} ({', '.join(_COLUMNS)}) FROM STDIN"
_ROWS_PER_STATEMENT = 500
"""Rows per INSERT: 12,000 parameters, below SQLite's 32,766 and PostgreSQL's 65,535."""


@functools.lru_cache(maxsize=32)
def _insert_for(paramstyle: str, rows: int) -> str:
    """One multi-row INSERT of ``rows`` rows in the driver's parameter style."""
    marker = "?" if paramstyle == "qmark" else "%s"
    one = f"({', '.join([marker] * len(_COLUMNS))})"
    # Only the model's own table and column names go into the text; every value is a parameter.
    return (
        f"INSERT INTO {EgressRequest.__tablename__} ({', '.join(_COLUMNS)}) "  # noqa: S608
        f"VALUES {', '.join([one] * rows)}"
    )


def _refuses_data(error: BaseException) -> bool:
    """The database refused a value (DB-API ``DataError`` or ``IntegrityError``, from the driver
    or as SQLAlchemy wraps it), as opposed to not answering."""
    return any(kind.__name__ in ("DataError", "IntegrityError") for kind in type(error).__mro__)


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
        """Insert ``rows`` (runs in a thread beside the event loop). A row the database refuses
        (a value it cannot store) is dropped and counted, and the rest are written; any other
        failure (the database is away) raises, and the caller keeps the rows for the next try."""
        if not rows:
            return
        try:
            self._insert(rows)
        except Exception as error:
            if not _refuses_data(error):
                raise
            for row in rows:  # find the rows it refuses; write the others
                try:
                    self._insert([row])
                except Exception as single:
                    if not _refuses_data(single):
                        raise
                    self.dropped += 1
                    log.warning(
                        "egress request log: the database refused a row for route %s (%s); dropped",
                        row.get("route_name"),
                        type(single).__name__,
                    )

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        """One transaction. Straight to the driver (COPY on PostgreSQL, multi-row INSERTs on
        SQLite): the driver releases the GIL while the database works, once per statement. With
        SQLAlchemy's ``executemany`` that was once per row, and each time the event loop beside
        this thread had to hand the GIL back: a forced thread switch per request logged."""
        with self._db.write() as session:
            connection = session.connection()
            dialect = connection.dialect
            names = _COLUMNS[1:]
            if dialect.name == "postgresql":  # COPY: psycopg's fastest way in, in C
                driver = connection.connection.driver_connection
                assert driver is not None
                with driver.cursor().copy(_COPY) as copy:
                    for row in rows:
                        copy.write_row([row["at"], *[row[name] for name in names]])
                return
            at = EgressRequest.__table__.c.at.type.bind_processor(dialect)
            assert at is not None
            for start in range(0, len(rows), _ROWS_PER_STATEMENT):
                chunk = rows[start : start + _ROWS_PER_STATEMENT]
                values: list[Any] = []
                for row in chunk:
                    values.append(at(row["at"]))
                    values.extend([row[name] for name in names])
                connection.exec_driver_sql(
                    _insert_for(dialect.paramstyle, len(chunk)), tuple(values)
                )

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
