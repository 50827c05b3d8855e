"""The relational schema. Every change here is also an Alembic migration (a test compares them).

Rows hold public facts only. Secret values live in ``secret_values.ciphertext``, encrypted with
their own data key, which is itself wrapped by a master key that never enters the database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from mutls.store.types import UTCDateTime

__all__ = [
    "Account",
    "ApiToken",
    "AuditEvent",
    "AuditHead",
    "Base",
    "CertificateAuthority",
    "EgressRequest",
    "EgressRoute",
    "ExpiryNotification",
    "IssuedCertificate",
    "MasterKeyRecord",
    "ObservedCertificate",
    "Route",
    "Secret",
    "SecretValue",
    "User",
]

# Stable constraint names, so migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

PLATFORM = "_platform"
"""The namespace of resources that belong to the platform rather than to one account."""
SYSTEM = "_system"
"""The namespace of mutls's own internal secrets, invisible to the admin API."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[str]: JSON()}  # noqa: RUF012


class Account(Base):
    """An organisation: a provider's customer, or a team of the consumer."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))
    # mTLS settings (seed 003: opt-in per account, enforced for the whole organisation, at most
    # five live certificates; seed 004: source-IP allowlist; seed 001: per-version access).
    mtls_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    mtls_enforced: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    certificate_quota: Mapped[int] = mapped_column(Integer, default=5, server_default="5")
    allowed_routes: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    ip_allowlist: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")

    users: Mapped[list[User]] = relationship(back_populates="account")


class User(Base):
    """A person. A user without an account is a platform operator."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="RESTRICT"), index=True
    )
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))
    disabled_at: Mapped[datetime | None]

    account: Mapped[Account | None] = relationship(back_populates="users")


