"""The audit chain's arithmetic, sans-IO: canonical bytes, row hashes, and the verifying walk.

Each row stores ``prev_hash`` (the previous row's hash, or 64 zeros for the first) and
``hash = SHA-256(canonical JSON of every other column)``. Sequence numbers are consecutive, and the
``audit_head`` row keeps the tip. So:

- editing any column of a row breaks that row's hash (*altered*);
- deleting a row leaves a gap in the sequence, or a head that points past the last row
  (*deleted*);
- swapping two rows, or slipping one in, breaks a ``prev_hash`` link (*reordered* / *inserted*).

A hash chain proves order and integrity against edits made without recomputing every later hash.
Someone who can rewrite the whole tail can forge it; record the head (``mutls audit verify``
prints it) somewhere else and pass it back as an anchor to close that gap.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "GENESIS",
    "Break",
    "BreakKind",
    "ChainReport",
    "RowContent",
    "canonical_bytes",
    "row_hash",
    "walk",
]

GENESIS = "0" * 64


@dataclass(frozen=True, kw_only=True)
class RowContent:
    """Every hashed column of an audit row."""

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
    details: Mapping[str, object]
    prev_hash: str


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(row: RowContent) -> bytes:
    """Sorted-key, whitespace-free UTF-8 JSON; identical on SQLite and PostgreSQL."""
    doc = {
        "v": 1,
        "seq": row.seq,
        "at": _time(row.at),
        "actor": row.actor,
        "actor_role": row.actor_role,
        "account_id": row.account_id,
        "action": row.action,
        "outcome": row.outcome,
        "resource_type": row.resource_type,
        "resource_id": row.resource_id,
        "environment": row.environment,
        "source_ip": row.source_ip,
        "details": row.details,
        "prev_hash": row.prev_hash,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def row_hash(row: RowContent) -> str:
    return hashlib.sha256(canonical_bytes(row)).hexdigest()


class BreakKind(enum.StrEnum):
    ALTERED = "altered"
    DELETED = "deleted"
    REORDERED = "reordered_or_inserted"
    ANCHOR = "anchor_mismatch"


@dataclass(frozen=True, kw_only=True)
class Break:
    """The first place the chain does not hold."""

    kind: BreakKind
    seq: int
    message: str

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind.value, "seq": self.seq, "message": self.message}


@dataclass(frozen=True, kw_only=True)
class ChainReport:
    rows: int
    head_seq: int
    head_hash: str
    first_break: Break | None

    @property
    def ok(self) -> bool:
        return self.first_break is None

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "first_break": self.first_break.to_dict() if self.first_break else None,
        }


def walk(
    rows: Iterable[tuple[RowContent, str]],
    *,
    head_seq: int,
    head_hash: str,
    anchor: tuple[int, str] | None = None,
) -> ChainReport:
    """Check ``(content, stored hash)`` pairs in ``seq`` order against each other and the head."""
    expected_seq, expected_prev, count = 1, GENESIS, 0
    anchor_seen = anchor is None

    def report(found: Break | None) -> ChainReport:
        return ChainReport(rows=count, head_seq=head_seq, head_hash=head_hash, first_break=found)

    for content, stored in rows:
        count += 1
        if content.seq > expected_seq:
            gap = (
                f"row {expected_seq}"
                if content.seq == expected_seq + 1
                else f"rows {expected_seq}-{content.seq - 1}"
            )
            return report(Break(kind=BreakKind.DELETED, seq=expected_seq, message=f"{gap} deleted"))
        if content.seq < expected_seq:
            return report(
                Break(
                    kind=BreakKind.REORDERED,
                    seq=content.seq,
                    message=f"row {content.seq} appears after row {expected_seq - 1}",
                )
            )
        if row_hash(content) != stored:
            return report(
                Break(
                    kind=BreakKind.ALTERED,
                    seq=content.seq,
                    message=f"row {content.seq} was altered: its content does not match its hash",
                )
            )
        if content.prev_hash != expected_prev:
            return report(
                Break(
                    kind=BreakKind.REORDERED,
                    seq=content.seq,
                    message=(
                        f"row {content.seq} does not follow row {content.seq - 1}: "
                        "rows were reordered, inserted or deleted before it"
                    ),
                )
            )
        if anchor is not None and content.seq == anchor[0]:
            if stored != anchor[1]:
                return report(
                    Break(
                        kind=BreakKind.ANCHOR,
                        seq=content.seq,
                        message=(
                            f"row {content.seq} has hash {stored[:16]}..., the anchor says "
                            f"{anchor[1][:16]}...: the chain was rewritten from there on"
                        ),
                    )
                )
            anchor_seen = True
        expected_seq, expected_prev = content.seq + 1, stored

    last_seq = expected_seq - 1
    if head_seq > last_seq:
        return report(
            Break(
                kind=BreakKind.DELETED,
                seq=last_seq + 1,
                message=f"rows {last_seq + 1}-{head_seq} deleted from the end of the log",
            )
        )
    if head_seq < last_seq or head_hash != expected_prev:
        return report(
            Break(
                kind=BreakKind.REORDERED,
                seq=last_seq,
                message=f"the log's head (row {head_seq}) does not match its last row {last_seq}",
            )
        )
    if not anchor_seen and anchor is not None:
        return report(
            Break(
                kind=BreakKind.ANCHOR,
                seq=anchor[0],
                message=f"anchor row {anchor[0]} is not in the log",
            )
        )
    return report(None)
