"""Certificate authority operations: CA certificates, end-entity profiles, refusals and CRLs."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from mutls.errors import InvalidArgument, KeyMismatch, NotACA
from mutls.pki.authority import (
    BACKDATE,
    IssuerUrls,
    Profile,
    RevocationReason,
    RevokedEntry,
    build_ca_certificate,
    build_crl,
    sign_csr,
)
from mutls.pki.csr import SubjectSpec, build_csr, parse_san
from mutls.pki.keys import generate_key
from mutls.testing import Identity, TestCA

DAY = timedelta(days=1)


def _ext(
    cert: x509.Certificate | x509.CertificateRevocationList, kind: type[x509.ExtensionType]
) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_class(kind)


def _csr(
    common_name: str = "svc.example.com", sans: tuple[str, ...] = ()
) -> x509.CertificateSigningRequest:
    return build_csr(
        generate_key(), SubjectSpec(common_name=common_name), [parse_san(s) for s in sans]
    )


def _sign(
    ca: TestCA,
    now: datetime,
    csr: x509.CertificateSigningRequest,
    profile: Profile = Profile.CLIENT,
    urls: IssuerUrls | None = None,
) -> x509.Certificate:
    return sign_csr(
        csr,
        issuer=ca.issuer,
        issuer_key=ca.issuer_key,
        profile=profile,
        now=now,
        validity=timedelta(days=30),
        urls=urls,
    )


# --- CA certificates -----------------------------------------------------------------------------


def test_root_extensions(ca: TestCA) -> None:
    """A root: basicConstraints CA:TRUE critical with path length, CA key usages critical, SKI."""
    basic = _ext(ca.root, x509.BasicConstraints)
    assert basic.critical
    assert isinstance(basic.value, x509.BasicConstraints)
    assert basic.value.ca
    assert basic.value.path_length == 1
    usage = _ext(ca.root, x509.KeyUsage)
    assert usage.critical
    assert isinstance(usage.value, x509.KeyUsage)
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign
    ski = _ext(ca.root, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(ca.root_key.public_key())
    assert ca.root.issuer == ca.root.subject


def test_root_has_no_aki(ca: TestCA) -> None:
    """A self-signed root carries no AuthorityKeyIdentifier."""
    with pytest.raises(x509.ExtensionNotFound):
        _ext(ca.root, x509.AuthorityKeyIdentifier)


def test_intermediate_extensions(ca: TestCA) -> None:
    """An intermediate: CA:TRUE pathlen 0, AKI pointing at the root's SKI, issuer is the root."""
    assert ca.intermediate is not None
    basic = _ext(ca.intermediate, x509.BasicConstraints).value
    assert isinstance(basic, x509.BasicConstraints)
    assert basic.ca
    assert basic.path_length == 0
    aki = _ext(ca.intermediate, x509.AuthorityKeyIdentifier).value
    root_ski = _ext(ca.root, x509.SubjectKeyIdentifier).value
    assert isinstance(aki, x509.AuthorityKeyIdentifier)
    assert isinstance(root_ski, x509.SubjectKeyIdentifier)
    assert aki.key_identifier == root_ski.digest
    assert ca.intermediate.issuer == ca.root.subject


def test_ca_validity_is_backdated(ca: TestCA, now: datetime) -> None:
    """CA certificates start BACKDATE before now, so slightly slow clocks accept them at once."""
    assert ca.root.not_valid_before_utc == (now - BACKDATE).replace(microsecond=0)


def test_intermediate_never_outlives_issuer(ca: TestCA, now: datetime) -> None:
    """An intermediate asked to outlive its root is cut to the root's notAfter."""
    key = generate_key()
    cert = build_ca_certificate(
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Long CA")]),
        public_key=key.public_key(),
        signing_key=ca.root_key,
        issuer=ca.root,
        now=now,
        validity=timedelta(days=100 * 365),
        path_length=0,
    )
    assert cert.not_valid_after_utc == ca.root.not_valid_after_utc


def test_build_ca_refuses_non_ca_issuer(client: Identity, now: datetime) -> None:
    """A leaf cannot issue a CA certificate: not_a_ca."""
    key = generate_key()
    with pytest.raises(NotACA) as excinfo:
        build_ca_certificate(
            subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Rogue CA")]),
            public_key=key.public_key(),
            signing_key=client.key,
            issuer=client.certificate,
            now=now,
            validity=DAY,
            path_length=0,
        )
    assert excinfo.value.code == "not_a_ca"


