"""Writing, reading and verifying the audit log.

``record`` is called by every service inside the transaction that makes the change, so the change
and its audit row commit together or not at all. Appenders serialise on the single ``audit_head``
row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite write transactions are already exclusive
because mutls opens them with ``BEGIN IMMEDIATE``).

Every audited write in the platform passes through ``record`` and holds the head row from the
moment it reads it until its transaction commits, so the append is kept short: pre-built Core
statements rather than an ORM flush, and on PostgreSQL the event insert and the head update travel
as one statement (a data-modifying CTE), so the lock is held for two round trips and the commit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Engine, Select, bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from mutls.accounts.principal import Principal
from mutls.audit.chain import ChainReport, RowContent, row_hash, walk
from mutls.store.models import AuditEvent, AuditHead

__all__ = ["AuditQuery", "append", "content_of", "query", "record", "verify"]

# Details are free-form, but never secret: refuse the obvious slips at the source.
_FORBIDDEN_DETAIL_KEYS = frozenset(
    {
        "passphrase",
        "password",
        "private_key",
        "private_key_pem",
        "client_secret",
        "secret",
        "token",
        "value",
        "pkcs12_base64",
    }
)
_BATCH = 500

if TYPE_CHECKING:
    from sqlalchemy import Table

_events = cast("Table", AuditEvent.__table__)
_head = cast("Table", AuditHead.__table__)
# FOR UPDATE is left out by SQLite's compiler; there the write transaction is the lock.
_LOCK_HEAD = select(_head.c.seq, _head.c.hash).where(_head.c.id == 1).with_for_update()
_INSERT_EVENT = insert(_events).values(
    {column: bindparam(column.name, type_=column.type) for column in _events.c}
)
_UPDATE_HEAD = (
    update(_head)
    .where(_head.c.id == 1)
    .values(
        seq=bindparam("seq", type_=_head.c.seq.type),
        hash=bindparam("hash", type_=_head.c.hash.type),
    )
)
# PostgreSQL: ``WITH appended AS (INSERT INTO audit_events ...) UPDATE audit_head ...``, one round
# trip while the head row is locked instead of two.
_APPEND_AND_ADVANCE = _UPDATE_HEAD.add_cte(_INSERT_EVENT.cte("appended"))
CHANGES_CHANNEL = "mutls_changes"
_NOTIFY = text(f"SELECT pg_notify('{CHANGES_CHANNEL}', :seq)")


def record(
    session: Session,
    *,
    principal: Principal,
    action: str,
    now: datetime,
    outcome: str = "ok",
    account_id: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    environment: str | None = None,
    details: Mapping[str, object] | None = None,
) -> AuditEvent:
    """Append one row to the chain inside the caller's transaction; returns it as written (not
    attached to the session)."""
    # The caller's pending ORM changes go first, as they did when this appended through the ORM.
    session.flush()
    values = append(
        session.connection(),
        principal=principal,
        action=action,
        now=now,
        outcome=outcome,
        account_id=account_id,
        resource_type=resource_type,
        resource_id=resource_id,
        environment=environment,
        details=details,
    )
    return AuditEvent(**values)


def append(
    connection: Connection,
    *,
    principal: Principal,
    action: str,
    now: datetime,
    outcome: str = "ok",
    account_id: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    environment: str | None = None,
    details: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    """``record`` for a Core connection already inside a write transaction (the issuance hot
    path); returns the row's columns as written."""
    safe_details = dict(details or {})
    leaked = _FORBIDDEN_DETAIL_KEYS.intersection(k.lower() for k in safe_details)
    if leaked:  # a programming error, never user input
        raise ValueError(f"audit details must not carry secret fields: {sorted(leaked)}")
    head_seq, head_hash = connection.execute(_LOCK_HEAD).one()
    content = RowContent(
        seq=head_seq + 1,
        at=now,
        actor=principal.actor,
        actor_role=principal.role.value,
        account_id=account_id if account_id is not None else principal.account_id,
        action=action,
        outcome=outcome,
        resource_type=resource_type,
        resource_id=resource_id,
        environment=environment,
        source_ip=principal.source_ip,
        details=safe_details,
        prev_hash=head_hash,
    )
    values: dict[str, Any] = {
        "seq": content.seq,
        "at": content.at,
        "actor": content.actor,
        "actor_role": content.actor_role,
        "account_id": content.account_id,
        "action": content.action,
        "outcome": content.outcome,
        "resource_type": content.resource_type,
        "resource_id": content.resource_id,
        "environment": content.environment,
        "source_ip": content.source_ip,
        "details": safe_details,
        "prev_hash": content.prev_hash,
        "hash": row_hash(content),
    }
    if connection.dialect.name == "postgresql":
        connection.execute(_APPEND_AND_ADVANCE, values)
        # Data planes LISTEN on this channel and reload their snapshot; PostgreSQL delivers the
        # notification at commit, and drops it with a rollback.
        connection.execute(_NOTIFY, {"seq": str(values["seq"])})
    else:
        connection.execute(_INSERT_EVENT, values)
        connection.execute(_UPDATE_HEAD, {"seq": values["seq"], "hash": values["hash"]})
    return values


