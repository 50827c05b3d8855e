"""The egress proxy as a process, with real mTLS partners on loopback and real HTTP clients.

One node and a set of partners serve the whole module (starting them is the slow part); each
test uses its own route or token where it changes something.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import requests
from sqlalchemy import select

from mutls.store.models import ApiToken, AuditEvent, EgressRequest, ObservedCertificate
from mutls.testing import TestCA
from tests.e2e.egress_setup import EgressNode, MtlsPartner, certificate_fields
from tests.e2e.gateway_setup import free_port, wait_until


@dataclass
class World:
    node: EgressNode
    partner: MtlsPartner
    tls12_partner: MtlsPartner
    server_ca: TestCA
    client_ca: TestCA
    token: str
    sandbox_token: str
    other_token: str
    production_cn: str
    sandbox_cn: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("egress")
    server_ca = TestCA(name="Partner Server CA")
    client_ca = TestCA(name="Partner Client CA")
    partner = MtlsPartner(server_ca=server_ca, client_ca=client_ca).start(base / "partner")
    tls12 = MtlsPartner(server_ca=server_ca, client_ca=client_ca, tls12_only=True).start(
        base / "partner12"
    )
    node = EgressNode(base).open()
    node.env["MUTLS_EGRESS_USAGE_AUDIT_SECONDS"] = "1"
    ca_pem = server_ca.root_pem.decode()
    production = client_ca.issue("prod.client.example")
    sandbox = client_ca.issue("sandbox.client.example")
    stranger = TestCA(name="Unknown Client CA").issue("stranger.example")
    node.secret(
        "bank_cert",
        {
            "production": certificate_fields(production),
            "sandbox": certificate_fields(sandbox),
        },
    )
    node.secret(
        "partner_ca",
        {"production": {"value": ca_pem}, "sandbox": {"value": ca_pem}},
        secret_type="string",
    )
    node.secret("stranger_cert", {"production": certificate_fields(stranger, ca_pem=ca_pem)})
    node.secret(
        "api_key",
        {"production": {"value": "prod-key-1"}, "sandbox": {"value": "sbx-2"}},
        secret_type="string",
    )
    node.secret("prod_only_cert", {"production": certificate_fields(production, ca_pem=ca_pem)})
    token = node.token("billing-app")
    sandbox_token = node.token("sandbox-app", environments=["sandbox"])
    other_token = node.token("other-app")
    node.route(
        "bank",
        partner.url + "/v1",
        certificate_secret="bank_cert",
        ca_bundle_secret="partner_ca",
        headers={"X-Api-Key": "{{secret:api_key}}", "X-Env": "{{environment}}"},
    )
    node.route(
        "only-billing",
        partner.url,
        certificate_secret="bank_cert",
        ca_bundle_secret="partner_ca",
        allowed_tokens=("billing-app",),
    )
    node.route("no-cert", partner.url, ca_bundle_secret="partner_ca")
    node.route("stranger", partner.url, certificate_secret="stranger_cert")
    node.route("untrusted", partner.url, certificate_secret="bank_cert")
    node.route(
        "wrong-name",
        partner.url,
        certificate_secret="bank_cert",
        ca_bundle_secret="partner_ca",
        tls_servername="other.example",
    )
    node.route(
        "closed",
        f"https://localhost:{free_port()}",
        certificate_secret="bank_cert",
        ca_bundle_secret="partner_ca",
    )
    node.route("prod-only", partner.url, certificate_secret="prod_only_cert")
    node.route(
        "tls13-only",
        tls12.url,
        certificate_secret="bank_cert",
        ca_bundle_secret="partner_ca",
        tls_preset="tls13",
    )
    node.route(
        "tls12",
        tls12.url,
        certificate_secret="bank_cert",
        ca_bundle_secret="partner_ca",
        tls_preset="tls12",
    )
    node.start(workers=1)
    try:
        yield World(
            node=node,
            partner=partner,
            tls12_partner=tls12,
            server_ca=server_ca,
            client_ca=client_ca,
            token=token,
            sandbox_token=sandbox_token,
            other_token=other_token,
            production_cn="prod.client.example",
            sandbox_cn="sandbox.client.example",
        )
    finally:
        node.stop()
        partner.stop()
        tls12.stop()


def call(world: World, path: str, *, token: str | None = None, **kwargs: object) -> httpx.Response:
    headers = dict(kwargs.pop("headers", {}) or {})  # type: ignore[call-overload]
    if token is not None:
        headers["X-Mutls-Token"] = token
    return httpx.request(
        str(kwargs.pop("method", "GET")),
        world.node.url + path,
        headers=headers,
        timeout=30,
        **kwargs,  # type: ignore[arg-type]
    )


def error_code(response: httpx.Response) -> str:
    code = response.json()["error"]["code"]
    assert response.headers["X-Mutls-Error"] == code
    return str(code)


# --- the request ----------------------------------------------------------------------------------


def test_request_leaves_with_the_production_certificate_headers_and_path(world: World) -> None:
    """A plain request becomes the partner's mTLS call: certificate, base path, query, headers."""
    response = call(
        world,
        "/bank/accounts/7?page=2&q=a%20b",
        token=world.token,
        headers={"Authorization": "Basic dXNlcjpwdw==", "X-Trace": "t1"},
    )
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["client"]["cn"] == world.production_cn
    assert seen["path"] == "/v1/accounts/7?page=2&q=a%20b"
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert headers["host"] == f"localhost:{world.partner.port}"
    assert headers["x-api-key"] == "prod-key-1"
    assert headers["x-env"] == "production"
    assert headers["authorization"] == "Basic dXNlcjpwdw=="  # the app's own credentials pass
    assert headers["x-trace"] == "t1"
    assert not any(k.startswith("x-mutls") for k in headers)
    assert world.token not in json.dumps(seen)
    assert "x-mutls-error" not in response.headers


