"""What an egress route may say: one small validator per field, each with one rule and one message.

An egress route (seed 002) tells the egress proxy where an app's request to
``http://127.0.0.1:7080/<route>/<path>`` goes and how: the partner's ``target_url``, the client
certificate, OAuth2 credentials, extra headers, TLS settings, and per-environment overrides.
Validators take what a person typed and return the normalised value the store keeps, or raise
``invalid_argument`` saying what was expected and what was found. References to secrets are
checked by the service (they need the store); everything else is checked here.

Decisions, and why:

- **``target_url`` is ``https://`` only.** The proxy exists to add mTLS; a plain ``http://``
  partner would silently drop the certificate. Its path, if any, is a base path the request's
  path is appended to (``https://api.bank.example/v1`` + ``/accounts``); no query, fragment or
  credentials in it.
- **Secrets are named as in seed 002**: by name, id, or the template form
  ``{{secret:bank_api_certificate}}``, all meaning the same secret.
- **``tls_reject_unauthorized: false`` is refused at the top level**, because the top level is
  what production uses. It may be set in a non-production environment's override only, and the
  route's view then carries a warning. There is no way to switch verification off for
  ``production``.
- **Headers** are RFC 9110 names with template values; names the proxy owns or re-frames
  (``Host``, ``Content-Length``, hop-by-hop headers, ``X-Mutls-*``) are refused, and so is
  ``Authorization`` on a route with OAuth2 (the proxy sets it to the access token).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from mutls.errors import InsecureTlsRefused, InvalidArgument
from mutls.policy.templates import Template, parse_template
from mutls.tls.egress_context import EgressTlsPreset

__all__ = [
    "MAX_HEADERS",
    "PRODUCTION",
    "EgressRouteSpec",
    "EnvironmentOverride",
    "Target",
    "parse_target",
    "secret_ref",
    "validate_egress_spec",
    "validate_header_name",
    "validate_route_name",
    "validate_servername",
    "validate_target_url",
]

PRODUCTION = "production"
MAX_HEADERS = 64
MAX_TARGET_URL = 2048
MAX_ALLOWED_TOKENS = 256
MAX_TIMEOUT_SECONDS = 3600
MAX_DESCRIPTION = 2000
MAX_SCOPES = 100

ROUTE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ENVIRONMENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")
LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
SECRET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_TEMPLATE_REF = re.compile(r"^\{\{\s*secret:\s*([A-Za-z0-9][A-Za-z0-9_.-]{0,127})\s*\}\}$")
PATH = re.compile(r"^(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})+)*$")
SCOPE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,256}$")

# Headers the proxy sets, re-frames or strips: a route may not set them.
RESERVED_HEADERS = frozenset(
    {
        "connection",
        "content-length",
        "expect",
        "host",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
OVERRIDE_FIELDS = ("target_url", "tls_servername", "tls_reject_unauthorized")


def _shown(value: object) -> str:
    text = str(value)
    return repr(text[:80] + ("..." if len(text) > 80 else ""))


# --- single fields --------------------------------------------------------------------------


def validate_route_name(value: str) -> str:
    """The first path segment of the proxy's URL: ``/<route>/...``."""
    if not isinstance(value, str) or not ROUTE_NAME.fullmatch(value):
        raise InvalidArgument(
            "expected an egress route name of lower-case letters, digits, '.', '_' and '-', "
            f"1-64 long, starting with a letter or digit; found {_shown(value)}",
            hint="apps call http://127.0.0.1:7080/<name>/<path>; for example: bank-api",
        )
    return value


def validate_environment(value: str) -> str:
    if not isinstance(value, str) or not ENVIRONMENT_NAME.fullmatch(value):
        raise InvalidArgument(
            "expected an environment name of lower-case letters, digits, '-' and '_' (up to "
            f"64), like production or sandbox; found {_shown(value)}"
        )
    return value


def _dns_name(value: str) -> bool:
    labels = value.split(".")
    if len(value) > 253 or not all(LABEL.fullmatch(label) for label in labels):
        return False
    return not labels[-1].isdigit()


def _ip(value: str) -> str | None:
    bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return None


