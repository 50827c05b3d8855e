"""The TestCA helper: what it issues is what the other tests rely on."""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509

from mutls.pki.authority import Profile
from mutls.pki.chain import issued_by
from mutls.pki.keys import match_key
from mutls.pki.loader import load_material
from mutls.testing import TestCA


def test_default_ca_issues_through_an_intermediate(ca: TestCA, now: datetime) -> None:
    """By default the intermediate issues, and an identity's chain is leaf then intermediate."""
    identity = ca.issue("a.example.com", now=now)
    assert ca.intermediate is not None
    assert ca.issuer == ca.intermediate
    assert identity.chain == (identity.certificate, ca.intermediate)
    assert issued_by(identity.certificate, ca.intermediate)
    assert match_key(identity.certificate, identity.key).matches


def test_ca_without_intermediate_issues_from_root(now: datetime) -> None:
    """intermediate=False: the root issues and the chain is the leaf alone."""
    ca = TestCA(intermediate=False, now=now)
    identity = ca.issue("a.example.com", now=now)
    assert ca.intermediates == ()
    assert identity.chain == (identity.certificate,)
    assert issued_by(identity.certificate, ca.root)


def test_issue_times_and_profile(ca: TestCA, now: datetime) -> None:
    """issue() honours now, validity and profile."""
    identity = ca.issue(
        "s.example.com", profile=Profile.SERVER, now=now, validity=timedelta(days=10)
    )
    cert = identity.certificate
    assert cert.not_valid_after_utc == (now + timedelta(days=10)).replace(microsecond=0)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in eku


def test_pem_helpers_round_trip(ca: TestCA, now: datetime) -> None:
    """cert_pem, chain_pem, key_pem and combined_pem load back as the same identity."""
    identity = ca.issue("a.example.com", now=now)
    assert load_material(identity.cert_pem).leaf == identity.certificate
    assert load_material(identity.chain_pem).chain == identity.chain
    assert load_material(identity.key_pem(b"pw"), b"pw").key_was_encrypted
    assert load_material(identity.combined_pem()).key_matches is True
    assert load_material(ca.root_pem).leaf == ca.root


def test_crl_lists_the_revoked(ca: TestCA, now: datetime) -> None:
    """crl() is signed by the issuing CA and lists exactly the given certificates."""
    identity = ca.issue("a.example.com", now=now)
    crl = ca.crl([identity.certificate], now=now)
    assert crl.issuer == ca.issuer.subject
    assert crl.is_signature_valid(ca.issuer.public_key())  # type: ignore[arg-type]
    assert [r.serial_number for r in crl] == [identity.certificate.serial_number]
