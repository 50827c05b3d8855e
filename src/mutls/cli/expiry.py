"""``mutls expiry``: the expiry inventory and the alert check, through the admin API."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mutls.cli.client import api_client
from mutls.cli.common import JsonOption, handle_errors
from mutls.cli.output import console, err_console, print_json
from mutls.expiry.inventory import parse_kind
from mutls.expiry.levels import parse_within

__all__ = ["app"]

app = typer.Typer(no_args_is_help=False, help="Certificate expiry: inventory and alerts.")

_STYLE = {
    "ok": "green",
    "warning": "yellow",
    "urgent": "dark_orange",
    "critical": "bold red",
    "expired": "bold red",
}


@app.callback(invoke_without_command=True)
@handle_errors
def expiry(
    ctx: typer.Context,
    within: Annotated[
        str | None,
        typer.Option(
            "--within", help="Only what expires within this many days (90d or 30); expired too."
        ),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind",
            help="platform_ca, customer_ca, issued_certificate, secret_certificate, "
            "gateway_server, partner_server or gateway_client.",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Everything with a notAfter, soonest first, with days remaining and status."""
    if ctx.invoked_subcommand is not None:
        return
    params: dict[str, object] = {}
    if within is not None:
        params["within"] = parse_within(within)  # refused here before any request
    if kind is not None:
        params["kind"] = parse_kind(kind).value
    with api_client(ctx) as client:
        answer: dict[str, Any] = client.get("/admin/expiry", params=params)
    if json_output:
        print_json(answer)
        return
    items = answer.get("items", [])
    for note in answer.get("notes", []):
        err_console.print(f"note: {escape(str(note))}")
    if not items:
        err_console.print("nothing expires (with these filters)")
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("Kind", "Name", "Env", "Account", "Not after", "Days", "Status"):
        table.add_column(column, overflow="fold")
    for item in items:
        status = str(item.get("status"))
        table.add_row(
            escape(str(item.get("kind"))),
            escape(str(item.get("name"))),
            escape(str(item.get("environment") or "-")),
            escape(str(item.get("account") or "-")),
            escape(str(item.get("not_after", ""))[:19].replace("T", " ")),
            str(item.get("days_remaining")),
            f"[{_STYLE.get(status, 'white')}]{escape(status)}[/]",
        )
    console.print(table)


@app.command("check")
@handle_errors
def check(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Send the expiry notifications that are due now (each threshold once per certificate)."""
    with api_client(ctx) as client:
        answer: dict[str, Any] = client.post("/admin/expiry/check")
    if json_output:
        print_json(answer)
        return
    for note in answer.get("notes", []):
        err_console.print(f"note: {escape(str(note))}")
    sent = answer.get("notifications", [])
    console.print(f"checked {answer.get('items')} certificates; {len(sent)} notification(s) due")
    for notification in sent:
        item = notification["item"]
        outcomes = ", ".join(
            f"{d['channel']} {'ok' if d['delivered'] else 'FAILED'}"
            for d in notification["deliveries"]
        )
        console.print(
            f"  {escape(item['kind'])} {escape(item['name'])}: "
            f"{notification['threshold_days']} days threshold -> {escape(outcomes)}"
        )
