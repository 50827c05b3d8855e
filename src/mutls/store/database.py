"""The database handle: one engine, and one transaction per business operation.

SQLite is tuned for a small server rather than a script: write-ahead logging so readers never
wait for the writer, ``BEGIN IMMEDIATE`` for write transactions so two writers queue on the lock
instead of failing half-way with "database is locked", foreign keys on, and ``secure_delete`` so
a deleted secret's bytes are overwritten in the file rather than left in free pages.

PostgreSQL needs nothing special; services that must serialise (the audit chain, quotas) take
row locks with ``SELECT ... FOR UPDATE``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session, sessionmaker

from mutls.errors import DatabaseUnavailable, MutlsError

__all__ = ["Database"]

BUSY_TIMEOUT_MS = 15_000


class Database:
    """An engine plus the two kinds of session services use: ``write()`` and ``read()``."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            database = self.url.database
            if database and database != ":memory:":
                path = Path(database)
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                # Created private from the start; SQLite gives -wal and -shm the same mode.
                os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
            kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_MS / 1000}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            _tune_sqlite(self.engine)
        self._write_engine = self.engine.execution_options(mutls_write=True)
        self._writer = sessionmaker(bind=self._write_engine, expire_on_commit=False)
        self._reader = sessionmaker(bind=self.engine, expire_on_commit=False)

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.url.get_backend_name()

    def redacted_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        with _translated(self), self._writer() as session, session.begin():
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A write transaction as a Core connection, for hot paths that need no ORM unit of work
        (certificate issuance): the same transaction as ``write()`` (``BEGIN IMMEDIATE`` on
        SQLite, the store's durability settings), committed when the block ends, rolled back if
        it raises."""
        with _translated(self), self._write_engine.begin() as connection:
            yield connection

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work: never committed; closing it ends the transaction and leaves
        the loaded objects usable (detached, not expired)."""
        with _translated(self), self._reader() as session:
            yield session

    def ping(self) -> None:
        """Raise ``DatabaseUnavailable`` unless a trivial query succeeds."""
        with _translated(self), self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def _translated(database: Database) -> Iterator[None]:
    """Driver errors that mean "the database is not there" become ``DatabaseUnavailable``."""
    try:
        yield
    except MutlsError:
        raise
    except (exc.OperationalError, exc.InterfaceError) as error:
        if not _is_unavailable(error):
            raise
        raise DatabaseUnavailable(
            f"expected the database at {database.redacted_url()} to answer; "
            f"it did not ({type(error.orig).__name__})"
        ) from None


def _is_unavailable(error: exc.DBAPIError) -> bool:
    text = str(error.orig).lower()
    markers = ("connection", "could not connect", "unable to open", "server closed", "timeout")
    return error.connection_invalidated or any(m in text for m in markers)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # Take transaction control from the driver so BEGIN IMMEDIATE is possible (SQLAlchemy's
        # documented recipe for pysqlite).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA secure_delete=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("mutls_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