def test_sandbox_uses_the_sandbox_certificate_and_values(world: World) -> None:
    """X-Mutls-Environment picks every value for that environment, never production's."""
    response = call(world, "/bank/x", token=world.token, headers={"X-Mutls-Environment": "sandbox"})
    assert response.status_code == 200, response.text
    seen = response.json()
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert seen["client"]["cn"] == world.sandbox_cn
    assert headers["x-api-key"] == "sbx-2"
    assert headers["x-env"] == "sandbox"


def test_token_default_environment_applies(world: World) -> None:
    """A sandbox-only token goes to the sandbox without asking."""
    response = call(world, "/bank/x", token=world.sandbox_token)
    assert response.status_code == 200, response.text
    assert response.json()["client"]["cn"] == world.sandbox_cn


def test_mutls_token_in_authorization_is_accepted_and_never_forwarded(world: World) -> None:
    response = call(world, "/bank/x", headers={"Authorization": f"Bearer {world.token}"})
    assert response.status_code == 200, response.text
    assert world.token not in response.text


@pytest.mark.parametrize(
    ("path", "token_attr", "headers", "status", "code"),
    [
        ("/bank/x", None, {}, 401, "authentication_required"),
        ("/bank/x", "bogus", {}, 401, "invalid_token"),
        ("/nope/x", "token", {}, 404, "route_not_found"),
        ("/only-billing/x", "other_token", {}, 403, "route_forbidden"),
        (
            "/bank/x",
            "sandbox_token",
            {"X-Mutls-Environment": "production"},
            403,
            "environment_forbidden",
        ),
        ("/bank/x", "token", {"X-Mutls-Environment": "staging"}, 422, "environment_value_missing"),
        (
            "/prod-only/x",
            "token",
            {"X-Mutls-Environment": "sandbox"},
            422,
            "environment_value_missing",
        ),
        ("/bank/x", "token", {"X-Mutls-Environment": "Bad Env!"}, 400, "invalid_argument"),
        ("/bank/%2e%2e/admin", "token", {}, 400, "invalid_argument"),
    ],
)
def test_refusals_name_their_cause(
    world: World,
    path: str,
    token_attr: str | None,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    """Each request the proxy refuses gets a stable code, a message and a hint, and is not sent."""
    before = world.partner.requests
    token = (
        None
        if token_attr is None
        else ("mutls_" + "x" * 43 if token_attr == "bogus" else getattr(world, token_attr))
    )
    response = call(world, path, token=token, headers=headers)
    assert response.status_code == status, response.text
    assert error_code(response) == code
    error = response.json()["error"]
    assert error["message"]
    assert error["hint"]
    assert world.partner.requests == before


def test_a_token_that_expires_is_refused_without_a_snapshot_reload(world: World) -> None:
    """A token's expiry is not a change in the store: the proxy checks it per request."""
    platform = world.node.platform
    assert platform is not None
    token = world.node.token("short-lived")
    wait_until(lambda: call(world, "/bank/x", token=token).status_code == 200, 10)
    with platform.db.write() as session:  # not audited: the revision does not move
        row = session.execute(select(ApiToken).where(ApiToken.name == "short-lived")).scalar_one()
        row.expires_at = datetime.now(UTC) + timedelta(seconds=2)
    wait_until(lambda: call(world, "/bank/x", token=token).status_code == 401, 10)
    refused = call(world, "/bank/x", token=token)
    assert error_code(refused) == "invalid_token"


def test_partner_http_errors_pass_through_untouched(world: World) -> None:
    """The partner's own 4xx/5xx are the partner's: no proxy error code on them."""
    for status in (404, 500, 503):
        response = call(world, f"/bank/status/{status}", token=world.token)
        assert response.status_code == status
        assert "x-mutls-error" not in response.headers
        assert response.json() == {"status": "as asked"}


def test_a_redirect_into_the_route_points_back_through_the_proxy(world: World) -> None:
    """The partner redirects to its own URL: the app is sent to the proxy's path instead, so
    following the redirect keeps the client certificate."""
    response = call(world, "/bank/accounts/redirect", token=world.token)
    assert response.status_code == 302
    assert response.headers["Location"] == "/bank/accounts/moved"


# --- partner failures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "status", "code", "reason"),
    [
        ("no-cert", 502, "partner_requires_client_certificate", "certificate_required"),
        ("stranger", 502, "partner_rejected_certificate", "unknown_ca"),
        (
            "untrusted",
            502,
            "partner_certificate_untrusted",
            "unable to get local issuer certificate",
        ),
        ("wrong-name", 502, "partner_certificate_untrusted", "hostname mismatch"),
        ("closed", 502, "partner_unreachable", "connection_refused"),
        ("tls13-only", 502, "partner_tls_handshake_failed", None),
    ],
)
def test_partner_failures_are_translated(
    world: World, route: str, status: int, code: str, reason: str | None
) -> None:
    """Every way a partner connection fails names its cause in JSON."""
    response = call(world, f"/{route}/x", token=world.token)
    assert response.status_code == status, response.text
    assert error_code(response) == code
    error = response.json()["error"]
    if reason is not None:
        assert error["reason"] == reason
    assert error["hint"]


