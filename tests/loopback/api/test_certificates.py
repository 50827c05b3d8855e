"""Seed 003 over the admin API: mTLS settings, issuing from a CSR, formats, quota, inventory."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import AuthorityInformationAccessOID
from sqlalchemy import func, select, update

from mutls.accounts.mtls import update_mtls_settings
from mutls.api.app import create_app
from mutls.pki.csr import SubjectSpec, build_csr
from mutls.pki.keys import generate_key
from mutls.store.models import AuditEvent, IssuedCertificate
from tests.loopback.api.conftest import SYSTEM, Api, TestClient

pytestmark = pytest.mark.usefixtures("platform_ca")


def csr_pem(cn: str = "client.acme.example", sans: list[x509.GeneralName] | None = None) -> str:
    csr = build_csr(
        generate_key(),
        SubjectSpec(common_name=cn, country="CA", organization="Acme"),
        [x509.DNSName(cn)] if sans is None else sans,
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def tampered_csr_pem() -> str:
    """A well-formed CSR whose signature no longer matches: one signature byte flipped."""
    der = bytearray(
        x509.load_pem_x509_csr(csr_pem().encode()).public_bytes(serialization.Encoding.DER)
    )
    der[-1] ^= 0x01
    csr = x509.load_der_x509_csr(bytes(der))
    assert not csr.is_signature_valid
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def mtls_account(api: Api, name: str = "acme", *, enabled: bool = True, quota: int = 5) -> str:
    account = api.account(name)
    update_mtls_settings(
        api.db, SYSTEM, account, enabled=enabled, certificate_quota=quota, now=api.now()
    )
    return account


def issue(api: Api, account: str, role: str = "manage-mtls", **body: Any) -> Any:
    body.setdefault("csr_pem", csr_pem())
    params = {"format": body.pop("format")} if "format" in body else None
    return api.call(
        "POST",
        f"/admin/accounts/{account}/certificates",
        role=role,
        account_id=account if role == "manage-mtls" else None,
        json=body,
        params=params,
    )


def issued_count(api: Api) -> int:
    with api.db.read() as session:
        return int(
            session.execute(select(func.count()).select_from(IssuedCertificate)).scalar_one()
        )


def issue_audits(api: Api) -> int:
    with api.db.read() as session:
        return int(
            session.execute(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "certificate.issue")
            ).scalar_one()
        )


# --- issuing -------------------------------------------------------------------------------


@pytest.mark.openssl
def test_manage_mtls_user_gets_a_certificate_that_openssl_verifies(
    api: Api, tmp_path: Path
) -> None:
    """201 with the leaf, the intermediates and the root; `openssl verify` accepts the chain."""
    account = mtls_account(api)
    response = issue(api, account, api_versions=["v2"])
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["status"], body["account_id"], body["api_versions"]) == ("live", account, ["v2"])
    assert body["sans"] == ["DNS:client.acme.example"]
    chain = x509.load_pem_x509_certificates(body["chain_pem"].encode())
    root = x509.load_pem_x509_certificate(body["ca_pem"].encode())
    assert len(chain) == 1
    assert root.subject == root.issuer
    assert chain[0].subject != chain[0].issuer
    (tmp_path / "leaf.pem").write_text(body["certificate_pem"])
    (tmp_path / "chain.pem").write_text(body["chain_pem"])
    (tmp_path / "ca.pem").write_text(body["ca_pem"])
    verified = subprocess.run(
        [
            *("openssl", "verify", "-purpose", "sslclient", "-CAfile", "ca.pem"),
            *("-untrusted", "chain.pem", "leaf.pem"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    assert "leaf.pem: OK" in verified.stdout
    # and without the intermediate, the same leaf does not verify (the rejection twin)
    alone = subprocess.run(
        ["openssl", "verify", "-CAfile", "ca.pem", "leaf.pem"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert alone.returncode != 0


def test_der_and_p7b_downloads_parse(api: Api) -> None:
    """format=der is the DER leaf; format=p7b is PKCS#7 with the leaf and the intermediate."""
    account = mtls_account(api)
    der = issue(api, account, format="der")
    assert der.status_code == 201, der.text
    assert der.headers["content-type"] == "application/pkix-cert"
    leaf = x509.load_der_x509_certificate(der.content)
    p7b = issue(api, account, format="p7b", csr_pem=csr_pem("other.acme.example"))
    assert p7b.status_code == 201, p7b.text
    assert p7b.headers["content-type"] == "application/pkcs7-mime"
    certs = pkcs7.load_der_pkcs7_certificates(p7b.content)
    # a PKCS#7 certificate set is a DER SET OF: unordered, so find each by role
    by_cn = {c.subject.rfc4514_string(): c for c in certs}
    assert len(certs) == 2
    p7b_leaf = by_cn["CN=other.acme.example,O=Acme,C=CA"]
    intermediate = next(c for c in certs if c is not p7b_leaf)
    assert p7b_leaf.issuer == intermediate.subject == leaf.issuer
    assert intermediate.issuer != intermediate.subject  # the root is not in the bundle
    assert issued_count(api) == 2


