"""Renewal of a live certificate by itself, on SQLite and PostgreSQL: the successor, its lineage,
and every refusal leaving nothing behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from mutls.accounts.mtls import update_mtls_settings
from mutls.accounts.principal import Principal
from mutls.accounts.service import create_account
from mutls.audit.log import verify
from mutls.ca.inventory import get_certificate
from mutls.ca.issuance import IssuedView, issue_certificate
from mutls.ca.issuer import IssuingCA
from mutls.ca.renewal import renew_certificate
from mutls.ca.revocation import revoke_certificate
from mutls.errors import (
    AccountMtlsDisabled,
    CertificateExpired,
    CertificateNotRenewable,
    CertificateQuotaExceeded,
    CertificateRevoked,
    MutlsError,
    PolicyViolation,
    RenewalNamesChanged,
)
from mutls.pki.csr import SubjectSpec, build_csr, csr_like
from mutls.pki.keys import generate_key
from mutls.store.database import Database
from mutls.store.models import AuditEvent, IssuedCertificate
from mutls.testing import TestCA

NOW = datetime.now(UTC).replace(microsecond=0)
ADMIN = Principal.system("test:admin")


@pytest.fixture(scope="module")
def test_ca() -> TestCA:
    return TestCA(name="Renewal Test CA", organization="mutls renewal tests", now=NOW)


def account(db: Database, name: str = "acme", *, quota: int = 5) -> str:
    acc = create_account(db, ADMIN, name=name, display_name=None, now=NOW)
    update_mtls_settings(db, ADMIN, acc.id, enabled=True, certificate_quota=quota, now=NOW)
    return acc.id


def first_csr(cn: str = "client.acme.example") -> bytes:
    csr = build_csr(generate_key(), SubjectSpec(common_name=cn, country="CA"), [x509.DNSName(cn)])
    return csr.public_bytes(serialization.Encoding.PEM)


def leaf(view: IssuedView) -> x509.Certificate:
    return x509.load_pem_x509_certificate(view.certificate_pem.encode())


def successor_csr(view: IssuedView) -> bytes:
    return csr_like(leaf(view), generate_key()).public_bytes(serialization.Encoding.PEM)


def counts(db: Database) -> tuple[int, int]:
    with db.read() as session:
        certs = session.execute(select(func.count()).select_from(IssuedCertificate)).scalar_one()
        audit = session.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
        return int(certs), int(audit)


def issued(
    db: Database, issuer: IssuingCA, acc: str, *, days: int = 90, now: datetime = NOW
) -> IssuedView:
    return issue_certificate(
        db, issuer, ADMIN, acc, first_csr(), now=now, validity_days=days, api_versions=["v2"]
    )


def test_a_live_certificate_gets_a_successor_with_its_names_lifetime_and_lineage(
    db: Database, issuer: IssuingCA
) -> None:
    acc = account(db)
    old = issued(db, issuer, acc, days=90)
    later = NOW + timedelta(days=60)
    new = renew_certificate(db, issuer, leaf(old), successor_csr(old), now=later)
    assert new.renewed_from_id == old.id
    assert (new.subject, new.sans, new.api_versions) == (old.subject, old.sans, old.api_versions)
    assert new.account_id == acc
    assert new.serial != old.serial
    assert new.not_after - new.not_before == old.not_after - old.not_before  # same lifetime
    assert new.not_after > old.not_after  # overlapping: the old one is still live until then
    assert get_certificate(db, ADMIN, old.id, now=later).renewed_by_id == new.id
    assert get_certificate(db, ADMIN, old.id, now=later).certificate.status == "live"
    assert new.created_by == f"certificate:{old.serial}"
    with db.read() as session:
        event = session.execute(
            select(AuditEvent).where(AuditEvent.resource_id == new.id)
        ).scalar_one()
        assert event.action == "certificate.renew"
        assert event.details["renewed_from"] == old.id
    with db.read() as session:
        assert verify(session).ok
    # The successor renews in turn, and so does the old one while it lives.
    newer = renew_certificate(db, issuer, leaf(new), successor_csr(new), now=later)
    assert newer.renewed_from_id == new.id
    assert renew_certificate(db, issuer, leaf(old), successor_csr(old), now=later).status == "live"


def test_the_same_key_may_renew_when_the_customer_sends_its_own_csr(
    db: Database, issuer: IssuingCA
) -> None:
    acc = account(db)
    key = generate_key()
    csr = build_csr(
        key, SubjectSpec(common_name="svc.acme.example"), [x509.DNSName("svc.acme.example")]
    )
    old = issue_certificate(
        db, issuer, ADMIN, acc, csr.public_bytes(serialization.Encoding.PEM), now=NOW
    )
    again = csr_like(leaf(old), key).public_bytes(serialization.Encoding.PEM)
    assert renew_certificate(db, issuer, leaf(old), again, now=NOW).renewed_from_id == old.id


def _refused(
    db: Database,
    issuer: IssuingCA,
    presented: x509.Certificate,
    csr: bytes,
    error: type[MutlsError],
    *,
    now: datetime = NOW,
) -> MutlsError:
    before = counts(db)
    with pytest.raises(error) as caught:
        renew_certificate(db, issuer, presented, csr, now=now)
    assert counts(db) == before, "a refused renewal left rows behind"
    assert caught.value.hint
    return caught.value


def test_an_expired_certificate_cannot_renew_itself(db: Database, issuer: IssuingCA) -> None:
    acc = account(db)
    old = issued(db, issuer, acc, days=30)
    error = _refused(
        db, issuer, leaf(old), successor_csr(old), CertificateExpired, now=NOW + timedelta(days=31)
    )
    assert old.serial in error.message
    assert "expired on" in error.message


def test_a_revoked_certificate_cannot_renew_itself(db: Database, issuer: IssuingCA) -> None:
    acc = account(db)
    old = issued(db, issuer, acc)
    revoke_certificate(db, ADMIN, old.id, now=NOW)
    error = _refused(db, issuer, leaf(old), successor_csr(old), CertificateRevoked)
    assert "revoked on" in error.message


def test_a_certificate_the_platform_never_issued_is_not_renewable(
    db: Database, issuer: IssuingCA, test_ca: TestCA
) -> None:
    account(db)
    # Signed by the very same issuing CA, but never recorded for an account (a server cert).
    stray = test_ca.issue("client.acme.example", sans=["client.acme.example"]).certificate
    csr = csr_like(stray, generate_key()).public_bytes(serialization.Encoding.PEM)
    _refused(db, issuer, stray, csr, CertificateNotRenewable)


def test_a_certificate_of_another_ca_is_not_renewable(db: Database, issuer: IssuingCA) -> None:
    acc = account(db)
    old = issued(db, issuer, acc)
    other_ca = TestCA(name="Other CA", organization="elsewhere", now=NOW)
    lookalike = other_ca.issue("client.acme.example", sans=["client.acme.example"]).certificate
    _refused(db, issuer, lookalike, successor_csr(old), CertificateNotRenewable)


def test_a_renewal_cannot_change_the_names(db: Database, issuer: IssuingCA) -> None:
    acc = account(db)
    old = issued(db, issuer, acc)
    error = _refused(db, issuer, leaf(old), first_csr("admin.acme.example"), RenewalNamesChanged)
    assert "admin.acme.example" in error.message
    assert "client.acme.example" in error.message


def test_a_renewal_csr_breaking_the_issuance_rules_is_refused(
    db: Database, issuer: IssuingCA
) -> None:
    acc = account(db)
    old = issued(db, issuer, acc)
    weak_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    weak = csr_like(leaf(old), weak_key).public_bytes(serialization.Encoding.PEM)
    error = _refused(db, issuer, leaf(old), weak, PolicyViolation)
    assert "1024" in str(error.to_dict())


def test_a_full_quota_refuses_the_renewal_naming_the_live_certificates(
    db: Database, issuer: IssuingCA
) -> None:
    acc = account(db, quota=1)
    old = issued(db, issuer, acc)
    error = _refused(db, issuer, leaf(old), successor_csr(old), CertificateQuotaExceeded)
    assert old.serial in str(error.to_dict())


def test_an_account_with_mtls_turned_off_cannot_renew(db: Database, issuer: IssuingCA) -> None:
    acc = account(db)
    old = issued(db, issuer, acc)
    update_mtls_settings(db, ADMIN, acc, enabled=False, now=NOW)
    _refused(db, issuer, leaf(old), successor_csr(old), AccountMtlsDisabled)
