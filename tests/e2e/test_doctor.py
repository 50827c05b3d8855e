"""``mutls doctor`` names the cause of each broken mTLS set-up of seeds 000 and 002, against real
servers set up to fail that way: ``openssl s_server`` and the mutls gateway (nginx: in
``test_doctor_nginx.py``); and ``--secret NAME --env E`` read from a bootstrapped data directory."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from mutls.doctor import ClientSource, DoctorOptions, Report, diagnose
from mutls.pki.authority import Profile
from mutls.testing import Identity, TestCA
from mutls.tls.egress_context import EgressTlsPreset
from tests.e2e.egress_setup import EgressNode, certificate_fields
from tests.e2e.gateway_setup import free_port
from tests.e2e.test_gateway_live import Admin, _start_up

MUTLS = Path(sys.executable).parent / "mutls"
PASSPHRASE = b"correct horse battery staple"


@dataclass(frozen=True, kw_only=True)
class World:
    base: Path
    ca: TestCA
    client: Identity
    servers: dict[str, int]  # name -> port

    @property
    def root(self) -> tuple[object, ...]:
        return (self.ca.root,)

    def url(self, server: str, path: str = "/") -> str:
        return f"https://127.0.0.1:{self.servers[server]}{path}"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"s_server exited: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"s_server did not listen on {port}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("doctor")
    ca = TestCA(name="Doctor Root CA", organization="Doctor Org")
    server = ca.issue("localhost", profile=Profile.SERVER, sans=["localhost", "127.0.0.1"])
    expired = ca.issue(
        "localhost",
        profile=Profile.SERVER,
        sans=["127.0.0.1"],
        now=datetime.now(UTC) - timedelta(days=400),
    )
    root = _write(base / "root.pem", ca.root_pem)
    chain = _write(base / "server-chain.pem", server.chain_pem)
    key = _write(base / "server.key", server.key_pem())
    expired_chain = _write(base / "expired-chain.pem", expired.chain_pem)
    expired_key = _write(base / "expired.key", expired.key_pem())
    verify = ["-Verify", "1", "-verify_return_error"]
    setups = {
        # requires a client certificate from Doctor Root CA and names it
        "strict": ["-cert", chain, "-key", key, "-cert_chain", chain, "-CAfile", root, *verify],
        # the same, TLS 1.2 only (seed 004)
        "tls12": ["-cert", chain, "-key", key, "-cert_chain", chain, "-CAfile", root, *verify,
                  "-tls1_2"],
        # sends its leaf without the intermediate
        "leaf_only": ["-cert", chain, "-key", key, "-CAfile", root, *verify],
        "expired": ["-cert", expired_chain, "-key", expired_key, "-cert_chain", expired_chain,
                    "-CAfile", root, *verify],
        # verifies against the root but names no CA: the refusal comes as a TLS alert
        "silent": ["-cert", chain, "-key", key, "-cert_chain", chain, "-verifyCAfile", root,
                   "-no-CAfile", *verify],
    }  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int] = {}
    try:
        for name, args in setups.items():
            port = free_port()
            log = base / f"{name}.log"
            with log.open("wb") as sink:
                proc = subprocess.Popen(
                    ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-www", "-quiet",
                     *map(str, args)],
                    stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                )  # fmt: skip
            procs.append(proc)
            _wait_port(port, proc, log)
            ports[name] = port
        yield World(base=base, ca=ca, client=ca.issue("client.example"), servers=ports)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


def run(
    world: World,
    server: str,
    identity: Identity | None,
    *,
    passphrase: bytes | None = None,
    key_pem: bytes | None = None,
    trust: bool = True,
    **options: object,
) -> Report:
    source = None
    if identity is not None:
        source = ClientSource(
            certificate=identity.chain_pem,
            key=key_pem if key_pem is not None else identity.key_pem(),
            passphrase=passphrase,
            origin="test",
        )
    cas = (world.ca.root,) if trust else ()
    opts = DoctorOptions(cas=cas, ca_origin="root.pem", timeout=5, **options)  # type: ignore[arg-type]
    return diagnose(world.url(server), source, options=opts, now=datetime.now(UTC))


def cause(report: Report) -> tuple[str, str | None, str]:
    found = report.cause
    assert found is not None, report.to_dict()
    assert report.steps[-1].hint, report.to_dict()  # every failure says how to fix it
    return found.code, found.reason, report.steps[-1].name


def test_all_green_with_a_certificate_the_server_accepts(world: World) -> None:
    report = run(world, "strict", world.client)
    assert report.ok, report.to_dict()
    assert [s.name for s in report.steps][-3:] == ["server.client_ca", "handshake", "http"]
    assert "HTTP 200" in report.steps[-1].detail


def test_no_client_certificate_is_partner_requires_client_certificate(world: World) -> None:
    assert cause(run(world, "strict", None)) == (
        "partner_requires_client_certificate",
        "certificate_required",
        "handshake",
    )


def test_a_certificate_from_an_unknown_ca_is_named_from_the_servers_ca_names(
    world: World,
) -> None:
    stranger = TestCA(name="Stranger CA", organization="Elsewhere").issue("client.example")
    report = run(world, "strict", stranger)
    assert cause(report) == ("partner_rejected_certificate", "unknown_ca", "server.client_ca")
    assert "Doctor Root CA" in report.steps[-1].detail


def test_a_certificate_from_an_unknown_ca_is_named_from_the_tls_alert(world: World) -> None:
    stranger = TestCA(name="Stranger CA", organization="Elsewhere").issue("client.example")
    report = run(world, "silent", stranger)
    assert cause(report) == ("partner_rejected_certificate", "unknown_ca", "handshake")


def test_the_silent_server_accepts_the_right_certificate(world: World) -> None:
    assert run(world, "silent", world.client).ok


def test_our_expired_certificate_is_named_before_any_connection(world: World) -> None:
    old = world.ca.issue("client.example", now=datetime.now(UTC) - timedelta(days=400))
    report = run(world, "strict", old)
    assert cause(report) == ("certificate_expired", None, "material.validity")
    assert not any(s.name == "dns" for s in report.steps)


def test_a_key_that_does_not_match_is_key_mismatch(world: World) -> None:
    other = world.ca.issue("other.example")
    report = run(world, "strict", world.client, key_pem=other.key_pem())
    assert cause(report) == ("key_mismatch", None, "material.key")


def test_a_wrong_passphrase_is_wrong_passphrase(world: World) -> None:
    encrypted = world.client.key_pem(PASSPHRASE)
    report = run(world, "strict", world.client, key_pem=encrypted, passphrase=b"Not-The-0ne")
    assert cause(report) == ("wrong_passphrase", None, "material.load")
    assert "Not-The-0ne" not in json.dumps(report.to_dict())


def test_a_missing_passphrase_is_passphrase_required(world: World) -> None:
    encrypted = world.client.key_pem(PASSPHRASE)
    report = run(world, "strict", world.client, key_pem=encrypted)
    assert cause(report) == ("passphrase_required", None, "material.load")
    assert run(world, "strict", world.client, key_pem=encrypted, passphrase=PASSPHRASE).ok


def test_a_server_signed_by_a_private_ca_is_untrusted_without_ca(world: World) -> None:
    report = run(world, "strict", world.client, trust=False)
    code, reason, step = cause(report)
    assert (code, step) == ("partner_certificate_untrusted", "server.certificate")
    assert reason in {"unknown_issuer", "missing_intermediate"}
    assert "--ca" in (report.steps[-1].hint or "")


def test_a_wrong_server_name_is_name_mismatch_with_a_servername_hint(world: World) -> None:
    report = run(world, "strict", world.client, servername="api.partner.example")
    assert cause(report) == ("partner_certificate_untrusted", "name_mismatch", "server.certificate")
    assert "--servername" in (report.steps[-1].hint or "")


def test_a_server_that_sends_no_intermediate_is_missing_intermediate(world: World) -> None:
    report = run(world, "leaf_only", world.client)
    assert cause(report) == (
        "partner_certificate_untrusted",
        "missing_intermediate",
        "server.certificate",
    )


def test_an_expired_server_certificate_is_named(world: World) -> None:
    report = run(world, "expired", world.client)
    assert cause(report) == (
        "partner_certificate_untrusted",
        "certificate_expired",
        "server.certificate",
    )


def test_a_tls12_only_server_is_fine_by_default_and_said_so(world: World) -> None:
    report = run(world, "tls12", world.client)
    assert report.ok, report.to_dict()
    versions = report.step("tls.versions")
    assert versions is not None
    assert "TLS 1.2 only" in (versions.hint or "")


def test_tls13_only_against_a_tls12_only_server_is_a_version_mismatch(world: World) -> None:
    report = run(world, "tls12", world.client, preset=EgressTlsPreset.TLS13)
    assert cause(report) == ("partner_tls_handshake_failed", "protocol_version", "tls.versions")


def test_a_refused_connection_is_partner_unreachable(world: World) -> None:
    source = ClientSource(
        certificate=world.client.chain_pem, key=world.client.key_pem(), origin="test"
    )
    report = diagnose(
        f"https://127.0.0.1:{free_port()}/",
        source,
        options=DoctorOptions(timeout=5),
        now=datetime.now(UTC),
    )
    assert cause(report) == ("partner_unreachable", "connection_refused", "tcp")


def test_an_unknown_host_is_name_not_resolved() -> None:
    report = diagnose(
        "https://doctor.invalid/", None, options=DoctorOptions(timeout=5), now=datetime.now(UTC)
    )
    assert cause(report) == ("partner_unreachable", "name_not_resolved", "dns")


# --- the command ---------------------------------------------------------------------------------


def mutls(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MUTLS), "doctor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
    )


def test_the_command_prints_a_checklist_and_exits_0_when_all_is_well(world: World) -> None:
    cert = _write(world.base / "client.pem", world.client.chain_pem)
    key = _write(world.base / "client.key", world.client.key_pem(PASSPHRASE))
    passphrase = _write(world.base / "passphrase", PASSPHRASE + b"\n")
    root = world.base / "root.pem"
    url = world.url("strict")
    done = mutls(url, "--cert", str(cert), "--key", str(key), "--ca", str(root),
                 "--passphrase-file", str(passphrase))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "✓ handshake with our certificate" in done.stdout
    assert "all checks passed" in done.stdout
    assert PASSPHRASE.decode() not in done.stdout


def test_the_command_json_names_the_cause_and_exits_1(world: World) -> None:
    done = mutls(world.url("strict"), "--ca", str(world.base / "root.pem"), "--json")
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    assert data["ok"] is False
    assert data["cause"]["code"] == "partner_requires_client_certificate"
    assert set(data["steps"][0]) >= {"name", "ok", "detail"}


# --- the mutls gateway ---------------------------------------------------------------------------


def test_a_mutls_gateway_json_error_code_is_reported(tmp_path: Path) -> None:
    server = _start_up(tmp_path / "platform")
    try:
        trust = _write(
            tmp_path / "platform.pem",
            httpx.get(f"{server.url}/ca/platform/chain.pem", timeout=10).content,
        )
        admin = Admin(url=server.url, token=server.admin_token, upstream="http://127.0.0.1:9")
        admin.account("acme")
        client = admin.issue("acme", "doctor.acme.example", tmp_path)
        url = f"{server.gateway_url}/no/such/route"
        args = ["--cert", str(client.cert), "--key", str(client.key), "--ca", str(trust)]
        deadline = time.monotonic() + 10
        while True:  # the gateway learns the new certificate within its snapshot interval
            done = mutls(url, *args, "--json")
            data = json.loads(done.stdout)
            if data.get("cause", {}).get("code") not in {None, "certificate_not_registered"}:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert done.returncode == 1
        step = data["steps"][-1]
        assert step["name"] == "http", data
        assert step["code"] == "route_not_found", data
        assert "HTTP 404" in step["detail"]
    finally:
        server.stop()


# --- the identity from the local vault: --secret NAME --env ENV -------------------------------


@pytest.fixture(scope="module")
def vault(world: World) -> EgressNode:
    """A bootstrapped data directory with the certificate secret ``partner_cert``: a sandbox
    value (the client the strict server accepts, and its CA bundle) and none for production."""
    node = EgressNode(world.base / "vault").open()
    node.secret(
        "partner_cert",
        {"sandbox": certificate_fields(world.client, ca_pem=world.ca.root_pem.decode())},
    )
    return node


def mutls_with_data(node: EgressNode, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(MUTLS), "doctor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
        env=node.env,  # MUTLS_DATA_DIR points at the bootstrapped data directory
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


def test_the_command_with_a_vault_secret_is_all_green(world: World, vault: EgressNode) -> None:
    done = mutls_with_data(vault, world.url("strict"), "--secret", "partner_cert",
                           "--env", "sandbox", "--json")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert data["ok"] is True, data
    assert "secret partner_cert (sandbox)" in data["steps"][0]["detail"]
    server = next(s for s in data["steps"] if s["name"] == "server.certificate")
    assert "ca_bundle_pem of secret partner_cert" in server["detail"]  # no --ca needed
    assert "PRIVATE KEY" not in done.stdout


def test_the_command_with_an_environment_without_value_is_environment_value_missing(
    world: World, vault: EgressNode
) -> None:
    done = mutls_with_data(vault, world.url("strict"), "--secret", "partner_cert",
                           "--env", "production", "--json")  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert json.loads(done.stdout)["error"]["code"] == "environment_value_missing"