def test_unknown_format_is_422(api: Api) -> None:
    account = mtls_account(api)
    response = issue(api, account, format="pfx")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert issued_count(api) == 0


def test_dry_run_issues_nothing_and_reports_every_violation(api: Api) -> None:
    """dry_run: 200 with ok and every broken rule; no certificate, no issuance audit row."""
    account = mtls_account(api)
    good = issue(api, account, dry_run=True)
    assert good.status_code == 200, good.text
    assert good.json()["ok"] is True
    assert good.json()["violations"] == []
    wildcard = csr_pem("*.acme.example", [x509.DNSName("*.acme.example"), x509.DNSName("intranet")])
    bad = issue(api, account, dry_run=True, csr_pem=wildcard)
    assert bad.status_code == 200, bad.text
    assert bad.json()["ok"] is False
    rules = {v["rule"] for v in bad.json()["violations"]}
    assert {"no_wildcards", "san_dns_fqdn"} <= rules
    refused = issue(api, account, csr_pem=wildcard)
    assert refused.status_code == 422
    assert {v["rule"] for v in refused.json()["error"]["violations"]} == rules
    assert issued_count(api) == 0
    assert issue_audits(api) == 0


def test_dry_run_of_garbage_is_still_422(api: Api) -> None:
    account = mtls_account(api)
    response = issue(api, account, dry_run=True, csr_pem="not a CSR at all")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unsupported_format"


def test_dry_run_of_another_account_is_404(api: Api) -> None:
    mine, theirs = mtls_account(api, "alpha"), mtls_account(api, "bravo")
    response = api.call(
        "POST",
        f"/admin/accounts/{theirs}/certificates",
        role="manage-mtls",
        account_id=mine,
        json={"csr_pem": csr_pem(), "dry_run": True},
    )
    assert response.status_code == 404


def test_the_sixth_live_certificate_is_409_naming_the_five(api: Api) -> None:
    account = mtls_account(api)
    serials = []
    for i in range(5):
        response = issue(api, account, csr_pem=csr_pem(f"c{i}.acme.example"))
        assert response.status_code == 201, response.text
        serials.append(response.json()["serial"])
    sixth = issue(api, account, csr_pem=csr_pem("c5.acme.example"))
    assert sixth.status_code == 409
    error = sixth.json()["error"]
    assert error["code"] == "certificate_quota_exceeded"
    assert sorted(c["serial"] for c in error["live_certificates"]) == sorted(serials)
    assert issued_count(api) == 5


def test_an_account_without_mtls_is_409(api: Api) -> None:
    account = mtls_account(api, enabled=False)
    response = issue(api, account)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "account_mtls_disabled"
    assert issued_count(api) == 0


