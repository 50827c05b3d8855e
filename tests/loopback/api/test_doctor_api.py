"""POST /admin/doctor on loopback only: a report for a URL nothing listens on, and its refusals."""

from __future__ import annotations

from tests.e2e.gateway_setup import free_port
from tests.loopback.api.conftest import Api


def test_a_closed_port_is_a_report_not_an_error(api: Api) -> None:
    url = f"https://127.0.0.1:{free_port()}/"
    answer = api.call("POST", "/admin/doctor", json={"url": url})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["ok"] is False
    assert report["cause"]["code"] == "partner_unreachable"
    assert [step["name"] for step in report["steps"]][-1] == "tcp"


def test_refusals(api: Api) -> None:
    """An unknown secret is 404; plain http is 422; an auditor may not run it (403)."""
    url = f"https://127.0.0.1:{free_port()}/"
    missing = api.call("POST", "/admin/doctor", json={"url": url, "secret": "nope"})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "secret_not_found"
    plain = api.call("POST", "/admin/doctor", json={"url": "http://127.0.0.1:9/"})
    assert plain.status_code == 422
    denied = api.call("POST", "/admin/doctor", role="auditor", json={"url": url})
    assert denied.status_code == 403
