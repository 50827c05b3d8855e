"""GET /admin/egress-requests: the egress request log, newest first, filtered, scoped to the
caller's account, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert

from mutls.store.models import PLATFORM, EgressRequest
from tests.loopback.api.conftest import Api


def _rows(api: Api, account: str) -> None:
    now = api.now()
    base = {
        "method": "GET",
        "path": "/v1/accounts",
        "client_ip": "127.0.0.1",
        "latency_ms": 3.5,
        "bytes_sent": 0,
        "bytes_received": 120,
    }
    rows = [
        {
            **base,
            "at": now - timedelta(seconds=3),
            "namespace": PLATFORM,
            "route_name": "bank",
            "environment": "production",
            "status": 200,
            "code": "ok",
            "upstream_status": 200,
            "certificate_secret_id": "sec_1",
            "certificate_version": 2,
            "certificate_fingerprint": "ab" * 32,
            "certificate_serial": "0A1B",
            "tls_version": "TLSv1.3",
        },
        {
            **base,
            "at": now - timedelta(seconds=2),
            "namespace": PLATFORM,
            "route_name": "bank",
            "environment": "sandbox",
            "status": 502,
            "code": "partner_rejected_certificate",
        },
        {
            **base,
            "at": now - timedelta(seconds=1),
            "namespace": account,
            "route_name": "tax",
            "environment": "production",
            "status": 200,
            "code": "ok",
        },
    ]
    with api.db.write() as session:
        session.execute(insert(EgressRequest), rows)


def test_newest_first_with_the_certificate_used(api: Api) -> None:
    account = api.account("acme")
    _rows(api, account)
    answer = api.call("GET", "/admin/egress-requests")
    assert answer.status_code == 200, answer.text
    rows = answer.json()["requests"]
    assert [r["route"] for r in rows] == ["tax", "bank", "bank"]
    used = rows[2]["certificate_used"]
    assert used == {
        "secret_id": "sec_1",
        "version": 2,
        "fingerprint_sha256": "ab" * 32,
        "serial": "0A1B",
    }
    assert rows[1]["certificate_used"] is None


def test_filters_and_limit(api: Api) -> None:
    _rows(api, api.account("acme"))

    def routes(query: str) -> list[str]:
        answer = api.call("GET", f"/admin/egress-requests?{query}")
        assert answer.status_code == 200, answer.text
        return [f"{r['route']}/{r['environment']}" for r in answer.json()["requests"]]

    assert routes("route=bank") == ["bank/sandbox", "bank/production"]
    assert routes("environment=sandbox") == ["bank/sandbox"]
    assert routes("code=partner_rejected_certificate") == ["bank/sandbox"]
    assert routes("status=200&limit=1") == ["tax/production"]


def test_an_account_token_sees_its_own_requests_only(api: Api) -> None:
    account = api.account("acme")
    _rows(api, account)
    answer = api.call("GET", "/admin/egress-requests", role="auditor", account_id=account)
    assert answer.status_code == 200, answer.text
    assert [r["route"] for r in answer.json()["requests"]] == ["tax"]


def test_refusals(api: Api) -> None:
    """No token: 401; an app token may not read the log: 403; a limit out of range: 422."""
    assert api.call("GET", "/admin/egress-requests", role=None).status_code == 401
    denied = api.call("GET", "/admin/egress-requests", role="app")
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "permission_denied"
    assert api.call("GET", "/admin/egress-requests?limit=0").status_code == 422
