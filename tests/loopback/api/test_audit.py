"""/admin/audit: filters and paging, and chain verification before and after tampering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from sqlalchemy import text

from tests.loopback.api.conftest import Api
from tests.secretscan import register_secret

VALUE = "audit-test-string-value"


def make_history(api: Api) -> list[str]:
    """A few audited changes; returns the secret ids created."""
    register_secret(VALUE)
    ids = []
    for name in ("one", "two", "three"):
        body = {"name": name, "secret_type": "string", "value": VALUE}
        ids.append(api.call("POST", "/admin/secrets", json=body).json()["id"])
    api.call("PUT", "/admin/secrets/two/environments/sandbox", json={"value": VALUE})
    return ids


def events(api: Api, **query: object) -> list[dict[str, object]]:
    response = api.call("GET", "/admin/audit?" + urlencode(query))
    assert response.status_code == 200, response.text
    result: list[dict[str, object]] = response.json()["events"]
    return result


def test_events_are_newest_first_with_every_column(api: Api) -> None:
    """Rows come newest first and carry actor, action, resource, environment, IP and hashes."""
    make_history(api)
    rows = events(api)
    seqs = [int(str(e["seq"])) for e in rows]
    assert seqs == sorted(seqs, reverse=True)
    update = next(e for e in rows if e["action"] == "secret.update")
    assert update["environment"] == "sandbox"
    assert update["resource_type"] == "secret"
    assert update["source_ip"] == "testclient"
    assert str(update["actor"]).startswith("token:")
    assert update["actor_role"] == "admin"
    assert len(str(update["hash"])) == len(str(update["prev_hash"])) == 64


def test_filters(api: Api) -> None:
    """action, resource, environment, outcome, actor and time filters select rows."""
    ids = make_history(api)
    assert len(events(api, action="secret.create")) == 3
    assert [e["action"] for e in events(api, resource_id=ids[1])] == [
        "secret.update",
        "secret.create",
    ]
    assert [e["action"] for e in events(api, environment="sandbox")] == ["secret.update"]
    assert events(api, outcome="denied") == []
    actor = events(api, action="secret.create")[0]["actor"]
    assert {e["actor"] for e in events(api, actor=str(actor))} == {actor}
    assert events(api, resource_type="account") == []
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert events(api, since=future) == []
    assert len(events(api, since=past, until=future)) == len(events(api))
    assert events(api, until=past) == []


def test_paging_with_before_seq(api: Api) -> None:
    """limit and next_before_seq walk the whole log without gaps or repeats."""
    make_history(api)
    everything = [e["seq"] for e in events(api, limit=1000)]
    seen: list[object] = []
    query: dict[str, object] = {"limit": 2}
    while True:
        page = api.call("GET", "/admin/audit?" + urlencode(query)).json()
        seen.extend(e["seq"] for e in page["events"])
        if page["next_before_seq"] is None:
            break
        query["before_seq"] = page["next_before_seq"]
    assert seen == everything


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1001",
        "before_seq=0",
        "since=2026-01-01T00:00:00",  # no time zone
        "since=yesterday",
        "outcome=a%00b",
    ],
)
def test_bad_filters_are_422(api: Api, query: str) -> None:
    """Out-of-range limits, naive or unparsable times and control characters are refused."""
    response = api.call("GET", f"/admin/audit?{query}")
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"


def test_times_at_the_calendars_edge_do_not_break_the_query(api: Api) -> None:
    """A time that cannot move to UTC is a 422 invalid_argument, the far past simply matches."""
    edge = api.call("GET", "/admin/audit?" + urlencode({"until": "0001-01-01T00:00:00+05:00"}))
    assert edge.status_code == 422
    assert edge.json()["error"]["code"] == "invalid_argument"
    old = api.call("GET", "/admin/audit?" + urlencode({"since": "0001-01-01T00:00:00Z"}))
    assert old.status_code == 200


def test_verify_passes_then_names_the_altered_row(api: Api) -> None:
    """verify is ok on an untouched log and names the first altered row after an edit."""
    make_history(api)
    report = api.call("POST", "/admin/audit/verify")
    assert report.status_code == 200
    body = report.json()
    assert body["ok"] is True
    assert body["first_break"] is None
    assert body["rows"] == body["head_seq"] > 3

    with api.db.engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET action = 'forged' WHERE seq = 2"))
    broken = api.call("POST", "/admin/audit/verify", json={})
    assert broken.status_code == 200
    assert broken.json()["ok"] is False
    assert broken.json()["first_break"]["kind"] == "altered"
    assert broken.json()["first_break"]["seq"] == 2


def test_verify_with_an_anchor(api: Api) -> None:
    """A recorded head verifies as an anchor; a different hash for it is an anchor mismatch."""
    make_history(api)
    head = api.call("POST", "/admin/audit/verify").json()
    anchor = {"seq": head["head_seq"], "hash": head["head_hash"]}
    good = api.call("POST", "/admin/audit/verify", json={"anchor": anchor})
    assert good.json()["ok"] is True
    bad = api.call("POST", "/admin/audit/verify", json={"anchor": {**anchor, "hash": "0" * 64}})
    assert bad.status_code == 200
    assert bad.json()["ok"] is False
    assert bad.json()["first_break"]["kind"] == "anchor_mismatch"
    malformed = api.call("POST", "/admin/audit/verify", json={"anchor": {"seq": 1, "hash": "x"}})
    assert (malformed.status_code, malformed.json()["error"]["code"]) == (422, "invalid_request")
