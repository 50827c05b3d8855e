"""Request and response models of the admin API (pydantic v2); /openapi.json is built from them.

Requests forbid unknown fields, so a typo (``pasphrase``) is a 422 naming the field instead of a
silently ignored value. Strings that end up in the database refuse control characters, which
PostgreSQL cannot store (NUL) and no name or address needs. Secret fields are ``SecretStr``: they
print as ``**********`` in any repr or log line, and the schema marks them ``writeOnly``.

Responses never have a field that could carry a private key, passphrase, client secret or string
value; the metadata dictionaries come from the vault, which keeps only public facts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, model_validator

from mutls.accounts.roles import Permission, Role

__all__ = [
    "ENVIRONMENT_PATTERN",
    "NO_CONTROL",
    "REF_PATTERN",
    "AccountCreate",
    "AccountList",
    "AccountOut",
    "AuditAnchor",
    "AuditEventOut",
    "AuditPage",
    "AuditVerifyRequest",
    "CertificateIssue",
    "CertificateIssued",
    "CertificateList",
    "CertificateOut",
    "ChainBreakOut",
    "ChainReportOut",
    "DryRunOut",
    "EnvironmentOut",
    "ErrorDetail",
    "ErrorResponse",
    "FieldProblem",
    "Health",
    "MtlsSettingsOut",
    "MtlsSettingsUpdate",
    "RoleList",
    "RoleOut",
    "RuleViolationOut",
    "SecretCreate",
    "SecretList",
    "SecretOut",
    "SecretType",
    "SecretUpdate",
    "SecretValueFields",
    "TokenCreate",
    "TokenCreated",
    "TokenList",
    "TokenOut",
    "UserCreate",
    "UserList",
    "UserOut",
    "WhoAmI",
]

NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
NO_CONTROL_BUT_LINES = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"

Line = Annotated[str, StringConstraints(max_length=1000, pattern=NO_CONTROL)]
"""One line of printable text: names, e-mail addresses, URLs, ids."""
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_CONTROL)]
Multiline = Annotated[str, StringConstraints(max_length=2000, pattern=NO_CONTROL_BUT_LINES)]
Pem = Annotated[str, StringConstraints(max_length=256 * 1024)]
"""PEM text; what is inside is the loader's business (it names anything wrong)."""
SecretText = Annotated[SecretStr, Field(max_length=256 * 1024)]

