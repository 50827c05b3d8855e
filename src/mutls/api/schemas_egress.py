"""Request and response models of the egress proxy's routes (issue 6 item 2). Kept apart from
``schemas.py`` like the gateway's routes are.

The models bound sizes and refuse control characters; what a target URL, a header name, a
secret reference or an allowed token must be is checked by ``mutls.routing.egress``, whose
messages say what was expected and what was found (422 ``invalid_argument``, 404
``secret_not_found``, 422 ``insecure_tls_refused``). Header names in particular are plain
strings here, so that ``Host`` is refused by the service with the reason, not by the schema.

Seed 002 writes the secret fields as ``certificate_secret_id``, ``oauth2_secret_id`` and
``ca_bundle_secret_id`` holding ``{{secret:NAME}}``; requests accept those names too, so a
route from seed 002 can be pasted as it is. Responses always use the short names, with each
secret as a link ``{id, name, secret_type}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AliasChoices, BaseModel, Field, StrictInt, StringConstraints

from mutls.api.schemas import ENVIRONMENT_PATTERN, NO_CONTROL, Line, Multiline, Request
from mutls.routing.egress import EgressRouteView, SecretLink
from mutls.routing.egress_fields import EgressRouteSpec, EnvironmentOverride
from mutls.tls.egress_context import EgressTlsPreset

__all__ = [
    "EgressRouteCreate",
    "EgressRouteList",
    "EgressRouteOut",
    "EgressRouteUpdate",
    "EnvironmentOverrideIn",
    "EnvironmentOverrideOut",
    "RouteWarningOut",
    "SecretLinkOut",
    "egress_route_out",
]

EnvironmentKey = Annotated[str, StringConstraints(pattern=ENVIRONMENT_PATTERN)]
HeaderName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_CONTROL)]
HeaderTemplate = Annotated[str, StringConstraints(max_length=8192, pattern=NO_CONTROL)]
SecretField = Annotated[str, StringConstraints(max_length=200, pattern=NO_CONTROL)]
Url = Annotated[str, StringConstraints(max_length=2048, pattern=NO_CONTROL)]

_TARGET = (
    "the partner's base URL, https:// only, like https://api.bank.example/v1: the app's path "
    "is appended to it"
)
_SECRET = "a secret of the route's owner by name, id (sec_...) or {{secret:NAME}}"
_CERTIFICATE = f"certificate secret presented as the client certificate: {_SECRET}"
_OAUTH2 = f"oauth2 secret the proxy fetches access tokens with (client credentials): {_SECRET}"
_CA_BUNDLE = (
    "string or certificate secret with the CA certificates that verify the partner's server, "
    f"instead of the system trust store: {_SECRET}"
)
_SCOPES = "scopes asked for with the oauth2_secret's tokens; null: the oauth2 secret's own scopes"
_HEADERS = (
    "headers added to every request: name to template; {{secret:NAME}} is a string secret's "
    "value for the request's environment, {{environment}} its name. Host, framing headers, "
    "X-Mutls-* and (with an oauth2_secret) Authorization are refused"
)
_SERVERNAME = "name sent as SNI and checked in the partner's certificate; null: target_url's host"
_PRESET = "default: TLS 1.2-1.3; tls12: 1.2 only; tls13: 1.3 only; fapi: FAPI's suites"
_REJECT = (
    "verify the partner's certificate; false is refused here (production uses the top level): "
    "switch it off for a non-production environment in environments only"
)
_ENVIRONMENTS = (
    "per-environment overrides of target_url, tls_servername and tls_reject_unauthorized "
    "(secrets need none: each secret has a value per environment)"
)
_TOKENS = (
    "app tokens (id or name) of the route's owner that may call it; stored as ids; empty: every "
    "app token of the owner"
)
_TIMEOUT = "seconds from the request's end until the partner answers (1-3600); null: the default"
_ALIAS = " (seed 002's {name}_id is accepted too)"


def _alias(name: str) -> AliasChoices:
    return AliasChoices(name, f"{name}_id")


class EnvironmentOverrideIn(Request):
    """What one environment changes; fields left out or null keep the route's value."""

    target_url: Url | None = Field(default=None, description=_TARGET)
    tls_servername: Line | None = Field(default=None, max_length=253, description=_SERVERNAME)
    tls_reject_unauthorized: bool | None = Field(
        default=None,
        description="false switches the partner's certificate check off in this environment "
        "(never in production); the route then carries a warning",
    )

    def to_override(self) -> EnvironmentOverride:
        return EnvironmentOverride(
            target_url=self.target_url,
            tls_servername=self.tls_servername,
            tls_reject_unauthorized=self.tls_reject_unauthorized,
        )