def content_of(event: AuditEvent) -> RowContent:
    return RowContent(
        seq=event.seq,
        at=event.at,
        actor=event.actor,
        actor_role=event.actor_role,
        account_id=event.account_id,
        action=event.action,
        outcome=event.outcome,
        resource_type=event.resource_type,
        resource_id=event.resource_id,
        environment=event.environment,
        source_ip=event.source_ip,
        details=event.details,
        prev_hash=event.prev_hash,
    )


@dataclass(frozen=True, kw_only=True)
class AuditQuery:
    """Filters for reading the log, newest first."""

    action: str | None = None
    actor: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    environment: str | None = None
    account_id: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_seq: int | None = None
    limit: int = 100


def query(session: Session, principal: Principal, filters: AuditQuery) -> list[AuditEvent]:
    """Matching rows, newest first; an account-scoped caller sees only its own account's rows."""
    stmt: Select[AuditEvent] = select(AuditEvent).order_by(AuditEvent.seq.desc())
    if principal.account_id is not None:
        stmt = stmt.where(AuditEvent.account_id == principal.account_id)
    exact = {
        AuditEvent.action: filters.action,
        AuditEvent.actor: filters.actor,
        AuditEvent.resource_type: filters.resource_type,
        AuditEvent.resource_id: filters.resource_id,
        AuditEvent.environment: filters.environment,
        AuditEvent.account_id: filters.account_id,
        AuditEvent.outcome: filters.outcome,
    }
    for column, wanted in exact.items():
        if wanted is not None:
            stmt = stmt.where(column == wanted)
    if filters.since is not None:
        stmt = stmt.where(AuditEvent.at >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(AuditEvent.at < filters.until)
    if filters.before_seq is not None:
        stmt = stmt.where(AuditEvent.seq < filters.before_seq)
    return list(session.execute(stmt.limit(filters.limit)).scalars())


def verify(session: Session, *, anchor: tuple[int, str] | None = None) -> ChainReport:
    """Walk the whole chain in batches and name the first altered, deleted or moved row.

    The walk reads one snapshot: on PostgreSQL the transaction is REPEATABLE READ (SQLite's read
    transactions already are), so rows appended while it runs cannot look like a broken head.
    """
    bind = session.get_bind()
    if bind.dialect.name == "postgresql" and isinstance(bind, Engine):
        with (
            bind.connect().execution_options(isolation_level="REPEATABLE READ") as connection,
            Session(bind=connection) as snapshot,
        ):
            return _verify(snapshot, anchor)
    return _verify(session, anchor)


def _verify(session: Session, anchor: tuple[int, str] | None) -> ChainReport:
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()

    def rows() -> Iterator[tuple[RowContent, str]]:
        after = 0
        while True:
            batch = list(
                session.execute(
                    select(AuditEvent)
                    .where(AuditEvent.seq > after)
                    .order_by(AuditEvent.seq)
                    .limit(_BATCH)
                ).scalars()
            )
            if not batch:
                return
            for event in batch:
                yield content_of(event), event.hash
            after = batch[-1].seq
            session.expunge_all()

    return walk(rows(), head_seq=head.seq, head_hash=head.hash, anchor=anchor)
