"""``mutls egress``: run the egress proxy; ``mutls egress route ...``: its routes, via the API.

``mutls egress`` alone runs the proxy against the shared database, like ``mutls gateway`` runs
the gateway. ``mutls egress route add|list|show|update|delete`` manage where an app's plain
request to ``http://127.0.0.1:7080/<route>/<path>`` goes, through the admin API::

    mutls egress route add bank-api --target-url https://api.bank.example/v1 \\
        --certificate-secret bank_client --header 'API-Key: {{secret:bank_api_key}}' \\
        --env-target sandbox=https://sandbox.bank.example/v1

Options that hold several values per route behave as follows on ``update``: ``--header`` and
the ``--env-*`` options change the headers and environments they name and keep the others (the
command reads the route first); ``--allow-token`` and ``--scope`` replace their list. An empty
value clears a single-valued option (``--servername ''``). See docs/egress-routes.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer
from rich.table import Table

from mutls.cli.client import ApiClient, ApiError, api_client, segment
from mutls.cli.common import JsonOption, handle_errors
from mutls.cli.output import console, err_console, print_json
from mutls.errors import InvalidArgument

__all__ = ["app", "routes"]

app = typer.Typer(
    help="The egress proxy: run it (`mutls egress`), and manage its routes "
    "(`mutls egress route ...`).",
)
routes = typer.Typer(
    no_args_is_help=True,
    help="Egress routes: where apps' requests go, with which certificate, OAuth2 and headers.",
)
app.add_typer(routes, name="route")

_TARGET, _TLS, _ENV, _ACCESS = "Partner", "TLS", "Per environment", "Who may call"

RefArg = Annotated[str, typer.Argument(help="The route's id (egr_...) or name.")]
TargetOption = Annotated[
    str | None,
    typer.Option(
        "--target-url",
        help="The partner's base URL, https:// only (https://api.bank.example/v1).",
        show_default=False,
        rich_help_panel=_TARGET,
    ),
]
CertificateOption = Annotated[
    str | None,
    typer.Option(
        "--certificate-secret",
        help="Certificate secret presented as the client certificate (name, id or "
        "{{secret:NAME}}).",
        show_default=False,
        rich_help_panel=_TARGET,
    ),
]
OAuth2Option = Annotated[
    str | None,
    typer.Option(
        "--oauth2-secret",
        help="OAuth2 secret: the proxy fetches an access token and sends it as Bearer.",
        show_default=False,
        rich_help_panel=_TARGET,
    ),
]
ScopeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--scope",
        help="OAuth2 scope to ask for (repeatable); none: the oauth2 secret's own scopes.",
        show_default=False,
        rich_help_panel=_TARGET,
    ),
]
HeaderOption = Annotated[
    list[str] | None,
    typer.Option(
        "--header",
        help="'Name: template' added to every request (repeatable); {{secret:NAME}} is a "
        "string secret's value for the request's environment.",
        show_default=False,
        rich_help_panel=_TARGET,
    ),
]
TimeoutOption = Annotated[
    int | None,
    typer.Option(
        "--timeout",
        min=0,
        max=3600,
        metavar="SECONDS",
        help="Seconds until the partner answers (update: 0 restores the proxy's default).",
        show_default=False,
        rich_help_panel=_TARGET,
    ),
]
CaBundleOption = Annotated[
    str | None,
    typer.Option(
        "--ca-bundle-secret",
        help="Secret with the CA certificates that verify the partner (else the system's).",
        show_default=False,
        rich_help_panel=_TLS,
    ),
]
ServernameOption = Annotated[
    str | None,
    typer.Option(
        "--servername",
        help="SNI and the name checked in the partner's certificate (else target's host).",
        show_default=False,
        rich_help_panel=_TLS,
    ),
]
PresetOption = Annotated[
    str | None,
    typer.Option(
        "--tls-preset",
        help="default (TLS 1.2-1.3), tls12, tls13 or fapi.",
        show_default=False,
        rich_help_panel=_TLS,
    ),
]
EnvTargetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--env-target",
        metavar="ENV=URL",
        help="Another target URL in one environment (repeatable): sandbox=https://...",
        show_default=False,
        rich_help_panel=_ENV,
    ),
]
EnvServernameOption = Annotated[
    list[str] | None,
    typer.Option(
        "--env-servername",
        metavar="ENV=NAME",
        help="Another SNI name in one environment (repeatable).",
        show_default=False,
        rich_help_panel=_ENV,
    ),
]
EnvInsecureOption = Annotated[
    list[str] | None,
    typer.Option(
        "--env-insecure",
        metavar="ENV",
        help="Do not verify the partner's certificate in ENV (never production; testing only).",
        show_default=False,
        rich_help_panel=_ENV,
    ),
]
AllowTokenOption = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-token",
        metavar="TOKEN",
        help="App token (id or name) that may call the route (repeatable); none: every app "
        "token of the route's owner.",
        show_default=False,
        rich_help_panel=_ACCESS,
    ),
]
AccountOption = Annotated[
    str | None,
    typer.Option(
        "--account",
        help="The owner account (id or name), for platform-wide tokens; left out: platform "
        "routes (or, for list, every route).",
        show_default=False,
        rich_help_panel=_ACCESS,
    ),
]
DescriptionOption = Annotated[
    str | None, typer.Option("--description", help="For people.", show_default=False)
]


# --- running the proxy ---------------------------------------------------------------------


@app.callback(invoke_without_command=True)
@handle_errors
def egress(
    ctx: typer.Context,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            metavar="HOST:PORT",
            help="Where apps connect, plain HTTP (MUTLS_EGRESS_LISTEN; default 127.0.0.1:7080).",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=256,
            help="Worker processes (MUTLS_EGRESS_WORKERS; default 1).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the egress proxy: apps send plain HTTP with an app token, partners get mTLS (+ OAuth2).

    It reads routes, secrets and tokens from the database (MUTLS_DATA_DIR or MUTLS_DATABASE_URL)
    and applies every change without a restart. Ctrl-C drains and stops. With a subcommand
    (`mutls egress route ...`) nothing is run.
    """
    if ctx.invoked_subcommand is not None:
        return
    import os  # noqa: PLC0415

    from mutls.config import EgressSettings, Settings  # noqa: PLC0415
    from mutls.egress.server import run_egress  # noqa: PLC0415  (keep CLI start-up fast)
    from mutls.runtime.platform import Platform  # noqa: PLC0415
    from mutls.runtime.supervisor import configure_logging  # noqa: PLC0415
    from mutls.store.migrate import require_current  # noqa: PLC0415

    configure_logging()
    env = dict(os.environ)
    if listen is not None:
        env["MUTLS_EGRESS_LISTEN"] = listen
    if workers is not None:
        env["MUTLS_EGRESS_WORKERS"] = str(workers)
    settings = Settings.from_env(env)
    egress_settings = EgressSettings.from_env(env)
    platform = Platform.from_settings(settings)
    try:
        platform.db.ping()
        require_current(platform.db)
    except BaseException:
        platform.close()
        raise
    err_console.print(
        f"mutls egress: http://{egress_settings.address} ({egress_settings.workers} "
        f"worker{'s' if egress_settings.workers != 1 else ''}, {platform.db.redacted_url()})"
    )
    try:
        run_egress(platform, egress_settings)
    finally:
        platform.close()