def test_build_ca_refuses_wrong_signing_key(ca: TestCA, now: datetime) -> None:
    """An intermediate signed with a key that is not the issuer's: key_mismatch."""
    key = generate_key()
    with pytest.raises(KeyMismatch):
        build_ca_certificate(
            subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Sub CA")]),
            public_key=key.public_key(),
            signing_key=generate_key(),
            issuer=ca.root,
            now=now,
            validity=DAY,
            path_length=0,
        )


# --- end-entity certificates ---------------------------------------------------------------------


def test_client_profile(ca: TestCA, now: datetime) -> None:
    """Client profile: EKU clientAuth only, keyUsage digitalSignature, CA:FALSE, both critical."""
    cert = _sign(ca, now, _csr())
    eku = _ext(cert, x509.ExtendedKeyUsage).value
    assert isinstance(eku, x509.ExtendedKeyUsage)
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical
    assert isinstance(usage.value, x509.KeyUsage)
    assert usage.value.digital_signature
    assert not usage.value.key_cert_sign
    assert not usage.value.key_encipherment
    basic = _ext(cert, x509.BasicConstraints)
    assert basic.critical
    assert isinstance(basic.value, x509.BasicConstraints)
    assert not basic.value.ca


def test_server_profile(ca: TestCA, now: datetime) -> None:
    """Server profile: EKU serverAuth only."""
    eku = _ext(_sign(ca, now, _csr(), Profile.SERVER), x509.ExtendedKeyUsage).value
    assert isinstance(eku, x509.ExtendedKeyUsage)
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_rsa_server_gets_key_encipherment(
    ca: TestCA, now: datetime, rsa_key: rsa.RSAPrivateKey
) -> None:
    """An RSA server certificate also allows keyEncipherment (TLS 1.2 RSA key exchange)."""
    csr = build_csr(rsa_key, SubjectSpec(common_name="rsa.example.com"))
    usage = _ext(_sign(ca, now, csr, Profile.SERVER), x509.KeyUsage).value
    assert isinstance(usage, x509.KeyUsage)
    assert usage.key_encipherment
    client_usage = _ext(_sign(ca, now, csr, Profile.CLIENT), x509.KeyUsage).value
    assert isinstance(client_usage, x509.KeyUsage)
    assert not client_usage.key_encipherment


def test_leaf_identifiers_and_subject(ca: TestCA, now: datetime) -> None:
    """A leaf has the CSR's subject and key, an SKI, and an AKI naming the issuer's SKI."""
    csr = _csr()
    cert = _sign(ca, now, csr)
    assert cert.subject == csr.subject
    assert cert.issuer == ca.issuer.subject
    assert cert.public_key() == csr.public_key()
    aki = _ext(cert, x509.AuthorityKeyIdentifier).value
    issuer_ski = _ext(ca.issuer, x509.SubjectKeyIdentifier).value
    assert isinstance(aki, x509.AuthorityKeyIdentifier)
    assert isinstance(issuer_ski, x509.SubjectKeyIdentifier)
    assert aki.key_identifier == issuer_ski.digest
    _ext(cert, x509.SubjectKeyIdentifier)
    assert cert.not_valid_before_utc == (now - BACKDATE).replace(microsecond=0)


def test_sans_are_copied(ca: TestCA, now: datetime) -> None:
    """The CSR's SANs appear unchanged in the certificate."""
    cert = _sign(ca, now, _csr(sans=("svc.example.com", "IP:10.1.2.3", "URI:spiffe://e.com/s")))
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert isinstance(san, x509.SubjectAlternativeName)
    assert list(san) == [
        parse_san("svc.example.com"),
        parse_san("IP:10.1.2.3"),
        parse_san("URI:spiffe://e.com/s"),
    ]


def test_cn_becomes_san_when_csr_has_none(ca: TestCA, now: datetime) -> None:
    """A CSR without SANs gets its FQDN common name as a DNS SAN."""
    san = _ext(_sign(ca, now, _csr("svc.example.com")), x509.SubjectAlternativeName).value
    assert isinstance(san, x509.SubjectAlternativeName)
    assert list(san) == [x509.DNSName("svc.example.com")]


