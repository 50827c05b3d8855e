"""The audit log on real databases: written with the change, hash-chained, tamper-evident."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from mutls.accounts.principal import Principal
from mutls.audit.chain import BreakKind
from mutls.audit.log import AuditQuery, query, record, verify
from mutls.store.database import Database

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ADMIN = Principal.system("test:admin", source_ip="127.0.0.1")


def fill(db: Database, n: int) -> None:
    for i in range(n):
        with db.write() as session:
            record(
                session,
                principal=ADMIN,
                action="secret.create",
                resource_type="secret",
                resource_id=f"sec_{i}",
                details={"name": f"n{i}", "i": i},
                now=NOW,
            )


def test_records_chain_and_verify(db: Database) -> None:
    fill(db, 5)
    with db.read() as session:
        report = verify(session)
        events = query(session, ADMIN, AuditQuery())
    assert report.ok
    assert (report.rows, report.head_seq) == (5, 5)
    assert [e.seq for e in events] == [5, 4, 3, 2, 1]
    assert events[-1].prev_hash == "0" * 64
    assert events[0].source_ip == "127.0.0.1"


def test_audit_row_rolls_back_with_the_change(db: Database) -> None:
    """No change, no audit: a failing transaction leaves neither."""

    def failing_change() -> None:
        with db.write() as session:
            record(session, principal=ADMIN, action="secret.create", now=NOW)
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        failing_change()
    with db.read() as session:
        assert query(session, ADMIN, AuditQuery()) == []
        assert verify(session).ok


def test_editing_a_row_in_the_database_is_detected(db: Database) -> None:
    fill(db, 4)
    with db.write() as session:
        session.execute(text("UPDATE audit_events SET actor = 'token:tok_someone' WHERE seq = 2"))
    with db.read() as session:
        report = verify(session)
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == (BreakKind.ALTERED, 2)


def test_deleting_a_row_in_the_database_is_detected(db: Database) -> None:
    fill(db, 4)
    with db.write() as session:
        session.execute(text("DELETE FROM audit_events WHERE seq = 3"))
    with db.read() as session:
        report = verify(session)
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == (BreakKind.DELETED, 3)


def test_deleting_the_newest_row_is_detected(db: Database) -> None:
    fill(db, 4)
    with db.write() as session:
        session.execute(text("DELETE FROM audit_events WHERE seq = 4"))
    with db.read() as session:
        report = verify(session)
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == (BreakKind.DELETED, 4)


def test_reordering_two_rows_in_the_database_is_detected(db: Database) -> None:
    fill(db, 4)
    with db.write() as session:
        session.execute(text("UPDATE audit_events SET seq = 100 WHERE seq = 2"))
        session.execute(text("UPDATE audit_events SET seq = 2 WHERE seq = 3"))
        session.execute(text("UPDATE audit_events SET seq = 3 WHERE seq = 100"))
    with db.read() as session:
        report = verify(session)
    assert report.first_break is not None
    assert report.first_break.seq == 2


def test_concurrent_writers_keep_one_unbroken_chain(db: Database) -> None:
    """Eight threads appending at once never fork the chain or reuse a sequence number."""
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(15):
                with db.write() as session:
                    record(
                        session,
                        principal=ADMIN,
                        action="token.use",
                        details={"writer": n, "i": i},
                        now=NOW,
                    )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.read() as session:
        report = verify(session)
    assert report.ok, report.first_break
    assert report.rows == 120


def test_secret_fields_are_refused_in_details(db: Database) -> None:
    with pytest.raises(ValueError, match="must not carry secret fields"), db.write() as session:
        record(session, principal=ADMIN, action="x", details={"passphrase": "p"}, now=NOW)


def test_account_scoped_reader_sees_only_its_account(db: Database) -> None:
    with db.write() as session:
        record(session, principal=ADMIN, action="a", account_id="acc_one", now=NOW)
        record(session, principal=ADMIN, action="b", account_id="acc_two", now=NOW)
        record(session, principal=ADMIN, action="c", now=NOW)
    scoped = Principal(actor="token:tok_x", role=ADMIN.role, account_id="acc_one")
    with db.read() as session:
        assert [e.action for e in query(session, scoped, AuditQuery())] == ["a"]
        assert {e.action for e in query(session, ADMIN, AuditQuery())} == {"a", "b", "c"}
        assert [e.action for e in query(session, ADMIN, AuditQuery(action="b"))] == ["b"]


def test_verify_during_concurrent_appends_never_reports_a_false_break(db: Database) -> None:
    """verify reads one snapshot, so rows committed while it walks are not a 'broken head'."""
    fill(db, 600)  # more than one batch, so the walk spans several queries
    stop = threading.Event()

    def appender() -> None:
        while not stop.is_set():
            with db.write() as session:
                record(session, principal=ADMIN, action="token.use", now=NOW)

    thread = threading.Thread(target=appender)
    thread.start()
    try:
        reports = []
        for _ in range(5):
            with db.read() as session:
                reports.append(verify(session))
    finally:
        stop.set()
        thread.join()
    assert all(r.ok for r in reports), [r.first_break for r in reports if not r.ok]
    assert reports[-1].rows >= 600