@dataclass(frozen=True, kw_only=True)
class Target:
    """A parsed ``target_url``: where to connect and the base path to prefix."""

    host: str
    port: int
    base_path: str

    @property
    def authority(self) -> str:
        """The ``Host`` header value: the port only when it is not 443."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 443 else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.authority}{self.base_path}"


def parse_target(value: str, *, what: str = "target_url") -> Target:  # noqa: PLR0912
    """``https://host[:port][/base/path]``; ``invalid_argument`` otherwise."""
    expected = f"expected {what} to be an https:// URL like https://api.partner.example/v1"
    if not isinstance(value, str):
        raise InvalidArgument(f"{expected}; found {type(value).__name__}")
    if len(value) > MAX_TARGET_URL:
        raise InvalidArgument(f"{expected}; found {len(value)} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidArgument(f"{expected}; found whitespace or control characters in it")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as error:
        raise InvalidArgument(f"{expected}; found {_shown(value)} ({error})") from None
    scheme = parts.scheme.lower()
    if scheme == "http":
        raise InvalidArgument(
            f"{expected}; found http://, which would send the request without TLS and without "
            "the client certificate",
            hint="partners that require mTLS serve https://; use that URL",
        )
    if scheme != "https" or not parts.netloc:
        raise InvalidArgument(f"{expected}; found {_shown(value)}")
    if "@" in parts.netloc:
        raise InvalidArgument(
            f"{expected}, without a user name or password; found credentials in the URL",
            hint="put credentials in a string secret and send them with headers "
            '({"Authorization": "Basic {{secret:partner_basic}}"})',
        )
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise InvalidArgument(
            f"{expected}, without a query or fragment; found {_shown(value)}",
            hint="the app's request brings its own query string",
        )
    raw_host = parts.hostname or ""
    host = _ip(raw_host)
    if host is None:
        candidate = raw_host.rstrip(".").lower()
        if not _dns_name(candidate):
            raise InvalidArgument(
                f"{expected}; found {_shown(value)}, whose host is not a host name or IP address",
                hint="give internationalised names in their ASCII form (xn--...)",
            )
        host = candidate
    if port == 0:
        raise InvalidArgument(f"{expected}; found port 0")
    base = parts.path.rstrip("/")
    if base and not PATH.fullmatch(base):
        raise InvalidArgument(
            f"{expected}; found a base path {_shown(parts.path)} with empty segments or "
            "characters a URL path does not allow (percent-encode them)"
        )
    if any(segment in {".", ".."} for segment in base.split("/")):
        raise InvalidArgument(f"{expected}; found '.' or '..' in its path")
    return Target(host=host, port=port or 443, base_path=base)


def validate_target_url(value: str, *, what: str = "target_url") -> str:
    return parse_target(value, what=what).url


def validate_servername(value: str) -> str:
    """A DNS name for SNI and the certificate check (lower case, no trailing dot)."""
    name = value.strip().lower().rstrip(".") if isinstance(value, str) else ""
    if _ip(name) is not None:
        return _ip(name) or name
    if not _dns_name(name):
        raise InvalidArgument(
            "expected tls_servername to be a DNS name such as api.partner.example; found "
            f"{_shown(value)}",
            hint="it is sent as SNI and the partner's certificate must carry it",
        )
    return name


def validate_header_name(value: str, *, oauth2: bool) -> str:
    if not isinstance(value, str) or not TOKEN.fullmatch(value):
        raise InvalidArgument(
            "expected an HTTP header name (letters, digits and !#$%&'*+-.^_`|~, 1-64 long); "
            f"found {_shown(value)}"
        )
    lower = value.lower()
    if lower in RESERVED_HEADERS or lower.startswith("x-mutls-"):
        raise InvalidArgument(
            f"expected a header the proxy does not set or re-frame itself; {value!r} is one",
            hint="Host comes from target_url, framing headers from the request itself",
        )
    if oauth2 and lower == "authorization":
        raise InvalidArgument(
            "expected no Authorization header on a route with an oauth2_secret: the proxy sends "
            "the access token in it",
            hint="remove the header, or remove oauth2_secret and send your own credentials",
        )
    return value


def secret_ref(value: str | None, *, what: str) -> str | None:
    """A secret by name, id or ``{{secret:NAME}}``; the name or id, or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"expected {what} to be a secret's name or id; found a non-string")
    text = value.strip()
    if not text:
        return None
    match = _TEMPLATE_REF.fullmatch(text)
    if match is not None:
        return match.group(1)
    if not SECRET_NAME.fullmatch(text):
        raise InvalidArgument(
            f"expected {what} to be a secret's name, id (sec_...) or {{{{secret:NAME}}}}; found "
            f"{_shown(value)}"
        )
    return text


def _scopes(values: Sequence[str] | None) -> tuple[str, ...] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = values.split()
    if len(values) > MAX_SCOPES:
        raise InvalidArgument(f"expected at most {MAX_SCOPES} oauth2_scopes; found {len(values)}")
    out: list[str] = []
    for scope in values:
        if not isinstance(scope, str) or not SCOPE.fullmatch(scope):
            raise InvalidArgument(
                "expected each scope to be one token of printable ASCII without spaces, quotes "
                f"or backslashes (RFC 6749 3.3); found {_shown(scope)}"
            )
        if scope not in out:
            out.append(scope)
    return tuple(out)


def _description(value: str) -> str:
    value = (value or "").strip()
    if len(value) > MAX_DESCRIPTION or any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise InvalidArgument(
            f"expected a description of at most {MAX_DESCRIPTION} printable characters; found "
            f"{len(value)} characters"
        )
    return value


def _preset(value: str | EgressTlsPreset) -> EgressTlsPreset:
    try:
        return EgressTlsPreset(value)
    except ValueError:
        raise InvalidArgument(
            "expected tls_preset to be one of "
            f"{', '.join(p.value for p in EgressTlsPreset)}; found {_shown(value)}",
            hint="default: TLS 1.2-1.3; tls12: TLS 1.2 only; tls13; fapi: FAPI's suites",
        ) from None


def _timeout(value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(
            f"expected timeout_seconds to be a whole number; found {_shown(value)}"
        )
    if not 1 <= value <= MAX_TIMEOUT_SECONDS:
        raise InvalidArgument(
            f"expected timeout_seconds between 1 and {MAX_TIMEOUT_SECONDS}; found {value}"
        )
    return value


def _tokens(values: Sequence[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        values = (values,)
    if len(values) > MAX_ALLOWED_TOKENS:
        raise InvalidArgument(
            f"expected at most {MAX_ALLOWED_TOKENS} allowed_tokens; found {len(values)}"
        )
    out: list[str] = []
    for value in values:
        ref = value.strip() if isinstance(value, str) else ""
        if not ref or len(ref) > 200 or any(ord(c) < 32 or ord(c) == 127 for c in ref):
            raise InvalidArgument(
                f"expected an app token's id (tok_...) or name in allowed_tokens; found "
                f"{_shown(value)}"
            )
        if ref not in out:
            out.append(ref)
    return tuple(out)


# --- the whole route ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class EnvironmentOverride:
    """What one environment changes; None keeps the route's value."""

    target_url: str | None = None
    tls_servername: str | None = None
    tls_reject_unauthorized: bool | None = None

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in OVERRIDE_FIELDS if getattr(self, k) is not None}