SecretType = Literal["certificate", "oauth2", "string"]
RoleName = Literal["admin", "manage-mtls", "auditor", "app"]
ENVIRONMENT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
"""An id (``sec_...``, ``acc_...``, ``usr_...``, ``tok_...``) or a name, in a path or filter."""
EnvironmentName = Annotated[str, StringConstraints(pattern=ENVIRONMENT_PATTERN)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- errors --------------------------------------------------------------------------------


class FieldProblem(BaseModel):
    field: str
    problem: str
    type: str


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, machine-readable; never changes once released")
    message: str = Field(description="what was expected and what was found")
    hint: str = Field(description="how to fix it")
    fields: list[FieldProblem] | None = Field(
        default=None, description="for invalid_request: each field and its problem"
    )
    violations: list[dict[str, str]] | None = Field(
        default=None, description="for csr_policy_violation: every broken rule"
    )
    live_certificates: list[dict[str, str]] | None = Field(
        default=None,
        description="for certificate_quota_exceeded: the live certificates (serial, subject, "
        "not_after) that fill the quota",
    )


class ErrorResponse(BaseModel):
    error: ErrorDetail


# --- health and identity -------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    database: Literal["ok"]


class WhoAmI(BaseModel):
    actor: str
    role: Role
    account_id: str | None
    token_id: str | None
    user_id: str | None
    permissions: list[Permission]


class RoleOut(BaseModel):
    name: Role
    permissions: list[Permission]
    description: str


class RoleList(BaseModel):
    roles: list[RoleOut]


# --- secrets -------------------------------------------------------------------------------


class SecretValueFields(Request):
    """The fields of one environment's value; which ones apply depends on the secret type.

    certificate: ``certificate_pem`` (with its chain) and ``private_key_pem`` (+ ``passphrase``
    if encrypted), or one ``pkcs12_base64``; optionally ``chain_pem`` and ``ca_bundle_pem``.
    oauth2: ``token_url``, ``client_id``, ``client_secret`` (not with ``tls_client_auth``),
    ``scopes``, ``auth_method``, ``certificate_secret`` (a certificate secret's name or id, for
    mTLS), ``audience``. string: ``value``.
    """

    certificate_pem: Pem | None = None
    private_key_pem: SecretText | None = None
    passphrase: SecretText | None = None
    chain_pem: Pem | None = None
    ca_bundle_pem: Pem | None = None
    pkcs12_base64: SecretText | None = None
    token_url: Line | None = None
    client_id: Line | None = None
    client_secret: SecretText | None = None
    scopes: list[Line] | Line | None = Field(
        default=None, description="a list, or one space-separated string"
    )
    auth_method: Line | None = None
    certificate_secret: Line | None = None
    audience: Line | None = None
    value: SecretText | None = None

    def to_fields(self) -> dict[str, object]:
        """The fields that were sent, secrets unwrapped, for the vault (and nothing else)."""
        fields: dict[str, object] = {}
        for key, item in self:
            if item is None:
                continue
            fields[key] = item.get_secret_value() if isinstance(item, SecretStr) else item
        return fields


class SecretCreate(SecretValueFields):
    """A new secret: either one value (its fields inline, for ``environment``, default
    ``production``) or a value per environment in ``environments`` - not both."""

    name: Annotated[str, StringConstraints(pattern=REF_PATTERN)]
    secret_type: SecretType
    description: Multiline = ""
    account_id: Line | None = Field(
        default=None, description="owner account (id or name); platform-owned when omitted"
    )
    environment: EnvironmentName | None = None
    environments: dict[EnvironmentName, SecretValueFields] | None = Field(
        default=None, max_length=32
    )
    strict_expiry_enforcement: bool = Field(
        default=False,
        description="the egress proxy refuses an expired certificate of this secret "
        "(secret_expired) instead of using it with a warning",
    )

    @model_validator(mode="after")
    def _one_shape(self) -> SecretCreate:
        if self.environments is not None and (self.environment or self.inline_fields()):
            raise ValueError(
                "expected either value fields (with an optional environment) or environments, "
                "not both"
            )
        if self.environments is not None and not self.environments:
            raise ValueError("expected environments to name at least one environment")
        return self

    def inline_fields(self) -> dict[str, object]:
        fields = self.to_fields()
        for key in (
            "name",
            "secret_type",
            "description",
            "account_id",
            "environment",
            "strict_expiry_enforcement",
        ):
            fields.pop(key, None)
        fields.pop("environments", None)
        return fields


class EnvironmentOut(BaseModel):
    version: int
    created_at: datetime
    created_by: str
    metadata: dict[str, Any] = Field(
        description="public facts about the value: for a certificate its subject, issuer, "
        "serial, validity, days_remaining, expiry_status, fingerprint, has_private_key, "
        "has_passphrase; never the value itself"
    )


class SecretOut(BaseModel):
    id: str
    name: str
    secret_type: SecretType
    account_id: str | None
    description: str
    created_at: datetime
    created_by: str
    updated_at: datetime
    default_environment: str | None = Field(
        description="production when it has a value, else the first environment by name"
    )
    metadata: dict[str, Any] = Field(description="the default environment's metadata")
    environments: dict[str, EnvironmentOut]
    strict_expiry_enforcement: bool = Field(
        description="the egress proxy refuses an expired certificate of this secret"
    )


class SecretUpdate(Request):
    """A secret's settings (not its values): fields left out keep their value."""

    description: Multiline | None = Field(default=None, description="for people")
    strict_expiry_enforcement: bool | None = Field(
        default=None,
        description="true: the egress proxy refuses an expired certificate of this secret "
        "(secret_expired); false: it uses one with a warning",
    )


class SecretList(BaseModel):
    secrets: list[SecretOut]


# --- accounts, users, tokens ---------------------------------------------------------------


class AccountCreate(Request):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
    display_name: Name | None = None


class AccountOut(BaseModel):
    id: str
    name: str
    display_name: str
    created_at: datetime
    created_by: str


class AccountList(BaseModel):
    accounts: list[AccountOut]


class UserCreate(Request):
    email: Annotated[str, StringConstraints(min_length=3, max_length=254, pattern=NO_CONTROL)]
    display_name: Name | None = None
    role: RoleName
    account_id: Line | None = None


class UserOut(BaseModel):
    id: str
    account_id: str | None
    email: str
    display_name: str
    role: str
    created_at: datetime
    created_by: str
    disabled: bool
    disabled_at: datetime | None


class UserList(BaseModel):
    users: list[UserOut]


class TokenCreate(Request):
    name: Name
    role: RoleName
    account_id: Line | None = None
    user_id: Line | None = None
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)
    default_environment: EnvironmentName | None = Field(
        default=None,
        description="app tokens: the environment the egress proxy uses for a request without "
        "X-Mutls-Environment (else production, or the one environment of environments)",
    )
    environments: list[EnvironmentName] = Field(
        default_factory=list,
        max_length=32,
        description="app tokens: the only environments the token may use; empty: any",
    )