def test_another_accounts_manager_gets_404(api: Api) -> None:
    mine, theirs = mtls_account(api, "alpha"), mtls_account(api, "bravo")
    response = api.call(
        "POST",
        f"/admin/accounts/{theirs}/certificates",
        role="manage-mtls",
        account_id=mine,
        json={"csr_pem": csr_pem()},
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "account_not_found"
    assert issued_count(api) == 0


def test_an_auditor_cannot_issue(api: Api) -> None:
    account = mtls_account(api)
    response = issue(api, account, role="auditor")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert issued_count(api) == 0


def test_a_csr_with_a_bad_signature_is_422_naming_csr_signature(api: Api) -> None:
    account = mtls_account(api)
    response = issue(api, account, csr_pem=tampered_csr_pem())
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "csr_policy_violation"
    assert "csr_signature" in {v["rule"] for v in error["violations"]}
    assert issued_count(api) == 0


def test_garbage_is_422_unsupported_format(api: Api) -> None:
    account = mtls_account(api)
    response = issue(api, account, csr_pem="-----BEGIN NONSENSE-----\nAAAA\n-----END NONSENSE-----")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unsupported_format"


def test_validity_out_of_range_is_422(api: Api) -> None:
    account = mtls_account(api)
    response = issue(api, account, validity_days=4000)
    assert response.status_code == 422
    assert response.json()["error"]["code"] in {"invalid_argument", "csr_policy_violation"}
    assert issued_count(api) == 0


# --- inventory -----------------------------------------------------------------------------


def _issue_ok(api: Api, account: str, cn: str) -> dict[str, Any]:
    response = issue(api, account, csr_pem=csr_pem(cn))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_inventory_filters_by_status_expiry_serial_fingerprint_and_subject(api: Api) -> None:
    account = mtls_account(api)
    live = _issue_ok(api, account, "live.acme.example")
    revoked = _issue_ok(api, account, "revoked.acme.example")
    expired = _issue_ok(api, account, "expired.acme.example")
    now = api.now()
    with api.db.write() as session:
        session.execute(
            update(IssuedCertificate)
            .where(IssuedCertificate.id == revoked["id"])
            .values(revoked_at=now, revocation_reason="keyCompromise")
        )
        session.execute(
            update(IssuedCertificate)
            .where(IssuedCertificate.id == expired["id"])
            .values(not_after=now - timedelta(days=1))
        )
        session.execute(
            update(IssuedCertificate)
            .where(IssuedCertificate.id == live["id"])
            .values(renewed_from_id=expired["id"])
        )
    path = f"/admin/accounts/{account}/certificates"

    def ids(**params: Any) -> list[str]:
        response = api.call("GET", path, role="manage-mtls", account_id=account, params=params)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["certificates"]]

    assert sorted(ids()) == sorted([live["id"], revoked["id"], expired["id"]])
    assert ids(status="live") == [live["id"]]
    assert ids(status="revoked") == [revoked["id"]]
    assert ids(status="expired") == [expired["id"]]
    assert ids(expiring_within_days=400) == [live["id"]]
    assert ids(expiring_within_days=30) == []
    assert ids(serial=live["serial"].lower()) == [live["id"]]
    assert ids(fingerprint=live["fingerprint_sha256"].replace(":", "").lower()) == [live["id"]]
    assert ids(subject="REVOKED.acme") == [revoked["id"]]
    assert ids(subject="%") == []
    listed = api.call("GET", path, role="manage-mtls", account_id=account).json()
    by_id = {c["id"]: c for c in listed["certificates"]}
    assert by_id[live["id"]]["renewed_from_id"] == expired["id"]
    assert by_id[expired["id"]]["renewed_by_id"] == live["id"]
    assert by_id[revoked["id"]]["status"] == "revoked"
    bad = api.call("GET", path, params={"serial": "not-hex"})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_argument"


def test_one_certificate_by_id_or_serial_within_the_callers_account(api: Api) -> None:
    mine, theirs = mtls_account(api, "alpha"), mtls_account(api, "bravo")
    cert = _issue_ok(api, mine, "one.alpha.example")
    for ref in (cert["id"], cert["serial"]):
        own = api.call("GET", f"/admin/certificates/{ref}", role="manage-mtls", account_id=mine)
        assert own.status_code == 200, own.text
        assert own.json()["id"] == cert["id"]
        other = api.call("GET", f"/admin/certificates/{ref}", role="manage-mtls", account_id=theirs)
        assert other.status_code == 404
        assert other.json()["error"]["code"] == "certificate_not_found"
    listed = api.call(
        "GET", f"/admin/accounts/{mine}/certificates", role="manage-mtls", account_id=theirs
    )
    assert listed.status_code == 404
    assert api.call("GET", "/admin/certificates/crt_nothing").status_code == 404


