"""The schema comes only from migrations, and the models never drift from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from mutls.errors import DatabaseUnavailable, SchemaOutdated
from mutls.store.database import Database
from mutls.store.migrate import current_revision, head_revision, require_current, upgrade
from mutls.store.models import Base


def test_migrated_database_matches_the_models(db: Database) -> None:
    """A model change without a migration fails here."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    require_current(db)


def test_upgrade_is_idempotent(db: Database) -> None:
    before, after = upgrade(db)
    assert before == after == head_revision(db)


def test_an_empty_database_is_refused_until_upgraded(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        with pytest.raises(SchemaOutdated) as caught:
            require_current(database)
        assert caught.value.hint == "apply the migrations with `mutls db upgrade`"
        upgrade(database)
        assert current_revision(database) == head_revision(database)
        require_current(database)
    finally:
        database.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with database.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
            connection.exec_driver_sql("CREATE TABLE t (x)")
            connection.commit()
        for name in ("x.db", "x.db-wal", "x.db-shm"):
            assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name
    finally:
        database.dispose()


def test_an_unreachable_postgres_is_database_unavailable() -> None:
    database = Database("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            database.ping()
        assert "127.0.0.1:1" in caught.value.message
    finally:
        database.dispose()


def test_upgrading_a_0001_database_with_data_keeps_it(database_url: str, tmp_path: Path) -> None:
    """Accounts created before the provider-side migration get its defaults."""
    from sqlalchemy import text

    from mutls.store.migrate import alembic_config

    database = Database(database_url)
    try:
        from alembic import command

        command.downgrade(alembic_config(database), "0001")
        with database.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO accounts (id, name, display_name, created_at, created_by) "
                    "VALUES ('acc_old', 'old', 'Old', CURRENT_TIMESTAMP, 'test')"
                )
            )
        upgrade(database)
        with database.engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT mtls_enabled, certificate_quota, allowed_routes, ip_allowlist "
                    "FROM accounts WHERE id = 'acc_old'"
                )
            ).one()
        assert (bool(row[0]), row[1]) == (False, 5)
        # Raw SQL: SQLite hands JSON back as text, psycopg parses it.
        assert row[2] in ("[]", [])
        assert row[3] in ("[]", [])
    finally:
        database.dispose()
