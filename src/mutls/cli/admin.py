"""``mutls account|user|token|audit|whoami``: administration through the admin API.

``mutls audit verify --local`` is the one exception that opens the database directly: it is for
when the server is down, or when an operator wants an answer that does not depend on the server
being honest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from mutls.cli.client import ApiError, api_client, segment
from mutls.cli.common import JsonOption, handle_errors, parse_time
from mutls.cli.output import EXIT_ERROR, console, err_console, print_json
from mutls.errors import DatabaseUnavailable, InvalidArgument

if TYPE_CHECKING:
    from mutls.audit.chain import ChainReport

__all__ = ["accounts", "audit", "tokens", "users", "whoami"]

accounts = typer.Typer(no_args_is_help=True, help="Accounts (organisations), via the API.")
users = typer.Typer(no_args_is_help=True, help="Users of accounts and their roles, via the API.")
tokens = typer.Typer(no_args_is_help=True, help="API tokens: create (shown once), list, revoke.")
audit = typer.Typer(no_args_is_help=True, help="The tamper-evident audit log: list and verify.")

ROLES = "admin, manage-mtls, auditor or app"

AccountOption = Annotated[
    str | None,
    typer.Option("--account", help="Account (id or name).", show_default=False),
]


def _escape(text: object) -> str:
    return str(text).replace("[", r"\[")


def _when(value: object) -> str:
    """An ISO time cut to the second, for tables."""
    if not isinstance(value, str):
        return "-" if value is None else str(value)
    return value.replace("T", " ")[:19]


def _table(*columns: str) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


# --- whoami --------------------------------------------------------------------------------


@handle_errors
def whoami(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Who the server thinks you are: actor, role, account and token."""
    with api_client(ctx) as client:
        me = client.get("/admin/whoami")
    if json_output:
        print_json(me)
        return
    console.print(f"[bold]{_escape(me.get('actor'))}[/] on {client.server}")
    console.print(f"  role     {me.get('role')}")
    console.print(f"  account  {me.get('account_id') or 'platform-wide'}")
    console.print(f"  token    {me.get('token_id') or '-'}")
    if me.get("permissions"):
        console.print(f"  may      {', '.join(me['permissions'])}")


# --- accounts ------------------------------------------------------------------------------


@accounts.command("create")
@handle_errors
def account_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Short name: lowercase letters, digits, dashes.")],
    display_name: Annotated[str | None, typer.Option("--display-name", show_default=False)] = None,
    json_output: JsonOption = False,
) -> None:
    """Create an account (an organisation that owns certificates, secrets and users)."""
    body: dict[str, object] = {"name": name}
    if display_name is not None:
        body["display_name"] = display_name
    with api_client(ctx) as client:
        account = client.post("/admin/accounts", body)
    if json_output:
        print_json(account)
        return
    console.print(f"[green]✓[/] created account {_escape(account['name'])} ({account['id']})")


