"""Where the egress proxy is, who the app is, and how ``mutls://ROUTE/...`` maps onto it.

The egress proxy serves ``http://127.0.0.1:7080/<route>/<path>?<query>`` and does the partner's
mTLS (and OAuth2) for the app. The adapters let the app name the route as a URL of its own,
``mutls://bank_api/accounts?x=1``, which becomes
``http://127.0.0.1:7080/bank_api/accounts?x=1`` with the headers

* ``X-Mutls-Token: mutls_...`` the app's token (``token=`` or ``$MUTLS_APP_TOKEN``), and
* ``X-Mutls-Environment: sandbox`` when an environment is chosen (``environment=``); without it
  the proxy uses the token's default environment.

A header of the same name already on the request wins, so one client can switch environment
per request. The proxy's address is ``proxy=`` or ``$MUTLS_EGRESS_URL`` or
``http://127.0.0.1:7080``, and may carry a base path (``http://gw.internal/egress``).

The token is the app's credential: it is kept out of every ``repr``, message and log line here,
and the hop to the proxy never goes through ``HTTP_PROXY``/``HTTPS_PROXY`` (a corporate proxy
would see the token in clear on a plain-HTTP hop).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from mutls.accounts.tokens import TOKEN_PREFIX, looks_like_token
from mutls.errors import AuthenticationRequired, InvalidArgument, InvalidToken

__all__ = [
    "DEFAULT_EGRESS_URL",
    "ENVIRONMENT_HEADER",
    "PROXY_ENV",
    "SCHEME",
    "TOKEN_ENV",
    "TOKEN_HEADER",
    "EgressConfig",
]

SCHEME = "mutls"
DEFAULT_EGRESS_URL = "http://127.0.0.1:7080"
TOKEN_ENV = "MUTLS_APP_TOKEN"
PROXY_ENV = "MUTLS_EGRESS_URL"
TOKEN_HEADER = "X-Mutls-Token"
ENVIRONMENT_HEADER = "X-Mutls-Environment"
# The names ``mutls.routing.egress_fields`` accepts, repeated so that importing the client does
# not import the store (SQLAlchemy) through ``mutls.routing``; a test keeps them equal.
ROUTE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ENVIRONMENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True, kw_only=True)
class EgressConfig:
    """The proxy's base URL (no trailing slash), the app token and the chosen environment."""

    proxy: str
    token: str = field(repr=False)
    environment: str | None = None

    @classmethod
    def resolve(
        cls,
        *,
        token: str | None = None,
        proxy: str | None = None,
        environment: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> EgressConfig:
        """Arguments first, then ``$MUTLS_APP_TOKEN`` / ``$MUTLS_EGRESS_URL``, then defaults."""
        env = os.environ if environ is None else environ
        return cls(
            proxy=_proxy_url(proxy or env.get(PROXY_ENV) or DEFAULT_EGRESS_URL),
            token=_token(token if token is not None else env.get(TOKEN_ENV)),
            environment=_environment(environment),
        )

    def __repr__(self) -> str:
        return (
            f"EgressConfig(proxy={self.proxy!r}, environment={self.environment!r}, token=<hidden>)"
        )

    def headers(self) -> dict[str, str]:
        """The headers every request to the proxy carries."""
        headers = {TOKEN_HEADER: self.token}
        if self.environment is not None:
            headers[ENVIRONMENT_HEADER] = self.environment
        return headers

    def is_proxy_url(self, url: str) -> bool:
        """Whether ``url`` already points at the proxy (a redirect, or a hand-built URL)."""
        return url == self.proxy or url.startswith(self.proxy + "/")

    def url_for(self, url: str) -> str:
        """``mutls://ROUTE/PATH?QUERY`` (or a URL at the proxy) as the proxy's URL."""
        if self.is_proxy_url(url):
            return url
        parts = urlsplit(url)
        if parts.scheme.lower() != SCHEME:
            raise InvalidArgument(
                f"expected a {SCHEME}://ROUTE/PATH URL for the egress proxy; found a "
                f"{parts.scheme or 'relative'} URL for {parts.hostname or 'no host'}",
                hint="name the egress route as the host: mutls://bank_api/accounts",
            )
        route = parts.netloc.lower()
        if not ROUTE_NAME.fullmatch(route):
            raise InvalidArgument(
                f"expected an egress route name after {SCHEME}:// (lowercase letters, digits, "
                f"'.', '_', '-'); found {_shown_route(route)}",
                hint="list the routes with `mutls egress route list`; e.g. mutls://bank_api/",
            )
        query = f"?{parts.query}" if parts.query else ""
        return f"{self.proxy}/{route}{parts.path}{query}"


def _shown_route(route: str) -> str:
    if not route:
        return "nothing"
    if "@" in route or ":" in route:  # credentials or a port: not shown, they may be secret
        return "a host with '@' or ':'"
    return repr(route[:64])


def _proxy_url(value: str) -> str:
    parts = urlsplit(value.strip())
    problem = None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        problem = "a URL without http:// or https:// and a host"
    elif parts.username is not None or parts.password is not None:
        problem = "credentials in the URL"
    elif parts.query or parts.fragment:
        problem = "a query or fragment"
    if problem is not None:
        raise InvalidArgument(
            f"expected the egress proxy's address as http://HOST:PORT (proxy= or "
            f"${PROXY_ENV}); found {problem}",
            hint=f"the default is {DEFAULT_EGRESS_URL}, where `mutls up` runs it "
            "(MUTLS_EGRESS_LISTEN)",
        )
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise InvalidArgument(
            f"expected the egress proxy's address as http://HOST:PORT (proxy= or ${PROXY_ENV}); "
            "found a port that is not a number from 0 to 65535"
        ) from None
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _token(value: str | None) -> str:
    if value is None or not value.strip():
        raise AuthenticationRequired(
            f"expected an app token for the egress proxy (token= or ${TOKEN_ENV}); found none",
            hint="create one with `mutls token create --role app` and put it in "
            f"${TOKEN_ENV}; keep it out of source code",
        )
    if not looks_like_token(value):
        # Say how it differs, never what it is.
        what = (
            "surrounding whitespace or a newline"
            if value != value.strip()
            else f"a value that does not start with {TOKEN_PREFIX}"
            if not value.startswith(TOKEN_PREFIX)
            else f"a value of {len(value)} characters"
        )
        raise InvalidToken(
            f"expected a mutls token ({TOKEN_PREFIX} followed by 43 URL-safe characters); "
            f"found {what}",
            hint="copy the whole token that `mutls token create --role app` printed, without a "
            "trailing newline",
        )
    return value


def _environment(value: str | None) -> str | None:
    if value is None:
        return None
    if not ENVIRONMENT_NAME.fullmatch(value):
        raise InvalidArgument(
            "expected an environment name of lowercase letters, digits, '-' and '_' (up to 64), "
            f"like production or sandbox; found {value[:64]!r}"
        )
    return value
