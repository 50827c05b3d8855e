"""`mutls up` runs the expiry check by itself: a certificate that is within 30 days of its
notAfter triggers exactly one signed webhook, however many checks run and across a restart."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from mutls.testing import TestCA
from tests.e2e.gateway_setup import wait_until
from tests.e2e.test_cli_platform import start_server

WEBHOOK_SECRET = "expiry-webhook-test-secret"


class _Receiver(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        del format, args

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        expected = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        signed = self.headers.get("X-Mutls-Signature") == f"sha256={expected}"
        self.server.received.append((signed, json.loads(body)))
        self.send_response(204)
        self.end_headers()


class _Server(ThreadingHTTPServer):
    received: list[tuple[bool, dict[str, Any]]]


@pytest.fixture
def receiver() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Receiver)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_mutls_up_sends_one_signed_webhook_per_crossing(tmp_path: Path, receiver: _Server) -> None:
    env = {
        "MUTLS_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{receiver.server_address[1]}/hook",
        "MUTLS_ALERT_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MUTLS_EXPIRY_CHECK_SECONDS": "0.5",
    }
    server = start_server(tmp_path / "up", extra_env=env)
    try:
        server.remember(WEBHOOK_SECRET)
        identity = TestCA(name="Soon CA", now=datetime.now(UTC)).issue(
            "soon.example", validity=timedelta(days=20)
        )
        server.remember(identity.key_pem().decode())
        created = httpx.post(
            f"{server.url}/admin/secrets",
            headers={"Authorization": f"Bearer {server.admin_token}"},
            json={
                "name": "soon",
                "secret_type": "certificate",
                "certificate_pem": identity.chain_pem.decode(),
                "private_key_pem": identity.key_pem().decode(),
            },
        )
        assert created.status_code == 201, created.text
        wait_until(lambda: any(_named(p) == "soon" for _, p in receiver.received), 15)
        threading.Event().wait(2.0)  # about four more checks (every 0.5 s): nothing more
    finally:
        assert server.stop() == 0
    assert server.leaked() == []
    soon = [(signed, p) for signed, p in receiver.received if _named(p) == "soon"]
    assert len(soon) == 1, soon
    signed, payload = soon[0]
    assert signed  # X-Mutls-Signature verifies with the shared secret
    assert WEBHOOK_SECRET not in json.dumps(payload)

    again = start_server(tmp_path / "up", extra_env=env)  # a restart: the claim is in the store
    try:
        threading.Event().wait(2.0)
    finally:
        assert again.stop() == 0
    assert [p for _, p in receiver.received if _named(p) == "soon"] == [soon[0][1]]


def _named(payload: dict[str, Any]) -> str | None:
    item = payload.get("item")
    name = item.get("name") if isinstance(item, dict) else payload.get("name")
    return str(name) if name is not None else None
