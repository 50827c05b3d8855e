"""Accounts, users and API tokens: one business operation per call, audited in its transaction."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission, Role
from mutls.accounts.tokens import DISPLAY_PREFIX_LENGTH, hash_token, looks_like_token, new_token
from mutls.audit.log import record
from mutls.errors import (
    AccountNotFound,
    AuthenticationRequired,
    InvalidArgument,
    InvalidToken,
    NameTaken,
    PermissionDenied,
    TokenNotFound,
    UserNotFound,
)
from mutls.store.database import Database
from mutls.store.ids import new_id
from mutls.store.models import Account, ApiToken, User

__all__ = [
    "ANONYMOUS",
    "TOKEN_USE_AUDIT_INTERVAL",
    "IssuedToken",
    "authenticate",
    "create_account",
    "create_token",
    "create_user",
    "find_account",
    "get_account",
    "get_token",
    "get_user",
    "list_accounts",
    "list_tokens",
    "list_users",
    "record_denied",
    "revoke_token",
    "set_user_disabled",
]

ACCOUNT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
EMAIL = re.compile(
    r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]{1,189}\.[^@\s\x00-\x1f\x7f]{1,63}$"
)
MAX_TOKEN_DAYS = 3650
TOKEN_USE_AUDIT_INTERVAL = timedelta(minutes=5)
"""A token's use is written to the audit log at most this often per token and source address;
every change it makes is audited in full regardless."""
_LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True, kw_only=True)
class IssuedToken:
    """A new token: the stored record and the plaintext, which is shown exactly once."""

    record: ApiToken
    token: str

    def __repr__(self) -> str:
        return f"IssuedToken(id={self.record.id!r}, token=<redacted>)"


def _text(value: str, field: str, *, max_length: int) -> str:
    value = value.strip()
    if not value or len(value) > max_length or any(ord(c) < 32 for c in value):
        raise InvalidArgument(
            f"expected {field} of 1-{max_length} printable characters; found {len(value)} "
            "characters" + (" with control characters" if value else "")
        )
    return value


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidArgument(
            f"expected role to be one of {', '.join(r.value for r in Role)}; found {value!r}"
        ) from None


# --- accounts ------------------------------------------------------------------------------


def create_account(
    db: Database, principal: Principal, *, name: str, display_name: str | None, now: datetime
) -> Account:
    principal.require(Permission.ACCOUNTS_WRITE)
    if principal.account_id is not None:
        raise PermissionDenied(
            "expected a platform-wide admin token to create accounts; this token is scoped to "
            f"account {principal.account_id}"
        )
    if not ACCOUNT_NAME.fullmatch(name):
        raise InvalidArgument(
            f"expected an account name of lowercase letters, digits and '-', 1-63 long, "
            f"starting with a letter or digit; found {name!r}",
            hint="for example: acme-bank",
        )
    account = Account(
        id=new_id("acc"),
        name=name,
        display_name=_text(display_name or name, "display_name", max_length=200),
        created_at=now,
        created_by=principal.actor,
    )
    try:
        with db.write() as session:
            if session.execute(select(Account.id).where(Account.name == name)).first():
                raise NameTaken(f"expected a new account name; account {name!r} already exists")
            session.add(account)
            session.flush()
            record(
                session,
                principal=principal,
                action="account.create",
                account_id=account.id,
                resource_type="account",
                resource_id=account.id,
                details={"name": name},
                now=now,
            )
    except IntegrityError:
        raise NameTaken(f"expected a new account name; account {name!r} already exists") from None
    return account


def find_account(
    session: Session, principal: Principal, ref: str, *, lock: bool = False
) -> Account:
    """An account by id or name, as the caller may see it: another account's is "not found".

    ``lock`` takes the row lock (``SELECT ... FOR UPDATE``) that serialises changes counted
    against the account, such as its certificate quota.
    """
    stmt = select(Account).where((Account.id == ref) | (Account.name == ref))
    if lock:
        stmt = stmt.with_for_update()
    account = session.execute(stmt).scalar()
    if account is None or not principal.sees(account.id):
        raise AccountNotFound(f"expected an account with id {ref!r}; there is none")
    return account


def get_account(db: Database, principal: Principal, account_id: str) -> Account:
    """By id or by name."""
    principal.require(Permission.ACCOUNTS_READ)
    with db.read() as session:
        return find_account(session, principal, account_id)


def list_accounts(db: Database, principal: Principal) -> list[Account]:
    principal.require(Permission.ACCOUNTS_READ)
    with db.read() as session:
        stmt = select(Account).order_by(Account.name)
        if principal.account_id is not None:
            stmt = stmt.where(Account.id == principal.account_id)
        return list(session.execute(stmt).scalars())


# --- users ---------------------------------------------------------------------------------


def create_user(
    db: Database,
    principal: Principal,
    *,
    email: str,
    display_name: str | None,
    role: str,
    account_id: str | None,
    now: datetime,
) -> User:
    principal.require(Permission.USERS_WRITE)
    chosen = _role(role)
    email = email.strip().lower()
    if not EMAIL.fullmatch(email) or len(email) > 254:
        raise InvalidArgument(f"expected an e-mail address like ops@example.com; found {email!r}")
    if principal.account_id is not None:
        if account_id not in (None, principal.account_id):
            raise AccountNotFound(f"expected an account with id {account_id!r}; there is none")
        account_id = principal.account_id
    user = User(
        id=new_id("usr"),
        email=email,
        display_name=_text(display_name or email, "display_name", max_length=200),
        role=chosen.value,
        created_at=now,
        created_by=principal.actor,
    )
    try:
        with db.write() as session:
            if account_id is not None:
                user.account_id = find_account(session, principal, account_id).id
            if session.execute(select(User.id).where(User.email == email)).first():
                raise NameTaken(f"expected a new e-mail address; {email} already has a user")
            session.add(user)
            session.flush()
            record(
                session,
                principal=principal,
                action="user.create",
                account_id=user.account_id,
                resource_type="user",
                resource_id=user.id,
                details={"email": email, "role": chosen.value},
                now=now,
            )
    except IntegrityError:
        raise NameTaken(f"expected a new e-mail address; {email} already has a user") from None
    return user


def _user(session: Session, principal: Principal, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None or not principal.sees(user.account_id):
        raise UserNotFound(f"expected a user with id {user_id!r}; there is none")
    return user


def get_user(db: Database, principal: Principal, user_id: str) -> User:
    principal.require(Permission.USERS_READ)
    with db.read() as session:
        return _user(session, principal, user_id)


def list_users(db: Database, principal: Principal, *, account_id: str | None = None) -> list[User]:
    principal.require(Permission.USERS_READ)
    with db.read() as session:
        stmt = select(User).order_by(User.email)
        if principal.account_id is not None:
            stmt = stmt.where(User.account_id == principal.account_id)
        if account_id is not None:
            stmt = stmt.where(User.account_id == find_account(session, principal, account_id).id)
        return list(session.execute(stmt).scalars())


def set_user_disabled(
    db: Database, principal: Principal, user_id: str, *, disabled: bool, now: datetime
) -> User:
    """Disable (or re-enable) a user; a disabled user's tokens stop working at once."""
    principal.require(Permission.USERS_WRITE)
    with db.write() as session:
        user = _user(session, principal, user_id)
        user.disabled_at = now if disabled else None
        record(
            session,
            principal=principal,
            action="user.disable" if disabled else "user.enable",
            account_id=user.account_id,
            resource_type="user",
            resource_id=user.id,
            now=now,
        )
    return user


