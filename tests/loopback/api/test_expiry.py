"""Expiry monitoring (issue 7): the inventory, alerts over a real webhook and SMTP server, and
the gauges on /metrics, on both database backends."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from typer.testing import CliRunner

from mutls.accounts.mtls import update_mtls_settings
from mutls.api.app import create_app
from mutls.ca.issuance import issue_certificate
from mutls.ca.trust import add_account_ca
from mutls.cli.app import app as cli_app
from mutls.config import ExpirySettings, Settings
from mutls.expiry.alerts import run_expiry_check
from mutls.expiry.inventory import ExpiryFilter, ExpiryKind, expiry_inventory
from mutls.expiry.levels import ExpiryLevel
from mutls.expiry.observed import ObservedKind, observe, record_observations
from mutls.runtime.platform import Platform
from mutls.testing import TestCA
from mutls.vault.secrets import create_secret
from tests.e2e.gateway_setup import free_port
from tests.loopback.api.conftest import SYSTEM, Api, TestClient
from tests.loopback.api.test_roles_matrix import csr_pem

WEBHOOK_SECRET = "expiry-webhook-hmac-key-for-tests"


# --- local receivers ---------------------------------------------------------------------------


@dataclass
class Webhook:
    url: str
    fail: bool = False
    received: list[tuple[float, bytes, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """An http.server that records each POST and answers 204 (or 503 when ``fail``)."""
    state = Webhook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append((time.monotonic(), body, dict(self.headers.items())))
            self.send_response(503 if state.fail else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/expiry"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class Mailbox:
    port: int = 0
    messages: list[str] = field(default_factory=list)


@pytest.fixture
def smtp() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives."""
    box = Mailbox(port=free_port())

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
            assert isinstance(envelope.content, bytes)
            box.messages.append(envelope.content.decode())
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def partner_ca() -> TestCA:
    return TestCA(name="Partner Test CA", now=datetime.now(UTC))


def _observe_partner(api: Api, partner_ca: TestCA) -> datetime:
    leaf = partner_ca.issue("api.partner.example", sans=["api.partner.example"])
    record_observations(
        api.db,
        [
            observe(
                ObservedKind.PARTNER_SERVER,
                leaf.certificate,
                seen_at=api.now(),
                route="partner",
                environment="production",
            )
        ],
    )
    return leaf.certificate.not_valid_after_utc


def _app_at(api: Api, now: datetime, expiry: ExpirySettings) -> TestClient:
    """A fresh app (as after a restart) over the same database, with a fixed clock."""
    settings = dataclasses.replace(api.platform.settings, expiry=expiry)
    platform = Platform(settings=settings, db=api.db, keys=api.platform.keys, clock=lambda: now)
    return TestClient(create_app(platform))


# --- inventory ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("platform_ca")
def test_inventory_lists_every_kind_with_its_status(
    api: Api, partner_ca: TestCA, tmp_path: Path
) -> None:
    """Each kind appears, and an issued certificate's status follows its notAfter."""
    now = api.now()
    account = api.account("acme")
    update_mtls_settings(api.db, SYSTEM, account, enabled=True, now=now)
    issuer = api.app.state.issuers.platform(now=now)
    issued = issue_certificate(api.db, issuer, SYSTEM, account, csr_pem(), now=now)
    add_account_ca(api.db, SYSTEM, account, TestCA(name="Acme Own CA").root_pem, now=now)
    identity = partner_ca.issue("client.acme.example")
    create_secret(
        api.db,
        api.platform.keys,
        SYSTEM,
        name="acme-client",
        secret_type="certificate",
        values={
            "sandbox": {
                "certificate_pem": identity.chain_pem.decode(),
                "private_key_pem": identity.key_pem().decode(),
                "ca_bundle_pem": partner_ca.root_pem.decode(),
            }
        },
        account_id=account,
        now=now,
    )
    _observe_partner(api, partner_ca)
    gateway = partner_ca.issue("gateway.example", sans=["gateway.example"])
    gateway_file = tmp_path / "gateway.pem"
    gateway_file.write_bytes(gateway.cert_pem)

    inventory = expiry_inventory(api.db, SYSTEM, now=now, gateway_cert_file=gateway_file)
    kinds = {item.kind for item in inventory.items}
    assert kinds == set(ExpiryKind) - {ExpiryKind.GATEWAY_CLIENT}
    secrets = {i.name: i for i in inventory.items if i.kind is ExpiryKind.SECRET_CERTIFICATE}
    assert set(secrets) == {"acme-client", "acme-client (chain 1)", "acme-client (CA bundle 1)"}
    secret = secrets["acme-client"]
    assert (secret.name, secret.environment, secret.account) == ("acme-client", "sandbox", "acme")
    # the leaf, its issuing CA and the partner's root: each with its own notAfter
    assert secrets["acme-client (chain 1)"].subject.startswith("CN=Partner")
    assert secrets["acme-client (CA bundle 1)"].not_after == partner_ca.root.not_valid_after_utc
    assert secret.not_after == identity.certificate.not_valid_after_utc

    not_after = next(i for i in inventory.items if i.id == issued.id).not_after
    for at, status in (
        (not_after - timedelta(days=120), ExpiryLevel.OK),
        (not_after - timedelta(days=60), ExpiryLevel.WARNING),
        (not_after - timedelta(days=20), ExpiryLevel.URGENT),
        (not_after - timedelta(days=3), ExpiryLevel.CRITICAL),
        (not_after + timedelta(seconds=1), ExpiryLevel.EXPIRED),
    ):
        items = expiry_inventory(
            api.db, SYSTEM, now=at, filters=ExpiryFilter(kind=ExpiryKind.ISSUED_CERTIFICATE)
        ).items
        assert [(i.id, i.status) for i in items] == [(issued.id, status)], at

    soon = expiry_inventory(
        api.db, SYSTEM, now=not_after - timedelta(days=20), filters=ExpiryFilter(within_days=30)
    ).items
    assert issued.id in {i.id for i in soon}
    assert all(i.not_after <= not_after for i in soon)
    without_file = expiry_inventory(api.db, SYSTEM, now=now)
    assert any(n.startswith("gateway_server") for n in without_file.notes)


