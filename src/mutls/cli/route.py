"""``mutls route add|list|show|update|remove``: the gateway's routes, through the admin API.

A route sends the requests for a host, a path prefix and (optionally) an API version to one
upstream, and says what the caller must show: a client certificate (``--mtls``), an account on
the route's list (``--account``), an Authorization header (``--authorization``)::

    mutls route add payments-v2 --upstream http://127.0.0.1:9000 \\
        --host api.example.com --prefix /payments --api-version v2 --account acme

See docs/gateway-routes.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer
from rich.table import Table

from mutls.cli.client import api_client, segment
from mutls.cli.common import JsonOption, handle_errors
from mutls.cli.output import console, err_console, print_json
from mutls.errors import InvalidArgument

__all__ = ["app"]

app = typer.Typer(
    no_args_is_help=True,
    help="Gateway routes: which requests go to which upstream, and who may call, via the API.",
)

RefArg = Annotated[str, typer.Argument(help="The route's id (rte_...) or name.")]
UpstreamOption = Annotated[
    str | None,
    typer.Option(
        "--upstream",
        help="Where matching requests go: http://host:port (plain HTTP; https is not supported "
        "yet).",
        show_default=False,
    ),
]
HostOption = Annotated[
    str | None,
    typer.Option(
        "--host",
        help="Exact host (api.example.com) or wildcard (*.example.com); left out: any host.",
        show_default=False,
    ),
]
PrefixOption = Annotated[
    str | None,
    typer.Option(
        "--prefix", help="Path prefix, matched by whole segments (/api).", show_default=False
    ),
]
ApiVersionOption = Annotated[
    str | None,
    typer.Option(
        "--api-version",
        help="API version the request must carry (v2): the path segment after the prefix, or "
        "the --version-header.",
        show_default=False,
    ),
]
VersionHeaderOption = Annotated[
    str | None,
    typer.Option(
        "--version-header",
        help="Read the API version from this request header (api-version) instead of the path.",
        show_default=False,
    ),
]
MtlsOption = Annotated[
    str | None,
    typer.Option(
        "--mtls",
        help="Client certificate: required (default), optional or off.",
        show_default=False,
    ),
]
AccountsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--account",
        help="Account (id or name) allowed on the route (repeatable); none: every account "
        "whose mTLS is enabled.",
        show_default=False,
    ),
]
AuthorizationOption = Annotated[
    str | None,
    typer.Option(
        "--authorization",
        help="Authorization header required besides the certificate: none (default), basic, "
        "bearer or any.",
        show_default=False,
    ),
]
DescriptionOption = Annotated[
    str | None, typer.Option("--description", help="For people.", show_default=False)
]


def _escape(text: object) -> str:
    return str(text).replace("[", r"\[")


def _or(value: object, empty: str) -> str:
    return _escape(value) if value not in (None, "", []) else empty


def _version(route: Mapping[str, Any]) -> str:
    version = route.get("api_version")
    if not version:
        return "any"
    header = route.get("version_header")
    return f"{_escape(version)} (header {_escape(header)})" if header else _escape(version)


def _accounts(route: Mapping[str, Any]) -> str:
    accounts = route.get("allowed_accounts") or []
    if accounts:
        return ", ".join(accounts)
    return "anyone (no certificate checks)" if route.get("mtls") == "off" else "any with mTLS"


def _show(route: Mapping[str, Any]) -> None:
    console.print(f"[bold]{_escape(route['name'])}[/] ({route['id']})")
    lines = [
        ("host", _or(route.get("host"), "any")),
        ("prefix", _escape(route.get("path_prefix", "/"))),
        ("version", _version(route)),
        ("upstream", _escape(route.get("upstream_url"))),
        ("mtls", _escape(route.get("mtls"))),
        ("accounts", _accounts(route)),
        ("authorization", _escape(route.get("authorization"))),
        ("description", _or(route.get("description"), "-")),
        ("updated", _escape(str(route.get("updated_at", "-")).replace("T", " ")[:19])),
    ]
    for key, value in lines:
        console.print(f"  {key:<13}  {value}")


def _nullable(value: str) -> str | None:
    """An empty option value (``--host ''``) clears the field."""
    return value if value.strip() else None


@app.command("add")
@handle_errors
def route_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Unique slug, like payments-v2.")],
    upstream: UpstreamOption = None,
    host: HostOption = None,
    prefix: PrefixOption = None,
    api_version: ApiVersionOption = None,
    version_header: VersionHeaderOption = None,
    mtls: MtlsOption = None,
    account: AccountsOption = None,
    authorization: AuthorizationOption = None,
    description: DescriptionOption = None,
    json_output: JsonOption = False,
) -> None:
    """Add a route."""
    if upstream is None:
        raise InvalidArgument(
            "expected --upstream with the service's address; found none",
            hint="for example: --upstream http://127.0.0.1:9000",
        )
    body: dict[str, object] = {"name": name, "upstream_url": upstream}
    optional = {
        "host": host,
        "path_prefix": prefix,
        "api_version": api_version,
        "version_header": version_header,
        "mtls": mtls,
        "authorization": authorization,
        "description": description,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    body["allowed_accounts"] = list(account or [])
    with api_client(ctx) as client:
        route: dict[str, Any] = client.post("/admin/routes", body)
    if json_output:
        print_json(route)
        return
    console.print(f"[green]✓[/] added route {_escape(route['name'])} ({route['id']})")
    _show(route)


@app.command("list")
@handle_errors
def route_list(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Every route, in the order the gateway tries them (most specific first)."""
    with api_client(ctx) as client:
        answer: dict[str, Any] = client.get("/admin/routes")
    if json_output:
        print_json(answer)
        return
    rows = answer.get("routes", [])
    if not rows:
        err_console.print(
            "no routes yet; add one with `mutls route add NAME --upstream http://HOST:PORT`"
        )
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("Name", "Host", "Prefix", "Version", "mTLS", "Auth", "Accounts", "Upstream"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            _escape(row["name"]),
            _or(row.get("host"), "any"),
            _escape(row["path_prefix"]),
            _version(row),
            _escape(row["mtls"]),
            _escape(row["authorization"]),
            _accounts(row),
            _escape(row["upstream_url"]),
        )
    console.print(table)


