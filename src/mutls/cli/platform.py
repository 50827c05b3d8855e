"""``mutls up`` and ``mutls demo``: run the platform on this machine."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mutls.cli.common import handle_errors
from mutls.cli.output import console, err_console
from mutls.config import EgressSettings, Settings, parse_listen

# The server stack (FastAPI, uvicorn, SQLAlchemy) is imported inside the commands that run it,
# so `mutls cert ...` and the API client commands start in a third of a second.
if TYPE_CHECKING:
    from mutls.runtime.bootstrap import BootstrapReport

__all__ = ["api", "demo", "up"]


def _announce(settings: Settings, report: BootstrapReport) -> None:
    for item in report.created:
        err_console.print(f"created {item}")
    if report.migrated_to:
        err_console.print(
            f"database schema: {report.migrated_from or 'empty'} -> {report.migrated_to}"
        )
    if report.admin_token:
        err_console.print(
            "\n[bold]First admin token[/] (shown once; also in "
            f"{settings.admin_token_file}, mode 0600):"
        )
        err_console.print(f"  {report.admin_token}\n", soft_wrap=True)


@handle_errors
def up() -> None:
    """Run the platform: admin API on 127.0.0.1:7000 (MUTLS_API_LISTEN), certificate renewal
    over mTLS on 0.0.0.0:8444 (MUTLS_RENEW_LISTEN), the mTLS gateway on 0.0.0.0:8443
    (MUTLS_GATEWAY_LISTEN) and the egress proxy on 127.0.0.1:7080 (MUTLS_EGRESS_LISTEN).
    Ctrl-C stops it.

    On first start it creates the data directory (MUTLS_DATA_DIR, default ./mutls-data): the
    database, the master key, the platform CA and the first admin token.
    """
    from mutls.runtime.bootstrap import bootstrap  # noqa: PLC0415
    from mutls.runtime.supervisor import configure_logging, serve  # noqa: PLC0415

    configure_logging()
    settings = Settings.from_env()
    platform, report = bootstrap(settings)
    _announce(settings, report)
    renewal = f", renewal (mTLS) {settings.renew_url}" if settings.renew_url else ""
    err_console.print(
        f"mutls is up: admin API {settings.api_url}{renewal}  (data: {settings.data_dir})"
    )
    serve(platform)


@handle_errors
def api() -> None:
    """Run only the admin API, as one of several stateless nodes on a shared database.

    Unlike `mutls up` it creates nothing: the schema must be current (`mutls db upgrade`) and the
    master keyring must match the database. Point every node at the same MUTLS_DATABASE_URL and
    MUTLS_MASTER_KEY.
    """
    from mutls.runtime.platform import Platform  # noqa: PLC0415 - keep CLI start-up fast
    from mutls.runtime.supervisor import configure_logging, serve  # noqa: PLC0415
    from mutls.store.migrate import require_current  # noqa: PLC0415
    from mutls.vault.masterkeys import ensure_registered  # noqa: PLC0415

    configure_logging()
    settings = Settings.from_env()
    platform = Platform.from_settings(settings)
    try:
        platform.db.ping()
        require_current(platform.db)
        ensure_registered(platform.db, platform.keys, now=platform.clock())
    except BaseException:
        platform.close()
        raise
    err_console.print(f"mutls admin API node: {settings.api_url} ({platform.db.redacted_url()})")
    serve(platform, gateway=False, egress=False)


DemoDirOption = Annotated[
    Path,
    typer.Option("--data-dir", help="Where the demo keeps its state.", show_default=True),
]


@handle_errors
def demo(data_dir: DemoDirOption = Path("mutls-demo")) -> None:
    """Run the platform with demo data and print what to try."""
    from mutls.runtime.bootstrap import bootstrap  # noqa: PLC0415
    from mutls.runtime.demo import (  # noqa: PLC0415
        DEMO_CLIENT_PASSPHRASE,
        DEMO_EGRESS_ROUTE,
        DEMO_SECRET,
        DEMO_UPSTREAM_LISTEN,
        demo_client_files,
        seed_demo,
    )
    from mutls.runtime.demo_upstream import demo_upstream_app  # noqa: PLC0415
    from mutls.runtime.listeners import Listener, bind  # noqa: PLC0415
    from mutls.runtime.supervisor import configure_logging, serve  # noqa: PLC0415

    configure_logging()
    env = dict(os.environ)
    env["MUTLS_DATA_DIR"] = str(data_dir)
    env.pop("MUTLS_DATABASE_URL", None)  # the demo always runs on embedded SQLite
    env.pop("MUTLS_MASTER_KEY", None)
    env.setdefault("MUTLS_RENEW_LISTEN", "127.0.0.1:8444")  # a demo listens on loopback only
    env.setdefault("MUTLS_GATEWAY_LISTEN", "127.0.0.1:8443")
    os.environ["MUTLS_GATEWAY_LISTEN"] = env["MUTLS_GATEWAY_LISTEN"]  # read by the gateway
    egress = f"http://{EgressSettings.from_env(env).address}/{DEMO_EGRESS_ROUTE}"
    settings = Settings.from_env(env)
    platform, report = bootstrap(settings)
    _announce(settings, report)
    upstream_host, upstream_port = parse_listen(
        env.get("MUTLS_DEMO_UPSTREAM_LISTEN") or DEMO_UPSTREAM_LISTEN,
        variable="MUTLS_DEMO_UPSTREAM_LISTEN",
    )
    upstream = Listener(
        name="demo upstream",
        app=demo_upstream_app(),
        sock=bind(upstream_host, upstream_port, setting="MUTLS_DEMO_UPSTREAM_LISTEN"),
    )
    gateway = f"https://localhost:{env['MUTLS_GATEWAY_LISTEN'].rsplit(':', 1)[1]}"
    tokens = seed_demo(
        platform, upstream_url=f"http://{upstream_host}:{upstream_port}", gateway_url=gateway
    )
    files = demo_client_files(platform)
    curl = (
        f"curl --cacert {files}/ca.pem --cert {files}/client.pem "
        f"--key {files}/client.key.pem --pass {DEMO_CLIENT_PASSPHRASE}"
    )
    admin_token = settings.admin_token_file.read_text().strip()
    url = settings.api_url
    console.print(f"\n[bold]mutls demo[/] is running: admin API {url}, data in {settings.data_dir}")
    if tokens:
        console.print(
            f"demo tokens (shown once): auditor {tokens['auditor']}\n"
            f"                          manage-mtls {tokens['manage-mtls']}\n"
            f"                          app (egress proxy) {tokens['app']}",
            soft_wrap=True,
        )
    console.print("\nTry, in another terminal:", soft_wrap=True)
    for line in (
        f"export MUTLS_SERVER={url} MUTLS_TOKEN=$(cat {settings.admin_token_file})",
        "mutls secret list",
        f"mutls secret show {DEMO_SECRET}",
        f'curl -s -H "Authorization: Bearer $MUTLS_TOKEN" {url}/admin/secrets/{DEMO_SECRET}',
        f'curl -s -H "Authorization: Bearer $MUTLS_TOKEN" "{url}/admin/audit?limit=5"',
        "mutls audit verify",
        "mutls account mtls acme-bank && mutls cert list acme-bank   # the provider side",
        f"curl -s {url}/ca/platform/crl | openssl crl -inform DER -noout -text | head",
        "mutls secret list --expiring-within 30   # the sandbox value expires in 20 days",
        f"curl -s {url}/openapi.json   # the API reference; see docs/admin-api.md",
        "# the mTLS gateway, in front of a demo upstream (see docs/gateway.md):",
        f"{curl} {gateway}/mutls/whoami",
        f"{curl} {gateway}/api/v2/accounts   # 200: the upstream sees X-Mutls-Account",
        f"{curl} {gateway}/api/v1/accounts   # 403 route_forbidden: the cert is for v2",
        f"curl --cacert {files}/ca.pem {gateway}/api/v2/accounts   # 401: no certificate",
        f"curl --cacert {files}/ca.pem {gateway}/public/status   # 200: mtls off here",
        "mutls route list",
        "# why a call fails, step by step, with the fix (docs/troubleshooting.md):",
        f"MUTLS_PASSPHRASE={DEMO_CLIENT_PASSPHRASE} mutls doctor {gateway}/api/v1/accounts "
        f"--cert {files}/client.pem --key {files}/client.key.pem --ca {files}/ca.pem",
        "mutls expiry --within 90d   # every certificate with its days left (docs/expiry.md)",
        "# the egress proxy: a plain local request leaves as an mTLS call (docs/egress.md);",
        "# here it calls the gateway above with acme-bank's certificate from the vault:",
        f"export APP_TOKEN={tokens['app'] if tokens else '<the app token of the first start>'}",
        f'curl -s -H "X-Mutls-Token: $APP_TOKEN" {egress}/v2/accounts',
        f'curl -s -H "X-Mutls-Token: $APP_TOKEN" {egress}/v1/accounts   # the gateway\'s 403',
        "mutls egress route list",
    ):
        console.print(f"  {line}", soft_wrap=True, highlight=False)
    console.print("\nCtrl-C stops the demo; run `make demo` again to resume where it was.")
    del admin_token
    serve(platform, extra_listeners=[upstream])