@dataclass(frozen=True, kw_only=True)
class EgressRouteSpec:
    """The editable fields of an egress route, as given or (after validation) normalised.

    Secret fields hold a name, id or ``{{secret:NAME}}`` as given; the service resolves them to
    ids. ``allowed_tokens`` holds token ids or names; the service resolves names to ids.
    """

    name: str
    target_url: str
    certificate_secret: str | None = None
    oauth2_secret: str | None = None
    ca_bundle_secret: str | None = None
    oauth2_scopes: tuple[str, ...] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    tls_servername: str | None = None
    tls_preset: EgressTlsPreset | str = EgressTlsPreset.DEFAULT
    tls_reject_unauthorized: bool = True
    environments: Mapping[str, EnvironmentOverride] = field(default_factory=dict)
    allowed_tokens: tuple[str, ...] = ()
    timeout_seconds: int | None = None
    description: str = ""


def parse_override(environment: str, value: object) -> EnvironmentOverride:
    """One ``environments`` entry from JSON."""
    if isinstance(value, EnvironmentOverride):
        return value
    if not isinstance(value, Mapping):
        raise InvalidArgument(
            f"expected environments.{environment} to be an object with any of "
            f"{', '.join(OVERRIDE_FIELDS)}; found {type(value).__name__}"
        )
    unknown = sorted(str(k) for k in value if k not in OVERRIDE_FIELDS)
    if unknown:
        raise InvalidArgument(
            f"expected environments.{environment} to hold only {', '.join(OVERRIDE_FIELDS)}; "
            f"found {', '.join(_shown(u) for u in unknown)}",
            hint="secrets change per environment by themselves: each secret has a value per "
            "environment",
        )
    reject = value.get("tls_reject_unauthorized")
    if reject is not None and not isinstance(reject, bool):
        raise InvalidArgument(
            f"expected environments.{environment}.tls_reject_unauthorized to be true or false; "
            f"found {_shown(reject)}"
        )
    target: Any = value.get("target_url")
    servername: Any = value.get("tls_servername")
    return EnvironmentOverride(
        target_url=target, tls_servername=servername, tls_reject_unauthorized=reject
    )


