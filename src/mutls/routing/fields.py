"""What a gateway route may say: one small validator per field, each with one rule and one message.

Every validator takes what a person typed and returns the normalised value the store keeps, or
raises ``invalid_argument`` saying what was expected and what was found. :func:`validate_spec`
checks the fields together (a version header needs a version; account restrictions need mTLS).

Decisions, and why:

- **Host names are stored lower-case, without a trailing dot**, because the gateway compares them
  with the request's ``Host`` lower-cased and without its port. IDNs are given in their ASCII
  form (``xn--...``), as they travel on the wire. An IPv6 literal is stored without brackets.
- **Path prefixes are whole segments** (``/api`` matches ``/api/x``, never ``/apix``), so a
  trailing ``/`` adds nothing and is dropped; ``.`` and ``..`` segments, empty segments, query
  and fragment markers and whitespace are refused, because no request path that reaches the
  matcher can contain them in a way that would match as the operator meant.
- **Upstreams are plain ``http://host:port``** (port 80 when left out). The gateway speaks plain
  HTTP/1.1 to the service it protects; TLS to the upstream is not supported yet, so an
  ``https://`` URL is refused rather than silently downgraded.
- **A version header may not be one the gateway owns or one that carries credentials**
  (``Host``, ``Authorization``, the forwarded identity headers, ...): reading the API version from
  them would be a configuration mistake, never an intent.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from mutls.errors import InvalidArgument
from mutls.policy.routing import AuthorizationScheme, MtlsMode, Upstream

__all__ = [
    "MAX_ALLOWED_ACCOUNTS",
    "MAX_DESCRIPTION",
    "RouteSpec",
    "match_key",
    "parse_upstream",
    "validate_api_version",
    "validate_authorization",
    "validate_description",
    "validate_host",
    "validate_mtls",
    "validate_name",
    "validate_path_prefix",
    "validate_spec",
    "validate_upstream_url",
    "validate_version_header",
]

MAX_ALLOWED_ACCOUNTS = 256
MAX_DESCRIPTION = 2000
MAX_PATH_PREFIX = 512
MAX_UPSTREAM_URL = 512
MAX_HOST = 253

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
API_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# RFC 9110 section 5.6.2: token = 1*tchar.
TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")
LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# RFC 3986 pchar plus "/": unreserved, sub-delims, ":", "@" and percent-encodings.
PATH = re.compile(r"^/(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*$")

# Headers the gateway sets, strips or needs for itself, and headers that carry credentials.
RESERVED_HEADERS = frozenset(
    {
        "authorization",
        "client-cert",
        "client-cert-chain",
        "connection",
        "content-length",
        "cookie",
        "forwarded",
        "host",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
RESERVED_HEADER_PREFIXES = ("x-mutls-", "x-forwarded-")


def _shown(value: str) -> str:
    return repr(value[:80] + ("..." if len(value) > 80 else ""))


def validate_name(value: str) -> str:
    if not NAME.fullmatch(value):
        raise InvalidArgument(
            "expected a route name of lower-case letters, digits, '.', '_' and '-', 1-64 long, "
            f"starting with a letter or digit; found {_shown(value)}",
            hint="for example: payments-v2",
        )
    return value


def _dns_name(value: str) -> bool:
    labels = value.split(".")
    if len(value) > MAX_HOST or not all(LABEL.fullmatch(label) for label in labels):
        return False
    # RFC 3696 section 2: a top-level label is never all digits (that would be an IP address).
    return not labels[-1].isdigit()


def _ip_literal(value: str) -> str | None:
    """The address in its canonical form (IPv6 compressed, no brackets), or None."""
    bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        return None
    if bare is not value and address.version != 6:
        return None
    return str(address)


def validate_host(value: str) -> str:
    """A host name, ``*.`` and a host name, or an IP literal; lower-cased, no trailing dot."""
    host = value.strip().lower()
    if host.endswith(".") and not host.endswith(".."):
        host = host[:-1]
    address = _ip_literal(host)
    if address is not None:
        return address
    bare = host[2:] if host.startswith("*.") else host
    if bare and _dns_name(bare):
        return host
    hint = "give the host name alone, like api.example.com or *.example.com"
    if ":" in host and not host.startswith("["):
        hint = "leave out the port: the gateway matches the host name of the request only"
    elif "/" in host:
        hint = "give the host name alone; put the path in path_prefix"
    elif not host:
        hint = "leave the host out (null) for a route that matches any host"
    elif any(ord(c) > 127 for c in host):
        hint = "give an internationalised name in its ASCII form (xn--...)"
    raise InvalidArgument(
        "expected a host name (like api.example.com), a wildcard (*.example.com) or an IP "
        f"address; found {_shown(value)}",
        hint=hint,
    )


def validate_path_prefix(value: str) -> str:
    """A path starting with ``/``, without a trailing ``/`` (except the root itself)."""
    if not value.startswith("/"):
        raise InvalidArgument(
            f"expected a path prefix starting with '/'; found {_shown(value)}",
            hint="for example: /api or / for every path",
        )
    if len(value) > MAX_PATH_PREFIX:
        raise InvalidArgument(
            f"expected a path prefix of at most {MAX_PATH_PREFIX} characters; found {len(value)}"
        )
    prefix = value.rstrip("/") or "/"
    found = next((c for c in ("?", "#") if c in prefix), None)
    if found is not None:
        raise InvalidArgument(
            f"expected a path prefix without {found!r}; found {_shown(value)}",
            hint="a route matches the path only; query strings and fragments are not matched",
        )
    if any(c.isspace() for c in prefix):
        raise InvalidArgument(
            f"expected a path prefix without whitespace; found {_shown(value)}",
            hint="percent-encode a space as %20",
        )
    segments = prefix.split("/")[1:] if prefix != "/" else []
    if any(segment in {"", ".", ".."} for segment in segments):
        raise InvalidArgument(
            f"expected a path prefix without empty, '.' or '..' segments; found {_shown(value)}",
            hint="write the path as clients send it after normalisation, like /api/v2",
        )
    if not PATH.fullmatch(prefix):
        raise InvalidArgument(
            "expected a path prefix of letters, digits and the characters a URL path allows "
            f"(others percent-encoded); found {_shown(value)}",
            hint="percent-encode other characters, like %C3%A9 for é",
        )
    return prefix


def validate_api_version(value: str) -> str:
    if not API_VERSION.fullmatch(value):
        raise InvalidArgument(
            "expected an API version of letters, digits, '.', '_' and '-', 1-64 long, starting "
            f"with a letter or digit; found {_shown(value)}",
            hint="for example: v2 or 2024-06-01",
        )
    return value


def validate_version_header(value: str) -> str:
    """An HTTP header name (RFC 9110 token), lower-cased, that the gateway does not own."""
    if not TOKEN.fullmatch(value):
        raise InvalidArgument(
            "expected an HTTP header name (letters, digits and !#$%&'*+-.^_`|~, 1-64 long); "
            f"found {_shown(value)}",
            hint="for example: api-version",
        )
    name = value.lower()
    if name in RESERVED_HEADERS or name.startswith(RESERVED_HEADER_PREFIXES):
        raise InvalidArgument(
            f"expected a header of the client's own to carry the API version; {name!r} is one "
            "the gateway sets, strips or reads credentials from",
            hint="use a dedicated header such as api-version, or leave it out to read the "
            "version from the path",
        )
    return name


def validate_upstream_url(value: str) -> str:
    """``http://host:port`` in canonical form (lower-case host, explicit port)."""
    upstream = parse_upstream(value)
    host = f"[{upstream.host}]" if ":" in upstream.host else upstream.host
    return f"http://{host}:{upstream.port}"


