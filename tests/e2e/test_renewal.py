"""Renewal over mTLS against a real `mutls up`: `mutls renew`, curl, openssl and httpx as clients,
real TLS handshakes on 127.0.0.1, and every refusal a client can meet."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mutls.ca.issuance import issue_certificate
from mutls.ca.issuer import IssuerCache
from mutls.config import Settings
from mutls.pki.csr import SubjectSpec, build_csr, csr_like
from mutls.pki.export import private_key_pem
from mutls.pki.keys import generate_key
from mutls.runtime.platform import Platform
from mutls.testing import TestCA
from tests.e2e.conftest import MUTLS, Run
from tests.e2e.test_cli_platform import Server, _clean_env, start_server

ACCOUNT = "renewco"
CN = "client.renewco.example"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("renewal"))
    admin = httpx.Client(
        base_url=running.url, headers={"Authorization": f"Bearer {running.admin_token}"}
    )
    with admin:
        assert admin.post("/admin/accounts", json={"name": ACCOUNT}).status_code == 201
        enabled = admin.put(
            f"/admin/accounts/{ACCOUNT}/mtls", json={"enabled": True, "certificate_quota": 50}
        )
        assert enabled.status_code == 200, enabled.text
    try:
        yield running
    finally:
        code = running.stop()
    assert code == 0, f"mutls up exited with {code} on Ctrl-C"
    assert running.leaked() == [], f"secret values in the server's debug log {running.log}"


def _admin(server: Server) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.admin_token}"}
    )


def issue(server: Server, where: Path, *, days: int = 30) -> tuple[Path, Path, dict[str, object]]:
    """A key and a certificate (with its chain) issued through the admin API, as files."""
    key = generate_key()
    csr = build_csr(key, SubjectSpec(common_name=CN), [x509.DNSName(CN)])
    with _admin(server) as admin:
        answer = admin.post(
            f"/admin/accounts/{ACCOUNT}/certificates",
            json={
                "csr_pem": csr.public_bytes(serialization.Encoding.PEM).decode(),
                "validity_days": days,
                "api_versions": ["v1"],
            },
        )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    where.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = where / "client.pem", where / "client.key"
    cert_file.write_text(body["certificate_pem"] + body["chain_pem"])
    key_file.write_bytes(private_key_pem(key, None))
    key_file.chmod(0o600)
    (where / "ca.pem").write_text(body["ca_pem"])
    return cert_file, key_file, body


def certificate(server: Server, ref: str) -> dict[str, object]:
    with _admin(server) as admin:
        answer = admin.get(f"/admin/certificates/{ref}")
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert isinstance(data, dict)
    return data


def serial_of(path: Path) -> str:
    return format(x509.load_pem_x509_certificates(path.read_bytes())[0].serial_number, "X")


def tls(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """What an httpx user writes: trust the platform CA, present a client certificate."""
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key else None)
    return context


def _same_serial(a: str, b: str) -> bool:
    return int(a, 16) == int(b, 16)


def test_mutls_renew_installs_a_successor_and_the_old_certificate_keeps_working(
    run: Run, server: Server, tmp_path: Path
) -> None:
    cert_file, key_file, old = issue(server, tmp_path)
    old_copy, old_key = tmp_path / "old.pem", tmp_path / "old.key"
    old_copy.write_bytes(cert_file.read_bytes())
    old_key.write_bytes(key_file.read_bytes())
    old_key_pem = key_file.read_bytes()

    done = run(
        "renew", "--cert", str(cert_file), "--key", str(key_file),
        "--server", server.renew_url, "--json",
        check=True,
    ).json()  # fmt: skip
    assert _same_serial(str(done["renewed_from_serial"]), str(old["serial"]))
    assert not _same_serial(serial_of(cert_file), str(old["serial"]))
    assert key_file.read_bytes() != old_key_pem  # a fresh key: renewal rotates the key too
    assert key_file.stat().st_mode & 0o777 == 0o600

    new = certificate(server, str(done["serial"]))
    assert new["renewed_from_id"] == old["id"]
    assert new["api_versions"] == ["v1"]
    assert new["sans"] == [f"DNS:{CN}"]
    before = certificate(server, str(old["id"]))
    assert (before["status"], before["renewed_by_id"]) == ("live", new["id"])

    # The renewed certificate works: it renews in turn, with the new key on disk.
    again = run(
        "renew", "--cert", str(cert_file), "--key", str(key_file),
        "--server", server.renew_url, "--json",
        check=True,
    ).json()  # fmt: skip
    assert certificate(server, str(again["serial"]))["renewed_from_id"] == new["id"]

    # The old one keeps working until it expires or is revoked: curl renews with it, sending the
    # CSR raw and asking for the PEM chain (RFC 8555's media type).
    csr_file = tmp_path / "same-key.csr"
    old_cert = x509.load_pem_x509_certificates(old_copy.read_bytes())[0]
    old_private = serialization.load_pem_private_key(old_key.read_bytes(), None)
    csr_file.write_bytes(
        csr_like(old_cert, old_private).public_bytes(serialization.Encoding.PEM)  # type: ignore[arg-type]
    )
    curl = subprocess.run(
        [
            "curl", "-sS", "--fail-with-body", "--cacert", str(tmp_path / "ca.pem"),
            "--cert", str(old_copy), "--key", str(old_key),
            "-H", "Content-Type: application/pkcs10",
            "-H", "Accept: application/pem-certificate-chain",
            "--data-binary", f"@{csr_file}",
            f"{server.renew_url}/renew",
        ],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert curl.returncode == 0, curl.stdout + curl.stderr
    chain = x509.load_pem_x509_certificates(curl.stdout.encode())
    assert len(chain) == 2
    assert chain[0].public_key() == old_cert.public_key()  # same key: the customer's own CSR
    assert chain[0].issuer == chain[1].subject


def test_no_client_certificate_is_a_json_401_for_curl_and_httpx(
    server: Server, tmp_path: Path
) -> None:
    _, _, body = issue(server, tmp_path)
    ca = tmp_path / "ca.pem"
    answer = httpx.post(f"{server.renew_url}/renew", content=b"x", verify=tls(ca))
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "client_certificate_required"
    curl = subprocess.run(
        ["curl", "-s", "--cacert", str(ca), "-X", "POST", "-d", "x", f"{server.renew_url}/renew"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert json.loads(curl.stdout)["error"]["code"] == "client_certificate_required"
    del body


def test_openssl_verifies_the_server_and_is_asked_for_a_client_certificate(
    server: Server, tmp_path: Path, openssl: str
) -> None:
    """The server certificate comes from the platform CA (the customer's chain already trusts
    it), names the host, and the handshake requests a client certificate.

    The request names no acceptable CAs: Python's ssl module cannot set the client CA list
    (SSL_CTX_set_client_CA_list); clients with one certificate are not affected."""
    issue(server, tmp_path)
    host_port = server.renew_url.removeprefix("https://")
    for version in ("-tls1_2", "-tls1_3"):
        probe = subprocess.run(
            [openssl, "s_client", "-connect", host_port, "-CAfile", str(tmp_path / "ca.pem"),
             "-verify_hostname", "localhost", "-verify_return_error", version],
            input="", capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert "Verify return code: 0 (ok)" in probe.stdout, probe.stdout + probe.stderr
    tls12 = subprocess.run(
        [openssl, "s_client", "-connect", host_port, "-CAfile", str(tmp_path / "ca.pem"),
         "-tls1_2"],
        input="", capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert "Client Certificate Types" in tls12.stdout  # a CertificateRequest was sent
    wrong_name = subprocess.run(
        [openssl, "s_client", "-connect", host_port, "-CAfile", str(tmp_path / "ca.pem"),
         "-verify_hostname", "pki.elsewhere.example", "-verify_return_error"],
        input="", capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert "Verify return code: 0 (ok)" not in wrong_name.stdout


def test_a_revoked_certificate_is_refused_with_its_code(
    run: Run, server: Server, tmp_path: Path
) -> None:
    cert_file, key_file, old = issue(server, tmp_path)
    with _admin(server) as admin:
        revoked = admin.post(
            f"/admin/certificates/{old['serial']}/revoke", json={"reason": "key_compromise"}
        )
    assert revoked.status_code == 200, revoked.text
    before = cert_file.read_bytes()
    refused = run(
        "renew", "--cert", str(cert_file), "--key", str(key_file),
        "--server", server.renew_url, "--json",
    )  # fmt: skip
    assert refused.returncode == 1
    assert refused.error_code() == "certificate_revoked"
    assert cert_file.read_bytes() == before  # nothing was written


def test_an_expired_certificate_gets_an_http_403_not_a_tls_alert(
    server: Server, tmp_path: Path
) -> None:
    """The handshake leaves dates to the service, so the client learns why, in JSON."""
    settings = Settings.from_env({"MUTLS_DATA_DIR": str(server.data_dir)})
    platform = Platform.from_settings(settings)
    try:
        past = platform.clock() - timedelta(days=40)
        issuer = IssuerCache(platform.db, platform.keys, settings.ca_dir).platform(now=past)
        key = generate_key()
        csr = build_csr(key, SubjectSpec(common_name=CN), [x509.DNSName(CN)])
        from mutls.accounts.principal import Principal

        view = issue_certificate(
            platform.db,
            issuer,
            Principal.system("test:e2e"),
            ACCOUNT,
            csr.public_bytes(serialization.Encoding.PEM),
            now=past,
            validity_days=30,
        )
        chain_pem = issuer.chain_pem(include_root=False)
        root_pem = issuer.root.public_bytes(serialization.Encoding.PEM)
    finally:
        platform.close()
    cert_file, key_file = tmp_path / "expired.pem", tmp_path / "expired.key"
    cert_file.write_text(view.certificate_pem + chain_pem)
    key_file.write_bytes(private_key_pem(key, None))
    (tmp_path / "ca.pem").write_bytes(root_pem)
    new_csr = csr_like(
        x509.load_pem_x509_certificate(view.certificate_pem.encode()), generate_key()
    ).public_bytes(serialization.Encoding.PEM)
    answer = httpx.post(
        f"{server.renew_url}/renew",
        json={"csr_pem": new_csr.decode()},
        verify=tls(tmp_path / "ca.pem", cert_file, key_file),
    )
    assert answer.status_code == 403
    error = answer.json()["error"]
    assert error["code"] == "certificate_expired"
    assert view.serial in error["message"]
    assert "issue a new one" in error["hint"]


def test_a_certificate_from_a_customers_own_ca_fails_the_handshake(
    run: Run, server: Server, tmp_path: Path
) -> None:
    """Only the platform CA is trusted here: an own-CA certificate renews at its own CA."""
    _, _, body = issue(server, tmp_path)
    own = TestCA(name="Renewco Own CA", organization="Renewco")
    ident = own.issue(CN, sans=[CN])
    cert_file, key_file = tmp_path / "own.pem", tmp_path / "own.key"
    cert_file.write_bytes(ident.chain_pem)
    key_file.write_bytes(ident.key_pem())
    refused = run(
        "renew", "--cert", str(cert_file), "--key", str(key_file),
        "--server", server.renew_url, "--ca", str(tmp_path / "ca.pem"), "--json",
    )  # fmt: skip
    assert refused.returncode == 1
    assert refused.error_code() == "tls_handshake_failed"
    del body


def test_names_cannot_change_in_a_renewal(server: Server, tmp_path: Path) -> None:
    cert_file, key_file, _ = issue(server, tmp_path)
    other = build_csr(
        generate_key(),
        SubjectSpec(common_name="admin.renewco.example"),
        [x509.DNSName("admin.renewco.example")],
    )
    answer = httpx.post(
        f"{server.renew_url}/renew",
        content=other.public_bytes(serialization.Encoding.PEM),
        headers={"Content-Type": "application/pkcs10"},
        verify=tls(tmp_path / "ca.pem", cert_file, key_file),
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "renewal_names_changed"


def test_a_bad_body_is_a_json_error(server: Server, tmp_path: Path) -> None:
    cert_file, key_file, _ = issue(server, tmp_path)
    context = tls(tmp_path / "ca.pem", cert_file, key_file)
    empty = httpx.post(f"{server.renew_url}/renew", content=b"", verify=context)
    assert (empty.status_code, empty.json()["error"]["code"]) == (422, "invalid_argument")
    garbage = httpx.post(
        f"{server.renew_url}/renew",
        content=b"not a csr",
        headers={"Content-Type": "application/pkcs10"},
        verify=context,
    )
    assert garbage.status_code == 422
    assert garbage.json()["error"]["code"] == "unsupported_format"
    wrong_json = httpx.post(f"{server.renew_url}/renew", json={"csr": "x"}, verify=context)
    assert wrong_json.json()["error"]["code"] == "invalid_argument"


def test_the_daemon_renews_when_due_runs_the_hook_and_stops_on_sigterm(
    server: Server, tmp_path: Path
) -> None:
    cert_file, key_file, old = issue(server, tmp_path, days=1)
    marker = tmp_path / "hook.out"
    # A one-day certificate (backdated five minutes) is due almost at once with --renew-at 0.003.
    proc = subprocess.Popen(
        [
            str(MUTLS), "renew", "--cert", str(cert_file), "--key", str(key_file),
            "--server", server.renew_url, "--daemon", "--renew-at", "0.003",
            "--exec", f'echo "$MUTLS_RENEWED_SERIAL $MUTLS_RENEWED_CERT" >> {marker}',
        ],
        env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        assert marker.exists(), "the daemon did not renew within 60 s"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    first = marker.read_text().splitlines()[0].split()
    assert first[1] == str(cert_file)
    renewed = certificate(server, first[0])
    assert renewed["renewed_from_id"] == old["id"]
    assert "renewed serial" in stderr
