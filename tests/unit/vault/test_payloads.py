"""Uploads for each secret type: what is accepted, what is refused and why, what is public."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mutls.errors import (
    CertificateExpired,
    DecryptionFailed,
    InputTooLarge,
    InvalidArgument,
    KeyMismatch,
    MissingPrivateKey,
    MutlsError,
    NotACertificate,
    PassphraseRequired,
    UnsupportedFormat,
    WrongPassphrase,
)
from mutls.pki.inspect import serial_hex, sha256_fingerprint
from mutls.pki.loader import DEFAULT_MAX_INPUT, load_material
from mutls.testing import Identity, TestCA
from mutls.vault.payloads import (
    FIELDS,
    CertificateInput,
    OAuth2Input,
    Prepared,
    SecretType,
    StringInput,
    expiry_view,
    prepare,
    prepare_certificate,
    prepare_oauth2,
    prepare_string,
    reveal,
)

PASSPHRASE = "correct horse battery staple 7f3a"
CLIENT_SECRET = "s3cr3t-client-secret-value-9b2e"
STRING_VALUE = "api-key-0123456789abcdef"


def pem(identity: Identity) -> str:
    return identity.cert_pem.decode()


def key_pem(identity: Identity, passphrase: str | None = None) -> str:
    return identity.key_pem(passphrase.encode() if passphrase else None).decode()


def key_body_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("-----")]


def p12(identity: Identity, passphrase: str | None) -> str:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    data = pkcs12.serialize_key_and_certificates(
        b"client", identity.key, identity.certificate, list(identity.chain[1:]), encryption
    )
    return base64.b64encode(data).decode()


def fields_of(prepared: Prepared) -> dict[str, object]:
    return json.loads(prepared.plaintext)  # type: ignore[no-any-return]


def assert_no_secret_in(prepared: Prepared, *secrets: str) -> None:
    public = json.dumps(prepared.metadata) + repr(prepared)
    for secret in secrets:
        lines = key_body_lines(secret) if "-----BEGIN" in secret else [secret]
        for line in lines:
            assert line not in public


# --- certificates: accepted -----------------------------------------------------------------


def test_combined_pem_is_accepted(client: Identity, ca: TestCA, now: datetime) -> None:
    """A combined PEM (leaf, intermediate, key) is stored as chain + key with public metadata."""
    prepared = prepare(
        SecretType.CERTIFICATE, {"certificate_pem": client.combined_pem().decode()}, now=now
    )
    stored = fields_of(prepared)
    assert stored["certificate_pem"] == client.chain_pem.decode()
    assert stored["private_key_pem"] == key_pem(client)
    assert stored["passphrase"] is None
    assert stored["ca_bundle_pem"] is None
    meta = prepared.metadata
    assert meta["subject"] == "CN=client.example.com"
    assert meta["issuer"] == "CN=mutls Test Root CA Issuing CA,O=mutls tests"
    assert meta["key_type"] == "EC P-256"
    assert meta["has_private_key"] is True
    assert meta["has_passphrase"] is False
    assert meta["chain_length"] == 2
    assert meta["san"] == ["DNS:client.example.com"]
    assert meta["extended_key_usage"] == ["clientAuth"]
    assert meta["warnings"] == []
    assert meta["serial"] == serial_hex(client.certificate.serial_number)
    assert meta["fingerprint_sha256"] == sha256_fingerprint(client.certificate)
    assert meta["has_ca_bundle"] is False
    assert str(meta["valid_until"]).endswith("Z")
    assert "days_remaining" not in meta
    assert_no_secret_in(prepared, key_pem(client))


def test_separate_certificate_and_key_are_accepted(client: Identity, now: datetime) -> None:
    """certificate_pem + private_key_pem: the key is stored exactly as given."""
    prepared = prepare_certificate(
        CertificateInput(certificate_pem=pem(client), private_key_pem=key_pem(client)), now=now
    )
    stored = fields_of(prepared)
    assert stored["private_key_pem"] == key_pem(client)
    assert stored["certificate_pem"] == pem(client)
    assert prepared.metadata["chain_length"] == 1
    codes = [w["code"] for w in prepared.metadata["warnings"]]  # type: ignore[attr-defined]
    assert codes == ["chain_incomplete"]


def test_chain_pem_is_appended_leaf_first(client: Identity, ca: TestCA, now: datetime) -> None:
    """A separate chain_pem joins the stored certificate_pem after the leaf."""
    assert ca.intermediate is not None
    intermediate = ca.intermediate.public_bytes(serialization.Encoding.PEM).decode()
    prepared = prepare_certificate(
        CertificateInput(
            certificate_pem=pem(client), chain_pem=intermediate, private_key_pem=key_pem(client)
        ),
        now=now,
    )
    assert fields_of(prepared)["certificate_pem"] == pem(client) + intermediate
    assert prepared.metadata["chain_length"] == 2


def test_out_of_order_combined_pem_is_stored_leaf_first(
    client: Identity, ca: TestCA, now: datetime
) -> None:
    """Key, intermediate, then leaf: accepted, stored in TLS order, with a warning."""
    assert ca.intermediate is not None
    intermediate = ca.intermediate.public_bytes(serialization.Encoding.PEM).decode()
    text = key_pem(client) + intermediate + pem(client)
    prepared = prepare_certificate(CertificateInput(certificate_pem=text), now=now)
    assert fields_of(prepared)["certificate_pem"] == pem(client) + intermediate
    assert fields_of(prepared)["private_key_pem"] == key_pem(client)
    codes = [w["code"] for w in prepared.metadata["warnings"]]  # type: ignore[attr-defined]
    assert "chain_out_of_order" in codes


@pytest.mark.parametrize("legacy", [False, True], ids=["pkcs8", "legacy-pem"])
def test_encrypted_key_with_its_passphrase_is_accepted(
    client: Identity, now: datetime, legacy: bool
) -> None:
    """An encrypted key and the right passphrase: stored still encrypted, with the passphrase."""
    fmt = (
        serialization.PrivateFormat.TraditionalOpenSSL
        if legacy
        else serialization.PrivateFormat.PKCS8
    )
    encrypted = client.key.private_bytes(
        serialization.Encoding.PEM, fmt, serialization.BestAvailableEncryption(PASSPHRASE.encode())
    ).decode()
    prepared = prepare(
        SecretType.CERTIFICATE,
        {"certificate_pem": pem(client), "private_key_pem": encrypted, "passphrase": PASSPHRASE},
        now=now,
    )
    stored = fields_of(prepared)
    assert stored["private_key_pem"] == encrypted
    assert stored["passphrase"] == PASSPHRASE
    assert prepared.metadata["has_passphrase"] is True
    assert_no_secret_in(prepared, encrypted, PASSPHRASE)


def test_passphrase_for_an_unencrypted_key_is_not_stored(client: Identity, now: datetime) -> None:
    """A passphrase that protects nothing is dropped (it would break loading) with a warning."""
    prepared = prepare_certificate(
        CertificateInput(certificate_pem=client.combined_pem().decode(), passphrase=PASSPHRASE),
        now=now,
    )
    assert fields_of(prepared)["passphrase"] is None
    assert prepared.metadata["has_passphrase"] is False
    codes = [w["code"] for w in prepared.metadata["warnings"]]  # type: ignore[attr-defined]
    assert "passphrase_not_needed" in codes
    assert_no_secret_in(prepared, PASSPHRASE)


def test_pkcs12_with_passphrase_is_accepted(client: Identity, now: datetime) -> None:
    """A protected PKCS#12: the key is stored as encrypted PKCS#8 that opens with the passphrase."""
    prepared = prepare(
        SecretType.CERTIFICATE,
        {"pkcs12_base64": p12(client, PASSPHRASE), "passphrase": PASSPHRASE},
        now=now,
    )
    stored = fields_of(prepared)
    key_text = str(stored["private_key_pem"])
    assert key_text.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert stored["passphrase"] == PASSPHRASE
    assert stored["certificate_pem"] == client.chain_pem.decode()
    material = load_material(
        (str(stored["certificate_pem"]) + key_text).encode(), PASSPHRASE.encode()
    )
    assert material.key_matches is True
    assert prepared.metadata["has_passphrase"] is True
    assert prepared.metadata["chain_length"] == 2
    assert_no_secret_in(prepared, key_text, PASSPHRASE)


