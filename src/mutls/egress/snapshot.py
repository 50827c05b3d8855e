"""The egress proxy's snapshot: everything its request path reads, loaded from the store at once.

A request never touches the database. Each worker holds an immutable :class:`EgressSnapshot`
(app tokens by hash, routes by owner and name, and per route and environment a ready
:class:`PartnerTarget`: address, SNI, the TLS context with the client certificate, rendered
headers, OAuth2 client), and swaps it when the store's revision moves (the gateway's
``SnapshotWatcher`` drives both data planes).

Decisions, and why:

- **Decrypted once per secret version.** :class:`EgressLoader` remembers each decrypted value by
  (secret, environment, version) and each TLS context by what it was built from, so a reload
  caused by an unrelated change decrypts nothing and builds no context, and pooled connections
  (keyed by context) stay warm. A replaced certificate (``PUT /admin/secrets/{id}/environments/
  {env}``) has a new version: its context is built before the swap, the next request uses it,
  and connections of the old context are retired by the pool once idle.
- **Keys reach OpenSSL from memory** (``tls.egress_context``), never through a file.
- **Errors are resolved per environment at load time and raised per request.** A route whose
  sandbox has no certificate value still serves production; a sandbox request gets
  ``environment_value_missing`` naming the secret, never another environment's value.
- **Loading does not audit each decryption**: that would move the revision and reload again.
  Use is counted per request and written to the audit log in batches (``egress.usage``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL
from sqlalchemy import select
from sqlalchemy.orm import Session

from mutls.accounts.roles import Role
from mutls.errors import (
    EnvironmentValueMissing,
    InvalidArgument,
    MutlsError,
    SecretExpired,
    SecretNotFound,
)
from mutls.pki.loader import load_certificates, load_material
from mutls.pki.material import Material
from mutls.policy.templates import parse_template, render
from mutls.routing.egress_fields import PRODUCTION, EnvironmentOverride, parse_target
from mutls.store.database import Database
from mutls.store.models import PLATFORM, ApiToken, AuditHead, EgressRoute, Secret, SecretValue
from mutls.tls.egress_context import (
    EgressTlsPreset,
    SystemTrustUnavailable,
    partner_client_context,
)
from mutls.vault.envelope import Sealed, open_sealed
from mutls.vault.keysource import KeySource
from mutls.vault.masterkeys import active_keyring, binding_of
from mutls.vault.payloads import SecretType, reveal

__all__ = [
    "AppToken",
    "CertificateInfo",
    "EgressLoader",
    "EgressRouteEntry",
    "EgressSnapshot",
    "OAuth2Binding",
    "PartnerTarget",
]

log = logging.getLogger("mutls.egress")


@dataclass(frozen=True, kw_only=True, slots=True)
class AppToken:
    """An active ``app`` token, as the proxy checks it (the token itself is only a hash here)."""

    id: str
    name: str
    namespace: str
    default_environment: str
    environments: frozenset[str]
    """Empty: any environment."""
    expires_at: datetime | None


@dataclass(frozen=True, kw_only=True, slots=True)
class CertificateInfo:
    """The client certificate a target presents: for the request log and expiry checks."""

    secret_id: str
    secret_name: str
    environment: str
    version: int
    fingerprint: str
    serial: str
    not_after: datetime
    strict_expiry: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class Endpoint:
    """Where to open a TLS connection: address, SNI and name check, and the context to use."""

    host: str
    port: int
    server_name: str
    check_name: bool
    context: SSL.Context
    context_key: tuple[object, ...]

    @property
    def pool_key(self) -> tuple[object, ...]:
        return (self.host, self.port, self.server_name, self.check_name, self.context_key)


@dataclass(frozen=True, kw_only=True, slots=True)
class OAuth2Binding:
    """A route's OAuth2 client for one environment: the secret's fields and where to ask."""

    secret_id: str
    secret_name: str
    version: int
    fields: Mapping[str, Any] = field(repr=False)
    scopes: tuple[str, ...]
    endpoint: Endpoint
    presents_certificate: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class PartnerTarget:
    """One route in one environment, ready to send to."""

    route_id: str
    route_name: str
    environment: str
    endpoint: Endpoint
    base_path: bytes
    authority: bytes
    """The ``Host`` header."""
    headers: bytes = field(repr=False)
    """The route's rendered headers, as ``Name: value\\r\\n`` lines (may hold secrets)."""
    header_names: frozenset[bytes]
    """Lower-case names of those headers: an app's copy of one is dropped."""
    certificate: CertificateInfo | None
    oauth2: OAuth2Binding | None
    timeout: float | None
    verify: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class EgressRouteEntry:
    id: str
    name: str
    namespace: str
    allowed_tokens: frozenset[str]
    """Empty: every app token of the route's owner."""
    targets: Mapping[str, PartnerTarget | MutlsError]
    secret_names: tuple[str, ...]
    """Every secret the route uses (for the error when an environment has no values)."""

    def target(self, environment: str) -> PartnerTarget | MutlsError:
        found = self.targets.get(environment)
        if found is not None:
            return found
        return EnvironmentValueMissing(
            f"expected route {self.name!r} to have values for environment {environment!r}; "
            f"its secrets ({', '.join(self.secret_names)}) have values for "
            f"{', '.join(sorted(self.targets)) or 'no environment'}",
            hint="store a value for this environment (`mutls secret set NAME --env "
            f"{environment} ...`), or send another X-Mutls-Environment",
        )


