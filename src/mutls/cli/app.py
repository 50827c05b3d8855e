"""The ``mutls`` command. Each group is a thin layer over the typed Python API."""

from __future__ import annotations

import os
import sys

import typer

from mutls import __version__
from mutls.cli import ca, cert, csr
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


@app.command()
def version() -> None:
    """Print the mutls version."""
    console.print(f"mutls {__version__}")


@app.command()
def demo() -> None:
    """Run the platform with a demo upstream (arrives with the platform core; for now, a tour)."""
    console.print("[bold]mutls demo[/]: the platform (admin API, gateway, vault) is coming soon.")
    console.print("Today the certificate toolkit is ready. Try, in an empty directory:")
    for line in (
        "export MUTLS_PASSPHRASE='demo ca passphrase'",
        "mutls ca init --dir demo-ca --name 'Demo Root CA' --org Demo --intermediate",
        "mutls csr new --cn client.demo.example --country CA --org Demo",
        "mutls ca sign client.demo.example.csr.pem --dir demo-ca --chain --out client.pem",
        "mutls cert inspect client.pem --key client.demo.example.key.pem",
        "mutls cert verify client.pem --ca demo-ca/root.pem --purpose client",
    ):
        console.print(f"  {line}")


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