def test_pkcs12_without_passphrase_is_accepted(client: Identity, now: datetime) -> None:
    """An unprotected PKCS#12: the key is stored as plain PKCS#8 PEM and no passphrase."""
    prepared = prepare(SecretType.CERTIFICATE, {"pkcs12_base64": p12(client, None)}, now=now)
    stored = fields_of(prepared)
    assert stored["private_key_pem"] == key_pem(client)
    assert stored["passphrase"] is None
    assert prepared.metadata["has_passphrase"] is False


def test_ca_bundle_is_kept_and_its_subjects_listed(
    client: Identity, other_ca: TestCA, now: datetime
) -> None:
    """ca_bundle_pem is stored with the secret; only its subjects are public."""
    bundle = other_ca.root_pem.decode()
    prepared = prepare_certificate(
        CertificateInput(certificate_pem=client.combined_pem().decode(), ca_bundle_pem=bundle),
        now=now,
    )
    assert fields_of(prepared)["ca_bundle_pem"] == bundle
    assert prepared.metadata["has_ca_bundle"] is True
    assert prepared.metadata["ca_bundle_subjects"] == ["CN=Other CA,O=Other org"]


def test_not_yet_valid_certificate_is_accepted_with_a_warning(ca: TestCA, now: datetime) -> None:
    """A certificate for a staged rotation is stored, and the metadata says when it starts."""
    future = ca.issue("next.example.com", now=now + timedelta(days=10))
    prepared = prepare_certificate(
        CertificateInput(certificate_pem=future.combined_pem().decode()), now=now
    )
    codes = [w["code"] for w in prepared.metadata["warnings"]]  # type: ignore[attr-defined]
    assert codes == ["certificate_not_yet_valid"]
    assert expiry_view(prepared.metadata, now=now)["expiry_status"] == "not_yet_valid"


