"""Bring your own CA (seed 004): an account's own CA chain maps its certificates to the account."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Role
from mutls.accounts.service import create_account
from mutls.ca.trust import (
    add_account_ca,
    list_account_cas,
    match_account,
    remove_account_ca,
)
from mutls.errors import (
    AccountNotFound,
    CAAlreadyTrusted,
    CertificateExpired,
    ChainInvalid,
    InvalidArgument,
    NameTaken,
    NotACA,
    PermissionDenied,
    TrustedCANotFound,
    UnknownIssuer,
    WeakKey,
)
from mutls.pki.authority import Profile
from mutls.store.database import Database
from mutls.store.models import AuditEvent
from mutls.testing import TestCA

NOW = datetime.now(UTC).replace(microsecond=0)
ADMIN = Principal.system("test:admin")


def pem(*certs: object) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def acme_ca() -> TestCA:
    return TestCA(name="Acme Root CA", organization="Acme", now=NOW - timedelta(days=1))


@pytest.fixture(scope="module")
def other_ca() -> TestCA:
    return TestCA(name="Other Root CA", organization="Other", now=NOW - timedelta(days=1))


def chain_of(ca: TestCA, *, root_first: bool = True) -> bytes:
    """The CA chain as a customer sends it; root first on purpose (any order is accepted)."""
    assert ca.intermediate is not None
    return pem(ca.root, ca.intermediate) if root_first else pem(ca.intermediate, ca.root)


def account(db: Database, name: str = "acme") -> str:
    return create_account(db, ADMIN, name=name, display_name=None, now=NOW).id


def test_a_leaf_of_the_uploaded_ca_maps_to_the_account(db: Database, acme_ca: TestCA) -> None:
    """Uploaded root-first, stored issuing-first; a leaf it issued maps to the account."""
    acc = account(db)
    view = add_account_ca(db, ADMIN, "acme", chain_of(acme_ca), name=None, now=NOW)
    assert view.account_id == acc
    assert view.chain_subjects == ("CN=Acme Root CA Issuing CA,O=Acme", "CN=Acme Root CA,O=Acme")
    assert view.name.startswith("acme-")
    assert len(view.name) == len("acme-") + 12
    leaf = acme_ca.issue("client.acme.example", sans=["client.acme.example"])
    match = match_account(db, leaf.certificate, leaf.chain, now=NOW)
    assert match is not None
    assert (match.account_id, match.ca_id) == (acc, view.id)
    # the stored intermediate completes the path when the client sends the leaf alone
    assert match_account(db, leaf.certificate, (), now=NOW) == match


def test_a_leaf_of_another_ca_does_not_map(db: Database, acme_ca: TestCA, other_ca: TestCA) -> None:
    """A certificate from a CA no account trusts maps to nothing."""
    account(db)
    add_account_ca(db, ADMIN, "acme", chain_of(acme_ca), name=None, now=NOW)
    leaf = other_ca.issue("client.acme.example")
    assert match_account(db, leaf.certificate, leaf.chain, now=NOW) is None


def test_a_server_certificate_or_an_expired_leaf_does_not_map(
    db: Database, acme_ca: TestCA
) -> None:
    """Verification is for client use at now: no clientAuth or expired, no account."""
    account(db)
    add_account_ca(db, ADMIN, "acme", chain_of(acme_ca), name=None, now=NOW)
    server = acme_ca.issue("api.acme.example", profile=Profile.SERVER, sans=["api.acme.example"])
    assert match_account(db, server.certificate, server.chain, now=NOW) is None
    old = acme_ca.issue(
        "client.acme.example", now=NOW - timedelta(hours=2), validity=timedelta(hours=1)
    )
    assert match_account(db, old.certificate, old.chain, now=NOW) is None


def test_subject_patterns_restrict_the_mapping(db: Database, acme_ca: TestCA) -> None:
    """With patterns, only a leaf whose CN or DNS SAN matches one maps."""
    acc = account(db)
    view = add_account_ca(
        db,
        ADMIN,
        "acme",
        chain_of(acme_ca),
        name="acme-issuing",
        subject_patterns=["*.API.acme.example", "ops-?.acme.example"],
        now=NOW,
    )
    assert view.subject_patterns == ("*.api.acme.example", "ops-?.acme.example")
    inside = acme_ca.issue("billing.api.acme.example")
    by_san = acme_ca.issue("Billing Service", sans=["billing.api.acme.example"])
    by_q = acme_ca.issue("ops-1.acme.example")
    outside = acme_ca.issue("client.acme.example", sans=["client.acme.example"])
    for leaf in (inside, by_san, by_q):
        match = match_account(db, leaf.certificate, leaf.chain, now=NOW)
        assert match is not None
        assert match.account_id == acc
    assert match_account(db, outside.certificate, outside.chain, now=NOW) is None


@pytest.mark.parametrize("pattern", ["", "a[bc].example", "bad pattern\n", "x" * 300, ".acme"])
def test_bad_patterns_are_refused(db: Database, acme_ca: TestCA, pattern: str) -> None:
    """A pattern that is not a glob of host-name characters is invalid_argument; nothing stored."""
    account(db)
    with pytest.raises(InvalidArgument):
        add_account_ca(db, ADMIN, "acme", chain_of(acme_ca), subject_patterns=[pattern], now=NOW)
    assert list_account_cas(db, ADMIN, "acme") == []


def test_a_leaf_upload_is_refused_not_a_ca(db: Database, acme_ca: TestCA) -> None:
    """A client certificate uploaded by mistake is not_a_ca and names the certificate."""
    account(db)
    leaf = acme_ca.issue("client.acme.example")
    with pytest.raises(NotACA, match=r"client\.acme\.example"):
        add_account_ca(db, ADMIN, "acme", leaf.chain_pem + acme_ca.root_pem, now=NOW)
    assert list_account_cas(db, ADMIN, "acme") == []


def test_an_expired_ca_is_refused(db: Database) -> None:
    """A CA past its notAfter is certificate_expired on upload."""
    account(db)
    expired = TestCA(name="Expired CA", now=NOW - timedelta(days=30), validity=timedelta(days=10))
    with pytest.raises(CertificateExpired, match="Expired CA"):
        add_account_ca(db, ADMIN, "acme", chain_of(expired), now=NOW)


def test_an_expired_intermediate_under_a_valid_root_is_refused(db: Database) -> None:
    """Every certificate in the upload is checked, not just the root."""
    account(db)
    ca = TestCA(
        name="Half Expired",
        now=NOW - timedelta(days=30),
        intermediate_validity=timedelta(days=10),
    )
    with pytest.raises(CertificateExpired, match="Issuing CA"):
        add_account_ca(db, ADMIN, "acme", chain_of(ca), now=NOW)


def test_a_ca_with_a_weak_key_is_refused(db: Database) -> None:
    """A CA key the gateway would refuse (secp256k1) is weak_key on upload, not a no-match."""
    account(db)
    key = ec.generate_private_key(ec.SECP256K1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Weak Root")])
    root = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(WeakKey, match="secp256k1"):
        add_account_ca(db, ADMIN, "acme", pem(root), now=NOW)


def test_an_intermediate_without_its_root_is_refused(db: Database, acme_ca: TestCA) -> None:
    """Trust is anchored at the customer's root: an intermediate alone is unknown_issuer."""
    account(db)
    assert acme_ca.intermediate is not None
    with pytest.raises(UnknownIssuer) as caught:
        add_account_ca(db, ADMIN, "acme", pem(acme_ca.intermediate), now=NOW)
    assert "root" in caught.value.hint