@app.command("show")
@handle_errors
def route_show(ctx: typer.Context, ref: RefArg, json_output: JsonOption = False) -> None:
    """One route."""
    with api_client(ctx) as client:
        route: dict[str, Any] = client.get(f"/admin/routes/{segment(ref)}")
    if json_output:
        print_json(route)
        return
    _show(route)


@app.command("update")
@handle_errors
def route_update(
    ctx: typer.Context,
    ref: RefArg,
    name: Annotated[
        str | None, typer.Option("--name", help="A new name.", show_default=False)
    ] = None,
    upstream: UpstreamOption = None,
    host: HostOption = None,
    prefix: PrefixOption = None,
    api_version: ApiVersionOption = None,
    version_header: VersionHeaderOption = None,
    mtls: MtlsOption = None,
    account: AccountsOption = None,
    any_account: Annotated[
        bool,
        typer.Option(
            "--any-account", help="Clear the account list: every account with mTLS enabled."
        ),
    ] = False,
    authorization: AuthorizationOption = None,
    description: DescriptionOption = None,
    json_output: JsonOption = False,
) -> None:
    """Change what is given, keep the rest. An empty --host, --api-version or --version-header
    ('') clears it; --account replaces the list."""
    if account and any_account:
        raise InvalidArgument("expected one of --account and --any-account; found both")
    body: dict[str, object] = {}
    for key, value in {
        "name": name,
        "upstream_url": upstream,
        "path_prefix": prefix,
        "mtls": mtls,
        "authorization": authorization,
        "description": description,
    }.items():
        if value is not None:
            body[key] = value
    for key, value in {
        "host": host,
        "api_version": api_version,
        "version_header": version_header,
    }.items():
        if value is not None:
            body[key] = _nullable(value)
    if account:
        body["allowed_accounts"] = list(account)
    elif any_account:
        body["allowed_accounts"] = []
    if not body:
        raise InvalidArgument(
            "expected at least one change (--upstream, --host, --prefix, ...); found none",
            hint="see `mutls route update --help`",
        )
    with api_client(ctx) as client:
        route: dict[str, Any] = client.put(f"/admin/routes/{segment(ref)}", body)
    if json_output:
        print_json(route)
        return
    console.print(f"[green]✓[/] updated route {_escape(route['name'])}")
    _show(route)


@app.command("remove")
@handle_errors
def route_remove(ctx: typer.Context, ref: RefArg, json_output: JsonOption = False) -> None:
    """Delete a route: the gateway stops sending anything there."""
    with api_client(ctx) as client:
        client.delete(f"/admin/routes/{segment(ref)}")
    if json_output:
        print_json({"removed": ref})
        return
    console.print(f"[green]✓[/] removed route {_escape(ref)}")