# --- tokens --------------------------------------------------------------------------------


def create_token(
    db: Database,
    principal: Principal,
    *,
    name: str,
    role: str,
    account_id: str | None = None,
    user_id: str | None = None,
    expires_in_days: int | None = None,
    default_environment: str | None = None,
    environments: Sequence[str] = (),
    now: datetime,
) -> IssuedToken:
    """Issue a token. It can never reach further than the caller: same account scope or narrower.

    ``default_environment`` and ``environments`` are for ``app`` tokens: the environment the
    egress proxy uses when a request names none (else ``production``), and the only environments
    the token may use (empty: any)."""
    principal.require(Permission.TOKENS_WRITE)
    chosen = _role(role)
    name = _text(name, "name", max_length=200)
    default_environment, allowed = _token_environments(chosen, default_environment, environments)
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_TOKEN_DAYS:
        raise InvalidArgument(
            f"expected expires_in_days between 1 and {MAX_TOKEN_DAYS}; found {expires_in_days}"
        )
    if principal.account_id is not None:
        if account_id not in (None, principal.account_id):
            raise AccountNotFound(f"expected an account with id {account_id!r}; there is none")
        account_id = principal.account_id
    plaintext = new_token()
    token = ApiToken(
        id=new_id("tok"),
        name=name,
        role=chosen.value,
        token_hash=hash_token(plaintext),
        prefix=plaintext[:DISPLAY_PREFIX_LENGTH],
        created_at=now,
        created_by=principal.actor,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
        default_environment=default_environment,
        environments=allowed,
    )
    with db.write() as session:
        if account_id is not None:
            token.account_id = find_account(session, principal, account_id).id
        if user_id is not None:
            user = _user(session, principal, user_id)
            if user.account_id != token.account_id:
                raise InvalidArgument(
                    f"expected the token's account to be the user's account "
                    f"({user.account_id or 'platform'}); found {token.account_id or 'platform'}"
                )
            if user.role != chosen.value:
                raise InvalidArgument(
                    f"expected role {user.role} (the user's role); found {chosen.value}",
                    hint="a token carries its user's role; change the user's role first",
                )
            if user.disabled_at is not None:
                raise InvalidArgument(f"expected an active user; user {user.id} is disabled")
            token.user_id = user.id
        session.add(token)
        session.flush()
        record(
            session,
            principal=principal,
            action="token.create",
            account_id=token.account_id,
            resource_type="token",
            resource_id=token.id,
            details={
                "name": name,
                "role": chosen.value,
                "prefix": token.prefix,
                **({"default_environment": default_environment} if default_environment else {}),
                **({"environments": allowed} if allowed else {}),
            },
            now=now,
        )
    return IssuedToken(record=token, token=plaintext)


