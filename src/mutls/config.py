"""Validated settings: every knob of a running mutls, read once from the environment.

Each setting has a default that is safe on a laptop (loopback listeners, an embedded SQLite file in
``./mutls-data``) and an environment variable to change it. A bad value is an
``invalid_argument`` error naming the variable, never a crash at first use.

=========================  ==============================  =================================
variable                   default                         meaning
=========================  ==============================  =================================
MUTLS_DATA_DIR             ./mutls-data                    database, master key, CA, token
MUTLS_DATABASE_URL         sqlite in the data directory    e.g. postgresql://host/mutls
MUTLS_MASTER_KEY           (unset: use the key file)       keyring text, see vault/keyring.py
MUTLS_MASTER_KEY_FILE      <data dir>/master.key           where the keyring file lives
MUTLS_API_LISTEN           127.0.0.1:7000                  admin API host:port
MUTLS_MAX_BODY_BYTES       1048576                         largest admin API request body
MUTLS_PUBLIC_URL           the admin API URL               base URL relying parties reach for
                                                           CRL and OCSP (in issued certs)
MUTLS_RENEW_LISTEN         0.0.0.0:8444                    mTLS renewal listener (``off``: none)
MUTLS_SERVER_NAMES         localhost,127.0.0.1 and the     names in the TLS server certificate
                           public URL's host               of customer-facing listeners
=========================  ==============================  =================================

Expiry thresholds and alert channels (``MUTLS_EXPIRY_*``, ``MUTLS_ALERT_*``) are read by
:meth:`ExpirySettings.from_env`; docs/expiry.md lists them.

The mTLS gateway's settings (``MUTLS_GATEWAY_*``) are read by :meth:`GatewaySettings.from_env`;
docs/gateway.md lists them. The egress proxy's (``MUTLS_EGRESS_*``) by
:meth:`EgressSettings.from_env`; docs/egress.md lists them.

``MUTLS_PUBLIC_URL`` is written into every issued certificate (CRL distribution point
``<url>/ca/platform/crl``, OCSP ``<url>/ca/platform/ocsp``) and cannot be changed in a certificate
afterwards, so set it before issuing to the name relying parties use (``https://pki.example.com``),
not to a listen address.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mutls.errors import InvalidArgument

__all__ = [
    "EgressSettings",
    "ExpirySettings",
    "GatewayListen",
    "GatewaySettings",
    "Settings",
    "parse_listen",
    "parse_public_url",
]

DEFAULT_API_PORT = 7000
DEFAULT_RENEW_LISTEN = "0.0.0.0:8444"
DEFAULT_SERVER_NAMES = ("localhost", "127.0.0.1")
DEFAULT_MAX_BODY = 1024 * 1024


DEFAULT_EXPIRY_THRESHOLDS = (90, 30, 7, 0)
MAX_EXPIRY_THRESHOLD_DAYS = 3650


@dataclass(frozen=True, kw_only=True)
class ExpirySettings:
    """``MUTLS_EXPIRY_*`` and ``MUTLS_ALERT_*``: expiry thresholds and where alerts go.

    Read by :meth:`Settings.from_env`; docs/expiry.md lists them. The webhook secret and an SMTP
    password in the URL are secrets: never logged, never in a notification or an audit row.
    """

    thresholds: tuple[int, ...] = DEFAULT_EXPIRY_THRESHOLDS
    """Days before notAfter at which to notify, largest first; 0 means "has expired"."""
    check_seconds: float = 3600.0
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_attempts: int = 5
    webhook_backoff_seconds: float = 1.0
    """The first retry waits this long; each next one twice as long, capped at 60 s."""
    timeout_seconds: float = 10.0
    smtp_url: str | None = None
    """``smtp://host:port`` (STARTTLS when the server offers it, and required before a
    password is sent), ``smtps://host:port``; ``user:password@`` for SMTP AUTH."""
    smtp_ca_file: Path | None = None
    """``MUTLS_ALERT_SMTP_CA_FILE``: the CA bundle that verifies the SMTP server's certificate
    (a relay on a private CA); the system store when unset."""
    email_from: str | None = None
    email_to: tuple[str, ...] = ()
    gateway_cert_file: Path | None = None
    """``MUTLS_GATEWAY_CERT_FILE``, so the inventory can list the gateway's own certificate."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ExpirySettings:
        env = os.environ if environ is None else environ
        webhook_url = env.get("MUTLS_ALERT_WEBHOOK_URL") or None
        if webhook_url is not None:
            parts = urlsplit(webhook_url)
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                raise InvalidArgument(
                    "expected MUTLS_ALERT_WEBHOOK_URL as http(s)://host[:port]/path; found "
                    f"{_without_userinfo(webhook_url)!r}"
                )
        smtp_url = env.get("MUTLS_ALERT_SMTP_URL") or None
        if smtp_url is not None:
            parts = urlsplit(smtp_url)
            if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
                raise InvalidArgument(
                    "expected MUTLS_ALERT_SMTP_URL as smtp://host:port or smtps://host:port; "
                    f"found {_without_userinfo(smtp_url)!r}"
                )
        recipients = tuple(
            x.strip() for x in (env.get("MUTLS_ALERT_EMAIL_TO") or "").split(",") if x.strip()
        )
        sender = env.get("MUTLS_ALERT_EMAIL_FROM") or None
        if smtp_url is not None and (not recipients or sender is None):
            raise InvalidArgument(
                "expected MUTLS_ALERT_EMAIL_FROM and MUTLS_ALERT_EMAIL_TO with "
                "MUTLS_ALERT_SMTP_URL; found "
                f"{'no recipients' if not recipients else 'no sender'}"
            )
        smtp_ca = env.get("MUTLS_ALERT_SMTP_CA_FILE") or None
        smtp_ca_file = Path(smtp_ca).expanduser().absolute() if smtp_ca else None
        if smtp_ca_file is not None and not smtp_ca_file.is_file():
            raise InvalidArgument(
                "expected MUTLS_ALERT_SMTP_CA_FILE to name a PEM CA bundle; found no file at "
                f"{smtp_ca_file}"
            )
        cert_file = env.get("MUTLS_GATEWAY_CERT_FILE") or None
        return cls(
            thresholds=parse_thresholds(
                env.get("MUTLS_EXPIRY_THRESHOLDS") or "", "MUTLS_EXPIRY_THRESHOLDS"
            ),
            check_seconds=_seconds(env, "MUTLS_EXPIRY_CHECK_SECONDS", 3600.0),
            webhook_url=webhook_url,
            webhook_secret=env.get("MUTLS_ALERT_WEBHOOK_SECRET") or None,
            webhook_attempts=_positive_int(
                env.get("MUTLS_ALERT_WEBHOOK_ATTEMPTS"), 5, "MUTLS_ALERT_WEBHOOK_ATTEMPTS"
            ),
            webhook_backoff_seconds=_seconds(env, "MUTLS_ALERT_WEBHOOK_BACKOFF_SECONDS", 1.0),
            timeout_seconds=_seconds(env, "MUTLS_ALERT_TIMEOUT_SECONDS", 10.0),
            smtp_url=smtp_url,
            smtp_ca_file=smtp_ca_file,
            email_from=sender,
            email_to=recipients,
            gateway_cert_file=Path(cert_file).expanduser().absolute() if cert_file else None,
        )


def parse_thresholds(raw: str, variable: str) -> tuple[int, ...]:
    """``90,30,7,0`` to ``(90, 30, 7, 0)``: whole days, distinct, largest first; empty: default."""
    if not raw.strip():
        return DEFAULT_EXPIRY_THRESHOLDS
    values: list[int] = []
    for part in raw.split(","):
        text = part.strip().lower().removesuffix("d")
        if not text.isdigit() or int(text) > MAX_EXPIRY_THRESHOLD_DAYS:
            raise InvalidArgument(
                f"expected {variable} as whole days between 0 and {MAX_EXPIRY_THRESHOLD_DAYS}, "
                f"comma separated, like 90,30,7,0; found {raw!r}"
            )
        values.append(int(text))
    if len(set(values)) != len(values):
        raise InvalidArgument(f"expected distinct days in {variable}; found {raw!r}")
    return tuple(sorted(values, reverse=True))


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a mutls process needs to know before it opens the store."""

    data_dir: Path
    database_url: str | None = None
    master_key: str | None = None
    master_key_file: Path | None = None
    api_host: str = "127.0.0.1"
    api_port: int = DEFAULT_API_PORT
    max_body_bytes: int = DEFAULT_MAX_BODY
    public_url: str | None = None
    """Validated by :func:`parse_public_url`; None means :attr:`api_url`."""
    renew_listen: tuple[str, int] | None = None
    """Where ``POST /renew`` listens over mTLS; None: no renewal listener."""
    server_names: tuple[str, ...] = DEFAULT_SERVER_NAMES
    server_cert_days: float = 90.0
    """``MUTLS_SERVER_CERT_DAYS``: life of the server certificates the platform CA issues this
    node's customer-facing listeners (the gateway without certificate files, the renewal
    listener); each is renewed at two thirds of it while the node runs."""
    expiry: ExpirySettings = ExpirySettings()
    """Expiry thresholds and alert channels (issue 7)."""

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'mutls.db'}"

    @property
    def effective_master_key_file(self) -> Path:
        return self.master_key_file or self.data_dir / "master.key"

    @property
    def admin_token_file(self) -> Path:
        return self.data_dir / "admin-token"

    @property
    def ca_dir(self) -> Path:
        return self.data_dir / "ca"

    @property
    def api_url(self) -> str:
        host = f"[{self.api_host}]" if ":" in self.api_host else self.api_host
        return f"http://{host}:{self.api_port}"

    @property
    def renew_url(self) -> str | None:
        """How a client on this machine reaches the renewal listener (loopback for 0.0.0.0)."""
        if self.renew_listen is None:
            return None
        host, port = self.renew_listen
        if host in {"0.0.0.0", "::"}:  # noqa: S104 - a wildcard bind is reached via loopback
            host = "localhost"
        return f"https://{f'[{host}]' if ':' in host else host}:{port}"

    @property
    def effective_public_url(self) -> str:
        """The base URL issued certificates point relying parties to, without a trailing '/'."""
        return self.public_url or self.api_url

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the ``MUTLS_*`` variables."""
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("MUTLS_DATA_DIR") or "mutls-data").expanduser().absolute()
        database_url = env.get("MUTLS_DATABASE_URL") or None
        if database_url is not None:
            database_url = normalize_database_url(database_url, variable="MUTLS_DATABASE_URL")
        key_file = env.get("MUTLS_MASTER_KEY_FILE")
        host, port = parse_listen(
            env.get("MUTLS_API_LISTEN") or f"127.0.0.1:{DEFAULT_API_PORT}",
            variable="MUTLS_API_LISTEN",
        )
        public_url = (
            parse_public_url(public, variable="MUTLS_PUBLIC_URL")
            if (public := env.get("MUTLS_PUBLIC_URL"))
            else None
        )
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            master_key=env.get("MUTLS_MASTER_KEY") or None,
            master_key_file=Path(key_file).expanduser().absolute() if key_file else None,
            api_host=host,
            api_port=port,
            max_body_bytes=_positive_int(
                env.get("MUTLS_MAX_BODY_BYTES"), DEFAULT_MAX_BODY, "MUTLS_MAX_BODY_BYTES"
            ),
            public_url=public_url,
            renew_listen=_optional_listen(
                env.get("MUTLS_RENEW_LISTEN") or DEFAULT_RENEW_LISTEN, "MUTLS_RENEW_LISTEN"
            ),
            server_names=_server_names(env.get("MUTLS_SERVER_NAMES"), public_url),
            server_cert_days=_cert_days(env.get("MUTLS_SERVER_CERT_DAYS")),
            expiry=ExpirySettings.from_env(env),
        )


def normalize_database_url(url: str, *, variable: str) -> str:
    """Accept the URL forms people paste, and pick the drivers mutls ships with.

    ``postgres://`` (Heroku style) and ``postgresql://`` both become ``postgresql+psycopg://``
    (psycopg 3); ``sqlite:///path`` stays as it is.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise InvalidArgument(
            f"expected {variable} to be a URL like postgresql://user@host/db; found no '://'",
            hint="examples: postgresql://mutls@127.0.0.1:5432/mutls, sqlite:////var/lib/mutls.db",
        )
    base = scheme.split("+", 1)[0].lower()
    if base in {"postgres", "postgresql"}:
        return f"postgresql+psycopg://{rest}"
    if base == "sqlite":
        return f"sqlite://{rest}"
    raise InvalidArgument(
        f"expected {variable} to use postgresql:// or sqlite://; found {scheme}://",
        hint="mutls stores its state in PostgreSQL or SQLite",
    )


