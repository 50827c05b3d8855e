"""``mutls account ca add|list|remove``: an account's own CAs (seed 004) through the admin API.

The customer runs its own CA and sends its chain; a platform admin adds it to the account's trust
(``mutls account ca add acme --chain acme-ca.pem --pattern '*.acme.example'``). Client
certificates that chain to it then map to the account.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mutls.cli.client import api_client, segment
from mutls.cli.common import JsonOption, handle_errors
from mutls.cli.output import console, err_console, print_json
from mutls.files import read_input

__all__ = ["app"]

MAX_CHAIN_FILE = 256 * 1024

app = typer.Typer(
    no_args_is_help=True, help="An account's own CAs (bring your own CA), via the API."
)

AccountArg = Annotated[str, typer.Argument(help="Account id (acc_...) or name.")]


def _escape(text: object) -> str:
    return str(text).replace("[", r"\[")


def _when(value: object) -> str:
    return value.replace("T", " ")[:19] if isinstance(value, str) else "-"


@app.command("add")
@handle_errors
def ca_add(
    ctx: typer.Context,
    account: AccountArg,
    chain: Annotated[
        Path,
        typer.Option(
            "--chain",
            help="The customer's CA chain, PEM: root and intermediates, any order.",
            show_default=False,
        ),
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="A unique name for the CA.", show_default=False)
    ] = None,
    pattern: Annotated[
        list[str] | None,
        typer.Option(
            "--pattern",
            help="Only certificates whose CN or DNS SAN matches this glob (repeatable), "
            "like '*.acme.example'.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Trust the account's own CA chain: its client certificates map to the account."""
    body: dict[str, object] = {
        "chain_pem": read_input(chain, max_size=MAX_CHAIN_FILE).decode("utf-8", "replace"),
        "subject_patterns": list(pattern or []),
    }
    if name is not None:
        body["name"] = name
    with api_client(ctx) as client:
        added: dict[str, Any] = client.post(f"/admin/accounts/{segment(account)}/cas", body)
    if json_output:
        print_json(added)
        return
    console.print(
        f"[green]✓[/] account {_escape(account)} trusts {_escape(added['subject'])} "
        f"as {_escape(added['name'])} ({added['id']})"
    )
    console.print(f"  chain     {_escape(' <- '.join(reversed(added['chain_subjects'])))}")
    patterns = added.get("subject_patterns") or []
    console.print(f"  patterns  {_escape(', '.join(patterns)) if patterns else 'any subject'}")
    console.print(f"  expires   {_when(added.get('not_after'))}")


@app.command("list")
@handle_errors
def ca_list(ctx: typer.Context, account: AccountArg, json_output: JsonOption = False) -> None:
    """The CAs the account trusts."""
    with api_client(ctx) as client:
        answer: dict[str, Any] = client.get(f"/admin/accounts/{segment(account)}/cas")
    if json_output:
        print_json(answer)
        return
    rows = answer.get("cas", [])
    if not rows:
        err_console.print(
            f"account {_escape(account)} trusts no CA of its own; add one with "
            "`mutls account ca add ACCOUNT --chain FILE`"
        )
        return
    table = Table(box=None, header_style="bold")
    for column in ("id", "name", "subject", "patterns", "expires"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["id"],
            _escape(row["name"]),
            _escape(row["subject"]),
            _escape(", ".join(row.get("subject_patterns") or []) or "any"),
            _when(row.get("not_after")),
        )
    console.print(table)


@app.command("remove")
@handle_errors
def ca_remove(
    ctx: typer.Context,
    account: AccountArg,
    ca: Annotated[str, typer.Argument(help="The trusted CA's id (ca_...) or name.")],
    json_output: JsonOption = False,
) -> None:
    """Stop trusting one of the account's CAs; its certificates no longer map to the account."""
    with api_client(ctx) as client:
        removed: dict[str, Any] = client.delete(
            f"/admin/accounts/{segment(account)}/cas/{segment(ca)}"
        )
    if json_output:
        print_json(removed)
        return
    console.print(
        f"[green]✓[/] account {_escape(account)} no longer trusts {_escape(removed['subject'])} "
        f"({removed['id']})"
    )