def test_non_fqdn_cn_is_not_made_a_san(ca: TestCA, now: datetime) -> None:
    """A CN that is not a host name (a person's name) is not turned into a DNS SAN."""
    with pytest.raises(x509.ExtensionNotFound):
        _ext(_sign(ca, now, _csr("Alice Example")), x509.SubjectAlternativeName)


def test_urls_present_when_configured(ca: TestCA, now: datetime) -> None:
    """CRL distribution point and AIA (OCSP, caIssuers) are added when configured."""
    urls = IssuerUrls(
        crl="http://ca.example.com/ca.crl",
        ocsp="http://ocsp.example.com",
        ca_issuers="http://ca.example.com/ca.crt",
    )
    cert = _sign(ca, now, _csr(), urls=urls)
    cdp = _ext(cert, x509.CRLDistributionPoints).value
    assert isinstance(cdp, x509.CRLDistributionPoints)
    assert cdp[0].full_name == [x509.UniformResourceIdentifier("http://ca.example.com/ca.crl")]
    aia = _ext(cert, x509.AuthorityInformationAccess).value
    assert isinstance(aia, x509.AuthorityInformationAccess)
    found = {(d.access_method, d.access_location.value) for d in aia}
    assert found == {
        (AuthorityInformationAccessOID.OCSP, "http://ocsp.example.com"),
        (AuthorityInformationAccessOID.CA_ISSUERS, "http://ca.example.com/ca.crt"),
    }


def test_urls_absent_when_not_configured(ca: TestCA, now: datetime) -> None:
    """Without URLs the certificate has neither CRL distribution points nor AIA."""
    cert = _sign(ca, now, _csr())
    with pytest.raises(x509.ExtensionNotFound):
        _ext(cert, x509.CRLDistributionPoints)
    with pytest.raises(x509.ExtensionNotFound):
        _ext(cert, x509.AuthorityInformationAccess)


def test_only_crl_url(ca: TestCA, now: datetime) -> None:
    """Only a CRL URL configured: a distribution point and no AIA."""
    cert = _sign(ca, now, _csr(), urls=IssuerUrls(crl="http://ca.example.com/ca.crl"))
    _ext(cert, x509.CRLDistributionPoints)
    with pytest.raises(x509.ExtensionNotFound):
        _ext(cert, x509.AuthorityInformationAccess)


def test_intermediate_carries_urls(now: datetime) -> None:
    """TestCA passes URLs to its intermediate as well as to leaves."""
    urls = IssuerUrls(crl="http://ca.example.com/root.crl")
    ca = TestCA(now=now, urls=urls)
    assert ca.intermediate is not None
    _ext(ca.intermediate, x509.CRLDistributionPoints)
    _ext(ca.issue("a.example.com", now=now).certificate, x509.CRLDistributionPoints)


def test_explicit_serial(ca: TestCA, now: datetime) -> None:
    """A serial given by the caller is used."""
    cert = sign_csr(
        _csr(),
        issuer=ca.issuer,
        issuer_key=ca.issuer_key,
        profile=Profile.CLIENT,
        now=now,
        validity=DAY,
        serial=0x1234567,
    )
    assert cert.serial_number == 0x1234567


def test_sign_refuses_non_ca_issuer(client: Identity, now: datetime) -> None:
    """A leaf used as issuer: not_a_ca."""
    with pytest.raises(NotACA) as excinfo:
        sign_csr(
            _csr(),
            issuer=client.certificate,
            issuer_key=client.key,
            profile=Profile.CLIENT,
            now=now,
            validity=DAY,
        )
    assert excinfo.value.code == "not_a_ca"


def test_sign_refuses_validity_beyond_issuer(ca: TestCA, now: datetime) -> None:
    """A certificate that would outlive its CA: invalid_argument, with a hint."""
    too_long = ca.issuer.not_valid_after_utc - now + DAY
    with pytest.raises(InvalidArgument) as excinfo:
        sign_csr(
            _csr(),
            issuer=ca.issuer,
            issuer_key=ca.issuer_key,
            profile=Profile.CLIENT,
            now=now,
            validity=too_long,
        )
    assert excinfo.value.code == "invalid_argument"
    assert excinfo.value.hint