@pytest.mark.usefixtures("platform_ca")
def test_an_account_token_sees_its_own_account_only(api: Api) -> None:
    """acme's auditor sees acme's certificate, never bravo's nor the platform CA."""
    now = api.now()
    issued = {}
    for name in ("acme", "bravo"):
        account = api.account(name)
        update_mtls_settings(api.db, SYSTEM, account, enabled=True, now=now)
        issuer = api.app.state.issuers.platform(now=now)
        issued[name] = (
            account,
            issue_certificate(api.db, issuer, SYSTEM, account, csr_pem(), now=now).id,
        )
    acme, acme_cert = issued["acme"]
    answer = api.call("GET", "/admin/expiry", role="auditor", account_id=acme)
    assert answer.status_code == 200
    assert [(i["kind"], i["id"]) for i in answer.json()["items"]] == [
        ("issued_certificate", acme_cert)
    ]
    everything = api.call("GET", "/admin/expiry", role="auditor").json()["items"]
    assert {i["kind"] for i in everything} == {"platform_ca", "issued_certificate"}
    assert len([i for i in everything if i["kind"] == "issued_certificate"]) == 2


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("within=abc", "within"),
        ("within=99999", "within"),
        ("kind=passport", "kind"),
        ("status=fine", "status"),
    ],
)
def test_bad_filters_are_invalid_argument(api: Api, query: str, fragment: str) -> None:
    """A filter that is not a number of days, a kind or a status is 422 invalid_argument."""
    answer = api.call("GET", f"/admin/expiry?{query}")
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid_argument"
    assert fragment in error["message"]


def test_app_tokens_may_neither_read_nor_check(api: Api) -> None:
    """An app token is 403 on both endpoints; an account-scoped admin may not run the check."""
    for method, path in (("GET", "/admin/expiry"), ("POST", "/admin/expiry/check")):
        answer = api.call(method, path, role="app")
        assert answer.status_code == 403
        assert answer.json()["error"]["code"] == "permission_denied"
    account = api.account("acme")
    scoped = api.call("POST", "/admin/expiry/check", role="admin", account_id=account)
    assert scoped.status_code == 403


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(["expiry", "--within", "soon"], "within"), (["expiry", "--kind", "passport"], "kind")],
)
def test_cli_refuses_bad_filters_before_calling_the_api(args: list[str], fragment: str) -> None:
    """`mutls expiry --within soon` exits non-zero with invalid_argument (no server needed)."""
    result = CliRunner().invoke(cli_app, ["--server", "http://127.0.0.1:9", "--token", "x", *args])
    assert result.exit_code != 0
    assert "invalid_argument" in result.output
    assert fragment in result.output


# --- alerts and metrics ------------------------------------------------------------------------


