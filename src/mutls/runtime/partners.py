"""Stand-in partners: three real mTLS APIs on 127.0.0.1, for tests, docs and the demo.

Seed 002's examples of what the egress proxy calls, each behind its own throwaway partner CA
that also issued our client certificates (one for production, one for sandbox), each requiring
a client certificate from that CA in the TLS handshake (``CERT_REQUIRED``):

* **bank** (mTLS only): ``GET /accounts`` names the client certificate; ``POST /payments``
  echoes a JSON body; ``GET /bytes/N`` streams N bytes (byte i is ``i % 256``); ``POST /upload``
  counts and hashes a body of any size (Content-Length or chunked) without keeping it.
* **openbanking** (mTLS + OAuth2 ``tls_client_auth``, RFC 8705): ``POST /token`` issues an
  opaque token bound to the certificate's SHA-256 thumbprint (``cnf.x5t#S256``, kept
  server-side); ``GET /accounts`` accepts it only over a connection with that certificate.
* **tax** (mTLS + OAuth2 ``client_secret_basic`` or ``client_secret_post`` + API key):
  ``POST /oauth/token``; ``GET /returns`` needs the token, ``X-Api-Key`` for the token's
  environment and ``X-Environment`` naming that environment.

Each partner listens on its own port (partners are separate hosts; distinct ports keep a route's
``target_url`` as plain as a real one): ``--port`` (default 9443) is the bank, then openbanking
and tax on the next two ports; port 0 in :class:`PartnerSettings` picks free ports (tests).

Run as a process for the docs::

    python -m mutls.runtime.partners --dir /tmp/partners [--port 9443] [--tls12-only bank]

It writes into the directory ``partner-ca.pem`` (the bundle a route's ``ca_bundle_secret``
holds), ``production-client.pem``/``.key`` and ``sandbox-client.pem``/``.key`` (the
certificates the partner "issued" to us), and ``partners.json`` (URLs, client ids, the tax
partner's client secrets and API keys); prints the same; and serves until Ctrl-C. Every start
makes a new CA: these are throwaway partners, not a place to keep anything.

In tests, :func:`start_partners` runs them in background threads of the test process.

The servers are stdlib ``ssl`` + ``http.server`` on purpose: they stand for software that is
not ours, so they share no TLS code with mutls.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import enum
import hashlib
import hmac
import json
import logging
import secrets
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from mutls.pki.authority import Profile
from mutls.testing import Identity, TestCA

__all__ = [
    "ENVIRONMENTS",
    "ClientIdentity",
    "PartnerCounters",
    "PartnerName",
    "PartnerSettings",
    "Partners",
    "TaxClient",
    "TokenIssue",
    "main",
    "start_partners",
]

log = logging.getLogger(__name__)

ENVIRONMENTS = ("production", "sandbox")
MAX_FORM = 16 * 1024  # token request bodies
MAX_JSON = 1024 * 1024  # POST /payments
MAX_BYTES = 1024**3  # GET /bytes/N
MAX_UPLOAD = 16 * 1024**3  # POST /upload, streamed
_BLOCK = bytes(range(256)) * 256  # 64 KiB of the /bytes pattern
OPENBANKING_SCOPES = ("accounts", "payments")
TAX_SCOPES = ("read:returns", "write:returns")


class PartnerName(enum.StrEnum):
    BANK = "bank"
    OPENBANKING = "openbanking"
    TAX = "tax"


@dataclass(frozen=True, kw_only=True)
class PartnerSettings:
    """How to run the partners. ``port`` is the bank's; openbanking and tax take the next two."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: each partner on a free port
    tls12_only: frozenset[PartnerName] = frozenset()  # seed 004: partners that pin TLS 1.2
    token_lifetime: int = 3600  # expires_in of issued tokens, seconds
    extra_client_cas: tuple[x509.Certificate, ...] = ()  # also accepted (e.g. our own CA)


@dataclass(frozen=True, kw_only=True)
class ClientIdentity:
    """A client certificate the partner CA issued to us, written to files."""

    environment: str
    common_name: str
    subject: str  # RFC 4514, what openbanking registered for tls_client_auth
    serial: int
    thumbprint: str  # RFC 8705 x5t#S256: base64url(SHA-256(DER)), no padding
    cert_path: Path  # certificate and issuing CA, PEM
    key_path: Path  # PKCS#8 PEM, unencrypted, mode 0600


