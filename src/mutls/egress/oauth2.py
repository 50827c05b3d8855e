"""OAuth2 client credentials (RFC 6749 4.4, RFC 8705) for the egress proxy, without a transport.

The proxy needs an access token for every route with an ``oauth2`` secret. This module holds
what that takes apart from the network, so each part can be tested alone:

* :class:`OAuth2Client` is the secret's revealed fields, checked (the client secret never in a
  ``repr``).
* :func:`build_token_request` turns it into the bytes of the token request (pure).
* :func:`parse_token_response` turns the endpoint's answer into an :class:`AccessToken` or an
  :class:`~mutls.errors.OAuth2TokenFailed` that says what the endpoint said (pure).
* :class:`TokenCache` shares one token per (secret id, version, environment, scopes) between
  requests, fetches it once for any number of concurrent callers, and renews it before it
  expires.

The HTTP exchange is the caller's: the proxy's partner pool sends the :class:`TokenRequest` over
the route's TLS context (with the client certificate when ``uses_certificate``) and hands status,
headers and body to :func:`parse_token_response`. Time is an argument: ``now`` is
``time.monotonic()`` seconds, read by the caller.

Every error this module raises is an :class:`~mutls.errors.OAuth2TokenFailed` (the cache passes
on whatever the caller's fetch raised, such as ``PartnerUnreachable``). No message or log line
holds a client secret or an access token: an endpoint that echoes the secret back in its
``error_description`` has it replaced by ``[redacted]``.

Choices, with their reasons:

* **Only https token URLs.** The client secret (or, for RFC 8705, the client certificate) must
  travel over TLS; the partner pool speaks TLS only. The vault accepts ``http://localhost`` for
  development tools; the proxy refuses it here with a hint.
* **expires_in missing means 300 s** (:data:`DEFAULT_LIFETIME`). RFC 6749 5.1 leaves the lifetime
  to documentation then; five minutes is short enough that a token revoked by the partner is not
  used for long, and long enough not to ask for every request. Values above one day are clamped
  to :data:`MAX_LIFETIME` so a typo at the partner does not pin a token for years. A string of
  digits is accepted (Azure AD v1 and other older servers send ``"3599"``); any other string, a
  negative number, a boolean or NaN is refused.
* **token_type** may be ``Bearer`` (RFC 6750), ``DPoP`` (RFC 9449) or ``N_A`` (RFC 8693), case
  insensitive (RFC 6749 5.1); a missing one is taken as ``Bearer``, which some servers assume.
  Anything else (``mac``) is refused: the proxy would not know how to present it.
* **Refresh ahead with jitter.** A token is renewed when less than ``max(30 s, 10 %)`` of its
  lifetime remains (at most half of it, for short-lived tokens), plus up to half that again at
  random per worker. N proxy workers that got tokens at the same moment do not all ask again at
  the same moment.
* **Negative cache of 2 s** (:data:`NEGATIVE_TTL`). After a failed fetch, callers of that key get
  the same error (or the previous token, while it is still valid) for two seconds, counted from
  when the failed fetch started, instead of a new request: together with single flight, a broken
  token endpoint sees at most one request per key every two seconds per worker.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import copy
import json
import logging
import math
import random
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit

from mutls.errors import OAuth2TokenFailed
from mutls.vault.payloads import OAuth2AuthMethod

__all__ = [
    "DEFAULT_LIFETIME",
    "MAX_LIFETIME",
    "NEGATIVE_TTL",
    "AccessToken",
    "OAuth2Client",
    "TokenCache",
    "TokenKey",
    "TokenRequest",
    "build_token_request",
    "parse_token_response",
]

log = logging.getLogger(__name__)

#: Lifetime of a token whose response has no ``expires_in`` (seconds).
DEFAULT_LIFETIME = 300.0
#: Longest lifetime believed (seconds); longer ones are clamped.
MAX_LIFETIME = 86400.0
#: How long a failed fetch is remembered (seconds), counted from when it started.
NEGATIVE_TTL = 2.0
#: Largest token response read (bytes). Real ones are a few hundred bytes, JWTs a few KiB.
MAX_RESPONSE_BYTES = 64 * 1024
#: Longest access token accepted (characters); it goes into one request header.
MAX_TOKEN_CHARS = 16 * 1024
#: Longest ``error_description`` quoted in a message (characters).
MAX_DESCRIPTION = 200

# RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# RFC 6749 A.7: error = 1*( %x20-21 / %x23-5B / %x5D-7E ).
_ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}")
# What may go into "Authorization: Bearer <token>": visible ASCII, no space (RFC 6750 2.1 is
# stricter, b64token; opaque tokens in the wild stay within this).
_TOKEN_VALUE = re.compile(r"[\x21-\x7e]+")
_DIGITS = re.compile(r"\s*[0-9]{1,12}\s*")
_TOKEN_TYPES = {"bearer": "Bearer", "dpop": "DPoP", "n_a": "N_A"}

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


# --- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class OAuth2Client:
    """Client credentials for one token endpoint, from a revealed ``oauth2`` secret."""

    token_url: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = ()
    auth_method: OAuth2AuthMethod = OAuth2AuthMethod.CLIENT_SECRET_BASIC
    certificate_secret: str | None = None
    audience: str | None = None

    @classmethod
    def from_secret(cls, fields: Mapping[str, object]) -> OAuth2Client:
        """The client from ``mutls.vault.payloads.reveal(SecretType.OAUTH2, ...)``'s fields."""
        try:
            method = OAuth2AuthMethod(str(fields.get("auth_method")))
        except ValueError:
            raise _bad_secret(f"auth_method is not one of {_methods()}") from None
        scopes = fields.get("scopes") or ()
        if not isinstance(scopes, list | tuple) or not all(isinstance(s, str) for s in scopes):
            raise _bad_secret("scopes is not a list of strings")
        text: dict[str, str | None] = {}
        for name in ("token_url", "client_id", "client_secret", "certificate_secret", "audience"):
            value = fields.get(name)
            if value is not None and not isinstance(value, str):
                raise _bad_secret(f"{name} is not a string")
            text[name] = value
        token_url, client_id = text["token_url"], text["client_id"]
        if not token_url or not client_id:
            raise _bad_secret("token_url or client_id is missing")
        client = cls(
            token_url=token_url,
            client_id=client_id,
            client_secret=text["client_secret"],
            scopes=tuple(scopes),
            auth_method=method,
            certificate_secret=text["certificate_secret"],
            audience=text["audience"],
        )
        client.check()
        return client

    def check(self) -> None:
        """Raise :class:`OAuth2TokenFailed` if these credentials cannot make a request."""
        _split_token_url(self.token_url)
        if self.auth_method.uses_certificate:
            if self.client_secret:
                raise _bad_secret(
                    f"auth_method {self.auth_method} sends no client_secret, but one is stored"
                )
        elif not self.client_secret:
            raise _bad_secret(f"auth_method {self.auth_method} needs a client_secret")
        _check_scopes(self.scopes)

    @property
    def uses_certificate(self) -> bool:
        return self.auth_method.uses_certificate

    @property
    def endpoint(self) -> str:
        """The token URL without user info or query: what messages and logs name."""
        parts = urlsplit(self.token_url)
        host = parts.netloc.rpartition("@")[2]
        return f"{parts.scheme}://{host}{parts.path or '/'}"