def validate_egress_spec(spec: EgressRouteSpec) -> EgressRouteSpec:
    """Every field normalised and the fields checked together; or ``invalid_argument`` /
    ``insecure_tls_refused``."""
    oauth2 = secret_ref(spec.oauth2_secret, what="oauth2_secret")
    scopes = _scopes(spec.oauth2_scopes)
    if scopes is not None and oauth2 is None:
        raise InvalidArgument(
            "expected oauth2_scopes only on a route with an oauth2_secret; found scopes and no "
            "oauth2_secret"
        )
    if not isinstance(spec.headers, Mapping):
        raise InvalidArgument("expected headers to be an object of header name to value")
    if len(spec.headers) > MAX_HEADERS:
        raise InvalidArgument(f"expected at most {MAX_HEADERS} headers; found {len(spec.headers)}")
    headers: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in spec.headers.items():
        checked = validate_header_name(name, oauth2=oauth2 is not None)
        if checked.lower() in seen:
            raise InvalidArgument(f"expected each header once; found {checked!r} twice")
        seen.add(checked.lower())
        if not isinstance(value, str):
            raise InvalidArgument(f"expected header {checked!r} to be a string template")
        parse_template(value, where=f"header {checked}")
        headers[checked] = value
    if spec.tls_reject_unauthorized is not True:
        if spec.tls_reject_unauthorized is not False:
            raise InvalidArgument("expected tls_reject_unauthorized to be true or false")
        raise InsecureTlsRefused(
            "expected tls_reject_unauthorized true at the route's top level, which production "
            "uses; found false",
        )
    if not isinstance(spec.environments, Mapping):
        raise InvalidArgument(
            "expected environments to be an object of environment name to overrides"
        )
    environments: dict[str, EnvironmentOverride] = {}
    for env, raw in spec.environments.items():
        name = validate_environment(env)
        override = parse_override(name, raw)
        if override.tls_reject_unauthorized is False and name == PRODUCTION:
            raise InsecureTlsRefused(
                "expected the partner's certificate to be verified in production; found "
                "environments.production.tls_reject_unauthorized false"
            )
        environments[name] = EnvironmentOverride(
            target_url=validate_target_url(
                override.target_url, what=f"environments.{name}.target_url"
            )
            if override.target_url is not None
            else None,
            tls_servername=validate_servername(override.tls_servername)
            if override.tls_servername is not None
            else None,
            tls_reject_unauthorized=override.tls_reject_unauthorized,
        )
        if not environments[name].to_dict():
            del environments[name]
    return EgressRouteSpec(
        name=validate_route_name(spec.name),
        target_url=validate_target_url(spec.target_url),
        certificate_secret=secret_ref(spec.certificate_secret, what="certificate_secret"),
        oauth2_secret=oauth2,
        ca_bundle_secret=secret_ref(spec.ca_bundle_secret, what="ca_bundle_secret"),
        oauth2_scopes=scopes,
        headers=headers,
        tls_servername=validate_servername(spec.tls_servername)
        if spec.tls_servername is not None
        else None,
        tls_preset=_preset(spec.tls_preset),
        tls_reject_unauthorized=True,
        environments=dict(sorted(environments.items())),
        allowed_tokens=_tokens(spec.allowed_tokens),
        timeout_seconds=_timeout(spec.timeout_seconds),
        description=_description(spec.description),
    )


def header_templates(headers: Mapping[str, str]) -> dict[str, Template]:
    """The parsed templates of a validated route's headers."""
    return {name: parse_template(value, where=f"header {name}") for name, value in headers.items()}