@dataclass(frozen=True, kw_only=True)
class EgressSnapshot:
    revision: int
    tokens: Mapping[str, AppToken]
    """By the token's SHA-256 (hex), as the store keeps it."""
    routes: Mapping[tuple[str, str], EgressRouteEntry]
    """By (namespace, name)."""
    loaded_at: datetime


# --- loading ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class _Value:
    """One decrypted current value of a secret in one environment."""

    secret: Secret
    row: SecretValue
    fields: Mapping[str, Any] = field(repr=False)


class EgressLoader:
    """Builds snapshots; remembers decrypted values and TLS contexts between builds."""

    def __init__(self, db: Database, keys: KeySource) -> None:
        self._db = db
        self._keys = keys
        self._plain: dict[tuple[str, str, int], Mapping[str, Any]] = {}
        self._contexts: dict[tuple[object, ...], SSL.Context] = {}
        self._material: dict[tuple[str, str, int], tuple[Material, CertificateInfo]] = {}

    def load(self, *, now: datetime) -> EgressSnapshot:
        with self._db.read() as session:
            revision = int(session.execute(select(AuditHead.seq)).scalar() or 0)
            tokens = _tokens(session, now)
            rows = list(session.execute(select(EgressRoute)).scalars())
            used_plain: set[tuple[str, str, int]] = set()
            used_contexts: set[tuple[object, ...]] = set()
            build = _Build(self, session, used_plain, used_contexts, now)
            routes = {(row.namespace, row.name): build.route(row) for row in rows}
        for key in set(self._plain) - used_plain:
            del self._plain[key]
            self._material.pop(key, None)
        for ctx_key in set(self._contexts) - used_contexts:
            del self._contexts[ctx_key]
        return EgressSnapshot(revision=revision, tokens=tokens, routes=routes, loaded_at=now)