def parse_listen(value: str, *, variable: str) -> tuple[str, int]:
    """Split ``host:port`` (``[::1]:7000`` for IPv6) with a clear error."""
    host, sep, port_text = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidArgument(
            f"expected {variable} as host:port, like 127.0.0.1:7000; found {value!r}",
        )
    return host, int(port_text)


def parse_public_url(value: str, *, variable: str) -> str:
    """An absolute http(s) URL with a host and no query or fragment, without a trailing '/'.

    Relying parties append ``/ca/<name>/crl`` to it, so anything after the path would break every
    URL made from it, and credentials in it would be published in every certificate.
    """
    example = "like https://pki.example.com or http://10.0.0.5:7000/mutls"
    try:
        parts = urlsplit(value.strip())
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, port_ok = None, False
    if (
        parts is None
        or not port_ok
        or parts.scheme.lower() not in {"http", "https"}
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.query
        or parts.fragment
        or value.strip().endswith(("?", "#"))
        or any(c.isspace() for c in value.strip())
    ):
        raise InvalidArgument(
            f"expected {variable} to be an http(s) URL without credentials, query or fragment, "
            f"{example}; found {_without_userinfo(value)[:200]!r}",
            hint="it becomes the CRL and OCSP addresses in issued certificates",
        )
    return value.strip().rstrip("/")