def test_sign_accepts_validity_up_to_issuer(ca: TestCA, now: datetime) -> None:
    """A certificate ending exactly when its CA does is accepted."""
    exact = ca.issuer.not_valid_after_utc - now
    cert = sign_csr(
        _csr(),
        issuer=ca.issuer,
        issuer_key=ca.issuer_key,
        profile=Profile.CLIENT,
        now=now,
        validity=exact,
    )
    assert cert.not_valid_after_utc == ca.issuer.not_valid_after_utc


def test_sign_refuses_wrong_issuer_key(ca: TestCA, now: datetime) -> None:
    """Signing with a key that is not the CA certificate's: key_mismatch."""
    with pytest.raises(KeyMismatch) as excinfo:
        sign_csr(
            _csr(),
            issuer=ca.issuer,
            issuer_key=ec.generate_private_key(ec.SECP256R1()),
            profile=Profile.CLIENT,
            now=now,
            validity=DAY,
        )
    assert excinfo.value.code == "key_mismatch"


# --- CRLs ----------------------------------------------------------------------------------------


def test_crl_contents(ca: TestCA, client: Identity, server: Identity, now: datetime) -> None:
    """A CRL has its number, an AKI, each revoked serial and the reason (absent if unspecified)."""
    crl = build_crl(
        issuer=ca.issuer,
        issuer_key=ca.issuer_key,
        revoked=[
            RevokedEntry(
                serial=client.certificate.serial_number,
                revoked_at=now,
                reason=RevocationReason.KEY_COMPROMISE,
            ),
            RevokedEntry(serial=server.certificate.serial_number, revoked_at=now),
        ],
        now=now,
        next_update=timedelta(days=7),
        crl_number=42,
    )
    assert crl.is_signature_valid(ca.issuer.public_key())  # type: ignore[arg-type]
    assert crl.issuer == ca.issuer.subject
    number = _ext(crl, x509.CRLNumber).value
    assert isinstance(number, x509.CRLNumber)
    assert number.crl_number == 42
    aki = _ext(crl, x509.AuthorityKeyIdentifier).value
    issuer_ski = _ext(ca.issuer, x509.SubjectKeyIdentifier).value
    assert isinstance(aki, x509.AuthorityKeyIdentifier)
    assert isinstance(issuer_ski, x509.SubjectKeyIdentifier)
    assert aki.key_identifier == issuer_ski.digest
    assert crl.next_update_utc == (now + timedelta(days=7)).replace(microsecond=0)
    compromised = crl.get_revoked_certificate_by_serial_number(client.certificate.serial_number)
    assert compromised is not None
    reason = compromised.extensions.get_extension_for_class(x509.CRLReason).value
    assert reason.reason is x509.ReasonFlags.key_compromise
    unspecified = crl.get_revoked_certificate_by_serial_number(server.certificate.serial_number)
    assert unspecified is not None
    with pytest.raises(x509.ExtensionNotFound):
        unspecified.extensions.get_extension_for_class(x509.CRLReason)


@pytest.mark.parametrize("reason", list(RevocationReason))
def test_every_reason_maps_to_a_flag(reason: RevocationReason) -> None:
    """Every operator-facing reason maps to the RFC 5280 flag of the same name."""
    assert reason.to_flag().value == reason.value


def test_crl_refuses_non_ca_issuer(client: Identity, now: datetime) -> None:
    """A leaf cannot sign a CRL: not_a_ca."""
    with pytest.raises(NotACA):
        build_crl(
            issuer=client.certificate,
            issuer_key=client.key,
            revoked=[],
            now=now,
            next_update=DAY,
            crl_number=1,
        )


def test_crl_refuses_wrong_issuer_key(ca: TestCA, client: Identity, now: datetime) -> None:
    """A CRL signed with a key that is not the CA's would never verify: key_mismatch."""
    with pytest.raises(KeyMismatch):
        build_crl(
            issuer=ca.issuer,
            issuer_key=ec.generate_private_key(ec.SECP256R1()),
            revoked=[RevokedEntry(serial=client.certificate.serial_number, revoked_at=now)],
            now=now,
            next_update=DAY,
            crl_number=1,
        )
