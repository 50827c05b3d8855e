"""``mutls vault``: master key status, rotation and revocation (runs on the data directory)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mutls.cli.common import JsonOption, handle_errors
from mutls.cli.output import console, err_console, print_json
from mutls.config import Settings
from mutls.vault.keyring import format_keyring, generate_master_key

if TYPE_CHECKING:
    from mutls.runtime.platform import Platform

DEFAULT_BATCH = 200  # mutls.vault.masterkeys.DEFAULT_BATCH; the store is imported lazily

app = typer.Typer(no_args_is_help=True, help="The vault's master key: status, rotate, revoke.")


def utc_now() -> datetime:
    return datetime.now(UTC)


def _platform() -> Platform:
    """Open the store directly (these commands run beside, not through, the server)."""
    from mutls.runtime.platform import Platform  # noqa: PLC0415 - keep CLI start-up fast
    from mutls.store.migrate import require_current  # noqa: PLC0415
    from mutls.vault.masterkeys import ensure_registered  # noqa: PLC0415

    platform = Platform.from_settings(Settings.from_env())
    try:
        require_current(platform.db)
        ensure_registered(platform.db, platform.keys, now=utc_now())
    except BaseException:
        platform.close()
        raise
    return platform


@app.command("status")
@handle_errors
def status(json_output: JsonOption = False) -> None:
    """Each master key version, its state, and how many data keys it still wraps."""
    from mutls.vault.masterkeys import key_usage  # noqa: PLC0415

    platform = _platform()
    try:
        rows = [
            {
                "version": r.version,
                "state": r.state,
                "data_keys": n,
                "created_at": r.created_at.isoformat(),
            }
            for r, n in key_usage(platform.db)
        ]
    finally:
        platform.close()
    if json_output:
        print_json({"key_source": platform.keys.description, "versions": rows})
        return
    console.print(f"master key source: {platform.keys.description}")
    for row in rows:
        console.print(
            f"  v{row['version']}  {row['state']:<8}  wraps {row['data_keys']} data key(s)"
        )


BatchOption = Annotated[
    int, typer.Option("--batch-size", min=1, max=10000, help="Data keys rewrapped per commit.")
]


@app.command("rotate-master-key")
@handle_errors
def rotate_master_key(
    batch_size: BatchOption = DEFAULT_BATCH, json_output: JsonOption = False
) -> None:
    """Make a new master key version active and rewrap every data key under it.

    Safe to interrupt: run it again and it resumes. Values stay readable throughout, because
    the previous version keeps decrypting until its last data key is rewrapped.
    """
    from mutls.vault.masterkeys import rotate  # noqa: PLC0415

    platform = _platform()
    try:
        with Progress(
            TextColumn("rewrapping data keys"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err_console,
            disable=json_output,
        ) as bar:
            task = bar.add_task("rewrap", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = rotate(
                platform.db,
                platform.keys,
                now=utc_now(),
                batch_size=batch_size,
                progress=progress,
            )
    finally:
        platform.close()
    if json_output:
        print_json(
            {
                "active_version": result.active_version,
                "rewrapped": result.rewrapped,
                "resumed": result.resumed,
            }
        )
        return
    verb = "resumed and finished" if result.resumed else "rotated"
    console.print(
        f"{verb}: master key v{result.active_version} is active; "
        f"{result.rewrapped} data key(s) rewrapped"
    )
    console.print("back up the key file now: it holds the new version")


VersionArgument = Annotated[int, typer.Argument(min=1, help="The master key version.")]


@app.command("revoke-master-key")
@handle_errors
def revoke_master_key(
    version: VersionArgument,
    force: Annotated[
        bool, typer.Option("--force", help="Destroy values still wrapped by this version.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Revoke a retired version and remove it from the key file (crypto-erasure)."""
    from mutls.vault.masterkeys import revoke  # noqa: PLC0415

    platform = _platform()
    try:
        destroyed = revoke(platform.db, platform.keys, version, now=utc_now(), force=force)
    finally:
        platform.close()
    if json_output:
        print_json({"revoked": version, "destroyed_values": destroyed})
        return
    console.print(f"master key v{version} revoked; {destroyed} value(s) destroyed with it")


@app.command("generate-master-key")
@handle_errors
def generate(version: Annotated[int, typer.Option("--version", min=1)] = 1) -> None:
    """Print a new master key line for MUTLS_MASTER_KEY (to stdout only; keep it secret)."""
    print(format_keyring([generate_master_key(version)]), end="")