def test_certificate_without_client_auth_is_accepted_with_a_warning(
    server: Identity, now: datetime
) -> None:
    """A serverAuth-only certificate is stored, with a warning that servers will refuse it."""
    prepared = prepare_certificate(
        CertificateInput(certificate_pem=server.combined_pem().decode()), now=now
    )
    codes = [w["code"] for w in prepared.metadata["warnings"]]  # type: ignore[attr-defined]
    assert codes == ["no_client_auth"]


def test_rsa_key_type_is_described(ca: TestCA, now: datetime) -> None:
    """key_type reads like "RSA 2048"."""
    from mutls.pki.keys import KeySpec

    rsa_identity = ca.issue("rsa.example.com", key_spec=KeySpec.RSA_2048)
    prepared = prepare_certificate(
        CertificateInput(certificate_pem=rsa_identity.combined_pem().decode()), now=now
    )
    assert prepared.metadata["key_type"] == "RSA 2048"


def test_blank_optional_fields_count_as_absent(client: Identity, now: datetime) -> None:
    """Web forms send empty strings for unused fields; they are ignored."""
    prepared = prepare(
        SecretType.CERTIFICATE,
        {
            "certificate_pem": client.combined_pem().decode(),
            "pkcs12_base64": "",
            "chain_pem": "  ",
            "passphrase": "",
            "ca_bundle_pem": None,
        },
        now=now,
    )
    assert prepared.metadata["has_passphrase"] is False


# --- certificates: refused ------------------------------------------------------------------


def test_missing_key_is_refused(client: Identity, now: datetime) -> None:
    """A certificate without its key: missing_private_key."""
    with pytest.raises(MissingPrivateKey):
        prepare_certificate(CertificateInput(certificate_pem=pem(client)), now=now)


def test_key_of_another_certificate_is_refused(
    client: Identity, server: Identity, now: datetime
) -> None:
    """A key that does not belong to the certificate: key_mismatch."""
    with pytest.raises(KeyMismatch):
        prepare_certificate(
            CertificateInput(certificate_pem=pem(client), private_key_pem=key_pem(server)),
            now=now,
        )