def _methods() -> str:
    return ", ".join(m.value for m in OAuth2AuthMethod)


def _bad_secret(problem: str) -> OAuth2TokenFailed:
    return OAuth2TokenFailed(
        f"expected an oauth2 secret that can ask for a token; found that {problem}",
        hint="upload the oauth2 secret for this environment again (`mutls secret set`)",
        reason="invalid_oauth2_secret",
    )


# --- the request --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TokenRequest:
    """One token request, ready for a connection to ``host``:``port``.

    The transport adds ``Host`` and ``Content-Length``. ``headers`` and ``body`` may hold the
    client secret, so neither is in the ``repr``.
    """

    method: str = "POST"
    host: str
    port: int
    path: str
    headers: tuple[tuple[str, str], ...] = field(repr=False)
    body: bytes = field(repr=False)
    uses_certificate: bool

    @property
    def authority(self) -> str:
        """The ``Host`` header value: brackets around IPv6 literals, the port unless 443."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 443 else f"{host}:{self.port}"


def build_token_request(client: OAuth2Client, scopes: Sequence[str] | None = None) -> TokenRequest:
    """The client credentials request for ``client``; ``scopes`` replaces the client's own."""
    host, port, path = _split_token_url(client.token_url)
    wanted = tuple(dict.fromkeys(client.scopes if scopes is None else scopes))
    _check_scopes(wanted)
    method = client.auth_method
    headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Accept", "application/json"),
    ]
    form: list[tuple[str, str]] = [("grant_type", "client_credentials")]
    if method is OAuth2AuthMethod.CLIENT_SECRET_BASIC:
        headers.append(("Authorization", _basic(client.client_id, _secret(client))))
    elif method is OAuth2AuthMethod.CLIENT_SECRET_POST:
        form += [("client_id", client.client_id), ("client_secret", _secret(client))]
    else:  # RFC 8705 2: the certificate authenticates; client_id says which client it is
        form.append(("client_id", client.client_id))
    if wanted:
        form.append(("scope", " ".join(wanted)))
    if client.audience:
        form.append(("audience", client.audience))
    return TokenRequest(
        host=host,
        port=port,
        path=path,
        headers=tuple(headers),
        body=urlencode(form, quote_via=quote_plus).encode("ascii"),
        uses_certificate=method.uses_certificate,
    )


