"""`mutls up`: run every listener of this node in one process tree and stop them together.

The node runs the admin API (with the CA endpoints) and the renewal listener (``POST /renew`` over
mTLS) in this process, and the worker processes of the mTLS gateway (``MUTLS_GATEWAY_LISTEN``) and
of the egress proxy (``MUTLS_EGRESS_LISTEN``) beside it (``off`` for none), restarting a worker
that dies, and the periodic expiry check (``MUTLS_EXPIRY_CHECK_SECONDS``) in a thread. Ctrl-C or
SIGTERM stops accepting, lets in-flight requests finish (up to ``GRACEFUL_SECONDS``) and exits 0.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

from mutls.api.app import create_app
from mutls.api.renewal import create_renewal_app
from mutls.ca.issuer import IssuerCache
from mutls.ca.server_identity import node_identity_issuer
from mutls.config import EgressSettings, GatewaySettings
from mutls.egress.server import EgressProcesses, prepare_egress, serve_egress_metrics
from mutls.errors import CANotInitialized
from mutls.gateway.server import GatewayProcesses, prepare_gateway, serve_metrics
from mutls.pki.material import Material
from mutls.runtime.expiry import ExpiryScheduler
from mutls.runtime.listeners import Listener, bind, run_listeners
from mutls.runtime.platform import Platform
from mutls.runtime.server_certs import RenewingServerCertificate
from mutls.tls.context import ClientCertMode, server_context

__all__ = ["GRACEFUL_SECONDS", "configure_logging", "serve"]

GRACEFUL_SECONDS = 10
MAINTAIN_SECONDS = 0.5
"""How often ``mutls up`` looks for dead workers to restart and certificates to renew."""
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
        # uvicorn says "Started server process" once per listener; ours names each listener.
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)


def serve(
    platform: Platform,
    *,
    gateway: bool = True,
    egress: bool = True,
    extra_listeners: Sequence[Listener] = (),
) -> None:
    """Serve the admin API, the renewal listener and (unless turned off, as for an API-only
    node) the mTLS gateway and the egress proxy until SIGINT or SIGTERM; exit 0 then."""
    own, certificates = _api_listeners(platform)
    listeners = [*own, *extra_listeners]
    processes = None
    egress_processes = None
    expiry = ExpiryScheduler(platform)
    maintenance_stop = threading.Event()
    maintenance: threading.Thread | None = None
    try:
        processes = _gateway(platform) if gateway else None
        egress_processes = _egress(platform) if egress else None
    except BaseException:
        for listener in listeners:
            listener.sock.close()
        if processes is not None:
            processes.stop()
        raise
    try:
        # Fork the workers before this process starts threads or an event loop.
        for workers in (processes, egress_processes):
            if workers is not None:
                workers.start()
        if processes is not None:
            serve_metrics(processes)
        if egress_processes is not None:
            serve_egress_metrics(egress_processes)
        expiry.start()  # issue 7: at start, then every MUTLS_EXPIRY_CHECK_SECONDS
        maintenance = _maintain([processes, egress_processes], certificates, maintenance_stop)
        run_listeners(listeners)
    finally:
        maintenance_stop.set()
        if maintenance is not None:
            maintenance.join(timeout=5)
        expiry.stop()
        if egress_processes is not None:
            egress_processes.stop()
        if processes is not None:
            processes.stop()
        platform.close()
        log.info("stopped")


def _api_listeners(platform: Platform) -> tuple[list[Listener], list[RenewingServerCertificate]]:
    """The admin API, and the renewal listener (with its certificate) unless it is off."""
    settings = platform.settings
    app = create_app(platform)
    api = Listener(
        name="admin API",
        app=app,
        sock=bind(settings.api_host, settings.api_port, setting="MUTLS_API_LISTEN"),
        graceful_seconds=GRACEFUL_SECONDS,
    )
    try:
        renewal = _renewal_listener(platform, app.state.issuers)
    except BaseException:
        api.sock.close()
        raise
    if renewal is None:
        return [api], []
    return [api, renewal[0]], [renewal[1]]


class _Reapable(Protocol):
    def reap(self, *, block: bool) -> None: ...


def _maintain(
    sets: Sequence[_Reapable | None],
    certificates: Sequence[RenewingServerCertificate],
    stop: threading.Event,
) -> threading.Thread | None:
    """A thread that, while the listeners serve, restarts dead gateway and egress workers (the
    standalone ``mutls gateway`` and ``mutls egress`` do it in their foreground loop) and renews
    this process's listener certificates."""
    active = [workers for workers in sets if workers is not None]
    if not active and not certificates:
        return None

    def watch() -> None:
        while not stop.wait(MAINTAIN_SECONDS):
            for workers in active:
                try:
                    workers.reap(block=False)
                except Exception:
                    log.exception("restarting a dead worker failed")
            for certificate in certificates:
                certificate.renew_if_due()

    thread = threading.Thread(target=watch, name="mutls-maintenance", daemon=True)
    thread.start()
    return thread


def _egress(platform: Platform) -> EgressProcesses | None:
    raw = os.environ.get("MUTLS_EGRESS_LISTEN", "")
    if raw.strip().lower() in {"off", "none", "disabled"}:
        log.info("egress proxy off (MUTLS_EGRESS_LISTEN=off)")
        return None
    processes = prepare_egress(platform, EgressSettings.from_env())
    processes.announce()
    return processes


def _gateway(platform: Platform) -> GatewayProcesses | None:
    raw = os.environ.get("MUTLS_GATEWAY_LISTEN", "")
    if raw.strip().lower() in {"off", "none", "disabled"}:
        log.info("mTLS gateway off (MUTLS_GATEWAY_LISTEN=off)")
        return None
    settings = GatewaySettings.from_env()
    try:
        processes = prepare_gateway(platform, settings)
    except CANotInitialized:
        log.warning("mTLS gateway off: no platform CA to issue its certificate")
        return None
    processes.announce()
    return processes


def _renewal_listener(
    platform: Platform, issuers: IssuerCache
) -> tuple[Listener, RenewingServerCertificate] | None:
    """``POST /renew`` over mTLS with a server certificate from the platform CA, renewed while
    the node runs."""
    settings = platform.settings
    if settings.renew_listen is None:
        log.info("renewal listener off (MUTLS_RENEW_LISTEN=off)")
        return None
    try:
        issuers.platform(now=platform.clock())
    except CANotInitialized:
        log.warning(
            "renewal listener off: this node has no platform CA in %s (run `mutls up` once, "
            "or copy the data directory's ca/ here)",
            settings.ca_dir,
        )
        return None
    issue = node_identity_issuer(
        issuers, settings.server_names, timedelta(days=settings.server_cert_days)
    )

    def build(identity: Material) -> ssl.SSLContext:
        return server_context(
            identity,
            # the intermediates too: clients may send the leaf only
            client_cas=list(issuers.platform(now=platform.clock()).chain),
            client_cert=ClientCertMode.OPTIONAL,  # no certificate: a JSON 401, not a TLS alert
            check_time=False,  # expired: a JSON 403 certificate_expired, checked by the service
        )

    certificate = RenewingServerCertificate(
        "renewal listener", issue=issue, build=build, clock=platform.clock
    )
    host, port = settings.renew_listen
    listener = Listener(
        name="renewal (mTLS)",
        app=create_renewal_app(platform, issuers),
        sock=bind(host, port, setting="MUTLS_RENEW_LISTEN"),
        ssl_context=certificate.context.front,
        graceful_seconds=GRACEFUL_SECONDS,
    )
    return listener, certificate