def test_encrypted_key_without_passphrase_is_refused(client: Identity, now: datetime) -> None:
    """An encrypted key and no passphrase: passphrase_required."""
    with pytest.raises(PassphraseRequired):
        prepare_certificate(
            CertificateInput(
                certificate_pem=pem(client), private_key_pem=key_pem(client, PASSPHRASE)
            ),
            now=now,
        )


def test_wrong_passphrase_is_refused_without_echoing_it(client: Identity, now: datetime) -> None:
    """The wrong passphrase: wrong_passphrase, and neither passphrase is in the message."""
    wrong = "not-the-passphrase-1234"
    with pytest.raises(WrongPassphrase) as caught:
        prepare_certificate(
            CertificateInput(
                certificate_pem=pem(client),
                private_key_pem=key_pem(client, PASSPHRASE),
                passphrase=wrong,
            ),
            now=now,
        )
    assert wrong not in str(caught.value.to_dict())
    assert PASSPHRASE not in str(caught.value.to_dict())


def test_pkcs12_wrong_passphrase_is_refused(client: Identity, now: datetime) -> None:
    """A PKCS#12 file with the wrong passphrase: wrong_passphrase."""
    with pytest.raises(WrongPassphrase):
        prepare_certificate(
            CertificateInput(pkcs12_base64=p12(client, PASSPHRASE), passphrase="wrong"), now=now
        )


def test_pkcs12_without_its_passphrase_is_refused(client: Identity, now: datetime) -> None:
    """A protected PKCS#12 file and no passphrase: passphrase_required."""
    with pytest.raises(PassphraseRequired):
        prepare_certificate(CertificateInput(pkcs12_base64=p12(client, PASSPHRASE)), now=now)


def test_garbage_is_refused(now: datetime) -> None:
    """Text that is no certificate material: unsupported_format."""
    with pytest.raises(UnsupportedFormat):
        prepare_certificate(CertificateInput(certificate_pem="hello, world"), now=now)


def test_a_key_alone_is_not_a_certificate(client: Identity, now: datetime) -> None:
    """A key pasted into certificate_pem with no certificate: not_a_certificate."""
    with pytest.raises(NotACertificate):
        prepare_certificate(CertificateInput(certificate_pem=key_pem(client)), now=now)


def test_expired_certificate_is_refused(ca: TestCA, now: datetime) -> None:
    """An expired certificate: certificate_expired with the date and how to fix it."""
    old = ca.issue("old.example.com", now=now - timedelta(days=400), validity=timedelta(days=30))
    with pytest.raises(CertificateExpired) as caught:
        prepare_certificate(CertificateInput(certificate_pem=old.combined_pem().decode()), now=now)
    expired_on = old.certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert expired_on in caught.value.message
    assert "upload the new certificate" in caught.value.hint


def test_too_large_input_is_refused(now: datetime) -> None:
    """More than the loader's limit: input_too_large."""
    with pytest.raises(InputTooLarge):
        prepare_certificate(
            CertificateInput(certificate_pem="A" * (DEFAULT_MAX_INPUT + 1)), now=now
        )


def test_too_large_pkcs12_is_refused_before_decoding(now: datetime) -> None:
    """A base64 PKCS#12 far past the limit: input_too_large."""
    with pytest.raises(InputTooLarge):
        prepare_certificate(CertificateInput(pkcs12_base64="A" * (DEFAULT_MAX_INPUT * 2)), now=now)


@pytest.mark.parametrize("text", ["not base64 at all!", "QUJD\u00e9", "A"])
def test_bad_base64_pkcs12_is_refused(text: str, now: datetime) -> None:
    """pkcs12_base64 that is not base64: invalid_argument saying so, without the text."""
    with pytest.raises(InvalidArgument, match="not valid base64") as caught:
        prepare_certificate(CertificateInput(pkcs12_base64=text), now=now)
    assert text not in caught.value.message


def test_both_certificate_and_pkcs12_are_refused(client: Identity, now: datetime) -> None:
    """certificate_pem and pkcs12_base64 together: invalid_argument naming both fields."""
    with pytest.raises(InvalidArgument, match="found both") as caught:
        prepare_certificate(
            CertificateInput(
                certificate_pem=client.combined_pem().decode(), pkcs12_base64=p12(client, None)
            ),
            now=now,
        )
    assert "certificate_pem" in caught.value.message
    assert "pkcs12_base64" in caught.value.message


