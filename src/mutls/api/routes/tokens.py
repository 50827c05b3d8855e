"""API tokens: issue (the only response with the token itself), list, read, revoke; whoami."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from mutls.accounts import service
from mutls.accounts.principal import Principal
from mutls.accounts.roles import ROLE_PERMISSIONS, Permission
from mutls.api.auth import platform_of, requires
from mutls.api.errors import documented
from mutls.api.schemas import REF_PATTERN, TokenCreate, TokenCreated, TokenList, TokenOut, WhoAmI
from mutls.store.models import ApiToken

__all__ = ["router", "token_out"]

router = APIRouter(prefix="/admin", tags=["tokens"], responses=documented(401, 403, 422, 503))

TokenId = Annotated[str, Path(pattern=REF_PATTERN, description="the token's id (tok_...)")]
Reader = Annotated[Principal, requires(Permission.TOKENS_READ)]
Writer = Annotated[Principal, requires(Permission.TOKENS_WRITE)]


def token_out(token: ApiToken) -> TokenOut:
    return TokenOut(
        id=token.id,
        name=token.name,
        role=token.role,
        account_id=token.account_id,
        user_id=token.user_id,
        prefix=token.prefix,
        created_at=token.created_at,
        created_by=token.created_by,
        expires_at=token.expires_at,
        revoked_at=token.revoked_at,
        last_used_at=token.last_used_at,
        last_used_ip=token.last_used_ip,
        default_environment=token.default_environment,
        environments=list(token.environments or ()),
    )


@router.get("/whoami", response_model=WhoAmI)
def whoami(request: Request, principal: Annotated[Principal, requires()]) -> WhoAmI:
    """The caller: role, account scope, token, and what the role may do."""
    return WhoAmI(
        actor=principal.actor,
        role=principal.role,
        account_id=principal.account_id,
        token_id=principal.token_id,
        user_id=principal.user_id,
        permissions=sorted(ROLE_PERMISSIONS[principal.role]),
    )


@router.post(
    "/tokens", status_code=201, response_model=TokenCreated, responses=documented(404, 413)
)
def create_token(body: TokenCreate, request: Request, principal: Writer) -> TokenCreated:
    """Issue a token. ``token`` in this response is the only time it is ever shown: only its
    hash is stored. A token never reaches further than its creator's account.
    ``default_environment`` and ``environments`` are for app tokens (422 `invalid_argument`
    on any other role)."""
    platform = platform_of(request)
    issued = service.create_token(
        platform.db,
        principal,
        name=body.name,
        role=body.role,
        account_id=body.account_id,
        user_id=body.user_id,
        expires_in_days=body.expires_in_days,
        default_environment=body.default_environment,
        environments=body.environments,
        now=platform.clock(),
    )
    return TokenCreated(**token_out(issued.record).model_dump(), token=issued.token)


@router.get("/tokens", response_model=TokenList)
def list_tokens(
    request: Request,
    principal: Reader,
    include_revoked: Annotated[bool, Query(description="also list revoked tokens")] = False,
) -> TokenList:
    """Tokens (never the tokens themselves: id, name, role, prefix, last use)."""
    tokens = service.list_tokens(
        platform_of(request).db, principal, include_revoked=include_revoked
    )
    return TokenList(tokens=[token_out(t) for t in tokens])


@router.get("/tokens/{token_id}", response_model=TokenOut, responses=documented(404))
def get_token(token_id: TokenId, request: Request, principal: Reader) -> TokenOut:
    """One token's record."""
    return token_out(service.get_token(platform_of(request).db, principal, token_id))


@router.delete("/tokens/{token_id}", response_model=TokenOut, responses=documented(404))
def revoke_token(token_id: TokenId, request: Request, principal: Writer) -> TokenOut:
    """Revoke a token: it stops working at once. Revoking twice is harmless."""
    platform = platform_of(request)
    return token_out(service.revoke_token(platform.db, principal, token_id, now=platform.clock()))
