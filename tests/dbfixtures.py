"""Real databases for tests: a fresh SQLite file and a fresh PostgreSQL schema state per test.

Every test that takes ``db`` runs twice, once per backend. PostgreSQL is the one at
``MUTLS_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``); each xdist
worker creates its own database from it, migrates it once, and truncates it between tests.
When the server is missing the PostgreSQL half is skipped with a notice, except in CI
(``CI=true``), where a missing server fails the run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mutls.store.database import Database
from mutls.store.migrate import upgrade
from mutls.store.models import Base

if TYPE_CHECKING:
    from mutls.vault.keysource import KeySource

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ["sqlite", "postgresql"]
_pg_problem: list[str] = []


def postgres_admin_url() -> str:
    url = os.environ.get("MUTLS_TEST_POSTGRES_URL", DEFAULT_PG)
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _require_postgres() -> str:
    """Admin URL of a reachable server, or skip (fail in CI)."""
    url = postgres_admin_url()
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        reason = f"PostgreSQL not reachable at {make_url(url).render_as_string()}: {exc}"
        if in_ci():
            pytest.fail(f"CI=true requires PostgreSQL. {reason}", pytrace=False)
        if not _pg_problem:
            _pg_problem.append(reason)
        pytest.skip(f"PostgreSQL tests skipped: {reason}")
    return url


@pytest.fixture(scope="session")
def _postgres_database(worker_id: str) -> Iterator[str]:
    """One migrated PostgreSQL database per xdist worker, dropped at the end."""
    admin = _require_postgres()
    name = f"mutls_test_{worker_id}_{uuid.uuid4().hex[:8]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    database = Database(url)
    upgrade(database)
    database.dispose()
    try:
        yield url
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "mutls.db"
    database = Database(f"sqlite:///{path}")
    upgrade(database)
    with database.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    database.dispose()
    return path


def _reset_postgres(url: str) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        connection.execute(
            text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :genesis)"),
            {"genesis": "0" * 64},
        )
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database of each backend."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "mutls.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("_postgres_database")
    _reset_postgres(url)
    return url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def key_source(tmp_path: Path) -> KeySource:
    """A fresh master key file (version 1) in the test's directory."""
    from mutls.vault.keysource import KeySource

    source = KeySource(path=tmp_path / "master.key")
    source.create()
    return source


def _postgres_problem() -> str | None:
    url = postgres_admin_url()
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL not reachable at {make_url(url).render_as_string()}: {exc}"
    return None


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say loudly, at the end of the run, that half the database tests did not run."""
    problem = _pg_problem[0] if _pg_problem else _postgres_problem()
    if problem:
        terminalreporter.write_sep("!", "NOTICE: PostgreSQL tests were SKIPPED", yellow=True)
        terminalreporter.write_line(problem)
        terminalreporter.write_line("start PostgreSQL or set MUTLS_TEST_POSTGRES_URL to run them")


@contextlib.contextmanager
def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database (its URL, plain ``postgresql://``) dropped afterwards:
    for tests that run mutls processes against a database of their own. Skips (fails in CI) when
    no server answers."""
    admin = _require_postgres()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            make_url(admin)
            .set(drivername="postgresql", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