@dataclass(frozen=True, kw_only=True)
class TaxClient:
    """The tax authority's OAuth2 client and API key for one environment."""

    environment: str
    client_id: str
    client_secret: str = field(repr=False)
    api_key: str = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class TokenIssue:
    """One token a partner issued: to whom, how the client authenticated, for what."""

    partner: PartnerName
    client_id: str
    environment: str
    auth_method: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class PartnerCounters:
    requests: int
    tokens_issued: int
    tokens_revoked: int
    handshake_failures: int
    last_handshake_error: str | None


@dataclass(frozen=True, kw_only=True)
class _Grant:
    client_id: str
    environment: str
    thumbprint: str  # the certificate the token is bound to
    scopes: tuple[str, ...]
    expires_at: float  # time.monotonic()


class _State:
    """What one partner remembers, shared by its connection threads."""

    def __init__(self, name: PartnerName, registry: _Registry, token_lifetime: int) -> None:
        self.name = name
        self.registry = registry
        self.token_lifetime = token_lifetime
        self.lock = threading.Lock()
        self.grants: dict[str, _Grant] = {}
        self.issued: list[TokenIssue] = []
        self.requests = self.revoked = self.handshake_failures = 0
        self.last_handshake_error: str | None = None

    def counters(self) -> PartnerCounters:
        with self.lock:
            return PartnerCounters(
                requests=self.requests,
                tokens_issued=len(self.issued),
                tokens_revoked=self.revoked,
                handshake_failures=self.handshake_failures,
                last_handshake_error=self.last_handshake_error,
            )


@dataclass(frozen=True, kw_only=True)
class _Registry:
    """Who the partners know: our certificates by serial, OAuth2 clients, API keys."""

    environments_by_serial: Mapping[int, str]
    openbanking_subjects: Mapping[str, tuple[str, str]]  # client_id -> (environment, subject)
    tax_clients: Mapping[str, TaxClient]  # client_id -> client


# --- HTTP ---------------------------------------------------------------------------------------


