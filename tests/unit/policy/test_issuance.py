"""Issuance policy: each rule trips on a bad request and passes its good twin; all are reported."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from mutls.errors import PolicyViolation
from mutls.policy.issuance import (
    DEFAULT_RULES,
    FORBIDDEN_SUBJECT_CHARACTERS,
    SERVER_RULES,
    IssuanceRequest,
    Rule,
    check_request,
    evaluate,
    is_fqdn,
    is_hostname,
)

GOOD_CN = (NameOID.COMMON_NAME, "api.example.com")


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _csr(
    key: CertificateIssuerPrivateKeyTypes,
    *attributes: tuple[ObjectIdentifier, str],
    sans: Sequence[x509.GeneralName] = (),
) -> x509.CertificateSigningRequest:
    name = x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(key, hashes.SHA256())


def _rules(
    csr: x509.CertificateSigningRequest,
    validity: timedelta | None = None,
    max_validity: timedelta | None = None,
    rules: Sequence[Rule] = DEFAULT_RULES,
) -> list[str]:
    request = IssuanceRequest(csr=csr, validity=validity, max_validity=max_validity)
    return [v.rule for v in evaluate(request, rules)]


def test_good_request_passes(key: ec.EllipticCurvePrivateKey) -> None:
    """A CSR meeting every rule has no violations and check_request returns quietly."""
    csr = _csr(
        key,
        (NameOID.COUNTRY_NAME, "CA"),
        (NameOID.ORGANIZATION_NAME, "Acme Inc"),
        GOOD_CN,
        sans=[x509.DNSName("api.example.com"), x509.IPAddress(ipaddress.ip_address("10.0.0.1"))],
    )
    assert _rules(csr, timedelta(days=90), timedelta(days=365)) == []
    check_request(IssuanceRequest(csr=csr))


# --- csr_signature -------------------------------------------------------------------------------


def test_altered_csr_breaks_signature_rule(key: ec.EllipticCurvePrivateKey) -> None:
    """A CSR whose signature no longer verifies trips csr_signature."""
    der = bytearray(_csr(key, GOOD_CN).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    tampered = x509.load_der_x509_csr(bytes(der))
    assert _rules(tampered) == ["csr_signature"]


# --- key_strength --------------------------------------------------------------------------------


def test_weak_curve_breaks_key_rule() -> None:
    """A secp256k1 key trips key_strength."""
    csr = _csr(ec.generate_private_key(ec.SECP256K1()), GOOD_CN)
    assert _rules(csr) == ["key_strength"]


def test_weak_rsa_breaks_key_rule(weak_rsa_key: rsa.RSAPrivateKey) -> None:
    """An RSA-1024 key trips key_strength."""
    assert _rules(_csr(weak_rsa_key, GOOD_CN)) == ["key_strength"]


def test_rsa_2048_passes_key_rule(rsa_key: rsa.RSAPrivateKey) -> None:
    """An RSA-2048 key passes key_strength."""
    assert _rules(_csr(rsa_key, GOOD_CN)) == []


# --- country_code --------------------------------------------------------------------------------


@pytest.mark.parametrize("country", ["XX", "ca", "UK"])
def test_bad_country_breaks_country_rule(key: ec.EllipticCurvePrivateKey, country: str) -> None:
    """A C= that is not an ISO 3166 code (unknown, lower case, UK for GB) trips country_code."""
    violations = evaluate(IssuanceRequest(csr=_csr(key, (NameOID.COUNTRY_NAME, country), GOOD_CN)))
    assert [v.rule for v in violations] == ["country_code"]
    assert repr(country) in violations[0].message


@pytest.mark.parametrize("country", ["CA", "GB", "US", "DE"])
def test_iso_country_passes(key: ec.EllipticCurvePrivateKey, country: str) -> None:
    """ISO 3166 codes pass country_code."""
    assert _rules(_csr(key, (NameOID.COUNTRY_NAME, country), GOOD_CN)) == []


# --- subject_characters --------------------------------------------------------------------------


@pytest.mark.parametrize("character", sorted(FORBIDDEN_SUBJECT_CHARACTERS))
def test_forbidden_character_breaks_character_rule(
    key: ec.EllipticCurvePrivateKey, character: str
) -> None:
    """Each forbidden character in a subject field trips subject_characters, naming the field."""
    csr = _csr(key, (NameOID.ORGANIZATION_NAME, f"Acme {character} Co"), GOOD_CN)
    violations = evaluate(IssuanceRequest(csr=csr))
    assert [v.rule for v in violations] == ["subject_characters"]
    assert "O=" in violations[0].message


def test_plain_organization_passes(key: ec.EllipticCurvePrivateKey) -> None:
    """Letters, digits, spaces, dots and hyphens pass subject_characters."""
    csr = _csr(key, (NameOID.ORGANIZATION_NAME, "Acme-Widgets 2 Inc."), GOOD_CN)
    assert _rules(csr) == []


def test_email_address_may_hold_at_sign(key: ec.EllipticCurvePrivateKey) -> None:
    """emailAddress is exempt from the character rule: its '@' is allowed."""
    csr = _csr(key, GOOD_CN, (NameOID.EMAIL_ADDRESS, "ops@example.com"))
    assert _rules(csr) == []


def test_at_sign_elsewhere_is_still_refused(key: ec.EllipticCurvePrivateKey) -> None:
    """The emailAddress exemption does not extend to other fields."""
    csr = _csr(key, (NameOID.ORGANIZATIONAL_UNIT_NAME, "ops@example.com"), GOOD_CN)
    assert _rules(csr) == ["subject_characters"]


# --- common_name_fqdn ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "common_name", ["localhost", "10.0.0.1", "api_service.example.com", "-api.example.com", "Alice"]
)
def test_non_fqdn_cn_breaks_cn_rule(key: ec.EllipticCurvePrivateKey, common_name: str) -> None:
    """A CN that is not a fully qualified domain name trips common_name_fqdn."""
    assert _rules(_csr(key, (NameOID.COMMON_NAME, common_name))) == ["common_name_fqdn"]


@pytest.mark.parametrize("common_name", ["api.example.com", "api.example.com.", "a-1.b.example.io"])
def test_fqdn_cn_passes(key: ec.EllipticCurvePrivateKey, common_name: str) -> None:
    """A fully qualified CN passes common_name_fqdn."""
    assert _rules(_csr(key, (NameOID.COMMON_NAME, common_name))) == []


def test_missing_cn_breaks_cn_rule(key: ec.EllipticCurvePrivateKey) -> None:
    """A subject without a CN trips common_name_fqdn."""
    assert _rules(_csr(key, (NameOID.ORGANIZATION_NAME, "Acme"))) == ["common_name_fqdn"]


def test_two_cns_break_cn_rule(key: ec.EllipticCurvePrivateKey) -> None:
    """A subject with two CNs trips common_name_fqdn."""
    csr = _csr(key, GOOD_CN, (NameOID.COMMON_NAME, "web.example.com"))
    assert _rules(csr) == ["common_name_fqdn"]


# --- no_wildcards --------------------------------------------------------------------------------


def test_wildcard_san_breaks_wildcard_rule(key: ec.EllipticCurvePrivateKey) -> None:
    """A wildcard DNS SAN trips no_wildcards (and only that rule)."""
    csr = _csr(key, GOOD_CN, sans=[x509.DNSName("*.example.com")])
    assert _rules(csr) == ["no_wildcards"]


def test_wildcard_cn_breaks_wildcard_rule(key: ec.EllipticCurvePrivateKey) -> None:
    """A wildcard CN trips no_wildcards (and subject_characters for the '*'), not the FQDN rule."""
    csr = _csr(key, (NameOID.COMMON_NAME, "*.example.com"))
    assert set(_rules(csr)) == {"no_wildcards", "subject_characters"}


# --- san_dns_fqdn --------------------------------------------------------------------------------


def test_non_fqdn_san_breaks_san_rule(key: ec.EllipticCurvePrivateKey) -> None:
    """A DNS SAN that is not fully qualified trips san_dns_fqdn."""
    csr = _csr(key, GOOD_CN, sans=[x509.DNSName("api.example.com"), x509.DNSName("localhost")])
    violations = evaluate(IssuanceRequest(csr=csr))
    assert [v.rule for v in violations] == ["san_dns_fqdn"]
    assert "'localhost'" in violations[0].message


def test_ip_and_uri_sans_pass_san_rule(key: ec.EllipticCurvePrivateKey) -> None:
    """IP, URI and email SANs are not DNS names and pass san_dns_fqdn."""
    sans: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
        x509.UniformResourceIdentifier("spiffe://example.com/api"),
        x509.RFC822Name("ops@example.com"),
    ]
    assert _rules(_csr(key, GOOD_CN, sans=sans)) == []


# --- max_validity --------------------------------------------------------------------------------


def test_validity_over_maximum_breaks_validity_rule(key: ec.EllipticCurvePrivateKey) -> None:
    """Asking for more than the profile's maximum trips max_validity."""
    csr = _csr(key, GOOD_CN)
    assert _rules(csr, timedelta(days=400), timedelta(days=365)) == ["max_validity"]