def _without_userinfo(url: str) -> str:
    # A password pasted into the URL must not reach an error message or a log.
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if sep and "@" in authority:
        return f"{scheme}://***@{authority.rpartition('@')[2]}{slash}{path}"
    return url


def _optional_listen(value: str, variable: str) -> tuple[str, int] | None:
    if value.strip().lower() in {"off", "none", "disabled"}:
        return None
    return parse_listen(value.strip(), variable=variable)


def _server_names(raw: str | None, public_url: str | None) -> tuple[str, ...]:
    """Comma-separated DNS names or IP addresses; by default loopback and the public host."""
    if raw is None or not raw.strip():
        names = list(DEFAULT_SERVER_NAMES)
        host = urlsplit(public_url).hostname if public_url else None
        if host and host not in names:
            names.append(host)
        return tuple(names)
    names = [n.strip() for n in raw.split(",") if n.strip()]
    for name in names:
        if not _is_ip(name) and (
            not name.isascii() or any(c.isspace() or c in "/@:*" for c in name)
        ):
            raise InvalidArgument(
                f"expected MUTLS_SERVER_NAMES as comma-separated DNS names or IP addresses, "
                f"like api.example.com,10.0.0.5; found {name[:100]!r}",
                hint="no wildcards, ports or URLs: only the names clients connect to",
            )
    return tuple(dict.fromkeys(names))


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _positive_int(raw: str | None, default: int, variable: str) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise InvalidArgument(f"expected {variable} to be a positive integer; found {raw!r}")
    return int(raw)