def _basic(client_id: str, secret: str) -> str:
    """RFC 6749 2.3.1: form-urlencode each part (UTF-8, percent-encoded), then HTTP Basic."""
    pair = f"{quote_plus(client_id, safe='')}:{quote_plus(secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode("ascii")).decode("ascii")


def _secret(client: OAuth2Client) -> str:
    if not client.client_secret:
        raise _bad_secret(f"auth_method {client.auth_method} needs a client_secret")
    return client.client_secret


def _split_token_url(url: str) -> tuple[str, int, str]:
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
        parts = None
    if parts is None or not host:
        raise OAuth2TokenFailed(
            "expected the oauth2 secret's token_url to be an absolute URL such as "
            "https://auth.example.com/token; found one that does not parse",
            hint="correct token_url in the oauth2 secret for this environment",
            reason="invalid_token_url",
        )
    if parts.scheme.lower() != "https":
        raise OAuth2TokenFailed(
            f"expected an https:// token_url; found {parts.scheme or 'no'}:// for host {host}",
            hint="the egress proxy sends client credentials over TLS only; use the token "
            "endpoint's https URL",
            reason="token_url_not_https",
        )
    path = parts.path or "/"
    return host, port or 443, f"{path}?{parts.query}" if parts.query else path


def _check_scopes(scopes: Sequence[str]) -> None:
    for scope in scopes:
        if not _SCOPE.fullmatch(scope):
            raise OAuth2TokenFailed(
                "expected each scope to be one token of printable ASCII without spaces, quotes "
                f"or backslashes (RFC 6749 3.3); found {scope[:64]!r}",
                hint="correct the scopes of the oauth2 secret or of the route",
                reason="invalid_scope_syntax",
            )


