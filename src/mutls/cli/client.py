"""The CLI's client for the admin API: where the server and token come from, and errors back.

Commands that manage secrets, accounts, tokens and the audit log do not open the database; they
call the running platform's admin API, the same one ``curl`` and programs use, so every change goes
through one set of permission checks and lands in the audit log.

The server is ``--server URL``, else ``$MUTLS_SERVER``, else ``http://127.0.0.1:7000``. The token
is, in order: ``--token T``, ``--token-file FILE``, ``$MUTLS_TOKEN``, and last the first admin
token that ``mutls up`` wrote to ``<MUTLS_DATA_DIR or ./mutls-data>/admin-token`` (when this user
can read it). ``--token`` exists because the platform's documentation promises it, but argv is
visible to every user of the machine (``ps``) and lands in shell history: prefer the other two.

The token is never printed or logged: it travels only in the ``Authorization`` header, and no
error message here contains it. An error answer from the API (``{"error": {"code", "message",
"hint"}}``) becomes an :class:`ApiError` with the same code, message and hint, which the shared
error handler prints like any local error.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import httpx
import typer

from mutls import __version__
from mutls.errors import InvalidArgument, MutlsError
from mutls.files import read_input

__all__ = [
    "DEFAULT_SERVER",
    "SERVER_ENV",
    "TOKEN_ENV",
    "ApiClient",
    "ApiError",
    "ClientOptions",
    "ServerOption",
    "TokenFileOption",
    "TokenOption",
    "api_client",
    "segment",
]

DEFAULT_SERVER = "http://127.0.0.1:7000"
SERVER_ENV = "MUTLS_SERVER"
TOKEN_ENV = "MUTLS_TOKEN"
DATA_DIR_ENV = "MUTLS_DATA_DIR"
DEFAULT_DATA_DIR = "mutls-data"
ADMIN_TOKEN_FILE = "admin-token"

# Tokens are short; a bigger "token file" is the wrong file.
_MAX_TOKEN_FILE = 4096
# Admin calls are small and local; a server that takes longer than this is stuck.
_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
_UNREACHABLE_HINT = "start it with `mutls up`, or pass --server"
_NO_TOKEN_HINT = (
    "give a token with --token-file FILE or $MUTLS_TOKEN (or --token); the first admin token "
    "is in <data dir>/admin-token, which is used on its own when readable"
)

ServerOption = Annotated[
    str,
    typer.Option(
        "--server",
        envvar=SERVER_ENV,
        help="Base URL of the mutls admin API.",
        show_envvar=True,
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        help=f"API token. Visible in `ps` and shell history: prefer ${TOKEN_ENV} or --token-file.",
        show_default=False,
    ),
]
TokenFileOption = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        help="File holding the API token (else --token, else "
        f"${TOKEN_ENV}, else <data dir>/{ADMIN_TOKEN_FILE}).",
        show_default=False,
    ),
]


class ApiError(MutlsError):
    """An error the admin API answered with, carrying the server's code, message and hint.

    The library's own error classes fix their ``code`` per class; here it is whatever the server
    said (``permission_denied``, ``key_mismatch``, ``invalid_request``, ...), so it is set per
    instance. ``status`` is the HTTP status (0 when no answer came).
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        hint: str = "",
        status: int = 0,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        # MutlsError.code is a ClassVar for the fixed codes of local errors; shadow it per instance.
        vars(self)["code"] = code
        self.status = status
        self.extra = dict(extra or {})

    def to_dict(self) -> dict[str, object]:
        # Extra fields the server sent (``violations``, ``fields``) pass through for --json.
        return {**self.extra, **super().to_dict()}


@dataclass(frozen=True, kw_only=True)
class ClientOptions:
    """What the root command's options said; resolved into a client only when a command needs
    one, so a bad token file is reported by the command (with its --json) rather than by the
    root callback."""

    server: str = DEFAULT_SERVER
    token: str | None = field(default=None, repr=False)
    token_file: Path | None = None

    def resolve_token(self) -> str | None:
        if self.token is not None and self.token_file is not None:
            raise InvalidArgument("expected one of --token and --token-file; found both")
        if self.token is not None:
            return _checked_token(self.token, "--token")
        if self.token_file is not None:
            return _read_token_file(self.token_file)
        env = os.environ
        from_env = env.get(TOKEN_ENV)
        if from_env:
            return _checked_token(from_env, f"${TOKEN_ENV}")
        default = Path(env.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR) / ADMIN_TOKEN_FILE
        if default.is_file() and os.access(default, os.R_OK):
            return _read_token_file(default)
        return None


def _read_token_file(path: Path) -> str:
    raw = read_input(path, max_size=_MAX_TOKEN_FILE)
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise InvalidArgument(
            f"expected an API token (ASCII text) in {path}; found binary data",
            hint="a token file holds one line, as written by `mutls up` or `mutls token create`",
        ) from None
    if not text:
        raise InvalidArgument(f"expected an API token in {path}; the file is empty")
    return _checked_token(text, str(path))


def _checked_token(token: str, where: str) -> str:
    """Refuse what can never be a token, without ever echoing it."""
    token = token.strip()
    if not token or not token.isascii() or not token.isprintable() or " " in token:
        raise InvalidArgument(
            f"expected an API token in {where}: one word of printable ASCII; found something else",
            hint="copy the whole token, as `mutls token create` printed it, and nothing else",
        )
    return token