# --- the mTLS gateway --------------------------------------------------------------------------

DEFAULT_GATEWAY_LISTEN = "0.0.0.0:8443"
TLS_VERSIONS = ("1.2", "1.3")
CIPHER_PRESETS = ("intermediate", "strict")


@dataclass(frozen=True, kw_only=True)
class GatewayListen:
    """One gateway listener and its TLS policy (seed 004 wants a TLS 1.2-only endpoint)."""

    host: str
    port: int
    tls_min: str = "1.2"
    tls_max: str = "1.3"
    ciphers: str = "intermediate"

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, kw_only=True)
class GatewaySettings:
    """``MUTLS_GATEWAY_*``: listeners, workers, server certificate, limits and timeouts."""

    listeners: tuple[GatewayListen, ...] = (GatewayListen(host="0.0.0.0", port=8443),)  # noqa: S104
    workers: int = 1
    cert_file: Path | None = None
    key_file: Path | None = None
    access_log: bool = True
    metrics_listen: tuple[str, int] | None = ("127.0.0.1", 9190)
    max_header_bytes: int = 32 * 1024
    max_body_bytes: int = 16 * 1024 * 1024
    max_connections: int = 10_000
    """Per worker."""
    handshake_timeout: float = 10.0
    read_timeout: float = 30.0
    """A request's head and body must keep arriving; a stall this long closes the connection."""
    idle_timeout: float = 75.0
    """A keep-alive connection with no request in flight is closed after this long (as nginx)."""
    upstream_connect_timeout: float = 5.0
    upstream_timeout: float = 60.0
    """From the request's end until the upstream's answer starts: 504 ``upstream_timeout``."""
    drain_seconds: float = 10.0
    """On SIGTERM: stop accepting, finish requests in flight for at most this long."""
    poll_seconds: float = 0.5

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, default_listen: str | None = None
    ) -> GatewaySettings:
        env = os.environ if environ is None else environ
        raw = env.get("MUTLS_GATEWAY_LISTEN") or default_listen or DEFAULT_GATEWAY_LISTEN
        cert = env.get("MUTLS_GATEWAY_CERT_FILE") or None
        key = env.get("MUTLS_GATEWAY_KEY_FILE") or None
        if (cert is None) != (key is None):
            raise InvalidArgument(
                "expected MUTLS_GATEWAY_CERT_FILE and MUTLS_GATEWAY_KEY_FILE together; found "
                f"only {'MUTLS_GATEWAY_CERT_FILE' if cert else 'MUTLS_GATEWAY_KEY_FILE'}",
                hint="set both to serve your own certificate, or neither to have the platform "
                "CA issue one for MUTLS_SERVER_NAMES",
            )
        log = (env.get("MUTLS_GATEWAY_ACCESS_LOG") or "on").strip().lower()
        if log not in {"on", "off"}:
            raise InvalidArgument(f"expected MUTLS_GATEWAY_ACCESS_LOG on or off; found {log!r}")
        return cls(
            listeners=parse_gateway_listeners(raw),
            workers=_positive_int(
                env.get("MUTLS_GATEWAY_WORKERS"), os.cpu_count() or 1, "MUTLS_GATEWAY_WORKERS"
            ),
            cert_file=Path(cert).expanduser().absolute() if cert else None,
            key_file=Path(key).expanduser().absolute() if key else None,
            access_log=log == "on",
            metrics_listen=_optional_listen(
                env.get("MUTLS_GATEWAY_METRICS_LISTEN") or "127.0.0.1:9190",
                "MUTLS_GATEWAY_METRICS_LISTEN",
            ),
            max_header_bytes=_positive_int(
                env.get("MUTLS_GATEWAY_MAX_HEADER_BYTES"),
                32 * 1024,
                "MUTLS_GATEWAY_MAX_HEADER_BYTES",
            ),
            max_body_bytes=_positive_int(
                env.get("MUTLS_GATEWAY_MAX_BODY_BYTES"),
                16 * 1024 * 1024,
                "MUTLS_GATEWAY_MAX_BODY_BYTES",
            ),
            max_connections=_positive_int(
                env.get("MUTLS_GATEWAY_MAX_CONNECTIONS"), 10_000, "MUTLS_GATEWAY_MAX_CONNECTIONS"
            ),
            handshake_timeout=_seconds(env, "MUTLS_GATEWAY_HANDSHAKE_TIMEOUT", 10.0),
            read_timeout=_seconds(env, "MUTLS_GATEWAY_READ_TIMEOUT", 30.0),
            idle_timeout=_seconds(env, "MUTLS_GATEWAY_IDLE_TIMEOUT", 75.0),
            upstream_connect_timeout=_seconds(env, "MUTLS_GATEWAY_UPSTREAM_CONNECT_TIMEOUT", 5.0),
            upstream_timeout=_seconds(env, "MUTLS_GATEWAY_UPSTREAM_TIMEOUT", 60.0),
            drain_seconds=_seconds(env, "MUTLS_GATEWAY_DRAIN_SECONDS", 10.0),
            poll_seconds=_seconds(env, "MUTLS_GATEWAY_POLL_SECONDS", 0.5),
        )