def test_a_root_alone_is_accepted_and_clients_send_their_intermediate(
    db: Database, acme_ca: TestCA
) -> None:
    """With only the root uploaded, a leaf maps when the client sends the intermediate."""
    acc = account(db)
    add_account_ca(db, ADMIN, "acme", acme_ca.root_pem, now=NOW)
    leaf = acme_ca.issue("client.acme.example")
    match = match_account(db, leaf.certificate, leaf.chain, now=NOW)
    assert match is not None
    assert match.account_id == acc
    assert match_account(db, leaf.certificate, (), now=NOW) is None


def test_two_unrelated_chains_in_one_upload_are_refused(
    db: Database, acme_ca: TestCA, other_ca: TestCA
) -> None:
    """One upload is one chain; a stray certificate is chain_invalid."""
    account(db)
    with pytest.raises(ChainInvalid):
        add_account_ca(db, ADMIN, "acme", chain_of(acme_ca) + other_ca.root_pem, now=NOW)


def test_duplicates_are_refused(db: Database, acme_ca: TestCA) -> None:
    """The same CA twice for one account, a root of another account, or a taken name: refused."""
    account(db)
    account(db, "globex")
    add_account_ca(db, ADMIN, "acme", chain_of(acme_ca), name="acme-ca", now=NOW)
    with pytest.raises(CAAlreadyTrusted):
        add_account_ca(db, ADMIN, "acme", chain_of(acme_ca, root_first=False), now=NOW)
    with pytest.raises(CAAlreadyTrusted, match="another account"):
        add_account_ca(db, ADMIN, "globex", acme_ca.root_pem, now=NOW)
    with pytest.raises(NameTaken):
        add_account_ca(db, ADMIN, "globex", TestCA(name="Globex").root_pem, name="acme-ca", now=NOW)
    assert len(list_account_cas(db, ADMIN, "acme")) == 1
    assert list_account_cas(db, ADMIN, "globex") == []


