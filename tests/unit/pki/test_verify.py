"""Verification: each acceptance has its rejection twin, and each rejection its own code."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from mutls.errors import ChainOutOfOrder, MutlsError
from mutls.pki.authority import (
    Profile,
    RevokedEntry,
    build_ca_certificate,
    build_crl,
    sign_csr,
)
from mutls.pki.csr import SubjectSpec, build_csr
from mutls.pki.verify import Purpose, check_chain_order, verify_chain
from mutls.testing import Identity, TestCA

DAY = timedelta(days=1)


def _code(
    leaf: x509.Certificate,
    ca: TestCA,
    at: datetime,
    *,
    intermediates: list[x509.Certificate] | None = None,
    purpose: Purpose = Purpose.CLIENT,
    hostname: str | None = None,
    crls: list[x509.CertificateRevocationList] | None = None,
) -> str:
    with pytest.raises(MutlsError) as excinfo:
        verify_chain(
            leaf,
            anchors=[ca.root],
            intermediates=list(ca.intermediates) if intermediates is None else intermediates,
            purpose=purpose,
            at=at,
            hostname=hostname,
            crls=crls or [],
        )
    return excinfo.value.code


# --- acceptance ----------------------------------------------------------------------------------


def test_client_certificate_verifies(client: Identity, ca: TestCA, now: datetime) -> None:
    """A client certificate verifies for the client purpose, chain leaf to root."""
    result = verify_chain(
        client.certificate, anchors=[ca.root], intermediates=list(ca.intermediates), at=now
    )
    assert result.chain == (client.certificate, ca.intermediate, ca.root)
    assert result.purpose is Purpose.CLIENT
    assert not result.crl_checked
    data = result.to_dict()
    assert data["valid"] is True
    assert isinstance(data["chain"], list)
    assert len(data["chain"]) == 3


def test_client_certificate_without_san_verifies(ca: TestCA, now: datetime) -> None:
    """A client certificate whose CN is a person's name (so no SAN) still verifies as a client."""
    person = ca.issue("Alice Example", now=now)
    verify_chain(
        person.certificate, anchors=[ca.root], intermediates=list(ca.intermediates), at=now
    )


@pytest.mark.parametrize("hostname", ["server.example.com", "SERVER.Example.COM", "127.0.0.1"])
def test_server_certificate_verifies(
    server: Identity, ca: TestCA, now: datetime, hostname: str
) -> None:
    """A server certificate verifies for its DNS name (in any case) and for its IP SAN."""
    result = verify_chain(
        server.certificate,
        anchors=[ca.root],
        intermediates=list(ca.intermediates),
        purpose=Purpose.SERVER,
        hostname=hostname,
        at=now,
    )
    assert result.hostname == hostname


def test_server_hostname_with_trailing_dot(server: Identity, ca: TestCA, now: datetime) -> None:
    """An absolute host name (trailing dot) matches like the name without it, never a traceback."""
    result = verify_chain(
        server.certificate,
        anchors=[ca.root],
        intermediates=list(ca.intermediates),
        purpose=Purpose.SERVER,
        hostname="server.example.com.",
        at=now,
    )
    assert result.chain[0] == server.certificate


def test_intermediate_as_anchor(client: Identity, ca: TestCA, now: datetime) -> None:
    """Trusting the intermediate directly is enough: the chain stops there."""
    assert ca.intermediate is not None
    result = verify_chain(client.certificate, anchors=[ca.intermediate], at=now)
    assert result.chain == (client.certificate, ca.intermediate)


def test_wildcard_name(ca: TestCA, now: datetime) -> None:
    """A wildcard SAN matches one label, not two and not the bare domain."""
    wild = ca.issue("wild.example.com", profile=Profile.SERVER, sans=["*.example.com"], now=now)
    ok = verify_chain(
        wild.certificate,
        anchors=[ca.root],
        intermediates=list(ca.intermediates),
        purpose=Purpose.SERVER,
        hostname="api.example.com",
        at=now,
    )
    assert ok.hostname == "api.example.com"
    for name in ("a.b.example.com", "example.com"):
        assert _code(wild.certificate, ca, now, purpose=Purpose.SERVER, hostname=name) == (
            "name_mismatch"
        )


def test_crl_without_the_certificate(
    client: Identity, server: Identity, ca: TestCA, now: datetime
) -> None:
    """A valid CRL that does not list the certificate: verified, and crl_checked is True."""
    crl = ca.crl([server.certificate], now=now)
    result = verify_chain(
        client.certificate,
        anchors=[ca.root],
        intermediates=list(ca.intermediates),
        crls=[crl],
        at=now,
    )
    assert result.crl_checked


def test_crl_from_another_key_is_not_trusted(client: Identity, ca: TestCA, now: datetime) -> None:
    """A CRL with the issuer's name but a bad signature is ignored, not trusted."""
    forged = _forged_crl(ca, now)
    result = verify_chain(
        client.certificate,
        anchors=[ca.root],
        intermediates=list(ca.intermediates),
        crls=[forged],
        at=now,
    )
    assert not result.crl_checked


