"""`mutls up`: run every listener of this node in one process tree and stop them together.

Today the node runs the admin API (with the CA endpoints to come); the gateway and egress
listeners join here as they arrive. Ctrl-C or SIGTERM stops accepting, lets in-flight requests
finish (up to ``GRACEFUL_SECONDS``) and exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
from types import FrameType

import uvicorn

from mutls.api.app import create_app
from mutls.runtime.platform import Platform

__all__ = ["GRACEFUL_SECONDS", "configure_logging", "serve"]

GRACEFUL_SECONDS = 10
log = logging.getLogger("mutls.up")


def configure_logging(level: str | None = None) -> None:
    """One line per record on stderr; MUTLS_LOG_LEVEL=debug for more. Never a secret (tested)."""
    chosen = (level or os.environ.get("MUTLS_LOG_LEVEL") or "info").upper()
    logging.basicConfig(
        level=getattr(logging, chosen, logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    if chosen != "DEBUG":
        logging.getLogger("alembic").setLevel(logging.WARNING)


def serve(platform: Platform) -> None:
    """Serve until interrupted."""
    settings = platform.settings
    config = uvicorn.Config(
        create_app(platform),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    log.info("admin API listening on %s", settings.api_url)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again against the
    # handlers it found (so Ctrl-C would end in KeyboardInterrupt and exit 130, SIGTERM in death
    # by signal). The shutdown is already complete by then: let it find handlers that do nothing.
    previous = {sig: signal.signal(sig, _already_handled) for sig in _STOP_SIGNALS}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        platform.close()
        log.info("stopped")


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _already_handled(signum: int, frame: FrameType | None) -> None:
    """uvicorn's re-raise of a stop signal it has already acted on."""