def test_removal_stops_the_mapping_and_is_audited(db: Database, acme_ca: TestCA) -> None:
    """After remove, the leaf maps to nothing; add and remove each wrote an audit row."""
    acc = account(db)
    view = add_account_ca(db, ADMIN, "acme", chain_of(acme_ca), name="acme-ca", now=NOW)
    leaf = acme_ca.issue("client.acme.example")
    assert match_account(db, leaf.certificate, leaf.chain, now=NOW) is not None
    removed = remove_account_ca(db, ADMIN, "acme", "acme-ca", now=NOW)
    assert removed.id == view.id
    assert match_account(db, leaf.certificate, leaf.chain, now=NOW) is None
    with pytest.raises(TrustedCANotFound):
        remove_account_ca(db, ADMIN, "acme", view.id, now=NOW)
    with db.read() as session:
        rows = session.execute(
            select(AuditEvent).where(AuditEvent.resource_id == view.id).order_by(AuditEvent.seq)
        ).scalars()
        events = [(e.action, e.account_id) for e in rows]
    assert events == [("account.ca_add", acc), ("account.ca_remove", acc)]


def test_only_platform_admins_change_trust(db: Database, acme_ca: TestCA) -> None:
    """manage-mtls may list its own account's CAs, not add; a scoped admin may not add either;
    another account's CAs are a 404."""
    acc = account(db)
    other = account(db, "globex")
    manager = Principal(actor="user:m", role=Role.MANAGE_MTLS, account_id=acc)
    scoped_admin = Principal(actor="user:a", role=Role.ADMIN, account_id=acc)
    for who in (manager, scoped_admin):
        with pytest.raises(PermissionDenied):
            add_account_ca(db, who, "acme", chain_of(acme_ca), now=NOW)
    view = add_account_ca(db, ADMIN, "acme", chain_of(acme_ca), now=NOW)
    assert [v.id for v in list_account_cas(db, manager, acc)] == [view.id]
    with pytest.raises(AccountNotFound):
        list_account_cas(db, manager, other)
    with pytest.raises(PermissionDenied):
        remove_account_ca(db, manager, "acme", view.id, now=NOW)