@accounts.command("list")
@handle_errors
def account_list(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Accounts you may see."""
    with api_client(ctx) as client:
        answer = client.get("/admin/accounts")
    if json_output:
        print_json(answer)
        return
    rows = answer.get("accounts", [])
    if not rows:
        err_console.print("no accounts yet; create one with `mutls account create NAME`")
        return
    table = _table("Name", "Display name", "Created", "ID")
    for row in rows:
        table.add_row(
            _escape(row["name"]),
            _escape(row.get("display_name", "")),
            _when(row.get("created_at")),
            row["id"],
        )
    console.print(table)


@accounts.command("show")
@handle_errors
def account_show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Account id (acc_...) or name.")],
    json_output: JsonOption = False,
) -> None:
    """One account."""
    with api_client(ctx) as client:
        account = client.get(f"/admin/accounts/{segment(ref)}")
    if json_output:
        print_json(account)
        return
    _fields(account)


def _fields(item: Mapping[str, Any]) -> None:
    width = max(len(k) for k in item) if item else 0
    for key, value in item.items():
        console.print(f"  [bold]{key:<{width}}[/]  {_escape('-' if value is None else value)}")


# --- users ---------------------------------------------------------------------------------


@users.command("create")
@handle_errors
def user_create(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The user's e-mail address.")],
    role: Annotated[str, typer.Option("--role", help=f"One of {ROLES}.")],
    account: AccountOption = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Display name.", show_default=False)
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Add a user with a role, optionally scoped to an account."""
    body: dict[str, object] = {"email": email, "role": role}
    if account is not None:
        body["account_id"] = account
    if name is not None:
        body["display_name"] = name
    with api_client(ctx) as client:
        user = client.post("/admin/users", body)
    if json_output:
        print_json(user)
        return
    console.print(f"[green]✓[/] created user {_escape(user['email'])} ({user['id']}), role {role}")


@users.command("list")
@handle_errors
def user_list(
    ctx: typer.Context, account: AccountOption = None, json_output: JsonOption = False
) -> None:
    """Users you may see."""
    with api_client(ctx) as client:
        answer = client.get("/admin/users", params={"account_id": account})
    if json_output:
        print_json(answer)
        return
    rows = answer.get("users", [])
    if not rows:
        err_console.print("no users match")
        return
    table = _table("E-mail", "Name", "Role", "Account", "State", "ID")
    for row in rows:
        state = "[red]disabled[/]" if row.get("disabled") else "[green]active[/]"
        table.add_row(
            _escape(row["email"]),
            _escape(row.get("display_name", "")),
            row["role"],
            row.get("account_id") or "-",
            state,
            row["id"],
        )
    console.print(table)


def _set_user_state(ctx: typer.Context, user_id: str, action: str, json_output: bool) -> None:
    with api_client(ctx) as client:
        user = client.post(f"/admin/users/{segment(user_id)}/{action}")
    if json_output:
        print_json(user)
        return
    console.print(f"[green]✓[/] {action}d user {_escape(user['email'])} ({user['id']})")


UserIdArg = Annotated[str, typer.Argument(help="User id (usr_...).")]


@users.command("disable")
@handle_errors
def user_disable(ctx: typer.Context, user_id: UserIdArg, json_output: JsonOption = False) -> None:
    """Disable a user: their tokens stop working until they are enabled again."""
    _set_user_state(ctx, user_id, "disable", json_output)


@users.command("enable")
@handle_errors
def user_enable(ctx: typer.Context, user_id: UserIdArg, json_output: JsonOption = False) -> None:
    """Enable a disabled user."""
    _set_user_state(ctx, user_id, "enable", json_output)


# --- tokens --------------------------------------------------------------------------------


@tokens.command("create")
@handle_errors
def token_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="What the token is for.")],
    role: Annotated[str, typer.Option("--role", help=f"One of {ROLES}.")],
    account: AccountOption = None,
    user: Annotated[
        str | None, typer.Option("--user", help="User id it acts for.", show_default=False)
    ] = None,
    expires_in_days: Annotated[
        int | None,
        typer.Option("--expires-in-days", min=1, max=3650, show_default=False),
    ] = None,
    environment: Annotated[
        list[str] | None,
        typer.Option(
            "--environment",
            help="App tokens: an environment the token may use with the egress proxy "
            "(repeatable); none: any.",
            show_default=False,
        ),
    ] = None,
    default_environment: Annotated[
        str | None,
        typer.Option(
            "--default-environment",
            help="App tokens: the environment of a request without X-Mutls-Environment (else "
            "production, or the only --environment).",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Create an API token. It is printed once, alone on stdout, and never shown again.

    Capture it straight into a file: `mutls token create --name ci --role auditor > ci.token`.
    An app token for the egress proxy's sandbox only:
    `mutls token create --name billing --role app --environment sandbox > billing.token`.
    """
    body: dict[str, object] = {"name": name, "role": role}
    for key, value in (
        ("account_id", account),
        ("user_id", user),
        ("expires_in_days", expires_in_days),
        ("default_environment", default_environment),
    ):
        if value is not None:
            body[key] = value
    if environment:
        body["environments"] = list(environment)
    with api_client(ctx) as client:
        created = client.post("/admin/tokens", body)
    if json_output:
        print_json(created)
        return
    scope = f"account {created.get('account_id')}" if created.get("account_id") else "platform"
    err_console.print(
        f"[green]✓[/] created token {_escape(created['name'])} ({created['id']}), role "
        f"{created['role']}, {scope}; expires {_when(created.get('expires_at') or 'never')}"
    )
    if created.get("environments") or created.get("default_environment"):
        allowed = ", ".join(created.get("environments") or []) or "any"
        err_console.print(
            f"  environments {_escape(allowed)}; default "
            f"{_escape(created.get('default_environment') or 'production')}"
        )
    err_console.print("[bold]This is the only time the token is shown[/]; store it now.")
    # Plain print, not Rich: nothing may wrap, colour or decorate the token.
    print(created["token"], flush=True)


@tokens.command("list")
@handle_errors
def token_list(
    ctx: typer.Context,
    include_revoked: Annotated[
        bool, typer.Option("--include-revoked", help="Also list revoked tokens.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """API tokens you may see (their prefixes, never the tokens)."""
    with api_client(ctx) as client:
        answer = client.get(
            "/admin/tokens", params={"include_revoked": True if include_revoked else None}
        )
    if json_output:
        print_json(answer)
        return
    rows = answer.get("tokens", [])
    if not rows:
        err_console.print("no tokens match")
        return
    table = _table("Name", "Role", "Account", "Prefix", "Expires", "Last used", "State", "ID")
    for row in rows:
        state = "[red]revoked[/]" if row.get("revoked_at") else "[green]active[/]"
        table.add_row(
            _escape(row["name"]),
            row["role"],
            row.get("account_id") or "-",
            row.get("prefix", ""),
            _when(row.get("expires_at") or "never"),
            _when(row.get("last_used_at")),
            state,
            row["id"],
        )
    console.print(table)


@tokens.command("revoke")
@handle_errors
def token_revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="Token id (tok_...).")],
    json_output: JsonOption = False,
) -> None:
    """Revoke a token: it stops working at once."""
    with api_client(ctx) as client:
        token = client.delete(f"/admin/tokens/{segment(token_id)}")
    if json_output:
        print_json(token if token is not None else {"revoked": token_id})
        return
    console.print(f"[green]✓[/] revoked token {token_id}")


# --- audit ---------------------------------------------------------------------------------

FilterOption = Annotated[str | None, typer.Option(show_default=False)]


@audit.command("list")
@handle_errors
def audit_list(
    ctx: typer.Context,
    action: FilterOption = None,
    actor: FilterOption = None,
    resource_type: FilterOption = None,
    resource_id: FilterOption = None,
    env: Annotated[
        str | None, typer.Option("--env", help="Environment.", show_default=False)
    ] = None,
    account: AccountOption = None,
    outcome: FilterOption = None,
    since: Annotated[
        str | None,
        typer.Option(help="From this time (ISO 8601; naive is UTC).", show_default=False),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Before this time (ISO 8601).", show_default=False)
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, max=1000, show_default=False)] = None,
    before_seq: Annotated[
        int | None,
        typer.Option(
            "--before-seq", min=1, help="Older than this row (paging).", show_default=False
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Audit rows, newest first."""
    params = {
        "action": action,
        "actor": actor,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "environment": env,
        "account_id": account,
        "outcome": outcome,
        "since": parse_time(since).isoformat() if since else None,
        "until": parse_time(until).isoformat() if until else None,
        "limit": limit,
        "before_seq": before_seq,
    }
    with api_client(ctx) as client:
        page = client.get("/admin/audit", params=params)
    if json_output:
        print_json(page)
        return
    events = page.get("events", [])
    if not events:
        err_console.print("no audit entries match")
        return
    table = _table("Seq", "Time (UTC)", "Actor", "Action", "Outcome", "Resource", "Env", "Source")
    for event in events:
        resource = ":".join(
            str(part) for part in (event.get("resource_type"), event.get("resource_id")) if part
        )
        outcome_text = str(event.get("outcome"))
        style = "green" if outcome_text == "ok" else "red"
        table.add_row(
            str(event["seq"]),
            _when(event.get("at")),
            _escape(event.get("actor")),
            _escape(event.get("action")),
            f"[{style}]{_escape(outcome_text)}[/]",
            _escape(resource or "-"),
            event.get("environment") or "-",
            event.get("source_ip") or "-",
        )
    console.print(table)
    if page.get("next_before_seq"):
        err_console.print(f"[dim]older entries: --before-seq {page['next_before_seq']}[/]")


_ANCHOR = re.compile(r"^(\d{1,18}):([0-9a-f]{64})$")


def _anchor(value: str | None) -> tuple[int, str] | None:
    if value is None:
        return None
    match = _ANCHOR.match(value.strip().lower())
    if not match:
        raise InvalidArgument(
            f"expected --anchor as SEQ:HASH (a row number and its 64-hex-digit hash); found "
            f"{value!r}",
            hint="`mutls audit verify` prints the current head in that form; record it somewhere "
            "the database's administrators cannot write",
        )
    return int(match.group(1)), match.group(2)


@audit.command("verify")
@handle_errors
def audit_verify(
    ctx: typer.Context,
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor",
            metavar="SEQ:HASH",
            help="A head recorded earlier; the chain must still contain it unchanged.",
            show_default=False,
        ),
    ] = None,
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="Read the database directly (MUTLS_DATA_DIR / MUTLS_DATABASE_URL), not the API.",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Walk the hash chain and name the first altered, deleted or inserted row. Exit 1 if broken."""
    pinned = _anchor(anchor)
    if local:
        report = _verify_locally(pinned).to_dict()
    else:
        body: dict[str, object] = {}
        if pinned is not None:
            body["anchor"] = {"seq": pinned[0], "hash": pinned[1]}
        with api_client(ctx) as client:
            report = client.post("/admin/audit/verify", body)
    if not isinstance(report, dict) or "ok" not in report:
        raise ApiError("unexpected_response", "expected a chain report from the API")
    if json_output:
        print_json(report)
    else:
        _render_report(report)
    if not report["ok"]:
        raise typer.Exit(EXIT_ERROR)


def _verify_locally(anchor: tuple[int, str] | None) -> ChainReport:
    # Imported here: the database stack costs every other command start-up time for nothing.
    from mutls.audit.log import verify  # noqa: PLC0415
    from mutls.config import Settings  # noqa: PLC0415
    from mutls.store.database import Database  # noqa: PLC0415
    from mutls.store.migrate import require_current  # noqa: PLC0415

    settings = Settings.from_env()
    if settings.database_url is None:
        path = settings.data_dir / "mutls.db"
        if not path.is_file():  # never create an empty database by looking for one
            raise DatabaseUnavailable(
                f"expected the mutls database at {path}; there is no such file",
                hint="run this where `mutls up` runs, or set MUTLS_DATA_DIR to its data "
                "directory (or MUTLS_DATABASE_URL)",
            )
    database = Database(settings.effective_database_url)
    try:
        require_current(database)
        with database.read() as session:
            return verify(session, anchor=anchor)
    finally:
        database.dispose()


def _render_report(report: Mapping[str, Any]) -> None:
    head = f"{report['head_seq']}:{report['head_hash']}"
    broken = report.get("first_break")
    if broken:
        err_console.print(f"[bold red]✗ audit chain broken[/]: {_escape(broken['message'])}")
        err_console.print(
            f"  first break at row {broken['seq']} ({broken['kind']}); checked "
            f"{report['rows']} row(s); the head claims {head}",
            soft_wrap=True,
        )
        err_console.print(
            "[bold]hint[/]: rows before the break are intact; restore the database from a "
            "backup and compare, and treat what changed after it as suspect"
        )
        return
    console.print(f"[green]✓ audit chain intact[/]: {report['rows']} row(s)")
    console.print(f"  head {head}", soft_wrap=True)
    console.print(
        "  record the head somewhere the database's administrators cannot write, and later "
        f"check with --anchor {head}",
        soft_wrap=True,
    )