def _tokens(session: Session, now: datetime) -> dict[str, AppToken]:
    found: dict[str, AppToken] = {}
    rows = session.execute(
        select(ApiToken).where(ApiToken.role == Role.APP.value, ApiToken.revoked_at.is_(None))
    ).scalars()
    for token in rows:
        if token.expires_at is not None and _aware(token.expires_at) <= now:
            continue
        found[token.token_hash] = AppToken(
            id=token.id,
            name=token.name,
            namespace=token.account_id or PLATFORM,
            default_environment=token.default_environment or PRODUCTION,
            environments=frozenset(token.environments or ()),
            expires_at=_aware(token.expires_at) if token.expires_at else None,
        )
    return found


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class _Build:
    """One snapshot build inside one read transaction."""

    def __init__(
        self,
        loader: EgressLoader,
        session: Session,
        used_plain: set[tuple[str, str, int]],
        used_contexts: set[tuple[object, ...]],
        now: datetime,
    ) -> None:
        self.loader, self.session, self.now = loader, session, now
        self.used_plain, self.used_contexts = used_plain, used_contexts
        self._secrets: dict[str, Secret | None] = {}

    # --- secrets ---

    def _secret(self, ref: str) -> Secret | None:
        if ref not in self._secrets:
            self._secrets[ref] = self.session.get(Secret, ref)
        return self._secrets[ref]

    def _by_name(self, namespace: str, name: str) -> Secret | None:
        return self.session.execute(
            select(Secret).where(Secret.namespace == namespace, Secret.name == name)
        ).scalar()

    def value(self, secret: Secret, environment: str) -> _Value:
        row = next((v for v in secret.values if v.environment == environment and v.current), None)
        if row is None or row.ciphertext is None or row.wrapped_key is None:
            raise EnvironmentValueMissing(
                f"expected secret {secret.name!r} to have a {environment!r} value; it has "
                f"{', '.join(sorted(v.environment for v in secret.values if v.current)) or 'none'}",
                hint=f"store one: `mutls secret set {secret.name} --env {environment} ...`",
            )
        key = (secret.id, environment, row.version)
        self.used_plain.add(key)
        cached = self.loader._plain.get(key)
        if cached is None:
            assert row.key_version is not None
            plaintext = open_sealed(
                Sealed(
                    ciphertext=row.ciphertext,
                    wrapped_key=row.wrapped_key,
                    key_version=row.key_version,
                ),
                binding=binding_of(row, secret.secret_type),
                keyring=active_keyring(self.session, self.loader._keys, row.key_version),
            )
            cached = reveal(SecretType(secret.secret_type), plaintext)
            self.loader._plain[key] = cached
        return _Value(secret=secret, row=row, fields=cached)

    def identity(self, secret: Secret, environment: str) -> tuple[Material, CertificateInfo]:
        value = self.value(secret, environment)
        key = (secret.id, environment, value.row.version)
        cached = self.loader._material.get(key)
        if cached is not None:
            return cached
        fields = value.fields
        pem = f"{fields['certificate_pem']}\n{fields['private_key_pem']}".encode("ascii")
        passphrase = fields.get("passphrase")
        material = load_material(pem, passphrase.encode("utf-8") if passphrase else None)
        leaf, _ = material.require_identity()
        info = CertificateInfo(
            secret_id=secret.id,
            secret_name=secret.name,
            environment=environment,
            version=value.row.version,
            fingerprint=hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest(),
            serial=format(leaf.serial_number, "X"),
            not_after=leaf.not_valid_after_utc,
            strict_expiry=bool(secret.strict_expiry_enforcement),
        )
        self.loader._material[key] = (material, info)
        return material, info

    def bundle(self, secret: Secret, environment: str) -> tuple[list[x509.Certificate], int]:
        value = self.value(secret, environment)
        fields = value.fields
        text = fields.get("value") if secret.secret_type == SecretType.STRING.value else None
        if secret.secret_type == SecretType.CERTIFICATE.value:
            text = fields.get("ca_bundle_pem") or fields.get("certificate_pem")
        if not isinstance(text, str) or not text.strip():
            raise InvalidArgument(
                f"expected secret {secret.name!r} ({environment}) to hold PEM CA certificates; "
                "it holds none",
                hint="store the partner's CA certificate(s) as PEM in the ca_bundle_secret",
            )
        return load_certificates(text.encode("utf-8")), value.row.version

    # --- contexts ---

    def context(
        self,
        identity: tuple[Material, CertificateInfo] | None,
        cas: tuple[list[x509.Certificate], tuple[object, ...]],
        preset: EgressTlsPreset,
        verify: bool,
    ) -> tuple[SSL.Context, tuple[object, ...]]:
        who = (
            (identity[1].secret_id, identity[1].environment, identity[1].version)
            if identity
            else None
        )
        key: tuple[object, ...] = (who, cas[1], preset.value, verify)
        self.used_contexts.add(key)
        context = self.loader._contexts.get(key)
        if context is None:
            try:
                context = partner_client_context(
                    identity[0] if identity else None,
                    cas=cas[0],
                    preset=preset,
                    verify=verify,
                )
            except SystemTrustUnavailable as error:
                raise InvalidArgument(
                    str(error), hint="set the route's ca_bundle_secret to the partner's CA"
                ) from None
            self.loader._contexts[key] = context
        return context, key

    # --- routes ---

    def route(self, row: EgressRoute) -> EgressRouteEntry:
        refs = [
            r
            for r in (row.certificate_secret_id, row.oauth2_secret_id, row.ca_bundle_secret_id)
            if r is not None
        ]
        secrets = {ref: self._secret(ref) for ref in refs}
        header_secrets: dict[str, Secret | None] = {}
        templates = {
            name: parse_template(text, where=f"header {name}")
            for name, text in (row.headers or {}).items()
        }
        for template in templates.values():
            for name in template.secrets:
                header_secrets[name] = self._by_name(row.namespace, name)
        oauth2 = secrets.get(row.oauth2_secret_id) if row.oauth2_secret_id else None
        oauth2_cert: Secret | None = None
        if oauth2 is not None:
            bound = {v.meta.get("certificate_secret_id") for v in oauth2.values if v.current} - {
                None
            }
            if bound:
                oauth2_cert = self._secret(str(sorted(str(b) for b in bound)[0]))
        every = [
            s for s in (*secrets.values(), *header_secrets.values(), oauth2_cert) if s is not None
        ]
        environments = {PRODUCTION, *(row.environments or {})}
        for secret in every:
            environments.update(v.environment for v in secret.values if v.current)
        targets: dict[str, PartnerTarget | MutlsError] = {}
        for environment in sorted(environments):
            try:
                targets[environment] = self._target(
                    row, environment, secrets, header_secrets, templates
                )
            except MutlsError as error:
                targets[environment] = error
            except Exception as error:  # a value that decrypts but cannot be used
                log.warning(
                    "egress route %s (%s) cannot be prepared: %s",
                    row.name,
                    environment,
                    type(error).__name__,
                )
                targets[environment] = InvalidArgument(
                    f"expected route {row.name!r} to be usable in {environment!r}; preparing its "
                    f"TLS context failed ({type(error).__name__})",
                    hint="check the route's secrets with `mutls secret show`",
                )
        missing = [name for name, secret in header_secrets.items() if secret is None]
        if missing:  # a header secret deleted by name under the route: every environment fails
            gone: MutlsError = SecretNotFound(
                f"expected the string secret {missing[0]!r} used in route {row.name!r}'s "
                "headers to exist; it does not",
                hint="create it again, or change the route's headers",
            )
            targets = dict.fromkeys(targets, gone)
        return EgressRouteEntry(
            id=row.id,
            name=row.name,
            namespace=row.namespace,
            allowed_tokens=frozenset(row.allowed_tokens or ()),
            targets=targets,
            secret_names=tuple(sorted({s.name for s in every})),
        )

    def _target(
        self,
        row: EgressRoute,
        environment: str,
        secrets: Mapping[str, Secret | None],
        header_secrets: Mapping[str, Secret | None],
        templates: Mapping[str, Any],
    ) -> PartnerTarget:
        raw = (row.environments or {}).get(environment) or {}
        override = EnvironmentOverride(
            target_url=raw.get("target_url"),
            tls_servername=raw.get("tls_servername"),
            tls_reject_unauthorized=raw.get("tls_reject_unauthorized"),
        )
        target = parse_target(override.target_url or row.target_url)
        verify = override.tls_reject_unauthorized is not False or environment == PRODUCTION
        preset = EgressTlsPreset(row.tls_preset)
        certificate = self._required(secrets, row.certificate_secret_id, row.name)
        identity = self.identity(certificate, environment) if certificate else None
        if identity is not None:
            info = identity[1]
            if info.not_after <= self.now and info.strict_expiry:
                raise SecretExpired(
                    f"expected secret {info.secret_name!r} ({environment}) to hold a current "
                    f"certificate; it expired on {info.not_after.isoformat()} and the secret "
                    "enforces expiry strictly",
                    hint="upload the renewed certificate with `mutls secret set`",
                )
        cas = self._cas(row, environment, secrets, certificate)
        context, context_key = self.context(identity, cas, preset, verify)
        server_name = override.tls_servername or row.tls_servername or target.host
        endpoint = Endpoint(
            host=target.host,
            port=target.port,
            server_name=server_name,
            check_name=verify,
            context=context,
            context_key=context_key,
        )
        values = {
            name: (
                str(self.value(secret, environment).fields["value"])
                if secret is not None and _has_value(secret, environment)
                else None
            )
            for name, secret in header_secrets.items()
        }
        lines = []
        for name, template in templates.items():
            text = render(template, values, environment=environment, where=f"header {name}")
            lines.append(f"{name}: {text}\r\n".encode("latin-1", "replace"))
        oauth2 = None
        oauth2_secret = self._required(secrets, row.oauth2_secret_id, row.name)
        if oauth2_secret is not None:
            oauth2 = self._oauth2(
                row,
                environment,
                oauth2_secret,
                route_identity=identity,
                cas=cas,
                preset=preset,
                verify=verify,
            )
        return PartnerTarget(
            route_id=row.id,
            route_name=row.name,
            environment=environment,
            endpoint=endpoint,
            base_path=target.base_path.encode("ascii"),
            authority=target.authority.encode("idna" if target.host.isascii() else "utf-8"),
            headers=b"".join(lines),
            header_names=frozenset(name.lower().encode("ascii") for name in templates),
            certificate=identity[1] if identity else None,
            oauth2=oauth2,
            timeout=float(row.timeout_seconds) if row.timeout_seconds else None,
            verify=verify,
        )

    def _required(
        self, secrets: Mapping[str, Secret | None], ref: str | None, route: str
    ) -> Secret | None:
        if ref is None:
            return None
        secret = secrets.get(ref)
        if secret is None:
            raise SecretNotFound(
                f"expected the secret {ref} used by route {route!r} to exist; it does not",
                hint="point the route at an existing secret (`mutls egress route update`)",
            )
        return secret

    def _cas(
        self,
        row: EgressRoute,
        environment: str,
        secrets: Mapping[str, Secret | None],
        certificate: Secret | None,
    ) -> tuple[list[x509.Certificate], tuple[object, ...]]:
        bundle_secret = self._required(secrets, row.ca_bundle_secret_id, row.name)
        if bundle_secret is not None:
            certs, version = self.bundle(bundle_secret, environment)
            return certs, (bundle_secret.id, environment, version)
        if certificate is not None:
            value = self.value(certificate, environment)
            text = value.fields.get("ca_bundle_pem")
            if isinstance(text, str) and text.strip():
                certs = load_certificates(text.encode("utf-8"))
                return certs, (certificate.id, environment, value.row.version, "bundle")
        return [], ()

    def _oauth2(
        self,
        row: EgressRoute,
        environment: str,
        secret: Secret,
        *,
        route_identity: tuple[Material, CertificateInfo] | None,
        cas: tuple[list[x509.Certificate], tuple[object, ...]],
        preset: EgressTlsPreset,
        verify: bool,
    ) -> OAuth2Binding:
        """The token endpoint is reached over TLS presenting the oauth2 secret's own certificate
        (RFC 8705 ``tls_client_auth``), else the route's: a token endpoint on the partner's mTLS
        host asks for it even with ``client_secret_basic``, and one that does not ask never
        receives it (a TLS client sends a certificate only when asked)."""
        value = self.value(secret, environment)
        fields = value.fields
        bound_id = value.row.meta.get("certificate_secret_id")
        identity = route_identity
        if bound_id:
            bound = self._secret(str(bound_id))
            if bound is None:
                raise SecretNotFound(
                    f"expected the certificate secret of oauth2 secret {secret.name!r} to "
                    "exist; it does not"
                )
            identity = self.identity(bound, environment)
        parts = urlsplit(str(fields["token_url"]))
        host = parts.hostname or ""
        port = parts.port or 443
        context, context_key = self.context(identity, cas, preset, verify)
        scopes = tuple(row.oauth2_scopes) if row.oauth2_scopes is not None else ()
        if not scopes:
            scopes = tuple(str(s) for s in fields.get("scopes") or ())
        return OAuth2Binding(
            presents_certificate=identity is not None,
            secret_id=secret.id,
            secret_name=secret.name,
            version=value.row.version,
            fields=fields,
            scopes=scopes,
            endpoint=Endpoint(
                host=host,
                port=port,
                server_name=host,
                check_name=verify,
                context=context,
                context_key=context_key,
            ),
        )


def _has_value(secret: Secret, environment: str) -> bool:
    return any(v.environment == environment and v.current for v in secret.values)