# --- parsing options -----------------------------------------------------------------------


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise InvalidArgument(
            f"expected --header as 'Name: template'; found {text[:80]!r}",
            hint="for example: --header 'API-Key: {{secret:bank_api_key}}'",
        )
    return name.strip(), value.strip()


def _headers(values: Sequence[str]) -> dict[str, str]:
    return dict(_header(v) for v in values)


def _pair(text: str, option: str, what: str) -> tuple[str, str]:
    env, equals, value = text.partition("=")
    if not equals or not env.strip():
        raise InvalidArgument(
            f"expected {option} as ENV={what}; found {text[:80]!r}",
            hint=f"for example: {option} sandbox=...",
        )
    return env.strip(), value.strip()


def _overrides(
    current: Mapping[str, Mapping[str, Any]],
    *,
    targets: Sequence[str],
    servernames: Sequence[str],
    insecure: Sequence[str],
    verify: Sequence[str] = (),
    clear: Sequence[str] = (),
) -> dict[str, dict[str, Any]]:
    """``current`` overrides with the options applied; an empty value clears one field."""
    result = {
        env: {k: v for k, v in item.items() if v is not None}
        for env, item in current.items()
        if env not in clear
    }
    for option, values, field in (
        ("--env-target", targets, "target_url"),
        ("--env-servername", servernames, "tls_servername"),
    ):
        for text in values:
            env, value = _pair(text, option, "URL" if field == "target_url" else "NAME")
            entry = result.setdefault(env, {})
            if value:
                entry[field] = value
            else:
                entry.pop(field, None)
    for env in insecure:
        result.setdefault(env.strip(), {})["tls_reject_unauthorized"] = False
    for env in verify:
        result.get(env.strip(), {}).pop("tls_reject_unauthorized", None)
    return {env: item for env, item in result.items() if item}