class TokenOut(BaseModel):
    id: str
    name: str
    role: str
    account_id: str | None
    user_id: str | None
    prefix: str = Field(description="the token's first characters, to tell tokens apart")
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    last_used_ip: str | None
    default_environment: str | None = Field(
        description="app tokens: the egress proxy's environment when a request names none"
    )
    environments: list[str] = Field(
        description="app tokens: the environments the token may use; empty: any"
    )


class TokenCreated(TokenOut):
    token: str = Field(description="the token itself; shown in this response only, never again")


class TokenList(BaseModel):
    tokens: list[TokenOut]


# --- audit ---------------------------------------------------------------------------------


class AuditEventOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    actor_role: str | None
    account_id: str | None
    action: str
    outcome: str
    resource_type: str | None
    resource_id: str | None
    environment: str | None
    source_ip: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    events: list[AuditEventOut]
    next_before_seq: int | None = Field(
        description="pass as before_seq for the next (older) page; null on the last page"
    )


class AuditAnchor(Request):
    seq: int = Field(ge=1, le=2**62)
    hash: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class AuditVerifyRequest(Request):
    anchor: AuditAnchor | None = Field(
        default=None,
        description="a head recorded earlier (seq and hash); the chain must still contain it",
    )


class ChainBreakOut(BaseModel):
    kind: str
    seq: int
    message: str


class ChainReportOut(BaseModel):
    ok: bool
    rows: int
    head_seq: int
    head_hash: str
    first_break: ChainBreakOut | None


# --- mTLS settings and issued certificates ---------------------------------------------------


class MtlsSettingsOut(BaseModel):
    account_id: str
    enabled: bool = Field(description="the account may hold certificates (seed 003's opt-in)")
    enforced: bool = Field(description="every request of the organisation must use mTLS")
    certificate_quota: int = Field(description="live certificates the account may hold at once")
    allowed_routes: list[str] = Field(description="routes or API versions the account may call")
    ip_allowlist: list[str] = Field(description="source CIDRs; empty allows every address")


class MtlsSettingsUpdate(Request):
    """A partial update: fields left out keep their value; a list given replaces the old one."""

    enabled: bool | None = None
    enforced: bool | None = None
    certificate_quota: int | None = None
    allowed_routes: list[Line] | None = Field(default=None, max_length=256)
    ip_allowlist: list[Line] | None = Field(default=None, max_length=256)


class CertificateIssue(Request):
    csr_pem: Pem = Field(description="the PKCS#10 CSR; the private key stays with the customer")
    validity_days: int | None = Field(
        default=None, description="1 to 398; 365 when left out (the service checks the range)"
    )
    api_versions: list[Line] = Field(
        default_factory=list, max_length=64, description="API versions the certificate may call"
    )
    dry_run: bool = Field(
        default=False,
        description="check every issuance rule and issue nothing: 200 with the result",
    )


class CertificateOut(BaseModel):
    id: str
    account_id: str
    ca_id: str
    serial: str = Field(description="upper-case hex, as `openssl x509 -serial` prints it")
    subject: str
    sans: list[str]
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime
    status: Literal["live", "expired", "revoked"]
    api_versions: list[str]
    renewed_from_id: str | None = Field(description="the certificate this one renewed")
    renewed_by_id: str | None = Field(description="the newest certificate renewed from this one")
    revoked_at: datetime | None
    revocation_reason: str | None
    created_at: datetime
    created_by: str
    certificate_pem: str


class CertificateIssued(CertificateOut):
    chain_pem: str = Field(description="the intermediate CA certificates, without the root")
    ca_pem: str = Field(description="the root CA certificate, for the customer's trust store")


class CertificateList(BaseModel):
    certificates: list[CertificateOut]


class RuleViolationOut(BaseModel):
    rule: str
    message: str


class DryRunOut(BaseModel):
    ok: bool = Field(description="true when the CSR breaks no issuance rule")
    subject: str
    sans: list[str]
    violations: list[RuleViolationOut]