def _checked_server(server: str) -> str:
    parts = urlsplit(server.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidArgument(
            f"expected --server (or ${SERVER_ENV}) as a URL like {DEFAULT_SERVER}; found {server!r}"
        )
    if parts.username or parts.password:
        raise InvalidArgument(
            "expected --server without credentials in the URL; found a user name or password",
            hint="give the API token with --token-file or $MUTLS_TOKEN instead",
        )
    return server.strip().rstrip("/")


def _ssl_cause(error: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _ssl_reason(error: ssl.SSLError) -> str:
    """OpenSSL's reason without the library's noise (``[SSL: X] text (_ssl.c:1006)``)."""
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return f"the server's certificate is not trusted ({error.verify_message})"
    return str(error.reason or error).replace("_", " ").lower()


def segment(value: str) -> str:
    """One path segment, escaped: an id or name never changes which endpoint is called."""
    return quote(value, safe="")


class ApiClient:
    """A thin JSON client: one method per HTTP verb, errors mapped to :class:`ApiError`."""

    def __init__(
        self,
        server: str,
        token: str | None,
        *,
        transport: httpx.BaseTransport | None = None,
        verify: ssl.SSLContext | None = None,
        what: str = "the mutls admin API",
        client_certificate: bool = False,
    ) -> None:
        self.server = _checked_server(server)
        self.what = what
        self.client_certificate = client_certificate
        self.has_token = token is not None
        headers = {"User-Agent": f"mutls-cli/{__version__}", "Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.server,
            headers=headers,
            timeout=_TIMEOUT,
            transport=transport,
            verify=verify if verify is not None else True,
            follow_redirects=False,
            trust_env=False,  # never send the token through a proxy from the environment
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, *, params: Mapping[str, object] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Mapping[str, object] | None = None) -> Any:
        return self.request("POST", path, body=body)

    def put(self, path: str, body: Mapping[str, object]) -> Any:
        return self.request("PUT", path, body=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, object] | None = None,
        body: Mapping[str, object] | None = None,
    ) -> Any:
        """The decoded JSON answer (None for 204), or an :class:`ApiError`."""
        query = _query(params)
        try:
            response = self._http.request(method, path, params=query, json=body)
        except httpx.TransportError as error:
            raise self._transport_error(error) from None
        return self._decode(response)

    def _transport_error(self, error: httpx.TransportError) -> ApiError:
        tls = _ssl_cause(error)
        if tls is not None:
            return ApiError(
                "tls_handshake_failed",
                f"expected a TLS handshake with {self.what} at {self.server}; it failed: "
                f"{_ssl_reason(tls)}",
                hint="check --ca (the server's CA chain), that the URL's host name is in the "
                "server certificate, and that the server trusts your certificate's CA",
            )
        if self.client_certificate and isinstance(error, httpx.RemoteProtocolError):
            # TLS 1.3 sends the server's verdict on our certificate after the client has
            # finished its handshake; OpenSSL then often sees only a closed connection.
            return ApiError(
                "tls_handshake_failed",
                f"expected {self.what} at {self.server} to accept our client certificate; it "
                "closed the connection right after the TLS handshake",
                hint="the server most likely does not trust the certificate's CA: only "
                "certificates issued by this platform's CA can renew there",
            )
        if isinstance(error, httpx.ConnectError):
            return ApiError(
                "server_unreachable",
                f"expected {self.what} at {self.server} to accept a connection; "
                "nothing answered there",
                hint=_UNREACHABLE_HINT,
            )
        if isinstance(error, httpx.TimeoutException):
            return ApiError(
                "server_timeout",
                f"expected {self.what} at {self.server} to answer within "
                f"{_TIMEOUT.read:.0f} seconds; it did not",
                hint="check the server's log; `mutls up` prints one line per problem",
            )
        return ApiError(
            "server_unreachable",
            f"expected to talk to {self.what} at {self.server}; the connection "
            f"failed ({type(error).__name__})",
            hint=_UNREACHABLE_HINT,
        )

    def _decode(self, response: httpx.Response) -> Any:
        if response.status_code == 204 or (response.is_success and not response.content):
            return None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.is_success and data is not None:
            return data
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            code = str(error["code"])
            hint = str(error.get("hint") or "")
            if code == "authentication_required" and not self.has_token:
                hint = _NO_TOKEN_HINT
            extra = {k: v for k, v in error.items() if k not in {"code", "message", "hint"}}
            raise ApiError(
                code,
                str(error.get("message") or f"the server answered HTTP {response.status_code}"),
                hint=hint,
                status=response.status_code,
                extra=extra,
            )
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        raise ApiError(
            "unexpected_response",
            f"expected a JSON answer from the mutls admin API at {self.server}; found HTTP "
            f"{response.status_code} with {kind}",
            hint="check that --server points at the mutls admin API (`mutls up` prints its URL)",
            status=response.status_code,
        )


def _query(params: Mapping[str, object] | None) -> dict[str, str]:
    """Drop unset filters; render booleans and numbers the way the API parses them."""
    query: dict[str, str] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            query[key] = "true" if value else "false"
        else:
            query[key] = str(value)
    return query


def api_client(ctx: typer.Context) -> ApiClient:
    """The client for this invocation, from the root command's options."""
    options = ctx.find_root().obj
    if not isinstance(options, ClientOptions):
        options = ClientOptions()
    return ApiClient(options.server, options.resolve_token())
