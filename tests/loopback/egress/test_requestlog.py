"""The egress request log's writer: every column as the request path recorded it, in batches
larger than one statement, on SQLite and PostgreSQL; a refused row dropped alone; an unreachable
database raises so the rows are kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from mutls.egress.requestlog import RequestLog
from mutls.errors import DatabaseUnavailable
from mutls.store.database import Database
from mutls.store.models import EgressRequest


def _row(i: int, at: datetime) -> dict[str, Any]:
    """A row as EgressWorker.record makes it; odd rows carry the optional columns as None."""
    full = i % 2 == 0
    return {
        "at": at + timedelta(microseconds=i),
        "namespace": "_platform",
        "route_id": f"rte_{i:012d}" if full else None,
        "route_name": "bank",
        "environment": "production" if full else None,
        "token_id": "tok_000000000001" if full else None,
        "client_ip": "127.0.0.1",
        "method": "POST" if full else "GET",
        "path": f"/v1/payments/{i}",
        "status": 200 if full else 502,
        "code": "ok" if full else "partner_rejected_certificate",
        "upstream_status": 201 if full else None,
        "certificate_secret_id": "sec_000000000001" if full else None,
        "certificate_version": 3 if full else None,
        "certificate_fingerprint": "AB:" * 31 + "CD" if full else None,
        "certificate_serial": "0A1B2C" if full else None,
        "oauth2_secret_id": "sec_000000000002" if full else None,
        "oauth2_token": "hit" if full else None,
        "tls_version": "TLSv1.3" if full else None,
        "tls_cipher": "TLS_AES_256_GCM_SHA384" if full else None,
        "connection_reused": full,
        "latency_ms": 1.25 + i,
        "bytes_sent": i,
        "bytes_received": 2 * i,
    }


def test_a_batch_is_written_whole_with_every_column(db: Database) -> None:
    at = datetime(2026, 12, 7, 10, 0, 0, tzinfo=UTC)
    rows = [_row(i, at) for i in range(1203)]  # three statements on SQLite, the last partial
    requests = RequestLog(db, enabled=True, keep_days=30)
    requests.write(rows)
    with db.read() as session:
        stored = session.scalars(select(EgressRequest).order_by(EgressRequest.at)).all()
        got = [{column: getattr(row, column) for column in rows[0]} for row in stored]
    assert got == rows  # order, values, NULLs, booleans and aware UTC datetimes survive


def test_a_row_the_database_refuses_is_dropped_and_the_rest_written(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    at = datetime(2026, 12, 7, 10, 0, 0, tzinfo=UTC)
    rows = [_row(i, at) for i in range(700)]
    rows[650]["method"] = None  # NOT NULL: refused (in the second statement on SQLite)
    requests = RequestLog(db, enabled=True, keep_days=30)
    requests.write(rows)
    assert requests.dropped == 1
    with db.read() as session:
        paths = set(session.scalars(select(EgressRequest.path)))
    assert paths == {row["path"] for i, row in enumerate(rows) if i != 650}
    assert "refused a row for route bank" in caplog.text


def test_an_unreachable_database_raises_and_drops_nothing() -> None:
    """The caller keeps the rows for the next flush: nothing is counted as dropped."""
    away = Database("postgresql+psycopg://mutls@127.0.0.1:1/mutls?connect_timeout=2")
    requests = RequestLog(away, enabled=True, keep_days=30)
    with pytest.raises(DatabaseUnavailable):
        requests.write([_row(0, datetime(2026, 12, 7, tzinfo=UTC))])
    assert requests.dropped == 0


def test_rows_past_retention_are_pruned(db: Database) -> None:
    now = datetime(2026, 12, 7, 10, 0, 0, tzinfo=UTC)
    requests = RequestLog(db, enabled=True, keep_days=30)
    requests.write([_row(0, now - timedelta(days=31)), _row(1, now - timedelta(days=29))])
    assert requests.prune(now) == 1
    with db.read() as session:
        assert session.scalars(select(EgressRequest.path)).all() == ["/v1/payments/1"]