def test_crossing_30_days_notifies_once_by_webhook_and_email(
    api: Api, partner_ca: TestCA, webhook: Webhook, smtp: Mailbox
) -> None:
    """90 then 30 days: one webhook and one e-mail each, signed, audited, in /metrics; a second
    check and a restarted app send nothing more."""
    not_after = _observe_partner(api, partner_ca)
    expiry = ExpirySettings(
        webhook_url=webhook.url,
        webhook_secret=WEBHOOK_SECRET,
        smtp_url=f"smtp://127.0.0.1:{smtp.port}",
        email_from="mutls@example.com",
        email_to=("ops@example.com",),
    )
    at_60 = not_after - timedelta(days=60)
    at_29 = not_after - timedelta(days=29)
    with _app_at(api, at_60, expiry) as client:
        first = client.post("/admin/expiry/check", headers=api.auth()).json()
    assert [n["threshold_days"] for n in first["notifications"]] == [90]
    assert (len(webhook.received), len(smtp.messages)) == (1, 1)

    with _app_at(api, at_29, expiry) as client:
        crossing = client.post("/admin/expiry/check", headers=api.auth()).json()
        again = client.post("/admin/expiry/check", headers=api.auth()).json()
        metrics = client.get("/metrics", headers=api.auth()).text
    assert [n["threshold_days"] for n in crossing["notifications"]] == [30]
    assert again["notifications"] == []
    assert (len(webhook.received), len(smtp.messages)) == (2, 2)
    with _app_at(api, at_29, expiry) as restarted:
        after_restart = restarted.post("/admin/expiry/check", headers=api.auth()).json()
    assert after_restart["notifications"] == []
    assert (len(webhook.received), len(smtp.messages)) == (2, 2)

    _, body, headers = webhook.received[1]
    expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Mutls-Signature"], expected)
    payload = json.loads(body)
    assert payload["threshold_days"] == 30
    assert payload["item"]["kind"] == "partner_server"
    assert payload["item"]["days_remaining"] == 29
    assert "expires in 29 days" in smtp.messages[1]
    assert "api.partner.example" in smtp.messages[1]

    events = api.call("GET", "/admin/audit?action=expiry.notified&limit=100").json()["events"]
    assert sorted(
        (e["details"]["threshold_days"], e["details"]["channel"], e["outcome"]) for e in events
    ) == [
        (30, "email", "ok"),
        (30, "webhook", "ok"),
        (90, "email", "ok"),
        (90, "webhook", "ok"),
    ]
    line = next(
        x
        for x in metrics.splitlines()
        if x.startswith("mutls_certificate_days_remaining{") and 'kind="partner_server"' in x
    )
    assert 'name="partner/api.partner.example"' in line
    assert 'environment="production"' in line
    assert line.endswith(" 29.0")
    assert 'mutls_certificates_by_expiry_status{status="urgent"} 1.0' in metrics
    assert "mutls_certificate_expiry_timestamp_seconds{" in metrics


def test_a_failing_webhook_is_retried_with_backoff_then_audited_as_failed(
    api: Api, partner_ca: TestCA, webhook: Webhook
) -> None:
    """Three 503s, each wait longer than the last; the audit row says failed; nothing is marked
    sent, so the next check tries again."""
    webhook.fail = True
    not_after = _observe_partner(api, partner_ca)
    expiry = ExpirySettings(
        webhook_url=webhook.url, webhook_attempts=3, webhook_backoff_seconds=0.1
    )
    at = not_after - timedelta(days=20)
    report = run_expiry_check(api.db, expiry, at)
    assert len(report.notifications) == 1
    delivery = report.notifications[0].deliveries[0]
    assert (delivery.delivered, delivery.attempts) == (False, 3)
    times = [t for t, _, _ in webhook.received]
    assert len(times) == 3
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.1
    assert gaps[1] >= 0.2
    events = api.call("GET", "/admin/audit?action=expiry.notified").json()["events"]
    assert [(e["outcome"], e["details"]["attempts"]) for e in events] == [("failed", 3)]
    assert "503" in events[0]["details"]["error"]

    webhook.fail = False
    retried = run_expiry_check(api.db, expiry, at)
    assert [d.delivered for n in retried.notifications for d in n.deliveries] == [True]


def test_no_channel_configured_sends_and_marks_nothing(api: Api, partner_ca: TestCA) -> None:
    """Without a channel the check says so and leaves every crossing for later."""
    not_after = _observe_partner(api, partner_ca)
    report = run_expiry_check(api.db, ExpirySettings(), not_after - timedelta(days=5))
    assert report.notifications == []
    assert any("no alert channel" in n for n in report.notes)


def test_settings_read_thresholds_and_refuse_bad_ones() -> None:
    """MUTLS_EXPIRY_THRESHOLDS parses to days, largest first; junk is invalid_argument."""
    env = {"MUTLS_EXPIRY_THRESHOLDS": "7,30d,0,90"}
    assert Settings.from_env(env).expiry.thresholds == (90, 30, 7, 0)
    from mutls.errors import InvalidArgument

    for bad in ("soon", "30,30", "-1"):
        with pytest.raises(InvalidArgument):
            Settings.from_env({"MUTLS_EXPIRY_THRESHOLDS": bad})
    with pytest.raises(InvalidArgument):
        Settings.from_env({"MUTLS_ALERT_SMTP_URL": "smtp://127.0.0.1:25"})