# --- the response -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AccessToken:
    """An access token and when it expires, in ``time.monotonic()`` seconds."""

    value: str = field(repr=False)
    token_type: str
    obtained_at: float
    expires_at: float
    scope: tuple[str, ...] | None = None  # None: the endpoint did not say (RFC 6749 5.1)

    @property
    def lifetime(self) -> float:
        return self.expires_at - self.obtained_at

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value (``N_A`` tokens are presented as bearer ones)."""
        scheme = "DPoP" if self.token_type == "DPoP" else "Bearer"
        return f"{scheme} {self.value}"

    def expired(self, now: float) -> bool:
        return now >= self.expires_at


def parse_token_response(
    status: int,
    headers: Headers,
    body: bytes,
    *,
    now_monotonic: float,
    client: OAuth2Client | None = None,
) -> AccessToken:
    """The token in the endpoint's answer, or :class:`OAuth2TokenFailed` saying why not.

    ``client``, when given, names the endpoint in messages and has its secret redacted from
    anything quoted from the endpoint.
    """
    where = f"the token endpoint {client.endpoint}" if client else "the token endpoint"
    redact = (client.client_secret,) if client and client.client_secret else ()
    content_type = _header(headers, "content-type") or ""
    if len(body) > MAX_RESPONSE_BYTES:
        raise OAuth2TokenFailed(
            f"expected a token response of at most {MAX_RESPONSE_BYTES} bytes from {where}; "
            f"found {len(body)} bytes (HTTP {status})",
            reason="response_too_large",
        )
    data = _json_object(body, content_type)
    if not 200 <= status < 300 or (data is not None and "error" in data and not _has_token(data)):
        raise _refusal(status, headers=headers, body=body, data=data, where=where, redact=redact)
    if data is None:
        raise OAuth2TokenFailed(
            f"expected {where} to answer with a JSON object (RFC 6749 5.1); found "
            f"{_describe_body(body, content_type)} with HTTP {status}",
            hint="check token_url: it should be the token endpoint itself, not a login page or "
            "the API's base URL",
            reason="not_json",
        )
    value = data.get("access_token")
    if not isinstance(value, str) or not value:
        raise OAuth2TokenFailed(
            f"expected an access_token string in the answer of {where}; found "
            + ("none" if value is None else _json_type(value)),
            hint="the endpoint answered without a token; check the oauth2 secret's token_url "
            "and auth_method with the partner",
            reason="no_access_token",
        )
    if len(value) > MAX_TOKEN_CHARS or not _TOKEN_VALUE.fullmatch(value):
        raise OAuth2TokenFailed(
            f"expected an access_token of visible ASCII characters, at most {MAX_TOKEN_CHARS}, "
            f"from {where}; found {len(value)} characters, not all of them visible ASCII",
            reason="invalid_access_token",
        )
    lifetime = _lifetime(data.get("expires_in"), where)
    return AccessToken(
        value=value,
        token_type=_token_type(data.get("token_type"), where),
        obtained_at=now_monotonic,
        expires_at=now_monotonic + lifetime,
        scope=_granted_scope(data.get("scope"), where),
    )


def _header(headers: Headers, name: str) -> str | None:
    items = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items:
        if key.lower() == name:
            return value
    return None


def _json_object(body: bytes, content_type: str) -> dict[str, object] | None:
    """The body as a JSON object, or as form fields when the endpoint said it sends a form."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if (
        content_type.split(";", maxsplit=1)[0].strip().lower()
        == "application/x-www-form-urlencoded"
    ):
        try:  # legacy servers (GitHub's old OAuth API) answer in a form unless asked for JSON
            return dict(parse_qsl(text, strict_parsing=True))
        except ValueError:
            return None
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _no_constant(name: str) -> object:
    raise ValueError(name)  # NaN and Infinity are not JSON


def _has_token(data: Mapping[str, object]) -> bool:
    return isinstance(data.get("access_token"), str) and bool(data.get("access_token"))


def _refusal(
    status: int,
    *,
    headers: Headers,
    body: bytes,
    data: Mapping[str, object] | None,
    where: str,
    redact: Sequence[str],
) -> OAuth2TokenFailed:
    code_raw = data.get("error") if data is not None else None
    code = code_raw if isinstance(code_raw, str) and _ERROR_CODE.fullmatch(code_raw) else None
    description_raw = data.get("error_description") if data is not None else None
    description = _quoted(description_raw, redact) if isinstance(description_raw, str) else None
    said = f"HTTP {status}"
    if code:
        said += f" {code}"
    elif code_raw is not None:
        said += " with an error code that is not RFC 6749 text"
    if description:
        said += f": {description}"
    challenge = _header(headers, "www-authenticate")
    if challenge and not code:
        said += f" (WWW-Authenticate: {_quoted(challenge, redact)})"
    if data is None and not 200 <= status < 300:
        said += f", {_describe_body(body, _header(headers, 'content-type') or '')}"
    return OAuth2TokenFailed(
        f"expected an access token from {where}; it answered {said}",
        hint=_HINTS.get(code or "", _status_hint(status)),
        reason=code or f"http_{status}",
    )


_HINTS = {
    "invalid_client": "the endpoint did not accept the client: check client_id and "
    "client_secret (or, for tls_client_auth, the certificate) and auth_method "
    "(client_secret_basic or client_secret_post) against what the partner registered",
    "unauthorized_client": "the partner has not enabled the client_credentials grant for this "
    "client; ask them to",
    "invalid_scope": "ask only for scopes the partner granted this client (the oauth2 secret's "
    "scopes, or the route's oauth2_scopes)",
    "invalid_request": "the endpoint found the request malformed; check auth_method and "
    "audience against the partner's documentation",
    "unsupported_grant_type": "the endpoint does not offer client_credentials at this URL; "
    "check token_url",
    "invalid_grant": "the endpoint refused the grant; check the oauth2 secret with the partner",
}