class EgressRouteCreate(Request):
    name: Line = Field(
        description="unique per owner; apps call http://127.0.0.1:7080/<name>/<path>",
        max_length=64,
    )
    target_url: Url = Field(description=_TARGET)
    certificate_secret: SecretField | None = Field(
        default=None,
        description=_CERTIFICATE + _ALIAS.format(name="certificate_secret"),
        validation_alias=_alias("certificate_secret"),
    )
    oauth2_secret: SecretField | None = Field(
        default=None,
        description=_OAUTH2 + _ALIAS.format(name="oauth2_secret"),
        validation_alias=_alias("oauth2_secret"),
    )
    ca_bundle_secret: SecretField | None = Field(
        default=None,
        description=_CA_BUNDLE + _ALIAS.format(name="ca_bundle_secret"),
        validation_alias=_alias("ca_bundle_secret"),
    )
    oauth2_scopes: list[Line] | None = Field(default=None, max_length=100, description=_SCOPES)
    headers: dict[HeaderName, HeaderTemplate] = Field(
        default_factory=dict, max_length=64, description=_HEADERS
    )
    tls_servername: Line | None = Field(default=None, max_length=253, description=_SERVERNAME)
    tls_preset: EgressTlsPreset = Field(default=EgressTlsPreset.DEFAULT, description=_PRESET)
    tls_reject_unauthorized: bool = Field(default=True, description=_REJECT)
    environments: dict[EnvironmentKey, EnvironmentOverrideIn] = Field(
        default_factory=dict, max_length=32, description=_ENVIRONMENTS
    )
    allowed_tokens: list[Line] = Field(default_factory=list, max_length=256, description=_TOKENS)
    timeout_seconds: StrictInt | None = Field(default=None, description=_TIMEOUT)
    description: Multiline = Field(default="", description="for people; shown in lists")
    account_id: Line | None = Field(
        default=None,
        description="owner account (id or name), for platform-wide tokens; an account-scoped "
        "token's routes are its account's. Omitted: a platform route, beside platform secrets",
    )

    def to_spec(self) -> EgressRouteSpec:
        """The route's fields (everything but ``account_id``), as given: the service
        validates and normalises them."""
        return EgressRouteSpec(
            name=self.name,
            target_url=self.target_url,
            certificate_secret=self.certificate_secret,
            oauth2_secret=self.oauth2_secret,
            ca_bundle_secret=self.ca_bundle_secret,
            oauth2_scopes=tuple(self.oauth2_scopes) if self.oauth2_scopes is not None else None,
            headers=dict(self.headers),
            tls_servername=self.tls_servername,
            tls_preset=self.tls_preset,
            tls_reject_unauthorized=self.tls_reject_unauthorized,
            environments={k: v.to_override() for k, v in self.environments.items()},
            allowed_tokens=tuple(self.allowed_tokens),
            timeout_seconds=self.timeout_seconds,
            description=self.description,
        )


