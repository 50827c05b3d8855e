"""``mutls db``: apply and inspect schema migrations (runs against the database directly)."""

from __future__ import annotations

import typer

from mutls.cli.common import JsonOption, handle_errors
from mutls.cli.output import console, print_json
from mutls.config import Settings

app = typer.Typer(no_args_is_help=True, help="Database schema: upgrade and status.")


@app.command("upgrade")
@handle_errors
def upgrade_command(json_output: JsonOption = False) -> None:
    """Apply every pending migration to MUTLS_DATABASE_URL (or the data directory's SQLite)."""
    from mutls.store.database import Database  # noqa: PLC0415 - keep CLI start-up fast
    from mutls.store.migrate import upgrade  # noqa: PLC0415

    settings = Settings.from_env()
    database = Database(settings.effective_database_url)
    try:
        database.ping()
        before, after = upgrade(database)
    finally:
        database.dispose()
    if json_output:
        print_json({"from": before, "to": after, "database": database.redacted_url()})
    elif before == after:
        console.print(f"database {database.redacted_url()} is already at revision {after}")
    else:
        console.print(
            f"upgraded {database.redacted_url()} from {before or 'empty'} to revision {after}"
        )


@app.command("status")
@handle_errors
def status_command(json_output: JsonOption = False) -> None:
    """Show the database's schema revision and the one this mutls needs."""
    from mutls.store.database import Database  # noqa: PLC0415 - keep CLI start-up fast
    from mutls.store.migrate import current_revision, head_revision  # noqa: PLC0415

    settings = Settings.from_env()
    database = Database(settings.effective_database_url)
    try:
        database.ping()
        current, head = current_revision(database), head_revision(database)
    finally:
        database.dispose()
    if json_output:
        print_json(
            {
                "database": database.redacted_url(),
                "current": current,
                "head": head,
                "up_to_date": current == head,
            }
        )
        return
    console.print(f"database: {database.redacted_url()}")
    console.print(f"schema:   {current or 'empty'} (this mutls needs {head})")
    if current != head:
        console.print("run `mutls db upgrade` to apply the pending migrations")
        raise typer.Exit(1)
