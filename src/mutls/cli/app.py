"""The ``mutls`` command. Each group is a thin layer over the typed Python API."""

from __future__ import annotations

import os
import sys

import typer

from mutls import __version__
from mutls.cli import (
    admin,
    ca,
    cert,
    certs,
    csr,
    db,
    doctor,
    egress,
    expiry,
    gateway,
    platform,
    renew,
    route,
    secrets,
    trust,
    vault,
)
from mutls.cli.client import (
    DEFAULT_SERVER,
    ClientOptions,
    ServerOption,
    TokenFileOption,
    TokenOption,
)
from mutls.cli.output import console, err_console

app = typer.Typer(
    name="mutls",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="mutls: mutual TLS for API providers and consumers. Certificates, CA, verification.",
)
app.add_typer(cert.app, name="cert")
app.add_typer(csr.app, name="csr")
app.add_typer(ca.app, name="ca")
app.add_typer(db.app, name="db")
app.add_typer(vault.app, name="vault")
app.command("up")(platform.up)
app.command("api")(platform.api)
app.command("demo")(platform.demo)
# These talk to a running platform's admin API (--server, --token).
app.add_typer(secrets.app, name="secret")
app.add_typer(admin.accounts, name="account")
admin.accounts.command("mtls")(certs.account_mtls)
admin.accounts.add_typer(trust.app, name="ca")  # seed 004: bring your own CA
# `mutls cert` is the local toolkit; these three call the API (seed 003's issuance flow).
cert.app.command("issue")(certs.cert_issue)
cert.app.command("list")(certs.cert_list)
cert.app.command("revoke")(certs.cert_revoke)
app.add_typer(admin.users, name="user")
app.add_typer(admin.tokens, name="token")
app.add_typer(admin.audit, name="audit")
app.command("whoami")(admin.whoami)
app.command("renew")(renew.renew)  # issue 4 item 7: renewal over mTLS
app.command("gateway")(gateway.gateway)  # issue 5: the mTLS gateway
app.add_typer(route.app, name="route")  # issue 5 item 2: the gateway's routes
app.add_typer(egress.app, name="egress")  # issue 6: the egress proxy and its routes
app.add_typer(expiry.app, name="expiry")  # issue 7: expiry inventory and alerts
app.command("doctor")(doctor.doctor)  # issue 7 item 1: walk an mTLS connection


@app.callback()
def root(
    ctx: typer.Context,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
) -> None:
    """mutls: mutual TLS for API providers and consumers. Certificates, CA, verification."""
    # Resolved lazily: only the commands that call the admin API read the token.
    ctx.obj = ClientOptions(server=server, token=token, token_file=token_file)


@app.command()
def version() -> None:
    """Print the mutls version."""
    console.print(f"mutls {__version__}")


def main() -> None:
    """Entry point. A bug in mutls prints one line and a code, never a traceback to a user."""
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        err_console.print(
            f"[bold red]error[/] (internal_error): mutls hit an unexpected {type(exc).__name__}; "
            "this is a bug in mutls"
        )
        err_console.print("[bold]hint[/]: run with MUTLS_DEBUG=1 for details and report it")
        if os.environ.get("MUTLS_DEBUG"):
            raise
        sys.exit(70)