def test_neither_certificate_nor_pkcs12_is_refused(client: Identity, now: datetime) -> None:
    """Only a key: invalid_argument naming the accepted certificate fields."""
    with pytest.raises(InvalidArgument, match="found neither") as caught:
        prepare(SecretType.CERTIFICATE, {"private_key_pem": key_pem(client)}, now=now)
    assert "certificate_pem" in caught.value.message
    assert "pkcs12_base64" in caught.value.message


def test_pkcs12_with_pem_key_is_refused(client: Identity, now: datetime) -> None:
    """A PKCS#12 plus a PEM key: ambiguous, refused."""
    with pytest.raises(InvalidArgument, match="private_key_pem"):
        prepare_certificate(
            CertificateInput(pkcs12_base64=p12(client, None), private_key_pem=key_pem(client)),
            now=now,
        )


def test_bad_ca_bundle_is_refused(client: Identity, now: datetime) -> None:
    """A CA bundle that is not certificates (or holds a key): the loader's error."""
    with pytest.raises(UnsupportedFormat):
        prepare_certificate(
            CertificateInput(certificate_pem=client.combined_pem().decode(), ca_bundle_pem="junk"),
            now=now,
        )
    with pytest.raises(UnsupportedFormat, match="private key"):
        prepare_certificate(
            CertificateInput(
                certificate_pem=client.combined_pem().decode(),
                ca_bundle_pem=client.combined_pem().decode(),
            ),
            now=now,
        )


def test_certificate_input_repr_hides_everything(client: Identity) -> None:
    """repr(CertificateInput) names the fields given, not their content."""
    data = CertificateInput(certificate_pem=client.combined_pem().decode(), passphrase=PASSPHRASE)
    assert repr(data) == "CertificateInput(<certificate_pem, passphrase given>)"