# --- mTLS settings -------------------------------------------------------------------------


def test_admin_changes_mtls_settings_and_the_manager_reads_them(api: Api) -> None:
    account = api.account("acme")
    path = f"/admin/accounts/{account}/mtls"
    initial = api.call("GET", path, role="manage-mtls", account_id=account)
    assert initial.status_code == 200
    assert (initial.json()["enabled"], initial.json()["certificate_quota"]) == (False, 5)
    changed = api.call(
        "PUT",
        path,
        json={
            "enabled": True,
            "ip_allowlist": ["203.0.113.7", "198.51.100.0/24"],
            "allowed_routes": ["v2"],
        },
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["enabled"] is True
    assert body["enforced"] is False
    assert body["ip_allowlist"] == ["198.51.100.0/24", "203.0.113.7/32"]
    assert body["allowed_routes"] == ["v2"]
    # a partial update keeps what it does not name
    quota = api.call("PUT", path, json={"certificate_quota": 2})
    assert quota.json()["enabled"] is True
    assert quota.json()["certificate_quota"] == 2


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"ip_allowlist": ["203.0.113.0/33"]}, "invalid_argument"),
        ({"ip_allowlist": ["example.com"]}, "invalid_argument"),
        ({"certificate_quota": 0}, "invalid_argument"),
        ({"allowed_routes": ["bad route"]}, "invalid_argument"),
        ({"enabled": True, "colour": "blue"}, "invalid_request"),
    ],
)
def test_bad_mtls_settings_are_422_and_change_nothing(
    api: Api, body: dict[str, Any], code: str
) -> None:
    account = api.account("acme")
    response = api.call("PUT", f"/admin/accounts/{account}/mtls", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code
    assert api.call("GET", f"/admin/accounts/{account}/mtls").json()["enabled"] is False


@pytest.mark.parametrize(
    ("role", "scoped"), [("manage-mtls", True), ("admin", True), ("auditor", False)]
)
def test_only_platform_admins_change_mtls_settings(api: Api, role: str, scoped: bool) -> None:
    account = api.account("acme")
    response = api.call(
        "PUT",
        f"/admin/accounts/{account}/mtls",
        role=role,
        account_id=account if scoped else None,
        json={"certificate_quota": 50},
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert api.call("GET", f"/admin/accounts/{account}/mtls").json()["certificate_quota"] == 5


# --- revocation pointers ------------------------------------------------------------------


def _uris(certificate: x509.Certificate) -> tuple[list[str], list[tuple[str, str]]]:
    cdp = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    crl = [
        name.value
        for point in cdp
        for name in point.full_name or []
        if isinstance(name, x509.UniformResourceIdentifier)
    ]
    aia = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    access = [
        (d.access_method.dotted_string, d.access_location.value)
        for d in aia
        if isinstance(d.access_location, x509.UniformResourceIdentifier)
    ]
    return crl, access


def _assert_pointers(api: Api, base: str) -> None:
    response = issue(api, mtls_account(api))
    assert response.status_code == 201, response.text
    leaf = x509.load_pem_x509_certificate(response.json()["certificate_pem"].encode())
    crl, access = _uris(leaf)
    assert crl == [f"{base}/ca/platform/crl"]
    ocsp = AuthorityInformationAccessOID.OCSP.dotted_string
    assert access == [(ocsp, f"{base}/ca/platform/ocsp")]


def test_issued_certificates_point_to_the_admin_api_by_default(api: Api) -> None:
    _assert_pointers(api, "http://127.0.0.1:7000")


def test_issued_certificates_point_to_the_public_url(api: Api) -> None:
    """MUTLS_PUBLIC_URL, path included, is the base of the CRL and OCSP URLs."""
    settings = replace(api.platform.settings, public_url="https://pki.example.com/mutls")
    platform = replace(api.platform, settings=settings)
    app = create_app(platform)
    with TestClient(app) as client:
        public = Api(app=app, client=client, platform=platform, tokens=api.tokens)
        _assert_pointers(public, "https://pki.example.com/mutls")
