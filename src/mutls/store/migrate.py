"""Apply and inspect Alembic migrations from code (``mutls db upgrade`` and first start)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from mutls.errors import SchemaOutdated
from mutls.store.database import Database

__all__ = ["alembic_config", "current_revision", "head_revision", "require_current", "upgrade"]


def alembic_config(database: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", "mutls.store:migrations")
    config.attributes["engine"] = database.engine
    return config


def head_revision(database: Database) -> str:
    head = ScriptDirectory.from_config(alembic_config(database)).get_current_head()
    assert head is not None  # the package always ships at least one migration
    return head


def current_revision(database: Database) -> str | None:
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(database: Database, revision: str = "head") -> tuple[str | None, str]:
    """Migrate to ``revision``; returns (revision before, revision after)."""
    before = current_revision(database)
    command.upgrade(alembic_config(database), revision)
    after = current_revision(database)
    assert after is not None
    return before, after


def require_current(database: Database) -> None:
    """Refuse to serve on a schema older (or newer) than this code."""
    current, head = current_revision(database), head_revision(database)
    if current != head:
        raise SchemaOutdated(
            f"expected database schema revision {head}; "
            f"found {current or 'an empty database'} at {database.redacted_url()}"
        )