def _given(
    values: Mapping[str, str | None], *, cleared_by_empty: Mapping[str, str | None]
) -> dict[str, object]:
    """The options given; in ``cleared_by_empty`` an empty value is null (clears the field)."""
    body: dict[str, object] = {k: v for k, v in values.items() if v is not None}
    body.update({k: _nullable(v) for k, v in cleared_by_empty.items() if v is not None})
    return body


def _merged_headers(
    current: Mapping[str, str], *, added: Sequence[str], removed: Sequence[str]
) -> dict[str, str]:
    """``current`` without ``removed`` names, with ``added`` ones set (names match in any
    case, as HTTP's do)."""
    dropped = {name.strip().lower() for name in removed}
    new = _headers(added)
    dropped |= {name.lower() for name in new}
    headers = {k: v for k, v in current.items() if k.lower() not in dropped}
    headers.update(new)
    return headers


def _scopes(values: Sequence[str]) -> list[str] | None:
    """``--scope`` values, each possibly space-separated; ``--scope ''`` alone clears."""
    scopes = [s for value in values for s in value.split()]
    return scopes or None


def _nullable(value: str) -> str | None:
    """An empty option value (``--servername ''``) clears the field."""
    return value if value.strip() else None


# --- rendering -----------------------------------------------------------------------------


def _escape(text: object) -> str:
    return str(text).replace("[", r"\[")


def _link(link: object) -> str:
    if not isinstance(link, Mapping):
        return "-"
    return f"{_escape(link.get('name'))} [dim]({link.get('id')})[/]"


def _environment(item: Mapping[str, Any]) -> str:
    parts = []
    if item.get("target_url"):
        parts.append(f"target {_escape(item['target_url'])}")
    if item.get("tls_servername"):
        parts.append(f"servername {_escape(item['tls_servername'])}")
    if item.get("tls_reject_unauthorized") is False:
        parts.append("[bold red]partner certificate NOT verified[/]")
    return ", ".join(parts) or "-"


def _tokens(route: Mapping[str, Any]) -> str:
    tokens = route.get("allowed_tokens") or []
    return ", ".join(tokens) if tokens else "any app token of the owner"