class _Reply(Exception):
    """Not an error: an answer that ends the handler early."""

    def __init__(
        self, status: int, body: Mapping[str, object], headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers


@dataclass(frozen=True, kw_only=True)
class _Peer:
    certificate: x509.Certificate
    thumbprint: str
    environment: str | None

    @property
    def common_name(self) -> str:
        names = self.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(names[0].value) if names else ""

    def describe(self) -> dict[str, object]:
        issuer = self.certificate.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
        return {
            "subject_cn": self.common_name,
            "subject": self.certificate.subject.rfc4514_string(),
            "serial": format(self.certificate.serial_number, "x"),
            "issuer_cn": str(issuer[0].value) if issuer else "",
            "environment": self.environment,
            "thumbprint": self.thumbprint,
        }


Route = Callable[["_Handler"], None]


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; the partner's routes are methods named in ``routes``."""

    protocol_version = "HTTP/1.1"
    server_version = "mutls-partner/1"
    routes: ClassVar[dict[tuple[str, str], str]] = {}
    prefixes: ClassVar[dict[tuple[str, str], str]] = {}
    head = False
    body_read = True

    # --- plumbing

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("GET", head=True)

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    @property
    def state(self) -> _State:
        server = self.server
        assert isinstance(server, _PartnerServer)
        return server.state

    def _dispatch(self, method: str, *, head: bool = False) -> None:
        # One handler serves every request of a keep-alive connection: reset per request.
        self.head = head
        length = (self.headers.get("Content-Length") or "0").strip()
        self.body_read = length == "0" and not self._chunked()
        with self.state.lock:
            self.state.requests += 1
        path = urlsplit(self.path).path
        try:
            self._route(method, path)(self)
        except _Reply as reply:
            self.send_json(reply.status, reply.body, reply.headers)

    def _route(self, method: str, path: str) -> Route:
        name = self.routes.get((method, path))
        for (prefix_method, prefix), candidate in self.prefixes.items():
            if name is None and method == prefix_method and path.startswith(prefix):
                name = candidate
        if name is not None:
            return getattr(type(self), name)  # type: ignore[no-any-return]
        allowed = sorted({m for m, p in self.routes if p == path})
        allowed += sorted({m for m, p in self.prefixes if path.startswith(p)})
        if allowed:
            if "GET" in allowed:
                allowed.append("HEAD")
            raise _Reply(
                405,
                {"error": "method_not_allowed", "allowed": allowed},
                [("Allow", ", ".join(allowed))],
            )
        raise _Reply(404, {"error": "not_found", "endpoints": self.endpoints()})

    def endpoints(self) -> list[str]:
        listed = [f"{m} {p}" for m, p in self.routes] + [f"{m} {p}N" for m, p in self.prefixes]
        return sorted(listed)

    def send_json(
        self, status: int, body: Mapping[str, object], headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        data = json.dumps(body, indent=1).encode() + b"\n"
        self.start(status, len(data), [("Content-Type", "application/json"), *headers])
        if not self.head:
            self.wfile.write(data)

    def start(self, status: int, length: int, headers: Sequence[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        if not self.body_read:  # the request body was not read: the connection cannot go on
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        log.info("%s %s: " + format, self.state.name, self.client_address[0], *args)

    # --- the request

    def peer(self) -> _Peer:
        connection = self.connection
        assert isinstance(connection, ssl.SSLSocket)
        der = connection.getpeercert(binary_form=True)
        assert der is not None  # CERT_REQUIRED: no handshake without one
        certificate = x509.load_der_x509_certificate(der)
        return _Peer(
            certificate=certificate,
            thumbprint=thumbprint(certificate),
            environment=self.state.registry.environments_by_serial.get(certificate.serial_number),
        )

    def _chunked(self) -> bool:
        codings = ",".join(self.headers.get_all("Transfer-Encoding") or [])
        return "chunked" in codings.lower()

    def body_chunks(self, limit: int) -> Iterator[bytes]:
        """The request body in pieces (Content-Length or chunked), refused past ``limit``."""
        lengths = self.headers.get_all("Content-Length") or []
        if self._chunked():
            if lengths:
                raise _Reply(400, {"error": "both Transfer-Encoding and Content-Length"})
            yield from self._chunks(limit)
        elif lengths:
            if len(set(lengths)) != 1 or not lengths[0].strip().isdigit():
                raise _Reply(400, {"error": "invalid Content-Length"})
            remaining = int(lengths[0])
            if remaining > limit:
                raise _Reply(413, {"error": "body_too_large", "limit": limit})
            while remaining:
                piece = self.rfile.read(min(remaining, 65536))
                if not piece:
                    raise ConnectionError("client closed the connection mid-body")
                remaining -= len(piece)
                yield piece
        self.body_read = True

    def _chunks(self, limit: int) -> Iterator[bytes]:
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _Reply(400, {"error": "invalid chunk size"}) from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            total += size
            if total > limit:
                raise _Reply(413, {"error": "body_too_large", "limit": limit})
            while size:
                piece = self.rfile.read(min(size, 65536))
                if not piece:
                    raise ConnectionError("client closed the connection mid-chunk")
                size -= len(piece)
                yield piece
            self.rfile.readline(8)  # the CRLF after the chunk

    def body(self, limit: int) -> bytes:
        return b"".join(self.body_chunks(limit))

    def form(self) -> dict[str, str]:
        """An OAuth2 token request's form (RFC 6749 3.2: each parameter at most once)."""
        content_type = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        body = self.body(MAX_FORM)
        if content_type != "application/x-www-form-urlencoded":
            raise oauth_error(
                400, "invalid_request", "expected an application/x-www-form-urlencoded body"
            )
        try:
            pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            pairs = [] if not body else [("", "")]
        names = [name for name, _ in pairs]
        if len(names) != len(set(names)) or "" in names:
            raise oauth_error(400, "invalid_request", "malformed or repeated form parameters")
        form = dict(pairs)
        if "grant_type" not in form:
            raise oauth_error(400, "invalid_request", "grant_type is missing")
        if form["grant_type"] != "client_credentials":
            raise oauth_error(400, "unsupported_grant_type", "only client_credentials")
        return form

    def bearer(self) -> _Grant:
        """The grant for the request's bearer token, or 401 invalid_token (RFC 6750 3.1)."""
        realm = f'Bearer realm="{self.state.name}"'
        header = self.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Reply(
                401,
                {"error": "invalid_token", "error_description": "no bearer token"},
                [("WWW-Authenticate", realm)],
            )
        state = self.state
        with state.lock:
            grant = state.grants.get(token.strip())
            if grant is not None and time.monotonic() >= grant.expires_at:
                del state.grants[token.strip()]
                grant, problem = None, "the token expired"
            else:
                problem = "unknown or revoked token"
        if grant is None:
            raise _invalid_token(realm, problem)
        return grant

    def issue(
        self, *, client_id: str, environment: str, method: str, scopes: Sequence[str]
    ) -> None:
        state, bound_to = self.state, self.peer().thumbprint
        token = secrets.token_urlsafe(32)
        with state.lock:
            lifetime = state.token_lifetime
            state.grants[token] = _Grant(
                client_id=client_id,
                environment=environment,
                thumbprint=bound_to,
                scopes=tuple(scopes),
                expires_at=time.monotonic() + lifetime,
            )
            state.issued.append(
                TokenIssue(
                    partner=state.name,
                    client_id=client_id,
                    environment=environment,
                    auth_method=method,
                    scopes=tuple(scopes),
                )
            )
        body = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "scope": " ".join(scopes),
        }
        self.send_json(200, body, [("Cache-Control", "no-store"), ("Pragma", "no-cache")])


def oauth_error(
    status: int, error: str, description: str, headers: Sequence[tuple[str, str]] = ()
) -> _Reply:
    """An RFC 6749 5.2 error answer."""
    body = {"error": error, "error_description": description}
    return _Reply(status, body, [("Cache-Control", "no-store"), *headers])


def _invalid_token(realm: str, description: str) -> _Reply:
    challenge = f'{realm}, error="invalid_token", error_description="{description}"'
    return _Reply(
        401,
        {"error": "invalid_token", "error_description": description},
        [("WWW-Authenticate", challenge)],
    )


def _scopes(form: Mapping[str, str], allowed: Sequence[str]) -> tuple[str, ...]:
    asked = tuple(form.get("scope", "").split()) or tuple(allowed[:1])
    unknown = [s for s in asked if s not in allowed]
    if unknown:
        raise oauth_error(
            400, "invalid_scope", f"unknown scope {unknown[0]}; offered: {' '.join(allowed)}"
        )
    return asked


def thumbprint(certificate: x509.Certificate) -> str:
    """RFC 8705 3.1 ``x5t#S256``: base64url of the SHA-256 of the certificate's DER."""
    digest = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# --- the three partners -----------------------------------------------------------------------


class _Bank(_Handler):
    routes: ClassVar[dict[tuple[str, str], str]] = {
        ("GET", "/"): "index",
        ("GET", "/accounts"): "accounts",
        ("POST", "/payments"): "payments",
        ("POST", "/upload"): "upload",
    }
    prefixes: ClassVar[dict[tuple[str, str], str]] = {("GET", "/bytes/"): "stream"}

    def index(self) -> None:
        self.send_json(200, {"partner": "bank", "endpoints": self.endpoints()})

    def accounts(self) -> None:
        accounts = [{"id": "acc-001", "currency": "EUR", "balance": "1250.00"}]
        self.send_json(200, {**self.peer().describe(), "accounts": accounts})

    def payments(self) -> None:
        raw = self.body(MAX_JSON)
        try:
            payment = json.loads(raw)
        except ValueError:
            raise _Reply(400, {"error": "invalid_json", "hint": "send a JSON object"}) from None
        if not isinstance(payment, dict):
            raise _Reply(400, {"error": "invalid_json", "hint": "send a JSON object"})
        reply = {"payment_id": f"pay-{secrets.token_hex(6)}", "received": payment}
        self.send_json(201, {**reply, "subject_cn": self.peer().common_name})

    def stream(self) -> None:
        text = urlsplit(self.path).path.removeprefix("/bytes/")
        if not text.isdigit() or int(text) > MAX_BYTES:
            raise _Reply(400, {"error": f"expected /bytes/N with N from 0 to {MAX_BYTES}"})
        remaining = int(text)
        self.start(200, remaining, [("Content-Type", "application/octet-stream")])
        while remaining and not self.head:
            piece = _BLOCK[: min(remaining, len(_BLOCK))]
            self.wfile.write(piece)
            remaining -= len(piece)

    def upload(self) -> None:
        digest, count = hashlib.sha256(), 0
        for piece in self.body_chunks(MAX_UPLOAD):
            digest.update(piece)
            count += len(piece)
        self.send_json(200, {"bytes": count, "sha256": digest.hexdigest()})


class _OpenBanking(_Handler):
    routes: ClassVar[dict[tuple[str, str], str]] = {
        ("GET", "/"): "index",
        ("POST", "/token"): "token",
        ("GET", "/accounts"): "accounts",
    }

    def index(self) -> None:
        self.send_json(200, {"partner": "openbanking", "endpoints": self.endpoints()})

    def token(self) -> None:
        """RFC 8705 2.1 tls_client_auth: the certificate is the credential, client_id names it."""
        form = self.form()
        if self.headers.get("Authorization") or "client_secret" in form:
            raise oauth_error(
                401,
                "invalid_client",
                "this client authenticates with its certificate (tls_client_auth); send no "
                "client_secret and no Authorization header",
            )
        client_id = form.get("client_id")
        if not client_id:
            raise oauth_error(400, "invalid_request", "client_id is required (RFC 8705 2)")
        registered = self.state.registry.openbanking_subjects.get(client_id)
        if registered is None:
            raise oauth_error(401, "invalid_client", "unknown client_id")
        environment, subject = registered
        presented = self.peer().certificate.subject.rfc4514_string()
        if presented != subject:
            raise oauth_error(
                401,
                "invalid_client",
                f"the client certificate's subject ({presented}) is not the one registered "
                f"for this client_id",
            )
        scopes = _scopes(form, OPENBANKING_SCOPES)
        self.issue(
            client_id=client_id, environment=environment, method="tls_client_auth", scopes=scopes
        )

    def accounts(self) -> None:
        grant = self.bearer()
        peer = self.peer()
        if not hmac.compare_digest(grant.thumbprint, peer.thumbprint):
            raise _invalid_token(
                f'Bearer realm="{self.state.name}"',
                "the token is bound to another client certificate (RFC 8705 3)",
            )
        accounts = [{"id": "ob-acc-1", "currency": "GBP", "balance": "87.10"}]
        body = {
            **peer.describe(),
            "client_id": grant.client_id,
            "token_environment": grant.environment,
            "cnf": {"x5t#S256": grant.thumbprint},
            "accounts": accounts,
        }
        self.send_json(200, body)


class _Tax(_Handler):
    routes: ClassVar[dict[tuple[str, str], str]] = {
        ("GET", "/"): "index",
        ("POST", "/oauth/token"): "token",
        ("GET", "/returns"): "returns",
    }

    def index(self) -> None:
        self.send_json(200, {"partner": "tax", "endpoints": self.endpoints()})

    def token(self) -> None:
        """client_secret_basic or client_secret_post (RFC 6749 2.3.1), never both."""
        form = self.form()
        challenge = [("WWW-Authenticate", 'Basic realm="tax"')]
        header = self.headers.get("Authorization")
        if header and "client_secret" in form:
            raise oauth_error(400, "invalid_request", "use one client authentication method")
        if header:
            scheme, _, encoded = header.partition(" ")
            try:
                pair = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                pair = ""
            raw_id, colon, raw_secret = pair.partition(":")
            if scheme.lower() != "basic" or not colon:
                raise oauth_error(401, "invalid_client", "malformed Basic credentials", challenge)
            client_id, secret, method = unquote_plus(raw_id), unquote_plus(raw_secret), "basic"
            if form.get("client_id", client_id) != client_id:
                raise oauth_error(400, "invalid_request", "client_id differs from Basic's")
        elif "client_secret" in form:
            client_id, secret, method = form.get("client_id", ""), form["client_secret"], "post"
        else:
            raise oauth_error(401, "invalid_client", "no client authentication", challenge)
        client = self.state.registry.tax_clients.get(client_id)
        if client is None or not hmac.compare_digest(
            client.client_secret.encode(), secret.encode()
        ):
            shown = challenge if method == "basic" else []
            raise oauth_error(401, "invalid_client", "unknown client or wrong secret", shown)
        scopes = _scopes(form, TAX_SCOPES)
        self.issue(
            client_id=client_id,
            environment=client.environment,
            method=f"client_secret_{method}",
            scopes=scopes,
        )

    def returns(self) -> None:
        grant = self.bearer()
        if "read:returns" not in grant.scopes:
            raise _Reply(
                403,
                {"error": "insufficient_scope", "error_description": "needs read:returns"},
                [("WWW-Authenticate", 'Bearer realm="tax", error="insufficient_scope"')],
            )
        clients = self.state.registry.tax_clients.values()
        expected = next(c.api_key for c in clients if c.environment == grant.environment)
        given = self.headers.get("X-Api-Key")
        if not given:
            raise _Reply(401, {"error": "missing_api_key", "hint": "send X-Api-Key"})
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise _Reply(
                403,
                {"error": "invalid_api_key", "hint": f"send the {grant.environment} API key"},
            )
        environment = self.headers.get("X-Environment")
        if environment != grant.environment:
            raise _Reply(
                403,
                {
                    "error": "environment_mismatch",
                    "hint": f"send X-Environment: {grant.environment} (the token's environment)",
                    "found": environment,
                },
            )
        returns = [{"year": 2024, "status": "filed"}, {"year": 2025, "status": "draft"}]
        body = {"client_id": grant.client_id, "environment": grant.environment}
        self.send_json(200, {**body, **self.peer().describe(), "returns": returns})


_HANDLERS: Mapping[PartnerName, type[_Handler]] = {
    PartnerName.BANK: _Bank,
    PartnerName.OPENBANKING: _OpenBanking,
    PartnerName.TAX: _Tax,
}


# --- servers ----------------------------------------------------------------------------------


class _PartnerServer(ThreadingHTTPServer):
    """Accepts in the serving thread, handshakes in the connection's thread (a slow or broken
    client cannot hold up the others), and closes every open connection on ``close``."""

    daemon_threads = False
    block_on_close = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[_Handler],
        *,
        context: ssl.SSLContext,
        state: _State,
    ) -> None:
        self.context, self.state = context, state
        self.open: set[socket.socket] = set()
        self.open_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def finish_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        assert isinstance(request, socket.socket)  # TCP
        request.settimeout(30)
        with self.open_lock:
            self.open.add(request)
        try:
            try:
                connection = self.context.wrap_socket(request, server_side=True)
            except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
                reason = getattr(error, "reason", None) or type(error).__name__
                with self.state.lock:
                    self.state.handshake_failures += 1
                    self.state.last_handshake_error = str(reason)
                log.info("%s: TLS handshake failed: %s", self.state.name, reason)
                return
            with self.open_lock:
                self.open.discard(request)
                self.open.add(connection)
            try:
                super().finish_request(connection, client_address)
            except (OSError, ConnectionError) as error:
                log.info("%s: connection ended: %s", self.state.name, error)
            finally:
                with self.open_lock:
                    self.open.discard(connection)
                connection.close()
        finally:
            with self.open_lock:
                self.open.discard(request)

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        log.exception("%s: request failed", self.state.name)

    def close(self) -> None:
        self.shutdown()
        with self.open_lock:
            for connection in list(self.open):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        self.server_close()


def _server_context(
    directory: Path, client_cas: Sequence[x509.Certificate], tls12_only: bool
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls12_only:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(directory / "partner-server.pem", directory / "partner-server.key")
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata="".join(_pem(c).decode() for c in client_cas))
    return context


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, *, private: bool = False) -> Path:
    path.unlink(missing_ok=True)
    path.touch(mode=0o600 if private else 0o644)
    path.write_bytes(data)
    return path


def _client_identity(directory: Path, environment: str, identity: Identity) -> ClientIdentity:
    certificate = identity.certificate
    return ClientIdentity(
        environment=environment,
        common_name=f"mutls-{environment}-client",
        subject=certificate.subject.rfc4514_string(),
        serial=certificate.serial_number,
        thumbprint=thumbprint(certificate),
        cert_path=_write(directory / f"{environment}-client.pem", identity.chain_pem),
        key_path=_write(directory / f"{environment}-client.key", identity.key_pem(), private=True),
    )


# --- the public API ---------------------------------------------------------------------------


class Partners:
    """Running partners; a context manager that closes them. Made by :func:`start_partners`."""

    def __init__(
        self,
        *,
        directory: Path,
        ca: TestCA,
        identities: Mapping[str, ClientIdentity],
        registry: _Registry,
        servers: Mapping[PartnerName, _PartnerServer],
        threads: Sequence[threading.Thread],
    ) -> None:
        self.directory = directory
        self.ca_certificate = ca.root
        self.ca_pem = ca.root_pem
        self.ca_path = directory / "partner-ca.pem"
        self.identities = dict(identities)
        self.openbanking_client_ids = {
            env: cid for cid, (env, _) in registry.openbanking_subjects.items()
        }
        self.tax_clients = {c.environment: c for c in registry.tax_clients.values()}
        self._servers = dict(servers)
        self._threads = list(threads)
        self._closed = False

    def url(self, partner: PartnerName) -> str:
        host, port = self._servers[partner].server_address[:2]
        shown = f"[{host!s}]" if ":" in str(host) else str(host)
        return f"https://{shown}:{port}"

    @property
    def bank_url(self) -> str:
        return self.url(PartnerName.BANK)

    @property
    def openbanking_url(self) -> str:
        return self.url(PartnerName.OPENBANKING)

    @property
    def token_url(self) -> str:
        """The openbanking token endpoint (tls_client_auth)."""
        return self.openbanking_url + "/token"

    @property
    def tax_url(self) -> str:
        return self.url(PartnerName.TAX)

    @property
    def tax_token_url(self) -> str:
        return self.tax_url + "/oauth/token"

    def counters(self, partner: PartnerName) -> PartnerCounters:
        return self._servers[partner].state.counters()

    def issued(self, partner: PartnerName) -> tuple[TokenIssue, ...]:
        state = self._servers[partner].state
        with state.lock:
            return tuple(state.issued)

    def revoke_tokens(self, partner: PartnerName | None = None) -> int:
        """Forget every token issued (by ``partner``, or by all); how many were live."""
        revoked = 0
        for name, server in self._servers.items():
            if partner in (None, name):
                with server.state.lock:
                    revoked += len(server.state.grants)
                    server.state.revoked += len(server.state.grants)
                    server.state.grants.clear()
        return revoked

    def set_token_lifetime(self, seconds: int) -> None:
        """``expires_in`` of tokens issued from now on (existing tokens keep theirs)."""
        for server in self._servers.values():
            with server.state.lock:
                server.state.token_lifetime = seconds

    def manifest(self) -> dict[str, object]:
        """What the partners serve, as ``partners.json`` holds it (client secrets included)."""
        return {
            "ca_bundle": str(self.ca_path),
            "bank": {"url": self.bank_url},
            "openbanking": {
                "url": self.openbanking_url,
                "token_url": self.token_url,
                "auth_method": "tls_client_auth",
                "client_ids": self.openbanking_client_ids,
                "scopes": list(OPENBANKING_SCOPES),
            },
            "tax": {
                "url": self.tax_url,
                "token_url": self.tax_token_url,
                "auth_methods": ["client_secret_basic", "client_secret_post"],
                "scopes": list(TAX_SCOPES),
                "clients": {
                    env: {
                        "client_id": c.client_id,
                        "client_secret": c.client_secret,
                        "api_key": c.api_key,
                    }
                    for env, c in self.tax_clients.items()
                },
            },
            "client_certificates": {
                env: {"certificate": str(i.cert_path), "key": str(i.key_path), "subject": i.subject}
                for env, i in self.identities.items()
            },
        }

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for server in self._servers.values():
            server.close()
        for thread in self._threads:
            thread.join(timeout=10)

    def __enter__(self) -> Partners:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def start_partners(directory: Path, settings: PartnerSettings | None = None) -> Partners:
    """Make a partner CA and our client certificates in ``directory``, and start the partners."""
    settings = settings or PartnerSettings()
    directory.mkdir(parents=True, exist_ok=True)
    ca = TestCA(name="Partner Root CA", organization="Stand-in Partners")
    sans = ["localhost", "127.0.0.1", "::1"]
    if settings.host not in ("0.0.0.0", "::", *sans):  # noqa: S104 - compared, not bound
        sans.append(settings.host)
    server_identity = ca.issue("partners.localhost", profile=Profile.SERVER, sans=sans)
    _write(directory / "partner-ca.pem", ca.root_pem)
    _write(directory / "partner-server.pem", server_identity.chain_pem)
    _write(directory / "partner-server.key", server_identity.key_pem(), private=True)
    identities = {
        env: _client_identity(
            directory, env, ca.issue(f"mutls-{env}-client", organization="mutls consumer")
        )
        for env in ENVIRONMENTS
    }
    registry = _Registry(
        environments_by_serial={i.serial: env for env, i in identities.items()},
        openbanking_subjects={f"ob-{env}": (env, i.subject) for env, i in identities.items()},
        tax_clients={
            f"tax-{env}": TaxClient(
                environment=env,
                client_id=f"tax-{env}",
                # Characters RFC 6749 2.3.1 makes clients form-encode before Basic: a client
                # that skips the encoding fails here as it would at a strict server.
                client_secret=f"{secrets.token_urlsafe(12)}:+/ %&{env[:3]}",
                api_key=f"key-{env}-{secrets.token_hex(8)}",
            )
            for env in ENVIRONMENTS
        },
    )
    client_cas = [ca.root, *settings.extra_client_cas]
    servers: dict[PartnerName, _PartnerServer] = {}
    threads: list[threading.Thread] = []
    try:
        for offset, name in enumerate(PartnerName):
            port = settings.port + offset if settings.port else 0
            context = _server_context(directory, client_cas, name in settings.tls12_only)
            state = _State(name, registry, settings.token_lifetime)
            servers[name] = _PartnerServer(
                (settings.host, port), _HANDLERS[name], context=context, state=state
            )
    except OSError:
        for server in servers.values():
            server.server_close()
        raise
    for name, server in servers.items():
        thread = threading.Thread(target=server.serve_forever, name=f"partner-{name}", daemon=True)
        thread.start()
        threads.append(thread)
    partners = Partners(
        directory=directory,
        ca=ca,
        identities=identities,
        registry=registry,
        servers=servers,
        threads=threads,
    )
    _write(
        directory / "partners.json",
        json.dumps(partners.manifest(), indent=2).encode() + b"\n",
        private=True,
    )
    return partners


# --- the command ------------------------------------------------------------------------------


def _describe(partners: Partners, settings: PartnerSettings) -> str:
    tls12 = ", ".join(sorted(settings.tls12_only)) or "none"
    lines = [
        "stand-in partners (each requires a client certificate from the partner CA)",
        "",
        f"  bank         {partners.bank_url}   GET /accounts, POST /payments, GET /bytes/N, "
        "POST /upload",
        f"  openbanking  {partners.openbanking_url}   POST /token (tls_client_auth), "
        "GET /accounts (bearer bound to the certificate)",
        f"  tax          {partners.tax_url}   POST /oauth/token (client_secret_basic/post), "
        "GET /returns (bearer + X-Api-Key + X-Environment)",
        f"  TLS 1.2 only: {tls12}; tokens live {settings.token_lifetime} s",
        "",
        f"files in {partners.directory}:",
        "  partner-ca.pem            the partner CA: the route's ca_bundle_secret",
    ]
    for env, identity in partners.identities.items():
        lines.append(
            f"  {identity.cert_path.name:<25} {identity.key_path.name}: our {env} client "
            f"certificate ({identity.subject})"
        )
    lines.append("  partners.json             all of this, with the credentials below")
    lines += ["", "openbanking client ids (tls_client_auth):"]
    lines += [f"  {env}: {cid}" for env, cid in partners.openbanking_client_ids.items()]
    lines += ["", "tax clients (client_secret_basic or client_secret_post) and API keys:"]
    for env, client in partners.tax_clients.items():
        lines.append(
            f"  {env}: client_id={client.client_id} client_secret={client.client_secret!r} "
            f"X-Api-Key={client.api_key}"
        )
    production = partners.identities[ENVIRONMENTS[0]]
    lines += [
        "",
        "try:",
        f"  curl --cacert {partners.ca_path} --cert {production.cert_path} "
        f"--key {production.key_path} {partners.bank_url}/accounts",
        "",
        "Ctrl-C stops the partners.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mutls.runtime.partners",
        description="Run three stand-in partner mTLS APIs (bank, openbanking, tax) on loopback.",
    )
    parser.add_argument("--dir", type=Path, required=True, help="where to write certificates")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port",
        type=int,
        default=9443,
        help="bank port; openbanking and tax use the next two (0: any free ports)",
    )
    parser.add_argument(
        "--tls12-only",
        action="append",
        choices=[p.value for p in PartnerName],
        default=[],
        help="make this partner accept TLS 1.2 only (repeatable)",
    )
    parser.add_argument(
        "--token-lifetime", type=int, default=3600, help="expires_in of issued tokens (seconds)"
    )
    args = parser.parse_args(argv)
    settings = PartnerSettings(
        host=args.host,
        port=args.port,
        tls12_only=frozenset(PartnerName(p) for p in args.tls12_only),
        token_lifetime=args.token_lifetime,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with start_partners(args.dir, settings) as partners:
        print(_describe(partners, settings), flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
