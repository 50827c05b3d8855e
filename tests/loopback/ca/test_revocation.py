"""Revocation and its publication (CRL, OCSP) at the service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from sqlalchemy import select

from mutls.accounts.mtls import update_mtls_settings
from mutls.accounts.principal import Principal
from mutls.accounts.roles import Role
from mutls.accounts.service import create_account
from mutls.ca.issuance import IssuedView, issue_certificate
from mutls.ca.issuer import IssuingCA
from mutls.ca.publication import CRL_VALIDITY, Publisher
from mutls.ca.revocation import revoke_api_version, revoke_certificate, revoked_entries
from mutls.errors import AlreadyRevoked, CertificateNotFound, NotFound, PermissionDenied
from mutls.pki.authority import RevocationReason
from mutls.pki.csr import SubjectSpec, build_csr
from mutls.pki.keys import generate_key
from mutls.pki.ocsp import CertStatus, FailureStatus
from mutls.store.database import Database
from mutls.store.models import AuditEvent, CertificateAuthority, IssuedCertificate
from mutls.testing import TestCA

NOW = datetime.now(UTC).replace(microsecond=0)
ADMIN = Principal.system("test:admin")


@pytest.fixture(scope="module")
def test_ca() -> TestCA:
    return TestCA(name="Revocation Test CA", organization="mutls revocation tests", now=NOW)


class FixedIssuer:
    """The IssuerCache's one method, over a TestCA-backed IssuingCA."""

    def __init__(self, issuer: IssuingCA) -> None:
        self.issuer = issuer

    def platform(self, *, now: datetime) -> IssuingCA:
        return self.issuer


def account(db: Database, name: str = "acme") -> str:
    acc = create_account(db, ADMIN, name=name, display_name=None, now=NOW)
    update_mtls_settings(db, ADMIN, acc.id, enabled=True, certificate_quota=10, now=NOW)
    return acc.id


def issue(
    db: Database, issuer: IssuingCA, account_id: str, *, versions: tuple[str, ...] = ()
) -> IssuedView:
    csr = build_csr(
        generate_key(),
        SubjectSpec(common_name="client.acme.example", country="CA", organization="Acme"),
        [x509.DNSName("client.acme.example")],
    )
    return issue_certificate(
        db,
        issuer,
        ADMIN,
        account_id,
        csr.public_bytes(serialization.Encoding.PEM),
        now=NOW,
        api_versions=versions,
    )


def manager(account_id: str, role: Role = Role.MANAGE_MTLS) -> Principal:
    return Principal(actor="token:tok_mgr", role=role, account_id=account_id)


def revision(db: Database, ca_id: str) -> int:
    with db.read() as session:
        row = session.get(CertificateAuthority, ca_id)
        assert row is not None
        return row.crl_number


def revoke_events(db: Database) -> list[AuditEvent]:
    with db.read() as session:
        return list(
            session.execute(
                select(AuditEvent)
                .where(AuditEvent.action == "certificate.revoke")
                .order_by(AuditEvent.seq)
            ).scalars()
        )