class EgressRouteUpdate(Request):
    """Partial: fields left out keep their value; optional fields given as null are cleared
    (headers, environments and allowed_tokens become empty). A dict or list given replaces the
    old one. The result is validated as a whole, like a new route."""

    name: Line | None = Field(default=None, description="a new unique name", max_length=64)
    target_url: Url | None = Field(default=None, description=_TARGET)
    certificate_secret: SecretField | None = Field(
        default=None, description=_CERTIFICATE, validation_alias=_alias("certificate_secret")
    )
    oauth2_secret: SecretField | None = Field(
        default=None, description=_OAUTH2, validation_alias=_alias("oauth2_secret")
    )
    ca_bundle_secret: SecretField | None = Field(
        default=None, description=_CA_BUNDLE, validation_alias=_alias("ca_bundle_secret")
    )
    oauth2_scopes: list[Line] | None = Field(default=None, max_length=100, description=_SCOPES)
    headers: dict[HeaderName, HeaderTemplate] | None = Field(
        default=None, max_length=64, description=_HEADERS + "; replaces all headers"
    )
    tls_servername: Line | None = Field(default=None, max_length=253, description=_SERVERNAME)
    tls_preset: EgressTlsPreset | None = Field(default=None, description=_PRESET)
    tls_reject_unauthorized: bool | None = Field(default=None, description=_REJECT)
    environments: dict[EnvironmentKey, EnvironmentOverrideIn] | None = Field(
        default=None, max_length=32, description=_ENVIRONMENTS + "; replaces all overrides"
    )
    allowed_tokens: list[Line] | None = Field(
        default=None, max_length=256, description=_TOKENS + "; replaces the list"
    )
    timeout_seconds: StrictInt | None = Field(default=None, description=_TIMEOUT)
    description: Multiline | None = Field(default=None, description="for people")

    def changes(self) -> dict[str, object]:
        """The fields the request named, with their values (None for a cleared field)."""
        changes: dict[str, object] = {}
        for name in sorted(self.model_fields_set):
            value = getattr(self, name)
            if name == "environments" and value is not None:
                value = {k: v.to_override() for k, v in value.items()}
            elif name == "headers" and value is not None:
                value = dict(value)
            elif name in {"oauth2_scopes", "allowed_tokens"} and value is not None:
                value = tuple(value)
            changes[name] = value
        return changes


class SecretLinkOut(BaseModel):
    """A secret the route uses; never its value."""

    id: str
    name: str
    secret_type: str


class EnvironmentOverrideOut(BaseModel):
    target_url: str | None = Field(description="null: the route's target_url")
    tls_servername: str | None = Field(description="null: the route's tls_servername")
    tls_reject_unauthorized: bool | None = Field(description="null: true (verify)")


class RouteWarningOut(BaseModel):
    code: str = Field(description="tls_verification_off, oauth2_certificate_differs, ...")
    message: str


class EgressRouteOut(BaseModel):
    id: str
    name: str
    account_id: str | None = Field(description="the owner account; null: a platform route")
    target_url: str = Field(description="canonical: https://host[:port][/base]")
    certificate_secret: SecretLinkOut | None
    oauth2_secret: SecretLinkOut | None
    ca_bundle_secret: SecretLinkOut | None
    oauth2_scopes: list[str] | None
    headers: dict[str, str] = Field(
        description="templates as saved: {{secret:NAME}} placeholders, never secret values"
    )
    tls_servername: str | None
    tls_preset: EgressTlsPreset
    tls_reject_unauthorized: bool
    environments: dict[str, EnvironmentOverrideOut]
    allowed_tokens: list[str] = Field(description="app token ids; empty: every app token")
    timeout_seconds: int | None
    description: str
    created_at: datetime
    created_by: str
    updated_at: datetime
    warnings: list[RouteWarningOut] = Field(
        description="what works but weakens the route, such as verification off somewhere"
    )


class EgressRouteList(BaseModel):
    egress_routes: list[EgressRouteOut] = Field(description="by name")


def _link(link: SecretLink | None) -> SecretLinkOut | None:
    if link is None:
        return None
    return SecretLinkOut(id=link.id, name=link.name, secret_type=link.secret_type)


def egress_route_out(view: EgressRouteView) -> EgressRouteOut:
    return EgressRouteOut(
        id=view.id,
        name=view.name,
        account_id=view.account_id,
        target_url=view.target_url,
        certificate_secret=_link(view.certificate_secret),
        oauth2_secret=_link(view.oauth2_secret),
        ca_bundle_secret=_link(view.ca_bundle_secret),
        oauth2_scopes=list(view.oauth2_scopes) if view.oauth2_scopes is not None else None,
        headers=dict(view.headers),
        tls_servername=view.tls_servername,
        tls_preset=view.tls_preset,
        tls_reject_unauthorized=view.tls_reject_unauthorized,
        environments={
            env: EnvironmentOverrideOut(
                target_url=item.target_url,
                tls_servername=item.tls_servername,
                tls_reject_unauthorized=item.tls_reject_unauthorized,
            )
            for env, item in view.environments.items()
        },
        allowed_tokens=list(view.allowed_tokens),
        timeout_seconds=view.timeout_seconds,
        description=view.description,
        created_at=view.created_at,
        created_by=view.created_by,
        updated_at=view.updated_at,
        warnings=[RouteWarningOut(code=w["code"], message=w["message"]) for w in view.warnings],
    )