MIN_CERT_SECONDS = 10.0
MAX_CERT_DAYS = 397.0
"""The CA/Browser Forum's longest TLS server certificate; mutls's default is 90 days."""


def _cert_days(raw: str | None) -> float:
    """``MUTLS_SERVER_CERT_DAYS``: days, fractions allowed (a test may want seconds' worth)."""
    if raw is None or raw.strip() == "":
        return 90.0
    try:
        days = float(raw)
    except ValueError:
        days = -1.0
    if not MIN_CERT_SECONDS / 86_400 <= days <= MAX_CERT_DAYS:
        raise InvalidArgument(
            f"expected MUTLS_SERVER_CERT_DAYS in days, from {MIN_CERT_SECONDS:g} seconds' worth "
            f"up to {MAX_CERT_DAYS:g}; found {raw!r}",
            hint="the default, 90, suits most nodes",
        )
    return days


def _seconds(env: Mapping[str, str], variable: str, default: float) -> float:
    raw = env.get(variable)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 86_400:
        raise InvalidArgument(
            f"expected {variable} in seconds, more than 0 and at most 86400; found {raw!r}"
        )
    return value


def parse_gateway_listeners(value: str) -> tuple[GatewayListen, ...]:
    """``host:port[?tls=1.2&ciphers=strict]``, comma-separated; ``tls`` is one version or a range
    (``1.2``, ``1.3``, ``1.2-1.3``)."""
    variable = "MUTLS_GATEWAY_LISTEN"
    listeners: list[GatewayListen] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        address, _, query = item.partition("?")
        host, port = parse_listen(address, variable=variable)
        options = dict(pair.partition("=")[::2] for pair in query.split("&") if pair)
        unknown = set(options) - {"tls", "ciphers"}
        if unknown:
            raise InvalidArgument(
                f"expected {variable} options tls= and ciphers=; found {sorted(unknown)[0]!r}",
                hint="example: 0.0.0.0:8443,0.0.0.0:8543?tls=1.2",
            )
        low, _, high = options.get("tls", "1.2-1.3").partition("-")
        high = high or low
        ciphers = options.get("ciphers", "intermediate")
        if low not in TLS_VERSIONS or high not in TLS_VERSIONS or low > high:
            raise InvalidArgument(
                f"expected tls= in {variable} as 1.2, 1.3 or 1.2-1.3; found {options.get('tls')!r}",
                hint="TLS 1.0 and 1.1 are deprecated (RFC 8996) and not offered",
            )
        if ciphers not in CIPHER_PRESETS:
            raise InvalidArgument(
                f"expected ciphers= in {variable} to be one of {', '.join(CIPHER_PRESETS)}; "
                f"found {ciphers!r}"
            )
        listeners.append(
            GatewayListen(host=host, port=port, tls_min=low, tls_max=high, ciphers=ciphers)
        )
    if not listeners:
        raise InvalidArgument(f"expected at least one host:port in {variable}; found {value!r}")
    return tuple(listeners)