class ApiToken(Base):
    """An API token. Only a SHA-256 hash of the token is kept; the token is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    account_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="RESTRICT"), index=True
    )
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    last_used_ip: Mapped[str | None] = mapped_column(String(64))
    # For ``app`` tokens and the egress proxy: the environment a request without
    # X-Mutls-Environment uses, and the environments the token may use at all (empty: any).
    default_environment: Mapped[str | None] = mapped_column(String(64))
    environments: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")


class Secret(Base):
    """A named secret (certificate, oauth2 or string) with one value per environment."""

    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("namespace", "name", name="uq_secrets_namespace_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(32))
    account_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(128))
    secret_type: Mapped[str] = mapped_column(String(16), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    strict_expiry_enforcement: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default="0"
    )
    """When set, the egress proxy refuses to use an expired certificate (``secret_expired``)
    instead of using it with a warning."""
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime]

    values: Mapped[list[SecretValue]] = relationship(
        back_populates="secret", cascade="all, delete-orphan", passive_deletes=True
    )


class SecretValue(Base):
    """One version of a secret's value in one environment.

    Only the current version keeps its ciphertext and wrapped data key; replacing or deleting a
    value destroys both (crypto-erasure) and keeps the public metadata as history.
    """

    __tablename__ = "secret_values"
    __table_args__ = (
        UniqueConstraint(
            "secret_id", "environment", "version", name="uq_secret_values_secret_env_version"
        ),
        Index("ix_secret_values_key_version", "key_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    secret_id: Mapped[str] = mapped_column(ForeignKey("secrets.id", ondelete="CASCADE"))
    environment: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    current: Mapped[bool] = mapped_column(Boolean)
    ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_version: Mapped[int | None] = mapped_column(Integer)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    valid_until: Mapped[datetime | None] = mapped_column(index=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))
    destroyed_at: Mapped[datetime | None]

    secret: Mapped[Secret] = relationship(back_populates="values")


class CertificateAuthority(Base):
    """A CA whose certificates mutls accepts: the platform's own, or an account's (seed 004)."""

    __tablename__ = "certificate_authorities"
    __table_args__ = (
        UniqueConstraint("account_id", "fingerprint_sha256", name="uq_ca_account_fp"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="RESTRICT"), index=True
    )
    chain_pem: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    fingerprint_sha256: Mapped[str] = mapped_column(String(95))
    not_after: Mapped[datetime]
    subject_patterns: Mapped[list[str]] = mapped_column(JSON, default=list)
    crl_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))


class IssuedCertificate(Base):
    """A client certificate the platform CA issued to an account, with its lineage."""

    __tablename__ = "issued_certificates"
    __table_args__ = (
        UniqueConstraint("ca_id", "serial", name="uq_issued_certificates_ca_serial"),
        Index("ix_issued_certificates_account_expiry", "account_id", "not_after"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    ca_id: Mapped[str] = mapped_column(ForeignKey("certificate_authorities.id"))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="RESTRICT"))
    serial: Mapped[str] = mapped_column(String(42))
    subject: Mapped[str] = mapped_column(Text)
    sans: Mapped[list[str]] = mapped_column(JSON, default=list)
    fingerprint_sha256: Mapped[str] = mapped_column(String(95), unique=True)
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    certificate_pem: Mapped[str] = mapped_column(Text)
    api_versions: Mapped[list[str]] = mapped_column(JSON, default=list)
    renewed_from_id: Mapped[str | None] = mapped_column(ForeignKey("issued_certificates.id"))
    revoked_at: Mapped[datetime | None]
    revocation_reason: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))


class Route(Base):
    """A gateway route: which requests (host, path prefix, API version) go to which upstream, and
    what the caller must show. ``mutls.routing`` validates every field; the gateway reads these
    rows as ``mutls.policy.routing.Route`` values.

    ``match_key`` is the match tuple (host, prefix, version, version header) as one string, with
    an empty part for a missing value, so "no two routes match the same requests" is a plain
    unique constraint on both backends (a unique constraint over the nullable columns themselves
    would let any two rows with a NULL in them through).
    """

    __tablename__ = "gateway_routes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    host: Mapped[str | None] = mapped_column(String(253))
    path_prefix: Mapped[str] = mapped_column(String(512), default="/")
    api_version: Mapped[str | None] = mapped_column(String(64))
    version_header: Mapped[str | None] = mapped_column(String(64))
    match_key: Mapped[str] = mapped_column(String(900), unique=True)
    upstream_url: Mapped[str] = mapped_column(String(512))
    mtls: Mapped[str] = mapped_column(String(16))
    allowed_accounts: Mapped[list[str]] = mapped_column(JSON, default=list)
    authorization: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime]


class EgressRoute(Base):
    """An egress route (seed 002): where an app's plain request to the egress proxy goes, with
    which client certificate, OAuth2 credentials and headers. ``mutls.routing.egress`` validates
    every field; secrets are referred to by id (names are resolved when the route is saved).

    ``environments`` holds per-environment overrides (``target_url``, ``tls_servername``,
    ``tls_reject_unauthorized``); ``allowed_tokens`` the app tokens that may use the route
    (empty: every app token of the route's owner).
    """

    __tablename__ = "egress_routes"
    __table_args__ = (UniqueConstraint("namespace", "name", name="uq_egress_routes_namespace"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(32))
    account_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    target_url: Mapped[str] = mapped_column(String(2048))
    certificate_secret_id: Mapped[str | None] = mapped_column(String(32), index=True)
    oauth2_secret_id: Mapped[str | None] = mapped_column(String(32), index=True)
    ca_bundle_secret_id: Mapped[str | None] = mapped_column(String(32), index=True)
    oauth2_scopes: Mapped[list[str] | None] = mapped_column(JSON)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    tls_servername: Mapped[str | None] = mapped_column(String(253))
    tls_preset: Mapped[str] = mapped_column(String(16))
    tls_reject_unauthorized: Mapped[bool] = mapped_column(Boolean, default=True)
    environments: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    allowed_tokens: Mapped[list[str]] = mapped_column(JSON, default=list)
    timeout_seconds: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime]


class EgressRequest(Base):
    """One request through the egress proxy (seed 002's ``route_request_log``): which route,
    environment and app, which certificate version was presented, over which TLS, what came
    back. Never a key, passphrase, token, header value or query string. Written in batches off
    the request path; kept ``MUTLS_EGRESS_REQUEST_LOG_DAYS``.
    """

    __tablename__ = "egress_requests"
    __table_args__ = (
        Index("ix_egress_requests_at", "at"),
        Index("ix_egress_requests_route_at", "route_id", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    namespace: Mapped[str] = mapped_column(String(32))
    route_id: Mapped[str | None] = mapped_column(String(32))
    route_name: Mapped[str] = mapped_column(String(64))
    environment: Mapped[str | None] = mapped_column(String(64))
    token_id: Mapped[str | None] = mapped_column(String(32))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(512))
    status: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(64))
    upstream_status: Mapped[int | None] = mapped_column(Integer)
    certificate_secret_id: Mapped[str | None] = mapped_column(String(32))
    certificate_version: Mapped[int | None] = mapped_column(Integer)
    certificate_fingerprint: Mapped[str | None] = mapped_column(String(95))
    certificate_serial: Mapped[str | None] = mapped_column(String(42))
    oauth2_secret_id: Mapped[str | None] = mapped_column(String(32))
    oauth2_token: Mapped[str | None] = mapped_column(String(16))
    tls_version: Mapped[str | None] = mapped_column(String(16))
    tls_cipher: Mapped[str | None] = mapped_column(String(64))
    connection_reused: Mapped[bool | None] = mapped_column(Boolean)
    latency_ms: Mapped[float] = mapped_column(Float)
    bytes_sent: Mapped[int] = mapped_column(Integer, default=0)
    bytes_received: Mapped[int] = mapped_column(Integer, default=0)


class MasterKeyRecord(Base):
    """The state of one master key version. The key itself is never here, only a check value."""

    __tablename__ = "master_keys"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    state: Mapped[str] = mapped_column(String(16))
    check_value: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    retired_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AuditEvent(Base):
    """One hash-chained audit record. ``hash`` covers ``prev_hash`` and every other column."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_at", "at"),
        Index("ix_audit_events_resource", "resource_type", "resource_id"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))
    actor_role: Mapped[str | None] = mapped_column(String(32))
    account_id: Mapped[str | None] = mapped_column(String(32), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    resource_type: Mapped[str | None] = mapped_column(String(32))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    environment: Mapped[str | None] = mapped_column(String(64))
    source_ip: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's tip: the last sequence number and hash, and the row appenders lock on."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class ObservedCertificate(Base):
    """A certificate a data plane saw on the wire (issue 7 item 2): a partner's server
    certificate at the egress proxy (``partner_server``) or a client certificate presented at the
    gateway (``gateway_client``). One row per (kind, fingerprint), upserted in batches off the
    request path; public facts only, so the expiry inventory can list what no one uploaded.
    """

    __tablename__ = "observed_certificates"
    __table_args__ = (
        UniqueConstraint("kind", "fingerprint_sha256", name="uq_observed_certificates_kind_fp"),
        Index("ix_observed_certificates_not_after", "not_after"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    fingerprint_sha256: Mapped[str] = mapped_column(String(95))
    subject: Mapped[str] = mapped_column(Text)
    issuer: Mapped[str] = mapped_column(Text)
    serial: Mapped[str] = mapped_column(String(64))
    not_after: Mapped[datetime]
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    route: Mapped[str | None] = mapped_column(String(64))
    account_id: Mapped[str | None] = mapped_column(String(32), index=True)
    environment: Mapped[str | None] = mapped_column(String(64))


class ExpiryNotification(Base):
    """One expiry threshold crossed by one inventory item and notified (issue 7 item 3).

    The unique (item, threshold) pair is both the "never twice" memory across restarts and the
    claim that keeps two nodes checking at once from both sending.
    """

    __tablename__ = "expiry_notifications"
    __table_args__ = (
        UniqueConstraint("item_key", "threshold", name="uq_expiry_notifications_item_threshold"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_key: Mapped[str] = mapped_column(String(255))
    threshold: Mapped[int] = mapped_column(Integer)
    sent_at: Mapped[datetime]
