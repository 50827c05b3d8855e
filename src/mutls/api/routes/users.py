"""Users: create, list (by account), read, disable and enable."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from mutls.accounts import service
from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.api.auth import platform_of, requires
from mutls.api.errors import documented
from mutls.api.schemas import REF_PATTERN, UserCreate, UserList, UserOut
from mutls.store.models import User

__all__ = ["router", "user_out"]

router = APIRouter(prefix="/admin/users", tags=["users"], responses=documented(401, 403, 422, 503))

UserId = Annotated[str, Path(pattern=REF_PATTERN, description="the user's id (usr_...)")]
Reader = Annotated[Principal, requires(Permission.USERS_READ)]
Writer = Annotated[Principal, requires(Permission.USERS_WRITE)]


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        account_id=user.account_id,
        email=user.email,
        display_name=user.display_name,
        role=user.role,
        created_at=user.created_at,
        created_by=user.created_by,
        disabled=user.disabled_at is not None,
        disabled_at=user.disabled_at,
    )


@router.post("", status_code=201, response_model=UserOut, responses=documented(404, 409, 413))
def create_user(body: UserCreate, request: Request, principal: Writer) -> UserOut:
    """Create a user; without ``account_id`` a platform operator (platform-wide tokens only)."""
    platform = platform_of(request)
    user = service.create_user(
        platform.db,
        principal,
        email=body.email,
        display_name=body.display_name,
        role=body.role,
        account_id=body.account_id,
        now=platform.clock(),
    )
    return user_out(user)


@router.get("", response_model=UserList, responses=documented(404))
def list_users(
    request: Request,
    principal: Reader,
    account_id: Annotated[
        str | None, Query(pattern=REF_PATTERN, description="only this account's users")
    ] = None,
) -> UserList:
    """Users by e-mail address; an account-scoped token sees only its account's users."""
    users = service.list_users(platform_of(request).db, principal, account_id=account_id)
    return UserList(users=[user_out(u) for u in users])


@router.get("/{user_id}", response_model=UserOut, responses=documented(404))
def get_user(user_id: UserId, request: Request, principal: Reader) -> UserOut:
    """One user."""
    return user_out(service.get_user(platform_of(request).db, principal, user_id))


def _set_disabled(
    request: Request, principal: Principal, user_id: str, *, disabled: bool
) -> UserOut:
    platform = platform_of(request)
    user = service.set_user_disabled(
        platform.db, principal, user_id, disabled=disabled, now=platform.clock()
    )
    return user_out(user)


@router.post("/{user_id}/disable", response_model=UserOut, responses=documented(404))
def disable_user(user_id: UserId, request: Request, principal: Writer) -> UserOut:
    """Disable a user: their tokens stop working at once."""
    return _set_disabled(request, principal, user_id, disabled=True)


@router.post("/{user_id}/enable", response_model=UserOut, responses=documented(404))
def enable_user(user_id: UserId, request: Request, principal: Writer) -> UserOut:
    """Enable a disabled user again."""
    return _set_disabled(request, principal, user_id, disabled=False)