def ocsp_request(cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    return request.public_bytes(serialization.Encoding.DER)


def test_revoking_records_time_reason_audit_row_and_bumps_the_revision(
    db: Database, issuer: IssuingCA
) -> None:
    acc = account(db)
    view = issue(db, issuer, acc)
    revoked = revoke_certificate(
        db, manager(acc), view.id, reason=RevocationReason.KEY_COMPROMISE, now=NOW
    )
    assert (revoked.status, revoked.revoked_at, revoked.revocation_reason) == (
        "revoked",
        NOW,
        "keyCompromise",
    )
    assert revision(db, issuer.ca_id) == 1
    [event] = revoke_events(db)
    assert (event.resource_id, event.account_id, event.actor) == (view.id, acc, "token:tok_mgr")
    assert event.details["serial"] == view.serial
    assert event.details["reason"] == "keyCompromise"
    assert [e.serial for e in revoked_entries(db, issuer.ca_id)] == [int(view.serial, 16)]


def test_a_serial_is_found_in_any_case_and_with_colons(db: Database, issuer: IssuingCA) -> None:
    acc = account(db)
    view = issue(db, issuer, acc)
    colons = ":".join(view.serial[i : i + 2] for i in range(0, len(view.serial), 2)).lower()
    revoked = revoke_certificate(db, ADMIN, colons, now=NOW)
    assert revoked.id == view.id


def test_revoking_twice_is_already_revoked_and_changes_nothing(
    db: Database, issuer: IssuingCA
) -> None:
    acc = account(db)
    view = issue(db, issuer, acc)
    revoke_certificate(db, ADMIN, view.id, reason=RevocationReason.SUPERSEDED, now=NOW)
    with pytest.raises(AlreadyRevoked):
        revoke_certificate(db, ADMIN, view.serial, now=NOW + timedelta(hours=1))
    assert revision(db, issuer.ca_id) == 1
    assert len(revoke_events(db)) == 1
    with db.read() as session:
        row = session.get(IssuedCertificate, view.id)
        assert row is not None
        assert (row.revoked_at, row.revocation_reason) == (NOW, "superseded")


@pytest.mark.parametrize("ref", ["crt_doesnotexist", "ABCDEF", "not hex!"])
def test_an_unknown_certificate_is_not_found(db: Database, issuer: IssuingCA, ref: str) -> None:
    with pytest.raises(CertificateNotFound):
        revoke_certificate(db, ADMIN, ref, now=NOW)


def test_another_accounts_token_gets_not_found_and_an_auditor_permission_denied(
    db: Database, issuer: IssuingCA
) -> None:
    mine, theirs = account(db, "acme"), account(db, "globex")
    view = issue(db, issuer, theirs)
    for ref in (view.id, view.serial):
        with pytest.raises(CertificateNotFound):
            revoke_certificate(db, manager(mine), ref, now=NOW)
        with pytest.raises(CertificateNotFound):
            revoke_certificate(db, manager(mine, Role.ADMIN), ref, now=NOW)
    with pytest.raises(PermissionDenied):
        revoke_certificate(db, manager(theirs, Role.AUDITOR), view.id, now=NOW)
    assert revoke_events(db) == []
    assert revision(db, issuer.ca_id) == 0


def test_retiring_an_api_version_revokes_only_its_live_certificates(
    db: Database, issuer: IssuingCA
) -> None:
    acme, globex = account(db, "acme"), account(db, "globex")
    v1_acme = issue(db, issuer, acme, versions=("v1",))
    v1_v2_globex = issue(db, issuer, globex, versions=("v1", "v2"))
    v2_only = issue(db, issuer, acme, versions=("v2",))
    already = issue(db, issuer, globex, versions=("v1",))
    revoke_certificate(db, ADMIN, already.id, reason=RevocationReason.KEY_COMPROMISE, now=NOW)
    later = NOW + timedelta(minutes=5)
    revoked = revoke_api_version(db, ADMIN, "v1", now=later)
    assert {v.id for v in revoked} == {v1_acme.id, v1_v2_globex.id}
    assert {v.revocation_reason for v in revoked} == {"cessationOfOperation"}
    events = revoke_events(db)[1:]
    assert {e.resource_id for e in events} == {v1_acme.id, v1_v2_globex.id}
    assert {e.details["api_version"] for e in events} == {"v1"}
    with db.read() as session:
        untouched = session.get(IssuedCertificate, v2_only.id)
        first = session.get(IssuedCertificate, already.id)
        assert untouched is not None
        assert first is not None
        assert untouched.revoked_at is None
        assert (first.revoked_at, first.revocation_reason) == (NOW, "keyCompromise")
    assert revision(db, issuer.ca_id) == 2
    assert revoke_api_version(db, ADMIN, "v1", now=later) == []


@pytest.mark.parametrize(
    "principal",
    [
        Principal(actor="token:a", role=Role.ADMIN, account_id="acc_x"),
        Principal(actor="token:m", role=Role.MANAGE_MTLS),
        Principal(actor="token:u", role=Role.AUDITOR),
    ],
    ids=["account-admin", "manage-mtls", "auditor"],
)
def test_only_a_platform_admin_retires_an_api_version(
    db: Database, issuer: IssuingCA, principal: Principal
) -> None:
    acc = account(db)
    issue(db, issuer, acc, versions=("v1",))
    with pytest.raises(PermissionDenied):
        revoke_api_version(db, principal, "v1", now=NOW)
    assert revoke_events(db) == []


def test_the_crl_lists_revocations_and_is_renewed_on_each_revision(
    db: Database, issuer: IssuingCA, test_ca: TestCA
) -> None:
    publisher = Publisher(db, FixedIssuer(issuer))
    acc = account(db)
    view = issue(db, issuer, acc)
    empty = publisher.crl("platform", now=NOW)
    assert publisher.crl("platform", now=NOW + timedelta(seconds=5)) is empty  # cached
    revoke_certificate(db, ADMIN, view.id, reason=RevocationReason.KEY_COMPROMISE, now=NOW)
    publisher.invalidate()
    listed = publisher.crl("platform", now=NOW + timedelta(seconds=6))
    assert listed.number > empty.number
    crl = x509.load_der_x509_crl(listed.der)
    assert crl.is_signature_valid(test_ca.issuer.public_key())  # type: ignore[arg-type]
    entry = crl.get_revoked_certificate_by_serial_number(int(view.serial, 16))
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        x509.ReasonFlags.key_compromise
    )
    assert crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert crl.next_update_utc == listed.this_update + CRL_VALIDITY
    # regenerated, with a higher number, once half of its validity has passed
    aged = publisher.crl("platform", now=listed.refresh_at + timedelta(seconds=1))
    assert aged.number > listed.number
    assert aged.this_update > listed.this_update


