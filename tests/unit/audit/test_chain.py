"""The audit chain's arithmetic: every kind of tampering is named at the right row."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from mutls.audit.chain import GENESIS, BreakKind, RowContent, canonical_bytes, row_hash, walk

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def build(n: int) -> list[tuple[RowContent, str]]:
    rows: list[tuple[RowContent, str]] = []
    prev = GENESIS
    for seq in range(1, n + 1):
        content = RowContent(
            seq=seq,
            at=T0 + timedelta(seconds=seq),
            actor="token:tok_a",
            actor_role="admin",
            account_id=None,
            action="secret.create",
            outcome="ok",
            resource_type="secret",
            resource_id=f"sec_{seq}",
            environment="production",
            source_ip="127.0.0.1",
            details={"name": f"s{seq}", "n": seq},
            prev_hash=prev,
        )
        prev = row_hash(content)
        rows.append((content, prev))
    return rows


def check(rows: list[tuple[RowContent, str]], head: tuple[int, str] | None = None) -> object:
    head_seq, head_hash = head or (rows[-1][0].seq, rows[-1][1])
    return walk(rows, head_seq=head_seq, head_hash=head_hash)


def test_an_untouched_chain_verifies() -> None:
    rows = build(5)
    report = walk(rows, head_seq=5, head_hash=rows[-1][1])
    assert report.ok
    assert report.rows == 5


def test_an_empty_log_verifies_against_the_genesis_head() -> None:
    assert walk([], head_seq=0, head_hash=GENESIS).ok


def test_canonical_bytes_do_not_depend_on_dict_order_or_time_zone() -> None:
    a = build(1)[0][0]
    b = dataclasses.replace(
        a, details={"n": 1, "name": "s1"}, at=a.at.astimezone(datetime.now().astimezone().tzinfo)
    )
    assert canonical_bytes(a) == canonical_bytes(b)


@pytest.mark.parametrize(
    "field",
    ["actor", "action", "outcome", "resource_id", "environment", "source_ip", "details", "at"],
)
def test_altering_any_field_is_named_as_altered_at_that_row(field: str) -> None:
    rows = build(5)
    content, stored = rows[2]
    value: object = {
        "details": {"name": "forged"},
        "at": content.at + timedelta(seconds=1),
    }.get(field, "forged")
    rows[2] = (dataclasses.replace(content, **{field: value}), stored)  # type: ignore[arg-type]
    report = walk(rows, head_seq=5, head_hash=rows[-1][1])
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == (BreakKind.ALTERED, 3)


def test_deleting_a_middle_row_is_named() -> None:
    rows = build(5)
    del rows[1]
    report = walk(rows, head_seq=5, head_hash=rows[-1][1])
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == (BreakKind.DELETED, 2)
    assert "row 2 deleted" in report.first_break.message


def test_deleting_the_last_rows_is_caught_by_the_head() -> None:
    rows = build(5)
    report = walk(rows[:3], head_seq=5, head_hash=rows[-1][1])
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == (BreakKind.DELETED, 4)


def test_swapping_the_content_of_two_rows_is_caught() -> None:
    rows = build(5)
    (a, ha), (b, hb) = rows[1], rows[2]
    rows[1] = (dataclasses.replace(b, seq=2), hb)
    rows[2] = (dataclasses.replace(a, seq=3), ha)
    report = walk(rows, head_seq=5, head_hash=rows[-1][1])
    assert report.first_break is not None
    assert report.first_break.seq == 2


def test_a_row_rehashed_after_editing_still_breaks_the_next_link() -> None:
    rows = build(5)
    forged = dataclasses.replace(rows[1][0], action="secret.delete")
    rows[1] = (forged, row_hash(forged))
    report = walk(rows, head_seq=5, head_hash=rows[-1][1])
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == (BreakKind.REORDERED, 3)


def test_an_inserted_row_is_caught() -> None:
    rows = build(4)
    extra = dataclasses.replace(rows[1][0], action="secret.access")
    rows.insert(2, (extra, row_hash(extra)))
    report = walk(rows, head_seq=4, head_hash=rows[-1][1])
    assert report.first_break is not None
    assert report.first_break.seq == 2


def test_a_fully_rewritten_tail_is_caught_by_an_anchor() -> None:
    rows = build(5)
    anchor = (3, rows[2][1])
    # Rewrite from row 2 on, recomputing every hash: invisible without an anchor.
    forged: list[tuple[RowContent, str]] = [rows[0]]
    prev = rows[0][1]
    for content, _ in rows[1:]:
        new = dataclasses.replace(content, prev_hash=prev, actor="token:tok_evil")
        prev = row_hash(new)
        forged.append((new, prev))
    assert walk(forged, head_seq=5, head_hash=prev).ok
    report = walk(forged, head_seq=5, head_hash=prev, anchor=anchor)
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == (BreakKind.ANCHOR, 3)


def test_a_matching_anchor_passes() -> None:
    rows = build(5)
    assert walk(rows, head_seq=5, head_hash=rows[-1][1], anchor=(3, rows[2][1])).ok