def test_validity_at_maximum_passes(key: ec.EllipticCurvePrivateKey) -> None:
    """Exactly the maximum passes max_validity."""
    assert _rules(_csr(key, GOOD_CN), timedelta(days=365), timedelta(days=365)) == []


@pytest.mark.parametrize("days", [0, -1])
def test_non_positive_validity_breaks_validity_rule(
    key: ec.EllipticCurvePrivateKey, days: int
) -> None:
    """Zero or negative validity trips max_validity."""
    assert _rules(_csr(key, GOOD_CN), timedelta(days=days), timedelta(days=365)) == ["max_validity"]


def test_validity_unchecked_without_maximum(key: ec.EllipticCurvePrivateKey) -> None:
    """With no maximum configured (CSR creation time) validity is not judged."""
    assert _rules(_csr(key, GOOD_CN), timedelta(days=10_000), None) == []


# --- client_auth_usage ---------------------------------------------------------------------------


def _csr_with_usage(
    key: CertificateIssuerPrivateKeyTypes, *usages: ObjectIdentifier
) -> x509.CertificateSigningRequest:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client.example.com")]))
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .sign(key, hashes.SHA256())
    )


def test_server_auth_only_request_breaks_client_auth_rule(key: ec.EllipticCurvePrivateKey) -> None:
    """A CSR asking only for serverAuth cannot become a client certificate."""
    csr = _csr_with_usage(key, ExtendedKeyUsageOID.SERVER_AUTH)
    violations = evaluate(IssuanceRequest(csr=csr))
    assert [v.rule for v in violations] == ["client_auth_usage"]
    assert "serverAuth" in violations[0].message