_ENVIRONMENT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_TOKEN_ENVIRONMENTS = 32


def _token_environments(
    role: Role, default: str | None, environments: Sequence[str]
) -> tuple[str | None, list[str]]:
    if isinstance(environments, str):
        environments = [environments]
    names = [*environments, *([default] if default else [])]
    for env in names:
        if not isinstance(env, str) or not _ENVIRONMENT.fullmatch(env):
            raise InvalidArgument(
                "expected environment names of lower-case letters, digits, '-' and '_' (up to "
                f"64), like production or sandbox; found {str(env)[:80]!r}"
            )
    if (default or environments) and role is not Role.APP:
        raise InvalidArgument(
            f"expected default_environment and environments only on app tokens; this token's "
            f"role is {role.value}",
            hint="environments choose egress proxy values; admin API tokens see every environment",
        )
    allowed = sorted(set(environments))
    if len(allowed) > MAX_TOKEN_ENVIRONMENTS:
        raise InvalidArgument(
            f"expected at most {MAX_TOKEN_ENVIRONMENTS} environments; found {len(allowed)}"
        )
    if default and allowed and default not in allowed:
        raise InvalidArgument(
            f"expected default_environment to be one of the token's environments "
            f"({', '.join(allowed)}); found {default!r}"
        )
    if not default and len(allowed) == 1:
        default = allowed[0]  # a sandbox-only token defaults to the sandbox
    return default or None, allowed


def _token(session: Session, principal: Principal, token_id: str) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None or not principal.sees(token.account_id):
        raise TokenNotFound(f"expected a token with id {token_id!r}; there is none")
    return token


def get_token(db: Database, principal: Principal, token_id: str) -> ApiToken:
    principal.require(Permission.TOKENS_READ)
    with db.read() as session:
        return _token(session, principal, token_id)


def list_tokens(
    db: Database, principal: Principal, *, include_revoked: bool = False
) -> list[ApiToken]:
    principal.require(Permission.TOKENS_READ)
    with db.read() as session:
        stmt = select(ApiToken).order_by(ApiToken.created_at)
        if principal.account_id is not None:
            stmt = stmt.where(ApiToken.account_id == principal.account_id)
        if not include_revoked:
            stmt = stmt.where(ApiToken.revoked_at.is_(None))
        return list(session.execute(stmt).scalars())


def revoke_token(db: Database, principal: Principal, token_id: str, *, now: datetime) -> ApiToken:
    principal.require(Permission.TOKENS_WRITE)
    with db.write() as session:
        token = _token(session, principal, token_id)
        if token.revoked_at is None:
            token.revoked_at = now
            record(
                session,
                principal=principal,
                action="token.revoke",
                account_id=token.account_id,
                resource_type="token",
                resource_id=token.id,
                details={"name": token.name, "prefix": token.prefix},
                now=now,
            )
    return token


