"""Issuing client certificates from CSRs within a quota, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import func, select

from mutls.accounts.mtls import update_mtls_settings
from mutls.accounts.principal import Principal
from mutls.accounts.roles import Role
from mutls.accounts.service import create_account
from mutls.ca.issuance import check_csr, issue_certificate, live_certificates
from mutls.ca.issuer import IssuingCA
from mutls.errors import (
    AccountMtlsDisabled,
    AccountNotFound,
    CertificateQuotaExceeded,
    PermissionDenied,
    PolicyViolation,
)
from mutls.pki.csr import SubjectSpec, build_csr
from mutls.pki.keys import generate_key
from mutls.pki.verify import Purpose, verify_chain
from mutls.store.database import Database
from mutls.store.models import AuditEvent, IssuedCertificate
from mutls.testing import TestCA

NOW = datetime.now(UTC).replace(microsecond=0)
ADMIN = Principal.system("test:admin")


@pytest.fixture(scope="module")
def test_ca() -> TestCA:
    return TestCA(name="Issuance Test CA", organization="mutls issuance tests", now=NOW)


def account(db: Database, name: str = "acme", *, quota: int = 5, enabled: bool = True) -> str:
    acc = create_account(db, ADMIN, name=name, display_name=None, now=NOW)
    update_mtls_settings(db, ADMIN, acc.id, enabled=enabled, certificate_quota=quota, now=NOW)
    return acc.id


def csr_pem(cn: str = "client.acme.example", **kw: object) -> bytes:
    sans = kw.get("sans", [x509.DNSName(cn)])
    assert isinstance(sans, list)
    csr = build_csr(
        generate_key(), SubjectSpec(common_name=cn, country="CA", organization="Acme"), sans
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def manager(account_id: str) -> Principal:
    return Principal(actor="token:tok_mgr", role=Role.MANAGE_MTLS, account_id=account_id)


def audit_rows(db: Database) -> int:
    with db.read() as session:
        return int(session.execute(select(func.count()).select_from(AuditEvent)).scalar_one())


def test_manage_mtls_user_gets_a_client_certificate_that_verifies(
    db: Database, issuer: IssuingCA, test_ca: TestCA
) -> None:
    acc = account(db)
    view = issue_certificate(db, issuer, manager(acc), acc, csr_pem(), now=NOW)
    assert (view.status, view.account_id, view.sans) == ("live", acc, ("DNS:client.acme.example",))
    cert = x509.load_pem_x509_certificate(view.certificate_pem.encode())
    result = verify_chain(
        cert, anchors=[test_ca.root], intermediates=[test_ca.issuer], purpose=Purpose.CLIENT, at=NOW
    )
    assert result is not None
    assert [v.serial for v in live_certificates(db, manager(acc), acc, now=NOW)] == [view.serial]


def test_every_broken_rule_is_reported_and_nothing_is_written(
    db: Database, issuer: IssuingCA
) -> None:
    acc = account(db)
    before = audit_rows(db)
    bad = csr_pem("*.acme.example", sans=[x509.DNSName("*.acme.example"), x509.DNSName("intranet")])
    with pytest.raises(PolicyViolation) as caught:
        issue_certificate(db, issuer, manager(acc), acc, bad, now=NOW)
    assert {v.rule for v in caught.value.violations} >= {"no_wildcards", "san_dns_fqdn"}
    assert audit_rows(db) == before
    dry = check_csr(bad)
    assert not dry.ok
    assert len(dry.violations) == len(caught.value.violations)
    assert check_csr(csr_pem()).ok


def test_a_server_auth_only_request_is_refused(db: Database, issuer: IssuingCA) -> None:
    acc = account(db)
    key = generate_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "api.acme.example")]))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(PolicyViolation) as caught:
        issue_certificate(
            db, issuer, ADMIN, acc, csr.public_bytes(serialization.Encoding.PEM), now=NOW
        )
    assert [v.rule for v in caught.value.violations] == ["client_auth_usage"]


def test_an_account_without_mtls_gets_no_certificate(db: Database, issuer: IssuingCA) -> None:
    acc = account(db, enabled=False)
    with pytest.raises(AccountMtlsDisabled):
        issue_certificate(db, issuer, ADMIN, acc, csr_pem(), now=NOW)


def test_the_sixth_live_certificate_is_refused_naming_the_live_ones(
    db: Database, issuer: IssuingCA
) -> None:
    acc = account(db)
    issued = [
        issue_certificate(db, issuer, manager(acc), acc, csr_pem(), now=NOW) for _ in range(5)
    ]
    with pytest.raises(CertificateQuotaExceeded) as caught:
        issue_certificate(db, issuer, manager(acc), acc, csr_pem(), now=NOW)
    body = caught.value.to_dict()
    assert body["code"] == "certificate_quota_exceeded"
    assert {c.serial for c in caught.value.live} == {v.serial for v in issued}
    assert len(body["live_certificates"]) == 5  # type: ignore[arg-type]
    with db.read() as session:
        assert (
            session.execute(select(func.count()).select_from(IssuedCertificate)).scalar_one() == 5
        )


def test_expired_and_revoked_certificates_do_not_count(db: Database, issuer: IssuingCA) -> None:
    acc = account(db, quota=1)
    first = issue_certificate(db, issuer, ADMIN, acc, csr_pem(), now=NOW, validity_days=1)
    with pytest.raises(CertificateQuotaExceeded):
        issue_certificate(db, issuer, ADMIN, acc, csr_pem(), now=NOW)
    later = NOW + timedelta(days=2)  # the first one has expired by then
    second = issue_certificate(db, issuer, ADMIN, acc, csr_pem(), now=later)
    with db.write() as session:
        row = session.get(IssuedCertificate, second.id)
        assert row is not None
        row.revoked_at = later
    assert issue_certificate(db, issuer, ADMIN, acc, csr_pem(), now=later).status == "live"
    assert first.id != second.id


def test_accounts_never_reach_each_other(db: Database, issuer: IssuingCA) -> None:
    mine, theirs = account(db, "mine"), account(db, "theirs")
    with pytest.raises(AccountNotFound):
        issue_certificate(db, issuer, manager(mine), theirs, csr_pem(), now=NOW)
    with pytest.raises(AccountNotFound):
        live_certificates(db, manager(mine), "theirs", now=NOW)
    auditor = Principal(actor="token:tok_aud", role=Role.AUDITOR)
    with pytest.raises(PermissionDenied):
        issue_certificate(db, issuer, auditor, mine, csr_pem(), now=NOW)


def test_twenty_parallel_requests_with_two_slots_left_issue_exactly_two(
    db: Database, issuer: IssuingCA
) -> None:
    acc = account(db, quota=3)
    issue_certificate(db, issuer, ADMIN, acc, csr_pem(), now=NOW)
    csrs = [csr_pem() for _ in range(20)]
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def attempt(pem: bytes) -> None:
        start.wait()
        try:
            issue_certificate(db, issuer, manager(acc), acc, pem, now=NOW)
            result = "issued"
        except CertificateQuotaExceeded:
            result = "quota"
        except Exception as exc:
            result = f"error: {type(exc).__name__}: {exc}"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(pem,)) for pem in csrs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["issued"] * 2 + ["quota"] * 18
    with db.read() as session:
        assert (
            session.execute(select(func.count()).select_from(IssuedCertificate)).scalar_one() == 3
        )