def _show(route: Mapping[str, Any]) -> None:
    console.print(f"[bold]{_escape(route['name'])}[/] ({route['id']})")
    oauth2 = _link(route.get("oauth2_secret"))
    if route.get("oauth2_scopes"):
        oauth2 += f", scopes {_escape(' '.join(route['oauth2_scopes']))}"
    timeout = route.get("timeout_seconds")
    ca_bundle = route.get("ca_bundle_secret")
    verify = "on" if route.get("tls_reject_unauthorized", True) else "[bold red]off[/]"
    lines = [
        ("account", _escape(route.get("account_id") or "platform")),
        ("target", _escape(route.get("target_url"))),
        ("certificate", _link(route.get("certificate_secret"))),
        ("oauth2", oauth2),
        (
            "ca bundle",
            _link(ca_bundle)
            if ca_bundle
            else "the certificate secret's CA bundle if it has one, else the system trust store",
        ),
        ("servername", _escape(route.get("tls_servername") or "target's host")),
        ("tls", f"{_escape(route.get('tls_preset'))}, verify {verify}"),
        ("tokens", _escape(_tokens(route))),
        ("timeout", f"{timeout} s" if timeout else "proxy default"),
        ("description", _escape(route.get("description") or "-")),
        ("updated", _escape(str(route.get("updated_at", "-")).replace("T", " ")[:19])),
    ]
    for key, value in lines:
        console.print(f"  {key:<12}  {value}")
    headers = route.get("headers") or {}
    console.print(f"  {'headers':<12}  {'-' if not headers else ''}".rstrip())
    for name, template in headers.items():
        console.print(f"    {_escape(name)}: {_escape(template)}")
    environments = route.get("environments") or {}
    if environments:
        console.print(f"  {'environments':<12}")
        for env, item in environments.items():
            console.print(f"    {_escape(env)}: {_environment(item)}")
    for warning in route.get("warnings") or []:
        console.print(
            f"  [yellow]![/] {_escape(warning.get('message'))} [dim]({warning.get('code')})[/]"
        )


def _account_query(account: str | None) -> dict[str, object]:
    return {"account_id": account} if account is not None else {}


def _get(client: ApiClient, ref: str, account: str | None) -> dict[str, Any]:
    route = client.get(f"/admin/egress-routes/{segment(ref)}", params=_account_query(account))
    if not isinstance(route, dict):
        raise ApiError("unexpected_response", "expected an egress route object from the API")
    return route


# --- commands ------------------------------------------------------------------------------


