"""``mutls gateway``: run the mTLS gateway alone (scale-out), against the shared database."""

from __future__ import annotations

from typing import Annotated

import typer

from mutls.cli.common import handle_errors
from mutls.cli.output import err_console
from mutls.config import GatewaySettings, Settings

__all__ = ["gateway"]


@handle_errors
def gateway(
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            help="host:port[?tls=1.2&ciphers=strict], comma-separated (MUTLS_GATEWAY_LISTEN; "
            "default 0.0.0.0:8443).",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=256,
            help="Worker processes sharing the listeners (MUTLS_GATEWAY_WORKERS; default: one "
            "per core).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the mTLS gateway in front of the routes' upstream services. Ctrl-C drains and stops.

    It reads routes, accounts, certificates and trusted CAs from the database (MUTLS_DATA_DIR or
    MUTLS_DATABASE_URL) and applies every change within a second, without a restart. The server
    certificate is MUTLS_GATEWAY_CERT_FILE/KEY_FILE, or one the platform CA issues for
    MUTLS_SERVER_NAMES. See docs/gateway.md.
    """
    import os  # noqa: PLC0415

    from mutls.gateway.server import run_gateway  # noqa: PLC0415  (keep CLI start-up fast)
    from mutls.runtime.platform import Platform  # noqa: PLC0415
    from mutls.runtime.supervisor import configure_logging  # noqa: PLC0415
    from mutls.store.migrate import require_current  # noqa: PLC0415

    configure_logging()
    env = dict(os.environ)
    if listen is not None:
        env["MUTLS_GATEWAY_LISTEN"] = listen
    if workers is not None:
        env["MUTLS_GATEWAY_WORKERS"] = str(workers)
    settings = Settings.from_env(env)
    gateway_settings = GatewaySettings.from_env(env)
    platform = Platform.from_settings(settings)
    try:
        platform.db.ping()
        require_current(platform.db)
    except BaseException:
        platform.close()
        raise
    err_console.print(
        f"mutls gateway: {', '.join(f'https://{x.address}' for x in gateway_settings.listeners)} "
        f"({gateway_settings.workers} workers, {platform.db.redacted_url()})"
    )
    run_gateway(platform, gateway_settings)