def test_client_auth_request_passes(key: ec.EllipticCurvePrivateKey) -> None:
    """Asking for clientAuth (with or without serverAuth), or for nothing, passes."""
    both = _csr_with_usage(key, ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
    assert _rules(both) == []
    assert _rules(_csr(key, GOOD_CN)) == []


def test_server_rules_do_not_ask_for_client_auth(key: ec.EllipticCurvePrivateKey) -> None:
    csr = _csr_with_usage(key, ExtendedKeyUsageOID.SERVER_AUTH)
    assert _rules(csr, rules=SERVER_RULES) == []


# --- all together --------------------------------------------------------------------------------


def test_every_broken_rule_is_reported() -> None:
    """A CSR breaking several rules reports all of them, in rule order, in one PolicyViolation."""
    csr = _csr(
        ec.generate_private_key(ec.SECP256K1()),
        (NameOID.COUNTRY_NAME, "XX"),
        (NameOID.ORGANIZATION_NAME, "Acme & Co"),
        (NameOID.COMMON_NAME, "localhost"),
        sans=[x509.DNSName("*.example.com"), x509.DNSName("intranet")],
    )
    request = IssuanceRequest(
        csr=csr, validity=timedelta(days=800), max_validity=timedelta(days=365)
    )
    with pytest.raises(PolicyViolation) as excinfo:
        check_request(request)
    error = excinfo.value
    assert error.code == "csr_policy_violation"
    expected = [
        "key_strength",
        "country_code",
        "subject_characters",
        "common_name_fqdn",
        "no_wildcards",
        "san_dns_fqdn",
        "max_validity",
    ]
    assert [v.rule for v in error.violations] == expected
    for rule in expected:
        assert rule in error.message
    violations = error.to_dict()["violations"]
    assert isinstance(violations, list)
    assert len(violations) == len(expected)


def test_every_default_rule_is_tested() -> None:
    """The rule list is the one these tests cover; a new rule needs a trip test and a twin here."""
    assert [r.name for r in DEFAULT_RULES] == [
        "csr_signature",
        "key_strength",
        "country_code",
        "subject_characters",
        "common_name_fqdn",
        "no_wildcards",
        "san_dns_fqdn",
        "max_validity",
        "client_auth_usage",
    ]
    assert all(r.description for r in DEFAULT_RULES)


def test_evaluate_with_chosen_rules(key: ec.EllipticCurvePrivateKey) -> None:
    """evaluate runs only the rules it is given."""
    csr = _csr(key, (NameOID.COUNTRY_NAME, "XX"), (NameOID.COMMON_NAME, "localhost"))
    country_only = [r for r in DEFAULT_RULES if r.name == "country_code"]
    assert [v.rule for v in evaluate(IssuanceRequest(csr=csr), country_only)] == ["country_code"]


# --- server rules -------------------------------------------------------------------------------


def test_server_rules_replace_only_the_fqdn_rules() -> None:
    """SERVER_RULES are DEFAULT_RULES with the two FQDN rules swapped for host-name rules."""
    assert [r.name for r in SERVER_RULES] == [
        "csr_signature",
        "key_strength",
        "country_code",
        "subject_characters",
        "common_name_hostname",
        "no_wildcards",
        "san_dns_hostname",
        "max_validity",
    ]


@pytest.mark.parametrize("common_name", ["localhost", "api.example.com", "10.0.0.1", "db1"])
def test_server_cn_may_be_a_host_name_or_ip(
    key: ec.EllipticCurvePrivateKey, common_name: str
) -> None:
    """For servers, a single-label host name or an IP address passes common_name_hostname."""
    csr = _csr(key, (NameOID.COMMON_NAME, common_name))
    assert _rules(csr, rules=SERVER_RULES) == []


@pytest.mark.parametrize("common_name", ["api_service", "Alice Example", "-db"])
def test_server_cn_not_a_host_name(key: ec.EllipticCurvePrivateKey, common_name: str) -> None:
    """A server CN that is not a host name trips common_name_hostname."""
    csr = _csr(key, (NameOID.COMMON_NAME, common_name))
    assert _rules(csr, rules=SERVER_RULES) == ["common_name_hostname"]


def test_server_without_any_name(key: ec.EllipticCurvePrivateKey) -> None:
    """A server CSR with no CN and no SAN trips common_name_hostname."""
    csr = _csr(key, (NameOID.ORGANIZATION_NAME, "Acme"))
    assert _rules(csr, rules=SERVER_RULES) == ["common_name_hostname"]


@pytest.mark.parametrize(
    "san",
    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    ids=["dns", "ip"],
)
def test_server_named_by_san_only(key: ec.EllipticCurvePrivateKey, san: x509.GeneralName) -> None:
    """A server CSR without a CN passes when a DNS or IP SAN names it."""
    csr = _csr(key, (NameOID.ORGANIZATION_NAME, "Acme"), sans=[san])
    assert _rules(csr, rules=SERVER_RULES) == []


def test_server_two_cns(key: ec.EllipticCurvePrivateKey) -> None:
    """A server CSR with two CNs trips common_name_hostname."""
    csr = _csr(key, (NameOID.COMMON_NAME, "a.example.com"), (NameOID.COMMON_NAME, "b"))
    assert _rules(csr, rules=SERVER_RULES) == ["common_name_hostname"]


def test_server_san_not_a_host_name(key: ec.EllipticCurvePrivateKey) -> None:
    """A server DNS SAN that is not a host name trips san_dns_hostname; localhost passes."""
    csr = _csr(key, GOOD_CN, sans=[x509.DNSName("localhost"), x509.DNSName("bad_name")])
    violations = evaluate(IssuanceRequest(csr=csr), SERVER_RULES)
    assert [v.rule for v in violations] == ["san_dns_hostname"]
    assert "'bad_name'" in violations[0].message
    assert "'localhost'" not in violations[0].message


def test_server_rules_still_refuse_wildcards(key: ec.EllipticCurvePrivateKey) -> None:
    """Server rules keep the wildcard ban."""
    csr = _csr(key, GOOD_CN, sans=[x509.DNSName("*.example.com")])
    assert _rules(csr, rules=SERVER_RULES) == ["no_wildcards"]


@pytest.mark.parametrize("name", ["localhost", "db1", "api.example.com", "api.example.com."])
def test_is_hostname_accepts(name: str) -> None:
    """One or more LDH labels are a host name."""
    assert is_hostname(name)


@pytest.mark.parametrize("name", ["", "127.0.0.1", "::1", "bad_name", "a..b", "-a", "a b"])
def test_is_hostname_refuses(name: str) -> None:
    """IP addresses, empty labels and characters outside LDH are not host names."""
    assert not is_hostname(name)


# --- is_fqdn -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["example.com", "api.example.com", "api.example.com.", "xn--bcher-kva.de", "a.b-c.io"]
)
def test_is_fqdn_accepts(name: str) -> None:
    """Two or more LDH labels (optionally with the root dot) are an FQDN."""
    assert is_fqdn(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "localhost",
        "1.2.3.4",
        "::1",
        "example.123",
        "a..example.com",
        "-a.example.com",
        "a-.example.com",
        "under_score.example.com",
        "*.example.com",
        ("a" * 64) + ".example.com",
        ".".join(["a" * 63] * 4) + ".com",
    ],
)
def test_is_fqdn_refuses(name: str) -> None:
    """Single labels, IPs, numeric TLDs, empty/over-long labels and bad characters are not FQDNs."""
    assert not is_fqdn(name)