# --- expiry_view ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("valid_until_in", "expected"),
    [
        (timedelta(days=200), (200, "ok")),
        (timedelta(days=60, hours=1), (60, "warning")),
        (timedelta(days=5, hours=1), (5, "urgent")),
        (timedelta(hours=-1), (-1, "expired")),
    ],
)
def test_expiry_view(valid_until_in: timedelta, expected: tuple[int, str], now: datetime) -> None:
    """Days remaining and status follow mutls.pki.inspect.expiry_status."""
    meta = {
        "valid_from": (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "valid_until": (now.replace(microsecond=0) + valid_until_in).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    view = expiry_view(meta, now=now.replace(microsecond=0))
    days, status = expected
    assert view == {"days_remaining": days, "expiry_status": status}


def test_expiry_view_needs_valid_until(now: datetime) -> None:
    """Metadata without a valid_until is an invalid_argument, not a KeyError."""
    with pytest.raises(InvalidArgument, match="valid_until"):
        expiry_view({}, now=now)


# --- OAuth2 ---------------------------------------------------------------------------------


def oauth(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "token_url": "https://auth.partner.example/oauth2/token",
        "client_id": "mutls-client",
        "client_secret": CLIENT_SECRET,
        "scopes": ["accounts", "payments:write"],
    }
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


def test_oauth2_client_secret_is_accepted_and_kept_out_of_metadata(now: datetime) -> None:
    """client_secret_basic credentials: secret sealed, everything else public."""
    prepared = prepare(SecretType.OAUTH2, oauth(), now=now)
    assert prepared.metadata == {
        "token_url": "https://auth.partner.example/oauth2/token",
        "client_id": "mutls-client",
        "scopes": ["accounts", "payments:write"],
        "auth_method": "client_secret_basic",
        "certificate_secret": None,
        "audience": None,
        "has_client_secret": True,
    }
    assert fields_of(prepared)["client_secret"] == CLIENT_SECRET
    assert_no_secret_in(prepared, CLIENT_SECRET)


def test_oauth2_tls_client_auth_is_accepted(now: datetime) -> None:
    """RFC 8705 tls_client_auth: no secret, a certificate secret named instead."""
    prepared = prepare_oauth2(
        OAuth2Input(
            token_url="https://auth.partner.example/token",
            client_id="c",
            auth_method="tls_client_auth",
            certificate_secret="bank_api_certificate",
            scopes="accounts payments",  # the RFC's own spelling
            audience="https://api.partner.example",
        ),
        now=now,
    )
    assert prepared.metadata["has_client_secret"] is False
    assert prepared.metadata["certificate_secret"] == "bank_api_certificate"
    assert prepared.metadata["scopes"] == ["accounts", "payments"]
    assert fields_of(prepared)["client_secret"] is None


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_oauth2_plain_http_is_accepted_on_loopback(host: str, now: datetime) -> None:
    """http:// is allowed for a local test token server only."""
    prepared = prepare(SecretType.OAUTH2, oauth(token_url=f"http://{host}:8080/token"), now=now)
    assert prepared.metadata["token_url"] == f"http://{host}:8080/token"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"token_url": "http://auth.partner.example/token"}, "expected an https:// token_url"),
        ({"token_url": "ftp://auth.partner.example/token"}, "scheme"),
        ({"token_url": "/oauth2/token"}, "absolute https:// URL"),
        ({"token_url": "https://user:pw@auth.partner.example/token"}, "credentials"),
        ({"token_url": "https://auth.partner.example/token#x"}, "fragment"),
        ({"token_url": "https://auth.partner.example:99999/token"}, "does not parse"),
        ({"token_url": "https://auth.partner.example/to ken"}, "without spaces"),
        ({"token_url": "https://a.example/" + "x" * 2100}, "at most 2048"),
        ({"token_url": 42}, "token_url to be a string"),
        ({"token_url": None}, "token_url"),
        ({"client_id": None}, "client_id"),
        ({"client_id": "x" * 600}, "at most 512"),
        ({"client_secret": None}, "expected client_secret with auth_method client_secret_basic"),
        ({"client_secret": "abc\n"}, "control characters"),
        ({"client_secret": "x" * 5000}, "at most 4096"),
        (
            {"auth_method": "tls_client_auth", "certificate_secret": "c"},
            "expected no client_secret",
        ),
        ({"auth_method": "tls_client_auth", "client_secret": None}, "expected certificate_secret"),
        ({"auth_method": "private_key_jwt"}, "auth_method to be one of"),
        ({"scopes": ["has space"]}, "one token"),
        ({"scopes": ['quo"te']}, "one token"),
        ({"scopes": [1]}, "each scope to be a string"),
        ({"scopes": {"a": 1}}, "scopes to be a list"),
        ({"certificate_secret": "no spaces allowed"}, "name or id"),
        ({"audience": "a\tb"}, "control characters"),
    ],
)
def test_oauth2_bad_fields_are_refused(
    overrides: dict[str, object], expected: str, now: datetime
) -> None:
    """Each broken OAuth2 field is refused with a message saying what was expected."""
    fields = oauth(**{k: v for k, v in overrides.items() if v is not None})
    for key, value in overrides.items():
        if value is None:
            fields.pop(key, None)
    with pytest.raises(InvalidArgument) as caught:
        prepare(SecretType.OAUTH2, fields, now=now)
    assert expected in caught.value.message
    assert CLIENT_SECRET not in caught.value.message


# --- strings --------------------------------------------------------------------------------


def test_string_is_accepted_and_reveals_nothing(now: datetime) -> None:
    """A string secret's metadata does not even give its length."""
    prepared = prepare(SecretType.STRING, {"value": STRING_VALUE}, now=now)
    assert prepared.metadata == {"has_value": True}
    assert reveal(SecretType.STRING, prepared.plaintext) == {"value": STRING_VALUE}
    assert STRING_VALUE not in repr(prepared)
    assert STRING_VALUE not in repr(StringInput(value=STRING_VALUE))


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"value": ""}, InvalidArgument),
        ({}, InvalidArgument),
        ({"value": 12}, InvalidArgument),
        ({"value": "x" * (64 * 1024 + 1)}, InputTooLarge),
        ({"value": "\ud800"}, InvalidArgument),
    ],
    ids=["empty", "missing", "number", "too-large", "surrogate"],
)
def test_bad_string_is_refused(
    fields: dict[str, object], error: type[Exception], now: datetime
) -> None:
    """Empty, missing, non-text or oversized values are refused."""
    with pytest.raises(error):
        prepare(SecretType.STRING, fields, now=now)