def _status_hint(status: int) -> str:
    if status in (401, 403):
        return _HINTS["invalid_client"]
    if status == 404:
        return "check token_url: the endpoint has nothing at that path"
    if status >= 500 or status == 429:
        return "the partner's token endpoint is failing or busy; the proxy retries shortly"
    return OAuth2TokenFailed.default_hint


def _quoted(text: str, redact: Sequence[str]) -> str:
    """Text from the endpoint, safe to put in a message: no secret, no control characters."""
    for secret in redact:
        for form in {secret, quote_plus(secret, safe="")}:
            text = text.replace(form, "[redacted]")
    shown = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return shown if len(shown) <= MAX_DESCRIPTION else shown[: MAX_DESCRIPTION - 3] + "..."


def _describe_body(body: bytes, content_type: str) -> str:
    kind = content_type.split(";", maxsplit=1)[0].strip() or "no Content-Type"
    if not body:
        return f"an empty body ({kind})" if content_type else "an empty body"
    looks_html = body.lstrip()[:1] == b"<"
    return f"{kind}, {len(body)} bytes" + (", an HTML page" if looks_html else "")


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _lifetime(value: object, where: str) -> float:
    if value is None:
        return DEFAULT_LIFETIME
    seconds = _seconds(value)
    if seconds is None or math.isnan(seconds) or seconds < 0:
        if isinstance(value, int | float) and not isinstance(value, bool):
            shown = repr(value)
        elif isinstance(value, str):
            shown = repr(_quoted(value, ())[:32])
        else:
            shown = _json_type(value)
        raise OAuth2TokenFailed(
            f"expected expires_in to be a number of seconds, 0 or more, from {where}; found "
            f"{shown}",
            hint="the partner's token endpoint sends a malformed expires_in; tell the partner",
            reason="invalid_expires_in",
        )
    return min(seconds, MAX_LIFETIME)  # also 1e999, which JSON parses as infinity


def _seconds(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value) if abs(value) < 2**53 else math.copysign(math.inf, value)
    if isinstance(value, float):
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return float(value)
    return None


def _token_type(value: object, where: str) -> str:
    if value is None:
        return "Bearer"
    known = _TOKEN_TYPES.get(value.lower()) if isinstance(value, str) else None
    if known is None:
        shown = repr(_quoted(value, ())[:32]) if isinstance(value, str) else _json_type(value)
        raise OAuth2TokenFailed(
            f"expected token_type Bearer, DPoP or N_A from {where}; found {shown}",
            hint="the egress proxy presents bearer tokens only; ask the partner for a bearer "
            "token for this client",
            reason="unsupported_token_type",
        )
    return known