@routes.command("add")
@handle_errors
def route_add(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(help="Unique per owner; apps call http://127.0.0.1:7080/NAME/...")
    ],
    target_url: TargetOption = None,
    certificate_secret: CertificateOption = None,
    oauth2_secret: OAuth2Option = None,
    scope: ScopeOption = None,
    header: HeaderOption = None,
    timeout: TimeoutOption = None,
    ca_bundle_secret: CaBundleOption = None,
    servername: ServernameOption = None,
    tls_preset: PresetOption = None,
    env_target: EnvTargetOption = None,
    env_servername: EnvServernameOption = None,
    env_insecure: EnvInsecureOption = None,
    allow_token: AllowTokenOption = None,
    account: AccountOption = None,
    description: DescriptionOption = None,
    json_output: JsonOption = False,
) -> None:
    """Add a route."""
    if target_url is None:
        raise InvalidArgument(
            "expected --target-url with the partner's https:// URL; found none",
            hint="for example: --target-url https://api.bank.example/v1",
        )
    body: dict[str, object] = {"name": name, "target_url": target_url}
    optional = {
        "certificate_secret": certificate_secret,
        "oauth2_secret": oauth2_secret,
        "ca_bundle_secret": ca_bundle_secret,
        "tls_servername": servername,
        "tls_preset": tls_preset,
        "timeout_seconds": timeout or None,
        "description": description,
        "account_id": account,
        "oauth2_scopes": _scopes(scope or []),
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    body["headers"] = _headers(header or [])
    body["environments"] = _overrides(
        {},
        targets=env_target or [],
        servernames=env_servername or [],
        insecure=env_insecure or [],
    )
    body["allowed_tokens"] = list(allow_token or [])
    with api_client(ctx) as client:
        route: dict[str, Any] = client.post("/admin/egress-routes", body)
    if json_output:
        print_json(route)
        return
    console.print(f"[green]✓[/] added egress route {_escape(route['name'])} ({route['id']})")
    _show(route)


@routes.command("list")
@handle_errors
def route_list(
    ctx: typer.Context, account: AccountOption = None, json_output: JsonOption = False
) -> None:
    """The routes you may see, by name."""
    with api_client(ctx) as client:
        answer: dict[str, Any] = client.get("/admin/egress-routes", params=_account_query(account))
    if json_output:
        print_json(answer)
        return
    rows = answer.get("egress_routes", [])
    if not rows:
        err_console.print(
            "no egress routes yet; add one with "
            "`mutls egress route add NAME --target-url https://...`"
        )
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("Name", "Account", "Target", "Certificate", "OAuth2", "Environments", "Tokens"):
        table.add_column(column, overflow="fold")
    for row in rows:
        certificate = row.get("certificate_secret") or {}
        oauth2 = row.get("oauth2_secret") or {}
        environments = ", ".join(row.get("environments") or {}) or "-"
        if row.get("warnings"):
            environments += " [yellow]![/]"
        table.add_row(
            _escape(row["name"]),
            _escape(row.get("account_id") or "platform"),
            _escape(row["target_url"]),
            _escape(certificate.get("name", "-")),
            _escape(oauth2.get("name", "-")),
            environments,
            str(len(row["allowed_tokens"])) if row.get("allowed_tokens") else "any",
        )
    console.print(table)


@routes.command("show")
@handle_errors
def route_show(
    ctx: typer.Context,
    ref: RefArg,
    account: AccountOption = None,
    json_output: JsonOption = False,
) -> None:
    """One route."""
    with api_client(ctx) as client:
        route = _get(client, ref, account)
    if json_output:
        print_json(route)
        return
    _show(route)


@routes.command("update")
@handle_errors
def route_update(
    ctx: typer.Context,
    ref: RefArg,
    name: Annotated[
        str | None, typer.Option("--name", help="A new name.", show_default=False)
    ] = None,
    target_url: TargetOption = None,
    certificate_secret: CertificateOption = None,
    oauth2_secret: OAuth2Option = None,
    scope: ScopeOption = None,
    header: HeaderOption = None,
    remove_header: Annotated[
        list[str] | None,
        typer.Option(
            "--remove-header",
            metavar="NAME",
            help="Stop sending this header (repeatable).",
            show_default=False,
            rich_help_panel=_TARGET,
        ),
    ] = None,
    clear_headers: Annotated[
        bool,
        typer.Option(
            "--clear-headers",
            help="Remove every header first (then add any --header).",
            rich_help_panel=_TARGET,
        ),
    ] = False,
    timeout: TimeoutOption = None,
    ca_bundle_secret: CaBundleOption = None,
    servername: ServernameOption = None,
    tls_preset: PresetOption = None,
    env_target: EnvTargetOption = None,
    env_servername: EnvServernameOption = None,
    env_insecure: EnvInsecureOption = None,
    env_verify: Annotated[
        list[str] | None,
        typer.Option(
            "--env-verify",
            metavar="ENV",
            help="Verify the partner's certificate in ENV again (repeatable).",
            show_default=False,
            rich_help_panel=_ENV,
        ),
    ] = None,
    clear_env: Annotated[
        list[str] | None,
        typer.Option(
            "--clear-env",
            metavar="ENV",
            help="Drop every override of ENV first (repeatable).",
            show_default=False,
            rich_help_panel=_ENV,
        ),
    ] = None,
    allow_token: AllowTokenOption = None,
    any_token: Annotated[
        bool,
        typer.Option(
            "--any-token",
            help="Clear the token list: every app token of the owner may call.",
            rich_help_panel=_ACCESS,
        ),
    ] = False,
    account: AccountOption = None,
    description: DescriptionOption = None,
    json_output: JsonOption = False,
) -> None:
    """Change what is given, keep the rest. An empty value clears a single-valued option
    (--certificate-secret '', --servername '', --scope ''); --timeout 0 restores the default;
    --allow-token replaces the list, --any-token empties it; --header and --env-* change only
    what they name."""
    if allow_token and any_token:
        raise InvalidArgument("expected one of --allow-token and --any-token; found both")
    body = _given(
        {
            "name": name,
            "target_url": target_url,
            "tls_preset": tls_preset,
            "description": description,
        },
        cleared_by_empty={
            "certificate_secret": certificate_secret,
            "oauth2_secret": oauth2_secret,
            "ca_bundle_secret": ca_bundle_secret,
            "tls_servername": servername,
        },
    )
    if scope is not None:
        body["oauth2_scopes"] = _scopes(scope)
    if timeout is not None:
        body["timeout_seconds"] = timeout or None
    if allow_token or any_token:
        body["allowed_tokens"] = list(allow_token or [])
    edits_headers = bool(header or remove_header or clear_headers)
    edits_envs = bool(env_target or env_servername or env_insecure or env_verify or clear_env)
    if not body and not edits_headers and not edits_envs:
        raise InvalidArgument(
            "expected at least one change (--target-url, --header, --env-target, ...); found none",
            hint="see `mutls egress route update --help`",
        )
    with api_client(ctx) as client:
        if edits_headers or edits_envs:
            current = _get(client, ref, account)
            if edits_headers:
                body["headers"] = _merged_headers(
                    {} if clear_headers else current.get("headers") or {},
                    added=header or [],
                    removed=remove_header or [],
                )
            if edits_envs:
                body["environments"] = _overrides(
                    current.get("environments") or {},
                    targets=env_target or [],
                    servernames=env_servername or [],
                    insecure=env_insecure or [],
                    verify=env_verify or [],
                    clear=[e.strip() for e in clear_env or []],
                )
            ref = str(current["id"])
        route: dict[str, Any] = client.request(
            "PATCH",
            f"/admin/egress-routes/{segment(ref)}",
            params=_account_query(account),
            body=body,
        )
    if json_output:
        print_json(route)
        return
    console.print(f"[green]✓[/] updated egress route {_escape(route['name'])}")
    _show(route)


@routes.command("delete")
@handle_errors
def route_delete(
    ctx: typer.Context,
    ref: RefArg,
    account: AccountOption = None,
    json_output: JsonOption = False,
) -> None:
    """Delete a route: apps calling it get route_not_found."""
    with api_client(ctx) as client:
        client.request(
            "DELETE", f"/admin/egress-routes/{segment(ref)}", params=_account_query(account)
        )
    if json_output:
        print_json({"deleted": ref})
        return
    console.print(f"[green]✓[/] deleted egress route {_escape(ref)}")


# --- the request log -----------------------------------------------------------------------


@app.command("log")
@handle_errors
def request_log(
    ctx: typer.Context,
    route: Annotated[
        str | None, typer.Option("--route", help="Only this route (name or id).")
    ] = None,
    environment: Annotated[str | None, typer.Option("--env", help="Only this environment.")] = None,
    code: Annotated[
        str | None,
        typer.Option(
            "--code",
            help="Only this outcome: ok, or an error code such as partner_rejected_certificate.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 20,
    json_output: JsonOption = False,
) -> None:
    """The egress request log, newest first: which certificate each request presented, over
    which TLS, with what outcome. Never a secret."""
    params: dict[str, object] = {"limit": limit}
    for key, value in (("route", route), ("environment", environment), ("code", code)):
        if value is not None:
            params[key] = value
    with api_client(ctx) as client:
        answer: dict[str, Any] = client.get("/admin/egress-requests", params=params)
    if json_output:
        print_json(answer)
        return
    rows = answer.get("requests", [])
    if not rows:
        err_console.print("no requests logged yet (with these filters)")
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("At", "Route", "Env", "Request", "Status", "Code", "Certificate", "TLS", "ms"):
        table.add_column(column, overflow="fold")
    for row in rows:
        used = row.get("certificate_used") or {}
        certificate = f"v{used.get('version')} {str(used.get('serial'))[:16]}" if used else "-"
        table.add_row(
            _escape(str(row.get("at", ""))[:19].replace("T", " ")),
            _escape(row.get("route")),
            _escape(row.get("environment") or "-"),
            _escape(f"{row.get('method')} {row.get('path')}"),
            str(row.get("status")),
            _escape(row.get("code")),
            _escape(certificate),
            _escape(row.get("tls_version") or "-"),
            f"{row.get('latency_ms', 0):.1f}",
        )
    console.print(table)