def parse_upstream(value: str) -> Upstream:
    """The host and port of an ``http://host[:port][/]`` URL, or ``invalid_argument``."""
    expected = "expected an upstream URL like http://10.0.0.5:8080"
    if len(value) > MAX_UPSTREAM_URL:
        raise InvalidArgument(f"{expected}; found {len(value)} characters")
    if any(c.isspace() or ord(c) < 32 for c in value):
        raise InvalidArgument(f"{expected}; found whitespace or control characters in it")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as error:
        raise InvalidArgument(f"{expected}; found {_shown(value)} ({error})") from None
    scheme = parts.scheme.lower()
    if scheme == "https":
        raise InvalidArgument(
            f"expected an http:// upstream URL; found {_shown(value)}: TLS to the upstream is "
            "not supported yet",
            hint="let the gateway reach the service over plain HTTP on a private network or "
            "loopback (http://127.0.0.1:9000), or put a local TLS-terminating proxy in front",
        )
    if scheme != "http" or not parts.netloc:
        raise InvalidArgument(f"{expected}; found {_shown(value)}")
    if "@" in parts.netloc:
        raise InvalidArgument(
            f"{expected}, without a user name or password; found credentials in the URL",
            hint="routes hold no secrets; the upstream sees the caller's verified identity in "
            "the headers the gateway adds",
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or value.endswith(("?", "#")):
        raise InvalidArgument(
            f"{expected}, without a path, query or fragment; found {_shown(value)}",
            hint="requests keep their own path; to serve a path of the upstream, change the "
            "route's path_prefix instead",
        )
    raw_host = parts.hostname or ""
    address = _ip_literal(raw_host)
    if address is not None:
        host = address
    elif _dns_name(raw_host.rstrip(".")):
        host = raw_host.rstrip(".")
    else:
        raise InvalidArgument(
            f"{expected}; found {_shown(value)}, whose host is not a host name or IP address"
        )
    if port is None:
        port = 80
    elif port == 0:
        raise InvalidArgument(f"{expected}; found port 0 in {_shown(value)}")
    return Upstream(host=host, port=port)


def validate_mtls(value: str | MtlsMode) -> MtlsMode:
    try:
        return MtlsMode(value)
    except ValueError:
        raise InvalidArgument(
            "expected mtls to be one of "
            f"{', '.join(m.value for m in MtlsMode)}; found {_shown(str(value))}"
        ) from None


def validate_authorization(value: str | AuthorizationScheme) -> AuthorizationScheme:
    try:
        return AuthorizationScheme(value)
    except ValueError:
        raise InvalidArgument(
            "expected authorization to be one of "
            f"{', '.join(a.value for a in AuthorizationScheme)}; found {_shown(str(value))}"
        ) from None


def validate_description(value: str) -> str:
    value = value.strip()
    if len(value) > MAX_DESCRIPTION or any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise InvalidArgument(
            f"expected a description of at most {MAX_DESCRIPTION} printable characters; found "
            f"{len(value)} characters" + (" with control characters" if value else "")
        )
    return value


def match_key(
    host: str | None, path_prefix: str, api_version: str | None, version_header: str | None
) -> str:
    """The match tuple as one string; no part can contain a space, so it is unambiguous."""
    return " ".join((host or "", path_prefix, api_version or "", version_header or ""))


@dataclass(frozen=True, kw_only=True)
class RouteSpec:
    """The editable fields of a route, as given (before :func:`validate_spec`) or normalised.

    ``allowed_accounts`` holds account ids or names here; the service resolves names to ids.
    """

    name: str
    upstream_url: str
    host: str | None = None
    path_prefix: str = "/"
    api_version: str | None = None
    version_header: str | None = None
    mtls: MtlsMode | str = MtlsMode.REQUIRED
    allowed_accounts: tuple[str, ...] = ()
    authorization: AuthorizationScheme | str = AuthorizationScheme.NONE
    description: str = ""


def validate_spec(spec: RouteSpec) -> RouteSpec:
    """Every field normalised, and the fields checked together; or ``invalid_argument``."""
    api_version = validate_api_version(spec.api_version) if spec.api_version is not None else None
    version_header = (
        validate_version_header(spec.version_header) if spec.version_header is not None else None
    )
    if version_header is not None and api_version is None:
        raise InvalidArgument(
            f"expected version_header only on a route with an api_version; found header "
            f"{version_header!r} and no api_version",
            hint="set api_version to the value the header must carry, or leave the header out",
        )
    mtls = validate_mtls(spec.mtls)
    accounts = _accounts(spec.allowed_accounts)
    if accounts and mtls is MtlsMode.OFF:
        raise InvalidArgument(
            f"expected no allowed_accounts on a route with mtls off; found {len(accounts)}: "
            "without a client certificate the gateway cannot tell accounts apart",
            hint="set mtls to required (or optional), or leave allowed_accounts empty",
        )
    return RouteSpec(
        name=validate_name(spec.name),
        upstream_url=validate_upstream_url(spec.upstream_url),
        host=validate_host(spec.host) if spec.host is not None else None,
        path_prefix=validate_path_prefix(spec.path_prefix),
        api_version=api_version,
        version_header=version_header,
        mtls=mtls,
        allowed_accounts=accounts,
        authorization=validate_authorization(spec.authorization),
        description=validate_description(spec.description),
    )


def _accounts(values: Sequence[str]) -> tuple[str, ...]:
    if isinstance(values, str):  # a lone string would be read letter by letter
        values = (values,)
    if len(values) > MAX_ALLOWED_ACCOUNTS:
        raise InvalidArgument(
            f"expected at most {MAX_ALLOWED_ACCOUNTS} allowed accounts; found {len(values)}",
            hint="leave allowed_accounts empty to let every account with mTLS enabled in",
        )
    out: list[str] = []
    for value in values:
        ref = value.strip()
        if not ref or len(ref) > 128 or any(ord(c) < 33 or ord(c) == 127 for c in ref):
            raise InvalidArgument(
                "expected an account id (acc_...) or name in allowed_accounts; "
                f"found {_shown(value)}"
            )
        if ref not in out:
            out.append(ref)
    return tuple(out)