def test_another_process_sees_a_revocation_within_the_revision_check_interval(
    db: Database, issuer: IssuingCA
) -> None:
    """Two publishers stand for two processes: the second one is never told."""
    here, there = Publisher(db, FixedIssuer(issuer)), Publisher(db, FixedIssuer(issuer))
    acc = account(db)
    view = issue(db, issuer, acc)
    request = ocsp_request(
        x509.load_pem_x509_certificate(view.certificate_pem.encode()), issuer.certificate
    )
    assert there.ocsp("platform", request, now=NOW).status is CertStatus.GOOD
    revoke_certificate(db, ADMIN, view.id, now=NOW)
    here.invalidate()
    assert here.ocsp("platform", request, now=NOW).status is CertStatus.REVOKED
    # within the interval the other process may still answer from its cache, then it checks
    assert there.ocsp("platform", request, now=NOW + timedelta(milliseconds=500)).status is (
        CertStatus.GOOD
    )
    assert there.ocsp("platform", request, now=NOW + timedelta(seconds=1)).status is (
        CertStatus.REVOKED
    )


def test_ocsp_answers_good_revoked_unknown_unauthorized_and_malformed(
    db: Database, issuer: IssuingCA, test_ca: TestCA
) -> None:
    publisher = Publisher(db, FixedIssuer(issuer))
    acc = account(db)
    view = issue(db, issuer, acc)
    cert = x509.load_pem_x509_certificate(view.certificate_pem.encode())
    good = publisher.ocsp("platform", ocsp_request(cert, issuer.certificate), now=NOW)
    assert good.status is CertStatus.GOOD
    parsed = ocsp.load_der_ocsp_response(good.der)
    assert parsed.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert parsed.serial_number == cert.serial_number
    # a certificate issued after the serial list was read is still known (not "unknown")
    newer = issue(db, issuer, acc)
    newer_cert = x509.load_pem_x509_certificate(newer.certificate_pem.encode())
    assert publisher.ocsp(
        "platform", ocsp_request(newer_cert, issuer.certificate), now=NOW
    ).status is (CertStatus.GOOD)
    stranger = TestCA(name="Stranger CA", now=NOW).issue("client.acme.example")
    unknown = test_ca.issue("never-recorded.acme.example")
    assert publisher.ocsp(
        "platform", ocsp_request(unknown.certificate, issuer.certificate), now=NOW
    ).status is (CertStatus.UNKNOWN)
    other_issuer = stranger.chain[1]
    unauthorized = publisher.ocsp(
        "platform", ocsp_request(stranger.certificate, other_issuer), now=NOW
    )
    assert unauthorized.status is FailureStatus.UNAUTHORIZED
    assert ocsp.load_der_ocsp_response(unauthorized.der).response_status is (
        ocsp.OCSPResponseStatus.UNAUTHORIZED
    )
    malformed = publisher.ocsp("platform", b"\x30\x03junk", now=NOW)
    assert malformed.status is FailureStatus.MALFORMED_REQUEST
    with pytest.raises(NotFound):
        publisher.ocsp("elsewhere", ocsp_request(cert, issuer.certificate), now=NOW)
    revoke_certificate(db, ADMIN, view.id, reason=RevocationReason.KEY_COMPROMISE, now=NOW)
    publisher.invalidate()
    revoked = publisher.ocsp("platform", ocsp_request(cert, issuer.certificate), now=NOW)
    parsed = ocsp.load_der_ocsp_response(revoked.der)
    assert parsed.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert parsed.revocation_reason is x509.ReasonFlags.key_compromise
    assert parsed.revocation_time_utc == NOW


def test_ocsp_responses_are_pre_signed_and_reused_until_half_their_validity(
    db: Database, issuer: IssuingCA
) -> None:
    publisher = Publisher(db, FixedIssuer(issuer))
    view = issue(db, issuer, account(db))
    request = ocsp_request(
        x509.load_pem_x509_certificate(view.certificate_pem.encode()), issuer.certificate
    )
    first = publisher.ocsp("platform", request, now=NOW)
    assert publisher.ocsp("platform", request, now=NOW + timedelta(hours=1)) is first
    assert first.refresh_at is not None
    assert first.max_age(NOW) == int((first.refresh_at - NOW).total_seconds())
    renewed = publisher.ocsp("platform", request, now=first.refresh_at)
    assert renewed is not first