def test_partner_rejects_a_certificate_from_another_ca(world: World) -> None:
    """Our certificate from a CA the partner does not trust: the partner's TLS alert, named."""
    world.node.route(
        "stranger-trusted",
        world.partner.url,
        certificate_secret="stranger_cert",
        ca_bundle_secret="partner_ca",
    )

    def routed() -> httpx.Response | None:
        response = call(world, "/stranger-trusted/x", token=world.token)
        return response if response.status_code != 404 else None

    response = wait_until(routed, 10)
    assert response is not None
    assert response.status_code == 502, response.text
    assert error_code(response) == "partner_rejected_certificate"
    assert response.json()["error"]["reason"] in {"unknown_ca", "bad_certificate"}


def test_tls12_preset_reaches_a_tls12_only_partner(world: World) -> None:
    """Seed 004's TLS 1.2-only partner works with the tls12 preset."""
    response = call(world, "/tls12/x", token=world.token)
    assert response.status_code == 200, response.text
    assert response.json()["tls_version"] == "TLSv1.2"


# --- HTTP details ------------------------------------------------------------------------------


def test_head_chunked_upload_and_expect_continue_with_curl(world: World, tmp_path: Path) -> None:
    """curl: HEAD has no body, a chunked upload and Expect: 100-continue arrive whole."""
    curl = shutil.which("curl")
    assert curl is not None
    url = world.node.url + "/bank/upload"
    head = subprocess.run(
        [curl, "-sS", "-I", "-H", f"X-Mutls-Token: {world.token}", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert head.stdout.startswith("HTTP/1.1 200")
    data = tmp_path / "body.bin"
    data.write_bytes(b"0123456789" * 300_000)
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    for extra in (["-H", "Transfer-Encoding: chunked"], ["-H", "Expect: 100-continue"]):
        out = subprocess.run(
            [
                curl,
                "-sS",
                "-X",
                "POST",
                "--data-binary",
                f"@{data}",
                *extra,
                "-H",
                f"X-Mutls-Token: {world.token}",
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        seen = json.loads(out.stdout)
        assert seen["body_bytes"] == 3_000_000
        assert seen["body_sha256"] == digest


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _egress_worker_pid(node: EgressNode) -> int:
    assert node.process is not None
    children = Path(f"/proc/{node.process.pid}/task/{node.process.pid}/children").read_text()
    return int(children.split()[0])


def test_100_mb_stream_both_ways_without_holding_them(world: World) -> None:
    """A 100 MB upload and a 100 MB download pass, and the worker's memory stays flat."""
    size = 100 * 1024 * 1024
    worker = _egress_worker_pid(world.node)
    before = _rss_kib(worker)
    peak = [before]

    def blocks() -> Iterator[bytes]:
        block = b"u" * (1 << 20)
        for _ in range(100):
            peak[0] = max(peak[0], _rss_kib(worker))
            yield block

    with httpx.Client(timeout=120) as client:
        up = client.post(
            world.node.url + "/bank/upload",
            content=blocks(),
            headers={"X-Mutls-Token": world.token},
        )
        assert up.status_code == 200, up.text
        assert up.json()["body_bytes"] == size
        assert up.json()["body_sha256"] == hashlib.sha256(b"u" * size).hexdigest()
        received = 0
        with client.stream(
            "GET", world.node.url + f"/bank/bytes/{size}", headers={"X-Mutls-Token": world.token}
        ) as down:
            assert down.status_code == 200
            for chunk in down.iter_raw(1 << 20):
                received += len(chunk)
                peak[0] = max(peak[0], _rss_kib(worker))
        assert received == size
    assert peak[0] - before < 48 * 1024, f"worker RSS grew {peak[0] - before} KiB"


def test_real_clients_requests_and_node(world: World) -> None:
    """requests and Node's http module call the proxy as any local HTTP service."""
    response = requests.get(
        world.node.url + "/bank/r", headers={"X-Mutls-Token": world.token}, timeout=30
    )
    assert response.status_code == 200
    assert response.json()["client"]["cn"] == world.production_cn
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is required for the interop tests")
    script = (
        "const http=require('http');"
        f"http.get('{world.node.url}/bank/n',{{headers:{{'X-Mutls-Token':'{world.token}'}}}},"
        "r=>{let b='';r.on('data',d=>b+=d);r.on('end',()=>{console.log(r.statusCode);"
        "console.log(JSON.parse(b).client.cn)})});"
    )
    out = subprocess.run(
        [node, "-e", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.split() == ["200", world.production_cn]


# --- rotation, request log, audit, metrics ------------------------------------------------------


def test_rotation_under_load_drops_no_request(world: World) -> None:
    """Replacing the certificate under steady load: zero failures, then the new one is used and
    the old context's pooled connections are retired."""
    node = world.node
    node.secret(
        "rotating",
        {
            "production": certificate_fields(
                world.client_ca.issue("old.example"), ca_pem=world.server_ca.root_pem.decode()
            )
        },
    )
    node.route("rotating", world.partner.url, certificate_secret="rotating")
    wait_until(lambda: call(world, "/rotating/x", token=world.token).status_code == 200, 10)
    failures: list[str] = []
    seen: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                try:
                    r = client.get(node.url + "/rotating/x", headers={"X-Mutls-Token": world.token})
                except httpx.HTTPError as error:
                    failures.append(repr(error))
                    continue
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                else:
                    seen.append(r.json()["client"]["cn"])

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(seen) > 50, 20)
        node.set_value(
            "rotating",
            "production",
            certificate_fields(
                world.client_ca.issue("new.example"), ca_pem=world.server_ca.root_pem.decode()
            ),
        )
        wait_until(lambda: seen[-1] == "new.example" and len(seen) > 0, 10)
        count = len(seen)
        wait_until(lambda: len(seen) > count + 50, 20)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert "old.example" in seen
    assert seen[-1] == "new.example"
    assert seen[seen.index("new.example") :].count("old.example") <= 4  # in flight at the swap

    def retired() -> float:
        metrics = httpx.get(node.metrics_url, timeout=10).text
        return next(
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith("mutls_egress_partner_connections_retired_total")
        )

    wait_until(lambda: retired() >= 1, 10, what="old connections retired")


def test_request_log_and_secret_use_audit(world: World) -> None:
    """Each request is logged with the certificate used; use is audited in batches; no secret
    value, token or query string reaches either."""
    response = call(world, "/bank/logged?secret_query=1", token=world.token)
    assert response.status_code == 200
    platform = world.node.platform
    assert platform is not None

    def logged() -> EgressRequest | None:
        with platform.db.read() as session:
            return session.execute(
                select(EgressRequest).where(EgressRequest.path == "/v1/logged")
            ).scalar()

    row = wait_until(logged, 10)
    assert row is not None
    assert row.route_name == "bank"
    assert row.environment == "production"
    assert (row.status, row.upstream_status, row.code) == (200, 200, "ok")
    assert row.certificate_serial
    assert row.certificate_fingerprint
    assert row.certificate_version == 1
    assert row.tls_version in {"TLSv1.2", "TLSv1.3"}
    assert row.latency_ms > 0

    def log_metrics() -> dict[str, float]:
        text = httpx.get(world.node.metrics_url, timeout=10).text
        return {
            line.split()[0]: float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith("mutls_egress_request_log_")
        }

    # The row is written, so once the workers' next dump (each second) shows it, nothing waits;
    # and nothing was lost.
    wait_until(
        lambda: log_metrics().get("mutls_egress_request_log_pending") == 0.0,
        10,
        what="no request-log rows pending",
    )
    metrics = log_metrics()
    assert metrics["mutls_egress_request_log_dropped_total"] == 0.0

    def audited() -> list[AuditEvent]:
        with platform.db.read() as session:
            return list(
                session.execute(
                    select(AuditEvent).where(AuditEvent.action == "secret.use")
                ).scalars()
            )

    def observed() -> list[ObservedCertificate]:
        with platform.db.read() as session:
            return list(
                session.execute(
                    # the first route to reach this partner names the row (any of them)
                    select(ObservedCertificate).where(ObservedCertificate.kind == "partner_server")
                ).scalars()
            )

    seen = wait_until(observed, 10)
    assert "localhost" in seen[0].subject  # the partner's server certificate, for expiry
    uses = wait_until(audited, 10)
    assert any(e.details.get("name") == "bank_cert" and e.details["requests"] >= 1 for e in uses)
    log = world.node.log()
    assert world.token not in log
    assert "PRIVATE KEY" not in log
    assert "prod-key-1" not in log
    assert "secret_query" not in log


def test_plain_http_on_a_closed_port_and_garbage_never_crash(world: World) -> None:
    """Garbage on the listener gets a 400 and the proxy keeps serving."""
    with socket.create_connection(("127.0.0.1", world.node.port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01garbage\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400")
    time.sleep(0.05)
    assert call(world, "/bank/x", token=world.token).status_code == 200


def test_expired_certificate_strict_is_refused_lax_is_named_by_the_partner(world: World) -> None:
    """Past notAfter: a secret with strict expiry is not used (secret_expired, nothing sent);
    without it the certificate is sent, and the partner's refusal names the expiry."""
    node = world.node
    ca_pem = world.server_ca.root_pem.decode()
    for name, strict in (("short_strict", True), ("short_lax", False)):
        short = world.client_ca.issue(
            f"{name.replace('_', '-')}.example",
            now=datetime.now(UTC),
            validity=timedelta(seconds=3),
        )
        node.secret(
            name,
            {"production": certificate_fields(short, ca_pem=ca_pem)},
            strict_expiry_enforcement=strict,
        )
        node.route(name.replace("_", "-"), world.partner.url, certificate_secret=name)
    expiry = datetime.now(UTC) + timedelta(seconds=4)
    wait_until(lambda: datetime.now(UTC) > expiry, 10)
    before = world.partner.requests
    strict_answer = call(world, "/short-strict/x", token=world.token)
    assert strict_answer.status_code == 422, strict_answer.text
    assert error_code(strict_answer) == "secret_expired"
    assert world.partner.requests == before
    lax = call(world, "/short-lax/x", token=world.token)
    assert lax.status_code == 502, lax.text
    assert error_code(lax) == "partner_rejected_certificate", lax.text
    assert lax.json()["error"]["reason"] == "certificate_expired"
