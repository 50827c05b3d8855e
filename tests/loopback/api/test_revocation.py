"""Revocation over the admin API, and the public CA endpoints (chain, CRL, OCSP) against openssl.

The openssl tests get a certificate issued by the platform CA through the service, then check
what relying parties check: `openssl crl -verify`, `openssl verify -crl_check`, and
`openssl ocsp` against the app served by a real uvicorn server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from mutls.accounts.mtls import update_mtls_settings
from mutls.ca.issuance import IssuedView, issue_certificate
from mutls.ca.issuer import IssuerCache
from mutls.pki.csr import SubjectSpec, build_csr
from mutls.pki.keys import generate_key
from tests.loopback.api.conftest import SYSTEM, Api

# Neither openssl nor anything else here may send loopback traffic to a proxy.
ENV = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def enabled_account(api: Api, name: str = "acme") -> str:
    account = api.account(name)
    update_mtls_settings(api.db, SYSTEM, account, enabled=True, certificate_quota=10, now=api.now())
    return account


def issue(api: Api, account: str, *, versions: tuple[str, ...] = ()) -> IssuedView:
    issuers = api.app.state.issuers
    assert isinstance(issuers, IssuerCache)
    csr = build_csr(
        generate_key(),
        SubjectSpec(common_name="client.acme.example", country="CA", organization="Acme"),
        [x509.DNSName("client.acme.example")],
    )
    return issue_certificate(
        api.db,
        issuers.platform(now=api.now()),
        SYSTEM,
        account,
        csr.public_bytes(serialization.Encoding.PEM),
        now=api.now(),
        api_versions=versions,
    )


@pytest.mark.usefixtures("platform_ca")
def test_revoke_is_audited_and_a_second_revoke_is_409(api: Api) -> None:
    """A manage-mtls token of the account revokes with a reason; the audit log names it."""
    account = enabled_account(api)
    view = issue(api, account)
    path = f"/admin/certificates/{view.serial}/revoke"
    response = api.call(
        "POST", path, role="manage-mtls", account_id=account, json={"reason": "key_compromise"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["id"], body["status"], body["revocation_reason"]) == (
        view.id,
        "revoked",
        "keyCompromise",
    )
    events = api.call("GET", "/admin/audit?action=certificate.revoke").json()["events"]
    assert [(e["resource_id"], e["details"]["serial"]) for e in events] == [(view.id, view.serial)]
    again = api.call("POST", f"/admin/certificates/{view.id}/revoke")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_revoked"


@pytest.mark.usefixtures("platform_ca")
def test_another_accounts_token_gets_404_and_an_auditor_403(api: Api) -> None:
    mine, theirs = enabled_account(api, "acme"), enabled_account(api, "globex")
    view = issue(api, theirs)
    for ref in (view.id, view.serial):
        response = api.call(
            "POST", f"/admin/certificates/{ref}/revoke", role="admin", account_id=mine
        )
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "certificate_not_found"
    denied = api.call("POST", f"/admin/certificates/{view.id}/revoke", role="auditor")
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "permission_denied"
    assert api.call("GET", "/admin/audit?action=certificate.revoke").json()["events"] == []
    unknown = api.call("POST", "/admin/certificates/ABCDEF01/revoke")
    assert unknown.status_code == 404
    bad = api.call("POST", f"/admin/certificates/{view.id}/revoke", json={"reason": "bored"})
    assert bad.status_code == 422


@pytest.mark.usefixtures("platform_ca")
def test_retiring_an_api_version_revokes_only_its_live_certificates(api: Api) -> None:
    account = enabled_account(api)
    v1 = issue(api, account, versions=("v1",))
    v2 = issue(api, account, versions=("v2",))
    scoped = api.call("POST", "/admin/api-versions/v1/revoke", role="admin", account_id=account)
    assert scoped.status_code == 403
    response = api.call("POST", "/admin/api-versions/v1/revoke")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["api_version"] == "v1"
    assert [c["id"] for c in body["revoked"]] == [v1.id]
    assert body["revoked"][0]["revocation_reason"] == "cessationOfOperation"
    kept = api.call("GET", f"/admin/certificates/{v2.id}").json()
    assert kept["status"] == "live"


def test_unknown_ca_is_a_json_404_and_ca_endpoints_need_no_token(api: Api) -> None:
    for path in ("/ca/elsewhere/crl", "/ca/elsewhere/chain.pem", "/ca/platform/crl"):
        response = api.client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    posted = api.client.post(
        "/ca/elsewhere/ocsp", content=b"0", headers={"Content-Type": "application/ocsp-request"}
    )
    assert posted.status_code == 404


@pytest.mark.usefixtures("platform_ca")
def test_chain_and_crl_are_served_with_their_media_types(api: Api) -> None:
    chain = api.client.get("/ca/platform/chain.pem")
    assert chain.status_code == 200
    assert chain.headers["content-type"] == "application/pem-certificate-chain"
    assert len(x509.load_pem_x509_certificates(chain.content)) == 2
    der = api.client.get("/ca/platform/crl")
    assert der.headers["content-type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(der.content)
    max_age = int(der.headers["cache-control"].split("max-age=")[1].split(",")[0])
    assert 0 < max_age <= 7 * 86400
    for kw in ({"params": {"format": "pem"}}, {"headers": {"Accept": "application/x-pem-file"}}):
        pem = api.client.get("/ca/platform/crl", **kw)
        assert pem.headers["content-type"] == "application/x-pem-file"
        assert x509.load_pem_x509_crl(pem.content) == crl


def test_malformed_ocsp_requests_get_malformed_request(api: Api, platform_ca: Path) -> None:
    for response in (
        api.client.post("/ca/platform/ocsp", content=b"\x30\x03abc"),
        api.client.get("/ca/platform/ocsp/not*base64"),
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/ocsp-response"
        parsed = ocsp.load_der_ocsp_response(response.content)
        assert parsed.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


@pytest.mark.usefixtures("platform_ca")
def test_ocsp_get_and_post_answer_good_then_revoked(api: Api) -> None:
    account = enabled_account(api)
    view = issue(api, account)
    cert = x509.load_pem_x509_certificate(view.certificate_pem.encode())
    issuer = x509.load_pem_x509_certificates(api.client.get("/ca/platform/chain.pem").content)[0]
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, issuer, hashes.SHA1())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    encoded = base64.b64encode(request).decode()

    def statuses() -> set[ocsp.OCSPCertStatus]:
        post = api.client.post(
            "/ca/platform/ocsp",
            content=request,
            headers={"Content-Type": "application/ocsp-request"},
        )
        get = api.client.get(f"/ca/platform/ocsp/{encoded}")
        for response in (post, get):
            assert response.headers["content-type"] == "application/ocsp-response"
            assert "max-age=" in response.headers["cache-control"]
        return {ocsp.load_der_ocsp_response(r.content).certificate_status for r in (post, get)}

    assert statuses() == {ocsp.OCSPCertStatus.GOOD}
    api.call("POST", f"/admin/certificates/{view.id}/revoke", json={"reason": "superseded"})
    assert statuses() == {ocsp.OCSPCertStatus.REVOKED}


# --- openssl interop -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Files:
    directory: Path
    leaf: IssuedView

    def write(self, name: str, data: bytes) -> Path:
        path = self.directory / name
        path.write_bytes(data)
        return path


def openssl(directory: Path, *args: str) -> tuple[int, str]:
    binary = shutil.which("openssl")
    if binary is None:
        pytest.fail("the openssl command is required for interop tests (make install adds it)")
    done = subprocess.run(
        [binary, *args],
        cwd=directory,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.fixture
def files(api: Api, platform_ca: Path, tmp_path: Path) -> Files:
    """root.pem, inter.pem, chain.pem (from the endpoint) and leaf.pem of a fresh certificate."""
    account = enabled_account(api)
    leaf = issue(api, account)
    chain = api.client.get("/ca/platform/chain.pem").content
    inter, root = x509.load_pem_x509_certificates(chain)
    directory = tmp_path / "interop"
    directory.mkdir()
    result = Files(directory=directory, leaf=leaf)
    result.write("chain.pem", chain)
    result.write("inter.pem", inter.public_bytes(serialization.Encoding.PEM))
    result.write("root.pem", root.public_bytes(serialization.Encoding.PEM))
    result.write("leaf.pem", leaf.certificate_pem.encode())
    return result


def fetch_crl(api: Api, files: Files) -> None:
    files.write("crl.der", api.client.get("/ca/platform/crl").content)
    files.write("crl.pem", api.client.get("/ca/platform/crl?format=pem").content)


@pytest.mark.openssl
def test_openssl_verifies_the_crl_and_rejects_the_revoked_certificate(
    api: Api, files: Files
) -> None:
    fetch_crl(api, files)
    code, out = openssl(
        files.directory, "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "chain.pem",
        "-verify", "-noout",
    )  # fmt: skip
    assert code == 0, out
    assert "verify OK" in out
    verify = ("verify", "-crl_check", "-CAfile", "root.pem", "-untrusted", "inter.pem")
    code, out = openssl(files.directory, *verify, "-CRLfile", "crl.pem", "leaf.pem")
    assert code == 0, out
    assert "leaf.pem: OK" in out

    revoked = api.call(
        "POST", f"/admin/certificates/{files.leaf.id}/revoke", json={"reason": "key_compromise"}
    )
    assert revoked.status_code == 200
    fetch_crl(api, files)
    code, out = openssl(
        files.directory, "crl", "-inform", "DER", "-in", "crl.der", "-text", "-noout"
    )
    assert code == 0, out
    assert f"Serial Number: {files.leaf.serial}" in out
    assert "Key Compromise" in out
    code, out = openssl(files.directory, *verify, "-CRLfile", "crl.pem", "leaf.pem")
    assert code != 0
    assert "certificate revoked" in out


@pytest.fixture
def served(api: Api) -> Iterator[str]:
    """The app on a real uvicorn server on 127.0.0.1; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        api.app, lifespan="off", ws="none", log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.mark.openssl
def test_openssl_ocsp_gets_good_then_revoked_with_a_verified_response(
    api: Api, files: Files, served: str
) -> None:
    url = f"{served}/ca/platform/ocsp"
    ask = ("ocsp", "-issuer", "inter.pem", "-cert", "leaf.pem", "-url", url, "-CAfile", "root.pem")
    code, out = openssl(files.directory, *ask)
    assert code == 0, out
    assert "Response verify OK" in out
    assert "leaf.pem: good" in out

    revoked = api.call(
        "POST", f"/admin/certificates/{files.leaf.id}/revoke", json={"reason": "key_compromise"}
    )
    assert revoked.status_code == 200
    code, out = openssl(files.directory, *ask)
    assert code == 0, out
    assert "Response verify OK" in out
    assert "leaf.pem: revoked" in out
    assert "Reason: keyCompromise" in out
