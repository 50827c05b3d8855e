"""Vault secrets: create, list, read metadata, change settings, set or delete one environment's
value, delete.

No response here carries a secret value: the vault's views hold metadata only, and
``secret_out`` additionally drops any metadata key named like a secret field, so a slip in a
lower layer still cannot reach a client.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.api.auth import platform_of, requires
from mutls.api.errors import documented
from mutls.api.schemas import (
    ENVIRONMENT_PATTERN,
    NO_CONTROL,
    REF_PATTERN,
    EnvironmentOut,
    SecretCreate,
    SecretList,
    SecretOut,
    SecretType,
    SecretUpdate,
    SecretValueFields,
)
from mutls.vault import secrets as vault
from mutls.vault.secrets import DEFAULT_ENVIRONMENT, SecretView

__all__ = ["router", "secret_out"]

router = APIRouter(
    prefix="/admin/secrets", tags=["secrets"], responses=documented(401, 403, 422, 503)
)

SecretRef = Annotated[
    str, Path(pattern=REF_PATTERN, description="the secret's id (sec_...) or its name")
]
Environment = Annotated[
    str, Path(pattern=ENVIRONMENT_PATTERN, description="production, sandbox, or any name")
]
Reader = Annotated[Principal, requires(Permission.SECRETS_READ)]
Writer = Annotated[Principal, requires(Permission.SECRETS_WRITE)]

_SECRET_FIELD_NAMES = frozenset(
    {"private_key", "private_key_pem", "passphrase", "client_secret", "value", "pkcs12_base64"}
)


def _public(metadata: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in metadata.items() if k.lower() not in _SECRET_FIELD_NAMES}


def secret_out(view: SecretView) -> SecretOut:
    environments = {
        env: EnvironmentOut(
            version=item.version,
            created_at=item.created_at,
            created_by=item.created_by,
            metadata=_public(item.metadata),
        )
        for env, item in view.environments.items()
    }
    default = view.default_environment
    return SecretOut(
        id=view.id,
        name=view.name,
        secret_type=view.secret_type.value,
        account_id=view.account_id,
        description=view.description,
        created_at=view.created_at,
        created_by=view.created_by,
        updated_at=view.updated_at,
        default_environment=default,
        metadata=environments[default].metadata if default is not None else {},
        environments=environments,
        strict_expiry_enforcement=view.strict_expiry_enforcement,
    )


@router.post("", status_code=201, response_model=SecretOut, responses=documented(404, 409, 413))
def create_secret(body: SecretCreate, request: Request, principal: Writer) -> SecretOut:
    """Create a secret with a value for one environment (fields inline) or several
    (``environments``). The value is validated and parsed first: a bad upload is a 422 whose
    code names the problem, and nothing is written."""
    platform = platform_of(request)
    if body.environments is not None:
        values = {env: fields.to_fields() for env, fields in body.environments.items()}
    else:
        values = {body.environment or DEFAULT_ENVIRONMENT: body.inline_fields()}
    view = vault.create_secret(
        platform.db,
        platform.keys,
        principal,
        name=body.name,
        secret_type=body.secret_type,
        values=values,
        description=body.description,
        account_id=body.account_id,
        strict_expiry_enforcement=body.strict_expiry_enforcement,
        now=platform.clock(),
    )
    return secret_out(view)


@router.get("", response_model=SecretList, responses=documented(404))
def list_secrets(
    *,
    request: Request,
    principal: Reader,
    secret_type: Annotated[SecretType | None, Query(alias="type")] = None,
    name: Annotated[
        str | None,
        Query(max_length=128, pattern=NO_CONTROL, description="part of the name, any case"),
    ] = None,
    environment: Annotated[
        str | None,
        Query(pattern=ENVIRONMENT_PATTERN, description="only secrets with a value here"),
    ] = None,
    expiring_within_days: Annotated[
        int | None,
        Query(ge=0, le=36500, description="certificates whose validity ends within N days"),
    ] = None,
    account_id: Annotated[
        str | None, Query(pattern=REF_PATTERN, description="owner account (id or name)")
    ] = None,
) -> SecretList:
    """Secrets the caller may see, by name, with metadata (never values)."""
    platform = platform_of(request)
    views = vault.list_secrets(
        platform.db,
        principal,
        now=platform.clock(),
        secret_type=secret_type,
        name=name,
        environment=environment,
        expiring_within_days=expiring_within_days,
        account_id=account_id,
    )
    return SecretList(secrets=[secret_out(v) for v in views])


@router.get("/{ref}", response_model=SecretOut, responses=documented(404))
def get_secret(ref: SecretRef, request: Request, principal: Reader) -> SecretOut:
    """One secret's metadata: for certificates subject, issuer, serial, validity,
    days_remaining, expiry_status, fingerprint, has_private_key, has_passphrase; per environment."""
    platform = platform_of(request)
    return secret_out(vault.get_secret(platform.db, principal, ref, now=platform.clock()))


@router.patch("/{ref}", response_model=SecretOut, responses=documented(404, 413))
def update_secret(
    ref: SecretRef, body: SecretUpdate, request: Request, principal: Writer
) -> SecretOut:
    """Change a secret's settings, not its values: `description` and
    `strict_expiry_enforcement`. Fields left out keep their value; a change is audited as
    `secret.settings`, and a request that changes nothing writes nothing."""
    platform = platform_of(request)
    view = vault.update_secret(
        platform.db,
        principal,
        ref,
        description=body.description,
        strict_expiry_enforcement=body.strict_expiry_enforcement,
        now=platform.clock(),
    )
    return secret_out(view)


@router.put(
    "/{ref}/environments/{environment}",
    response_model=SecretOut,
    responses=documented(404, 413),
)
def set_value(
    ref: SecretRef,
    environment: Environment,
    body: SecretValueFields,
    request: Request,
    principal: Writer,
) -> SecretOut:
    """Create or replace one environment's value: a new version; the old one is destroyed."""
    platform = platform_of(request)
    view = vault.set_value(
        platform.db,
        platform.keys,
        principal,
        ref,
        environment=environment,
        fields=body.to_fields(),
        now=platform.clock(),
    )
    return secret_out(view)


@router.delete(
    "/{ref}/environments/{environment}", response_model=SecretOut, responses=documented(404)
)
def delete_value(
    ref: SecretRef, environment: Environment, request: Request, principal: Writer
) -> SecretOut:
    """Remove one environment's value; lookups for it then fail (environment_value_missing)."""
    platform = platform_of(request)
    view = vault.delete_value(platform.db, principal, ref, environment, now=platform.clock())
    return secret_out(view)


@router.delete("/{ref}", status_code=204, response_class=Response, responses=documented(404, 409))
def delete_secret(ref: SecretRef, request: Request, principal: Writer) -> Response:
    """Delete a secret and every version of its values (their data keys are destroyed)."""
    platform = platform_of(request)
    vault.delete_secret(platform.db, principal, ref, now=platform.clock())
    return Response(status_code=204)