def test_prepare_string_directly(now: datetime) -> None:
    """prepare_string is what prepare calls for strings."""
    assert prepare_string(StringInput(value="v"), now=now).metadata == {"has_value": True}


# --- dispatch and reveal --------------------------------------------------------------------


def test_unknown_field_is_refused_listing_the_accepted_ones(now: datetime) -> None:
    """A field a type does not have is refused, naming every field it does have."""
    with pytest.raises(InvalidArgument) as caught:
        prepare(SecretType.STRING, {"value": "v", "valeu": "w"}, now=now)
    assert "'valeu'" in caught.value.message
    for name in FIELDS[SecretType.STRING]:
        assert name in caught.value.message
    with pytest.raises(InvalidArgument, match="token_url"):
        prepare(SecretType.OAUTH2, {**oauth(), "grant_type": "x"}, now=now)


@pytest.mark.parametrize(
    ("secret_type", "fields"),
    [
        (SecretType.CERTIFICATE, {"certificate_pem": ["a"]}),
        (SecretType.CERTIFICATE, {"certificate_pem": "x", "passphrase": 1234}),
        (SecretType.OAUTH2, {"token_url": {"u": 1}, "client_id": "c"}),
        (SecretType.STRING, {"value": None}),
    ],
)
def test_wrong_json_types_are_refused(
    secret_type: SecretType, fields: dict[str, object], now: datetime
) -> None:
    """A number, list or object where text belongs: invalid_argument."""
    with pytest.raises(InvalidArgument):
        prepare(secret_type, fields, now=now)


def test_fields_must_be_an_object_and_type_must_exist(now: datetime) -> None:
    """Non-object fields and unknown secret types are invalid_argument."""
    with pytest.raises(InvalidArgument, match="JSON object"):
        prepare(SecretType.STRING, ["value"], now=now)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="secret_type"):
        prepare("password", {"value": "v"}, now=now)  # type: ignore[arg-type]


def test_reveal_gives_back_every_secret_field(client: Identity, now: datetime) -> None:
    """reveal parses what prepare produced, for each type."""
    cert = prepare(
        SecretType.CERTIFICATE, {"certificate_pem": client.combined_pem().decode()}, now=now
    )
    assert reveal(SecretType.CERTIFICATE, cert.plaintext)["private_key_pem"] == key_pem(client)
    creds = prepare(SecretType.OAUTH2, oauth(), now=now)
    assert reveal(SecretType.OAUTH2, creds.plaintext)["client_secret"] == CLIENT_SECRET


@pytest.mark.parametrize(
    "plaintext", [b"", b"\xff\xfe", b"[1, 2]", b'{"value": 1}', b'{"other": "x"}', b"nul"]
)
def test_reveal_refuses_damaged_plaintext(plaintext: bytes) -> None:
    """A decrypted value that is not the expected JSON is reported, not half-used."""
    with pytest.raises(DecryptionFailed):
        reveal(SecretType.STRING, plaintext)


# --- fuzzing --------------------------------------------------------------------------------

FUZZ_NOW = datetime(2030, 1, 1, tzinfo=UTC)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
_field_names = st.sampled_from(sorted({n for names in FIELDS.values() for n in names})) | st.text(
    max_size=12
)
_text_values = st.one_of(
    st.text(max_size=200),
    st.sampled_from(
        [
            "https://auth.example/token",
            "http://localhost/token",
            "client_secret_post",
            "tls_client_auth",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA",
        ]
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(list(SecretType)),
    st.dictionaries(_field_names, _text_values | _json_values, max_size=6),
)
def test_prepare_turns_any_input_into_a_value_or_our_error(
    secret_type: SecretType, fields: dict[str, object]
) -> None:
    """Whatever the API receives, prepare returns Prepared or raises a MutlsError."""
    try:
        prepared = prepare(secret_type, fields, now=FUZZ_NOW)
    except MutlsError:
        return
    json.dumps(prepared.metadata)  # public metadata is always JSON-safe
    assert isinstance(reveal(secret_type, prepared.plaintext), dict)
