"""`make demo` runs `mutls demo`: the platform with demo data, resumable across restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import MUTLS
from tests.e2e.gateway_setup import wait_until
from tests.e2e.test_cli_platform import _clean_env, _free_port
from tests.secretscan import register_secret

START_TIMEOUT = 60
EGRESS_PORT: dict[int, int] = {}
"""The egress port of the demo on each API port (the same across a restart)."""


def run_demo(tmp_path: Path, port: int) -> tuple[subprocess.Popen[bytes], Path]:
    out = tmp_path / f"demo-{time.monotonic_ns()}.out"
    EGRESS_PORT.setdefault(port, _free_port())
    env = _clean_env()
    env["MUTLS_API_LISTEN"] = f"127.0.0.1:{port}"
    env["MUTLS_RENEW_LISTEN"] = f"127.0.0.1:{_free_port()}"
    env["MUTLS_GATEWAY_LISTEN"] = f"127.0.0.1:{_free_port()}"
    env["MUTLS_GATEWAY_METRICS_LISTEN"] = f"127.0.0.1:{_free_port()}"
    env["MUTLS_GATEWAY_WORKERS"] = "1"
    env["MUTLS_DEMO_UPSTREAM_LISTEN"] = f"127.0.0.1:{_free_port()}"
    env["MUTLS_EGRESS_LISTEN"] = f"127.0.0.1:{EGRESS_PORT[port]}"
    env["MUTLS_EGRESS_METRICS_LISTEN"] = f"127.0.0.1:{_free_port()}"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [str(MUTLS), "demo", "--data-dir", str(tmp_path / "demo-data")],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert proc.poll() is None, out.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc, out
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    pytest.fail(f"mutls demo did not start; {out.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGINT)
    return proc.wait(timeout=20)


def test_demo_serves_demo_data_and_resumes(tmp_path: Path) -> None:
    port = _free_port()
    proc, out = run_demo(tmp_path, port)
    url = f"http://127.0.0.1:{port}"
    try:
        token = (tmp_path / "demo-data" / "admin-token").read_text().strip()
        register_secret(token)
        headers = {"Authorization": f"Bearer {token}"}
        secret = httpx.get(f"{url}/admin/secrets/partner_bank_client", headers=headers).json()
        assert sorted(secret["environments"]) == ["production", "sandbox"]
        sandbox = secret["environments"]["sandbox"]["metadata"]
        assert sandbox["expiry_status"] == "urgent"
        assert sandbox["has_private_key"] is True
        assert "private_key_pem" not in str(secret)
        verify = httpx.post(f"{url}/admin/audit/verify", headers=headers, json={}).json()
        assert verify["ok"] is True
        certs = httpx.get(f"{url}/admin/accounts/acme-bank/certificates", headers=headers).json()
        assert [c["status"] for c in certs["certificates"]] == ["live"]
        crl = httpx.get(f"{url}/ca/platform/crl")
        assert crl.headers["content-type"] == "application/pkix-crl"
        # The unauthenticated twin: the demo is no open door.
        refused = httpx.get(f"{url}/admin/secrets")
        assert refused.status_code == 401
        # The consumer side calls the provider side: egress proxy -> mTLS gateway -> upstream.
        printed = out.read_text()
        app_token = printed.split("export APP_TOKEN=", 1)[1].split()[0]
        register_secret(app_token)
        egress = f"http://127.0.0.1:{EGRESS_PORT[port]}/acme-api"
        through = httpx.get(f"{egress}/v2/accounts", headers={"X-Mutls-Token": app_token})
        assert through.status_code == 200, through.text
        assert "acme-bank" in through.text
        forbidden = httpx.get(f"{egress}/v1/accounts", headers={"X-Mutls-Token": app_token})
        assert forbidden.status_code == 403
        assert forbidden.json()["error"]["code"] == "route_forbidden"  # the gateway's answer
        assert "x-mutls-error" not in forbidden.headers
        no_token = httpx.get(f"{egress}/v2/accounts")
        assert no_token.status_code == 401

        # Both data planes recorded the certificates they saw, for the expiry inventory: the
        # gateway's server certificate at the egress proxy, acme-bank's at the gateway.
        def seen(kind: str) -> list[dict[str, object]]:
            answer = httpx.get(f"{url}/admin/expiry?kind={kind}", headers=headers)
            assert answer.status_code == 200, answer.text
            items: list[dict[str, object]] = answer.json()["items"]
            return items

        partner = wait_until(lambda: seen("partner_server"), 15)
        assert any(
            "localhost" in str(item.get("name", "")) + str(item.get("subject", ""))
            for item in partner
        ), partner
        clients = wait_until(lambda: seen("gateway_client"), 15)
        assert any(item.get("account") == "acme-bank" for item in clients), clients

        # The printed doctor command, as a newcomer pastes it: it walks to the gateway's
        # refusal and names it.
        line = next(x for x in printed.splitlines() if " mutls doctor " in x)
        passphrase, command = line.strip().split(" ", 1)
        argv = command.split()
        assert argv[:2] == ["mutls", "doctor"], line
        doctor = subprocess.run(
            [str(MUTLS), *argv[1:], "--json"],
            env={**os.environ, passphrase.split("=", 1)[0]: passphrase.split("=", 1)[1]},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert doctor.returncode == 1, doctor.stderr
        report = json.loads(doctor.stdout)
        assert report["cause"]["code"] == "route_forbidden", report
    finally:
        assert stop(proc) == 0
    printed = out.read_text()
    assert "mutls demo is running" in printed
    assert "demo tokens (shown once)" in printed

    again, out2 = run_demo(tmp_path, port)
    try:
        listed = httpx.get(f"{url}/admin/secrets", headers=headers).json()["secrets"]
        assert [s["name"] for s in listed].count("partner_bank_client") == 1
    finally:
        assert stop(again) == 0
    assert "demo tokens" not in out2.read_text()