# --- the egress proxy --------------------------------------------------------------------------

DEFAULT_EGRESS_LISTEN = "127.0.0.1:7080"


@dataclass(frozen=True, kw_only=True)
class EgressSettings:
    """``MUTLS_EGRESS_*``: the egress proxy's listener, limits and timeouts.

    The listener is plain HTTP for the company's own apps, so it binds to loopback by default;
    every request still needs an ``app`` token. Bodies stream in both directions, so the body
    limit bounds what a request may send in total, not what is held in memory.
    """

    listen: tuple[str, int] = ("127.0.0.1", 7080)
    workers: int = 1
    access_log: bool = True
    request_log: bool = True
    """Write each request to the ``egress_requests`` table (seed 002's request log)."""
    request_log_days: int = 30
    usage_audit_seconds: float = 300.0
    """How often secret use is written to the audit log (one ``secret.use`` row per secret)."""
    metrics_listen: tuple[str, int] | None = ("127.0.0.1", 9191)
    max_header_bytes: int = 32 * 1024
    max_body_bytes: int = 4 * 1024 * 1024 * 1024
    max_connections: int = 10_000
    """Per worker, from apps."""
    max_idle_per_partner: int = 64
    """Idle keep-alive connections kept per (partner, TLS context)."""
    read_timeout: float = 30.0
    idle_timeout: float = 75.0
    connect_timeout: float = 10.0
    """TCP connect plus TLS handshake to the partner: ``partner_timeout`` after this long."""
    timeout: float = 60.0
    """From the request's end until the partner's answer starts (a route's ``timeout_seconds``
    overrides it): ``partner_timeout``."""
    partner_idle_seconds: float = 50.0
    """A pooled partner connection unused this long is closed (partners often close at 60 s)."""
    drain_seconds: float = 10.0
    poll_seconds: float = 0.5

    @property
    def address(self) -> str:
        host, port = self.listen
        return f"{f'[{host}]' if ':' in host else host}:{port}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EgressSettings:
        env = os.environ if environ is None else environ
        flags: dict[str, bool] = {}
        for variable in ("MUTLS_EGRESS_ACCESS_LOG", "MUTLS_EGRESS_REQUEST_LOG"):
            value = (env.get(variable) or "on").strip().lower()
            if value not in {"on", "off"}:
                raise InvalidArgument(f"expected {variable} on or off; found {value!r}")
            flags[variable] = value == "on"
        return cls(
            listen=parse_listen(
                (env.get("MUTLS_EGRESS_LISTEN") or DEFAULT_EGRESS_LISTEN).strip(),
                variable="MUTLS_EGRESS_LISTEN",
            ),
            workers=_positive_int(env.get("MUTLS_EGRESS_WORKERS"), 1, "MUTLS_EGRESS_WORKERS"),
            access_log=flags["MUTLS_EGRESS_ACCESS_LOG"],
            request_log=flags["MUTLS_EGRESS_REQUEST_LOG"],
            request_log_days=_positive_int(
                env.get("MUTLS_EGRESS_REQUEST_LOG_DAYS"), 30, "MUTLS_EGRESS_REQUEST_LOG_DAYS"
            ),
            usage_audit_seconds=_seconds(env, "MUTLS_EGRESS_USAGE_AUDIT_SECONDS", 300.0),
            metrics_listen=_optional_listen(
                env.get("MUTLS_EGRESS_METRICS_LISTEN") or "127.0.0.1:9191",
                "MUTLS_EGRESS_METRICS_LISTEN",
            ),
            max_header_bytes=_positive_int(
                env.get("MUTLS_EGRESS_MAX_HEADER_BYTES"), 32 * 1024, "MUTLS_EGRESS_MAX_HEADER_BYTES"
            ),
            max_body_bytes=_positive_int(
                env.get("MUTLS_EGRESS_MAX_BODY_BYTES"),
                4 * 1024 * 1024 * 1024,
                "MUTLS_EGRESS_MAX_BODY_BYTES",
            ),
            max_connections=_positive_int(
                env.get("MUTLS_EGRESS_MAX_CONNECTIONS"), 10_000, "MUTLS_EGRESS_MAX_CONNECTIONS"
            ),
            max_idle_per_partner=_positive_int(
                env.get("MUTLS_EGRESS_MAX_IDLE_PER_PARTNER"),
                64,
                "MUTLS_EGRESS_MAX_IDLE_PER_PARTNER",
            ),
            read_timeout=_seconds(env, "MUTLS_EGRESS_READ_TIMEOUT", 30.0),
            idle_timeout=_seconds(env, "MUTLS_EGRESS_IDLE_TIMEOUT", 75.0),
            connect_timeout=_seconds(env, "MUTLS_EGRESS_CONNECT_TIMEOUT", 10.0),
            timeout=_seconds(env, "MUTLS_EGRESS_TIMEOUT", 60.0),
            partner_idle_seconds=_seconds(env, "MUTLS_EGRESS_PARTNER_IDLE_SECONDS", 50.0),
            drain_seconds=_seconds(env, "MUTLS_EGRESS_DRAIN_SECONDS", 10.0),
            poll_seconds=_seconds(env, "MUTLS_EGRESS_POLL_SECONDS", 0.5),
        )