def _forged_crl(ca: TestCA, now: datetime) -> x509.CertificateRevocationList:
    """A CRL naming the issuing CA but signed by another key."""
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.issuer.subject)
        .last_update(now)
        .next_update(now + DAY)
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )


# --- rejections ----------------------------------------------------------------------------------


def test_unknown_issuer(other_ca: TestCA, ca: TestCA, now: datetime) -> None:
    """A certificate from another CA, with that CA's intermediate: unknown_issuer."""
    stranger = other_ca.issue("client.example.com", now=now)
    assert _code(stranger.certificate, ca, now, intermediates=list(other_ca.intermediates)) == (
        "unknown_issuer"
    )


def test_unknown_issuer_leaf_alone(other_ca: TestCA, ca: TestCA, now: datetime) -> None:
    """A lone certificate from an unrelated organisation's CA: unknown_issuer."""
    stranger = other_ca.issue("client.example.com", now=now)
    assert _code(stranger.certificate, ca, now, intermediates=[]) == "unknown_issuer"


def test_self_signed_not_trusted(other_ca: TestCA, ca: TestCA, now: datetime) -> None:
    """A self-signed certificate that is not an anchor: unknown_issuer."""
    assert _code(other_ca.root, ca, now, intermediates=[]) == "unknown_issuer"


def test_rekeyed_ca_same_name(client: Identity, now: datetime) -> None:
    """A trusted CA with the issuer's name but another key (re-keyed, impostor): unknown_issuer."""
    impostor = TestCA(now=now)  # same names as ``ca``, new keys
    assert impostor.intermediate is not None
    with pytest.raises(MutlsError) as excinfo:
        verify_chain(client.certificate, anchors=[impostor.intermediate], at=now)
    assert excinfo.value.code == "unknown_issuer"
    assert "re-keyed" in excinfo.value.message


def test_missing_intermediate(client: Identity, ca: TestCA, now: datetime) -> None:
    """The leaf alone when its intermediate is needed: missing_intermediate."""
    assert _code(client.certificate, ca, now, intermediates=[]) == "missing_intermediate"


def test_leaf_expired(client: Identity, ca: TestCA) -> None:
    """Checked after the leaf's notAfter: certificate_expired, naming the certificate."""
    at = client.certificate.not_valid_after_utc + DAY
    with pytest.raises(MutlsError) as excinfo:
        verify_chain(
            client.certificate, anchors=[ca.root], intermediates=list(ca.intermediates), at=at
        )
    assert excinfo.value.code == "certificate_expired"
    assert excinfo.value.message.startswith("the certificate")


def test_leaf_valid_until_its_last_second(client: Identity, ca: TestCA) -> None:
    """One second before notAfter the leaf still verifies (the twin of the expiry test)."""
    at = client.certificate.not_valid_after_utc - timedelta(seconds=1)
    verify_chain(client.certificate, anchors=[ca.root], intermediates=list(ca.intermediates), at=at)


def test_intermediate_expired(client: Identity, ca: TestCA, now: datetime) -> None:
    """A still-valid leaf with an expired intermediate: certificate_expired, naming the CA."""
    assert ca.intermediate is not None
    short = build_ca_certificate(
        subject=ca.intermediate.subject,
        public_key=ca.issuer_key.public_key(),
        signing_key=ca.root_key,
        issuer=ca.root,
        now=now,
        validity=timedelta(days=10),
        path_length=0,
    )
    at = now + timedelta(days=20)
    assert at < client.certificate.not_valid_after_utc
    with pytest.raises(MutlsError) as excinfo:
        verify_chain(client.certificate, anchors=[ca.root], intermediates=[short], at=at)
    assert excinfo.value.code == "certificate_expired"
    assert "CA certificate" in excinfo.value.message
    assert excinfo.value.hint != ""


def test_not_yet_valid(ca: TestCA, now: datetime) -> None:
    """A certificate whose validity starts tomorrow: certificate_not_yet_valid today."""
    future = ca.issue("future.example.com", now=now + 2 * DAY)
    assert _code(future.certificate, ca, now) == "certificate_not_yet_valid"
    verify_chain(
        future.certificate,
        anchors=[ca.root],
        intermediates=list(ca.intermediates),
        at=now + 2 * DAY,
    )


def test_server_certificate_as_client(server: Identity, ca: TestCA, now: datetime) -> None:
    """A server certificate presented as a client certificate: wrong_key_usage."""
    assert _code(server.certificate, ca, now, purpose=Purpose.CLIENT) == "wrong_key_usage"


def test_client_certificate_as_server(client: Identity, ca: TestCA, now: datetime) -> None:
    """A client certificate presented by a server: wrong_key_usage."""
    code = _code(client.certificate, ca, now, purpose=Purpose.SERVER, hostname="client.example.com")
    assert code == "wrong_key_usage"


def test_revoked(client: Identity, ca: TestCA, now: datetime) -> None:
    """A certificate listed on its issuer's CRL: certificate_revoked."""
    crl = ca.crl([client.certificate], now=now)
    assert _code(client.certificate, ca, now, crls=[crl]) == "certificate_revoked"


