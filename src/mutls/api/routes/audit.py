"""The audit log: filtered reading, newest first, and verification of the hash chain."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.api.auth import platform_of, requires
from mutls.api.errors import documented
from mutls.api.schemas import (
    NO_CONTROL,
    AuditEventOut,
    AuditPage,
    AuditVerifyRequest,
    ChainBreakOut,
    ChainReportOut,
)
from mutls.audit.log import AuditQuery, query, verify
from mutls.errors import InvalidArgument
from mutls.store.models import AuditEvent

__all__ = ["router"]

router = APIRouter(prefix="/admin/audit", tags=["audit"], responses=documented(401, 403, 422, 503))

Reader = Annotated[Principal, requires(Permission.AUDIT_READ)]
Verifier = Annotated[Principal, requires(Permission.AUDIT_READ, platform_wide=True)]
Filter = Annotated[str | None, Query(max_length=128, pattern=NO_CONTROL)]
MAX_SEQ = 2**62


def _utc(value: datetime | None, name: str) -> datetime | None:
    """In UTC, or a 422: a time near the calendar's edge cannot be moved to UTC or stored."""
    if value is None:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidArgument(
            f"expected {name} as an ISO 8601 time between years 1 and 9999 in UTC; found one "
            "outside that range"
        ) from None


def event_out(event: AuditEvent) -> AuditEventOut:
    return AuditEventOut(
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
        details=dict(event.details),
        prev_hash=event.prev_hash,
        hash=event.hash,
    )


@router.get("", response_model=AuditPage)
def list_events(
    *,
    request: Request,
    principal: Reader,
    action: Filter = None,
    actor: Filter = None,
    resource_type: Filter = None,
    resource_id: Filter = None,
    environment: Filter = None,
    account_id: Filter = None,
    outcome: Filter = None,
    since: Annotated[AwareDatetime | None, Query(description="from this time (inclusive)")] = None,
    until: Annotated[AwareDatetime | None, Query(description="before this time")] = None,
    before_seq: Annotated[
        int | None, Query(ge=1, le=MAX_SEQ, description="older than this row (paging)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    """Audit rows, newest first. An account-scoped token sees its own account's rows only."""
    platform = platform_of(request)
    filters = AuditQuery(
        action=action,
        actor=actor,
        resource_type=resource_type,
        resource_id=resource_id,
        environment=environment,
        account_id=account_id,
        outcome=outcome,
        since=_utc(since, "since"),
        until=_utc(until, "until"),
        before_seq=before_seq,
        limit=limit,
    )
    with platform.db.read() as session:
        events = [event_out(e) for e in query(session, principal, filters)]
    more = len(events) == limit and events[-1].seq > 1
    return AuditPage(events=events, next_before_seq=events[-1].seq if more else None)


@router.post("/verify", response_model=ChainReportOut, responses=documented(413))
def verify_chain(
    request: Request, principal: Verifier, body: AuditVerifyRequest | None = None
) -> ChainReportOut:
    """Walk the whole chain and name the first altered, deleted or inserted row. Always 200;
    ``ok`` says whether the chain holds. Needs a platform-wide token: the chain spans accounts."""
    platform = platform_of(request)
    anchor = (body.anchor.seq, body.anchor.hash) if body and body.anchor else None
    with platform.db.read() as session:
        report = verify(session, anchor=anchor)
    broken = report.first_break
    return ChainReportOut(
        ok=report.ok,
        rows=report.rows,
        head_seq=report.head_seq,
        head_hash=report.head_hash,
        first_break=(
            ChainBreakOut(kind=broken.kind.value, seq=broken.seq, message=broken.message)
            if broken
            else None
        ),
    )