def _granted_scope(value: object, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return tuple(value)
    raise OAuth2TokenFailed(
        f"expected scope to be a space-separated string from {where}; found {_json_type(value)}",
        hint="the partner's token endpoint sends a malformed scope; tell the partner",
        reason="invalid_scope_response",
    )


# --- the cache ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TokenKey:
    """What one token is for. Equal keys make equal token requests, so they share a token."""

    secret_id: str
    secret_version: int
    environment: str
    scopes: tuple[str, ...]


@dataclass(slots=True)
class _Entry:
    token: AccessToken | None = None
    refresh_at: float = 0.0
    failure: Exception | None = None
    retry_at: float = -math.inf


Fetch = Callable[[], Awaitable[AccessToken]]


class TokenCache:
    """Access tokens by :class:`TokenKey`: single flight, refresh ahead, short negative cache.

    ``get`` answers from the cache until the token's refresh point; after it, one fetch runs
    for all callers of that key (the others wait for it). If that fetch fails while the old
    token is still valid, the old token is served (and the failure logged) until it expires.

    Each fetch runs in a task the cache owns, so a caller that is cancelled does not cancel the
    fetch the other callers wait for; :meth:`aclose` cancels whatever is still running.
    """

    def __init__(
        self,
        *,
        max_entries: int = 1024,
        negative_ttl: float = NEGATIVE_TTL,
        refresh_min: float = 30.0,
        refresh_fraction: float = 0.10,
        jitter_fraction: float = 0.5,
        rng: Callable[[], float] | None = None,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._negative_ttl = negative_ttl
        self._refresh_min = refresh_min
        self._refresh_fraction = refresh_fraction
        self._jitter_fraction = jitter_fraction
        # Spreads refreshes between workers; not security relevant.
        self._rng = rng or random.Random().random  # noqa: S311
        self._entries: collections.OrderedDict[TokenKey, _Entry] = collections.OrderedDict()
        self._flights: dict[TokenKey, asyncio.Task[AccessToken]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def refresh_point(self, token: AccessToken) -> float:
        """When ``token`` should be renewed: ``max(30 s, 10 %)`` of its life before it ends (at
        most half its life), earlier by up to ``jitter_fraction`` of that at random."""
        margin = min(
            max(self._refresh_min, self._refresh_fraction * token.lifetime), token.lifetime / 2
        )
        return token.expires_at - margin * (1.0 + self._jitter_fraction * self._rng())

    async def get(self, key: TokenKey, fetch: Fetch, *, now: float) -> tuple[AccessToken, bool]:
        """A token for ``key``, and whether it came from the cache (False: from a fetch)."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            token = entry.token
            if token is not None and now < entry.refresh_at:
                return token, True
            stale = token if token is not None and not token.expired(now) else None
            if entry.failure is not None and now < entry.retry_at:
                if stale is not None:
                    return stale, True
                raise _again(entry.failure)
        else:
            stale = None
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.get_running_loop().create_task(
                self._fetch(key, fetch, now), name=f"oauth2-token:{key.secret_id}"
            )
            flight.add_done_callback(_retrieve)
            self._flights[key] = flight
        try:
            return await asyncio.shield(flight), False
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if stale is not None:
                log.warning(
                    "oauth2 token refresh failed for secret %s version %s (%s): %s; serving "
                    "the current token until it expires in %.0f s",
                    key.secret_id,
                    key.secret_version,
                    key.environment,
                    _describe_error(error),
                    stale.expires_at - now,
                )
                return stale, True
            raise _again(error) from error.__cause__

    def invalidate(self, key: TokenKey, token: AccessToken) -> bool:
        """Forget ``token`` (the partner answered 401 to it); True if it was still cached.

        Only that token is dropped: when several requests get a 401 for one token, the first
        call forgets it, the others find a newer token (or its fetch) and leave it be.
        """
        entry = self._entries.get(key)
        if entry is None or entry.token is None or entry.token != token:
            return False
        del self._entries[key]
        return True

    def clear(self) -> None:
        self._entries.clear()

    async def aclose(self) -> None:
        """Cancel the fetches still running and wait for them to end."""
        flights = list(self._flights.values())
        for flight in flights:
            flight.cancel()
        await asyncio.gather(*flights, return_exceptions=True)
        self._flights.clear()

    async def _fetch(self, key: TokenKey, fetch: Fetch, started: float) -> AccessToken:
        try:
            token = await fetch()
        except Exception as error:
            entry = self._entry(key)
            entry.failure, entry.retry_at = error, started + self._negative_ttl
            raise
        else:
            entry = self._entry(key)
            entry.token, entry.refresh_at = token, self.refresh_point(token)
            entry.failure, entry.retry_at = None, -math.inf
            return token
        finally:
            if self._flights.get(key) is asyncio.current_task():
                del self._flights[key]

    def _entry(self, key: TokenKey) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)  # least recently used
        else:
            self._entries.move_to_end(key)
        return entry


def _retrieve(task: asyncio.Task[AccessToken]) -> None:
    """Mark a fetch's failure as seen even if every caller was cancelled before it ended."""
    if not task.cancelled():
        task.exception()


def _again(error: Exception) -> Exception:
    """A copy of a shared failure for one more caller (each raise gets its own traceback)."""
    try:
        again = copy.copy(error)
    except Exception:  # an exception type that cannot be rebuilt from its args
        return error
    return again.with_traceback(None)


def _describe_error(error: Exception) -> str:
    code = getattr(error, "code", None)
    return f"{code}: {error}" if code else type(error).__name__