def authenticate(
    db: Database, presented: str | None, *, source_ip: str | None, now: datetime
) -> Principal:
    """Turn a presented bearer token into a Principal, or refuse with a 401-class error."""
    if not presented:
        raise AuthenticationRequired(
            "expected an API token in `Authorization: Bearer ...`; found none"
        )
    if not looks_like_token(presented):
        raise InvalidToken(
            "expected a mutls API token (mutls_ followed by 43 characters); found something else"
        )
    digest = hash_token(presented)
    with db.read() as session:
        token = session.execute(select(ApiToken).where(ApiToken.token_hash == digest)).scalar()
        user = session.get(User, token.user_id) if token is not None and token.user_id else None
    if token is None:
        raise InvalidToken("expected a known API token; this one is not (mistyped or deleted)")
    if token.revoked_at is not None:
        raise InvalidToken(
            f"expected an active API token; token {token.id} ({token.prefix}...) "
            f"was revoked on {token.revoked_at:%Y-%m-%d}"
        )
    if token.expires_at is not None and token.expires_at <= now:
        raise InvalidToken(
            f"expected an unexpired API token; token {token.id} expired on "
            f"{token.expires_at:%Y-%m-%d}",
            hint="ask an admin for a new token",
        )
    if user is not None and user.disabled_at is not None:
        raise InvalidToken(f"expected an active user; the user of token {token.id} is disabled")
    principal = Principal(
        actor=f"token:{token.id}",
        role=Role(token.role),
        account_id=token.account_id,
        token_id=token.id,
        user_id=token.user_id,
        source_ip=source_ip,
    )
    _note_use(db, principal, token, now=now)
    return principal


def _note_use(db: Database, principal: Principal, token: ApiToken, *, now: datetime) -> None:
    """Keep last-used fresh to the minute and audit a use per interval, without a write per call."""
    last, same_ip = token.last_used_at, token.last_used_ip == principal.source_ip
    if last is not None and same_ip and now - last < _LAST_USED_RESOLUTION:
        return
    with db.write() as session:
        row = session.get(ApiToken, token.id)
        if row is None:  # deleted between the read and this write
            return
        audit = (
            row.last_used_at is None
            or row.last_used_ip != principal.source_ip
            or (now - row.last_used_at >= TOKEN_USE_AUDIT_INTERVAL)
        )
        row.last_used_at, row.last_used_ip = now, principal.source_ip
        if audit:
            record(
                session,
                principal=principal,
                action="token.use",
                resource_type="token",
                resource_id=token.id,
                now=now,
            )


ANONYMOUS = "anonymous"


def record_denied(
    db: Database,
    *,
    action: str,
    principal: Principal | None,
    presented: str | None = None,
    source_ip: str | None,
    details: Mapping[str, object] | None = None,
    now: datetime,
) -> None:
    """Audit a refused request (outcome ``denied``) in a transaction of its own.

    A permission denial names the authenticated ``principal``. A failed authentication has none:
    the row then names the presented token when it is one of ours (revoked, expired, or of a
    disabled user), so its owner's account sees the attempt, and otherwise the actor
    ``anonymous`` with the least-privileged role (``app``), because every audit row carries a
    role. The presented value itself is only ever hashed, never written.
    """
    with db.write() as session:
        actor, token_id = principal, None
        if actor is None:
            token = None
            if presented and looks_like_token(presented):
                token = session.execute(
                    select(ApiToken).where(ApiToken.token_hash == hash_token(presented))
                ).scalar()
            if token is not None:
                token_id = token.id
                actor = Principal(
                    actor=f"token:{token.id}",
                    role=Role(token.role),
                    account_id=token.account_id,
                    token_id=token.id,
                    user_id=token.user_id,
                    source_ip=source_ip,
                )
            else:
                actor = Principal(actor=ANONYMOUS, role=Role.APP, source_ip=source_ip)
        record(
            session,
            principal=actor,
            action=action,
            outcome="denied",
            resource_type="token" if token_id else None,
            resource_id=token_id,
            details=details,
            now=now,
        )