def test_revocation_in_the_future_is_not_yet_effective(
    client: Identity, ca: TestCA, now: datetime
) -> None:
    """A revocation dated after the verification time does not apply yet."""
    crl = build_crl(
        issuer=ca.issuer,
        issuer_key=ca.issuer_key,
        revoked=[RevokedEntry(serial=client.certificate.serial_number, revoked_at=now + DAY)],
        now=now,
        next_update=7 * DAY,
        crl_number=2,
    )
    result = verify_chain(
        client.certificate,
        anchors=[ca.root],
        intermediates=list(ca.intermediates),
        crls=[crl],
        at=now,
    )
    assert result.crl_checked


@pytest.mark.parametrize("hostname", ["other.example.com", "127.0.0.2", "example.com"])
def test_name_mismatch(server: Identity, ca: TestCA, now: datetime, hostname: str) -> None:
    """A host name or IP the server certificate does not list: name_mismatch."""
    code = _code(server.certificate, ca, now, purpose=Purpose.SERVER, hostname=hostname)
    assert code == "name_mismatch"


def test_weak_key(ca: TestCA, now: datetime, weak_rsa_key: rsa.RSAPrivateKey) -> None:
    """An RSA-1024 leaf from a trusted CA: weak_key."""
    csr = build_csr(weak_rsa_key, SubjectSpec(common_name="weak.example.com"))
    cert = sign_csr(
        csr,
        issuer=ca.issuer,
        issuer_key=ca.issuer_key,
        profile=Profile.CLIENT,
        now=now,
        validity=30 * DAY,
    )
    assert _code(cert, ca, now) == "weak_key"


def test_leaf_used_as_issuer(client: Identity, ca: TestCA, now: datetime) -> None:
    """A certificate signed by a leaf (CA:FALSE) chained through that leaf: not_a_ca."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sub.example.com")])
    forged = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(client.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - DAY)
        .not_valid_after(now + DAY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("sub.example.com")]), False)
        .sign(client.key, hashes.SHA256())
    )
    intermediates = [client.certificate, *ca.intermediates]
    assert _code(forged, ca, now, intermediates=intermediates) == "not_a_ca"


def test_chain_in_order(client: Identity, ca: TestCA) -> None:
    """check_chain_order accepts leaf, intermediate, root (and trivially a single certificate)."""
    assert ca.intermediate is not None
    check_chain_order([client.certificate, ca.intermediate, ca.root])
    check_chain_order([client.certificate])


def test_chain_out_of_order(client: Identity, ca: TestCA) -> None:
    """check_chain_order refuses a root before the intermediate: chain_out_of_order."""
    assert ca.intermediate is not None
    with pytest.raises(ChainOutOfOrder) as excinfo:
        check_chain_order([client.certificate, ca.root, ca.intermediate])
    assert excinfo.value.code == "chain_out_of_order"
    assert "certificate 2" in excinfo.value.message


def test_path_length_exceeded(now: datetime) -> None:
    """A root allowing no intermediates, with one below it: chain_invalid."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Strict Root")])
    root = build_ca_certificate(
        subject=root_name,
        public_key=root_key.public_key(),
        signing_key=root_key,
        issuer=None,
        now=now,
        validity=365 * DAY,
        path_length=0,
    )
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = build_ca_certificate(
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Sub CA")]),
        public_key=inter_key.public_key(),
        signing_key=root_key,
        issuer=root,
        now=now,
        validity=100 * DAY,
        path_length=None,
    )
    csr = build_csr(
        ec.generate_private_key(ec.SECP256R1()), SubjectSpec(common_name="a.example.com")
    )
    leaf = sign_csr(
        csr, issuer=inter, issuer_key=inter_key, profile=Profile.CLIENT, now=now, validity=DAY
    )
    with pytest.raises(MutlsError) as excinfo:
        verify_chain(leaf, anchors=[root], intermediates=[inter], at=now)
    assert excinfo.value.code == "chain_invalid"


def test_stale_crl_is_refused() -> None:
    """A CRL past its nextUpdate cannot prove anything: crl_expired; a fresh one passes."""
    from datetime import UTC, datetime, timedelta

    from mutls.errors import CRLExpired
    from mutls.testing import TestCA

    now = datetime.now(UTC)
    ca = TestCA(now=now)
    client = ca.issue("stale.crl.example")
    stale = ca.crl([], now=now - timedelta(days=10), next_update=timedelta(days=7))
    fresh = ca.crl([], now=now - timedelta(days=1), next_update=timedelta(days=7))
    args = {"anchors": [ca.root], "intermediates": client.chain[1:], "at": now}
    assert verify_chain(client.certificate, crls=[fresh], **args).crl_checked  # type: ignore[arg-type]
    with pytest.raises(CRLExpired) as caught:
        verify_chain(client.certificate, crls=[stale], **args)  # type: ignore[arg-type]
    assert caught.value.code == "crl_expired"
