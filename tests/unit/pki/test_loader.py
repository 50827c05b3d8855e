"""The importer: every accepted input form loads, every broken one fails with its own code.

The fuzz tests at the end hold the importer to its promise: any bytes give a Material or a
MutlsError, never a traceback.
"""

from __future__ import annotations

import base64
import contextlib
import random
import shutil
import subprocess
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mutls.errors import KeyMismatch, MutlsError, UnsupportedFormat
from mutls.pki.inspect import inspect_material
from mutls.pki.keys import public_key_sha256
from mutls.pki.loader import load_certificates, load_crl, load_identity, load_material
from mutls.pki.material import Material, SourceFormat
from mutls.testing import Identity, TestCA

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

PASSPHRASE = b"correct horse battery"
WRONG = b"hunter2 wrong"


# --- helpers -------------------------------------------------------------------------------------


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _key_bytes(
    key: PrivateKeyTypes,
    *,
    encoding: serialization.Encoding = serialization.Encoding.PEM,
    fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8,
    passphrase: bytes | None = None,
) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(encoding, fmt, encryption)


def _same_key(a: PrivateKeyTypes | None, b: PrivateKeyTypes) -> bool:
    assert a is not None
    return public_key_sha256(a.public_key()) == public_key_sha256(b.public_key())


def _p12(
    identity: Identity,
    passphrase: bytes | None,
    *,
    legacy: bool = False,
    rounds: int = 2048,
) -> bytes:
    encryption: serialization.KeySerializationEncryption
    if passphrase is None:
        encryption = serialization.NoEncryption()
    else:
        builder = serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(rounds)
        if legacy:
            builder = builder.key_cert_algorithm(
                pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC
            ).hmac_hash(hashes.SHA1())
        else:
            builder = builder.key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC).hmac_hash(
                hashes.SHA256()
            )
        encryption = builder.build(passphrase)
    return pkcs12.serialize_key_and_certificates(
        b"client", identity.key, identity.certificate, list(identity.chain[1:]), encryption
    )


def _code(data: bytes, passphrase: bytes | None = None) -> str:
    with pytest.raises(MutlsError) as excinfo:
        load_material(data, passphrase)
    return excinfo.value.code


def _openssl(*args: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=True)
    return result.stdout


# --- certificates --------------------------------------------------------------------------------


def test_pem_certificate(client: Identity) -> None:
    """A single PEM certificate loads as the leaf with nothing else and no findings."""
    material = load_material(client.cert_pem)
    assert material.source_format is SourceFormat.PEM
    assert material.leaf == client.certificate
    assert material.chain == (client.certificate,)
    assert material.key is None
    assert material.csr is None
    assert material.findings == ()


def test_pem_chain(client: Identity, ca: TestCA) -> None:
    """A PEM chain in TLS order loads leaf first with its intermediate and no findings."""
    material = load_material(client.chain_pem)
    assert material.chain == (client.certificate, ca.intermediate)
    assert material.intermediates == (ca.intermediate,)
    assert material.findings == ()


def test_x509_certificate_label(client: Identity) -> None:
    """The old ``X509 CERTIFICATE`` PEM label is read like ``CERTIFICATE``."""
    data = client.cert_pem.replace(b"CERTIFICATE-----", b"X509 CERTIFICATE-----")
    assert load_material(data).leaf == client.certificate


def test_pem_with_text_around_blocks(client: Identity) -> None:
    """Human text before and between blocks (as openssl x509 -text writes) is ignored."""
    data = b"subject=CN = client\nissuer=...\n" + client.cert_pem + b"\nsome notes\n"
    assert load_material(data).leaf == client.certificate


def test_pem_crlf_line_endings(client: Identity) -> None:
    """PEM saved with Windows line endings loads."""
    assert load_material(client.chain_pem.replace(b"\n", b"\r\n")).leaf == client.certificate


def test_der_certificate(client: Identity) -> None:
    """A DER certificate loads with source format der."""
    material = load_material(_der(client.certificate))
    assert material.source_format is SourceFormat.DER
    assert material.leaf == client.certificate


def test_bare_base64_der(client: Identity) -> None:
    """DER wrapped in bare base64 (no PEM armour), line-wrapped, loads as base64."""
    material = load_material(base64.encodebytes(_der(client.certificate)))
    assert material.source_format is SourceFormat.BASE64
    assert material.leaf == client.certificate


def test_bare_base64_single_line(client: Identity) -> None:
    """Unwrapped one-line base64 DER loads too."""
    assert load_material(base64.b64encode(_der(client.certificate))).leaf == client.certificate


def test_pkcs7_pem(client: Identity, ca: TestCA) -> None:
    """A PEM PKCS#7 bundle loads its certificates as a leaf-first chain."""
    data = pkcs7.serialize_certificates(list(client.chain), serialization.Encoding.PEM)
    material = load_material(data)
    assert material.leaf == client.certificate
    assert material.chain == (client.certificate, ca.intermediate)


def test_pkcs7_der(client: Identity, ca: TestCA) -> None:
    """A DER PKCS#7 bundle (.p7b) loads with source format pkcs7."""
    data = pkcs7.serialize_certificates(list(client.chain), serialization.Encoding.DER)
    material = load_material(data)
    assert material.source_format is SourceFormat.PKCS7
    assert material.chain == (client.certificate, ca.intermediate)


# --- private keys --------------------------------------------------------------------------------


def test_pkcs8_pem_key(client: Identity) -> None:
    """An unencrypted PKCS#8 key (BEGIN PRIVATE KEY) loads as a key and nothing else."""
    data = _key_bytes(client.key)
    assert b"BEGIN PRIVATE KEY" in data
    material = load_material(data)
    assert _same_key(material.key, client.key)
    assert material.leaf is None
    assert not material.key_was_encrypted
    assert material.key_matches is None


def test_pkcs1_rsa_key(rsa_key: rsa.RSAPrivateKey) -> None:
    """A PKCS#1 key (BEGIN RSA PRIVATE KEY, TraditionalOpenSSL) loads."""
    data = _key_bytes(rsa_key, fmt=serialization.PrivateFormat.TraditionalOpenSSL)
    assert b"BEGIN RSA PRIVATE KEY" in data
    assert _same_key(load_material(data).key, rsa_key)


def test_sec1_ec_key() -> None:
    """A SEC1 key (BEGIN EC PRIVATE KEY) loads."""
    key = ec.generate_private_key(ec.SECP256R1())
    data = _key_bytes(key, fmt=serialization.PrivateFormat.TraditionalOpenSSL)
    assert b"BEGIN EC PRIVATE KEY" in data
    assert _same_key(load_material(data).key, key)


def test_sec1_key_with_ec_parameters_block() -> None:
    """``openssl ecparam -genkey`` output (EC PARAMETERS then the key) loads; the block is noted."""
    key = ec.generate_private_key(ec.SECP256R1())
    params = b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
    data = params + _key_bytes(key, fmt=serialization.PrivateFormat.TraditionalOpenSSL)
    material = load_material(data)
    assert _same_key(material.key, key)
    assert material.finding("ignored_block") is not None


def test_encrypted_pkcs8_pem(client: Identity) -> None:
    """An encrypted PKCS#8 key loads with its passphrase and is marked as encrypted."""
    data = _key_bytes(client.key, passphrase=PASSPHRASE)
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in data
    material = load_material(data, PASSPHRASE)
    assert _same_key(material.key, client.key)
    assert material.key_was_encrypted


def test_legacy_encrypted_pem_from_cryptography() -> None:
    """A legacy ``Proc-Type: 4,ENCRYPTED`` key loads with its passphrase."""
    key = ec.generate_private_key(ec.SECP256R1())
    data = _key_bytes(
        key, fmt=serialization.PrivateFormat.TraditionalOpenSSL, passphrase=PASSPHRASE
    )
    assert b"Proc-Type: 4,ENCRYPTED" in data
    material = load_material(data, PASSPHRASE)
    assert _same_key(material.key, key)
    assert material.key_was_encrypted


@pytest.mark.openssl
@needs_openssl
def test_legacy_encrypted_pem_from_openssl_genrsa() -> None:
    """The key ``openssl genrsa -aes256 -traditional`` writes loads with its passphrase."""
    data = _openssl("genrsa", "-aes256", "-traditional", "-passout", "pass:secret", "2048")
    assert b"Proc-Type: 4,ENCRYPTED" in data
    material = load_material(data, b"secret")
    assert isinstance(material.key, rsa.RSAPrivateKey)
    assert material.key_was_encrypted


@pytest.mark.parametrize(
    "fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL]
)
def test_der_key(fmt: serialization.PrivateFormat) -> None:
    """A DER private key (PKCS#8 or SEC1) loads with source format der."""
    key = ec.generate_private_key(ec.SECP256R1())
    material = load_material(_key_bytes(key, encoding=serialization.Encoding.DER, fmt=fmt))
    assert material.source_format is SourceFormat.DER
    assert _same_key(material.key, key)


def test_der_pkcs1_rsa_key(rsa_key: rsa.RSAPrivateKey) -> None:
    """A DER PKCS#1 RSA key loads."""
    data = _key_bytes(
        rsa_key,
        encoding=serialization.Encoding.DER,
        fmt=serialization.PrivateFormat.TraditionalOpenSSL,
    )
    assert _same_key(load_material(data).key, rsa_key)


def test_encrypted_der_key(client: Identity) -> None:
    """An encrypted DER PKCS#8 key loads with its passphrase."""
    data = _key_bytes(client.key, encoding=serialization.Encoding.DER, passphrase=PASSPHRASE)
    material = load_material(data, PASSPHRASE)
    assert _same_key(material.key, client.key)
    assert material.key_was_encrypted


# --- PKCS#12 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("legacy", [False, True], ids=["modern", "legacy"])
def test_pkcs12_with_passphrase(client: Identity, ca: TestCA, legacy: bool) -> None:
    """A PKCS#12 file (AES/PBES2 or 3DES/SHA-1) gives the leaf, its chain and its key."""
    material = load_material(_p12(client, PASSPHRASE, legacy=legacy), PASSPHRASE)
    assert material.source_format is SourceFormat.PKCS12
    assert material.leaf == client.certificate
    assert material.chain == (client.certificate, ca.intermediate)
    assert material.key_matches is True
    assert material.key_was_encrypted
    assert material.findings == ()


def test_pkcs12_without_passphrase(client: Identity) -> None:
    """A PKCS#12 file exported without a password loads when no passphrase is given."""
    material = load_material(_p12(client, None))
    assert material.leaf == client.certificate
    assert material.key_matches is True
    assert not material.key_was_encrypted


@pytest.mark.openssl
@needs_openssl
def test_pkcs12_openssl_legacy(client: Identity, ca: TestCA, tmp_path: Path) -> None:
    """A PKCS#12 from ``openssl pkcs12 -export -legacy`` (RC2-40) loads with its passphrase."""
    (tmp_path / "chain.pem").write_bytes(client.chain_pem)
    (tmp_path / "key.pem").write_bytes(client.key_pem())
    data = _openssl(
        "pkcs12", "-export", "-legacy", "-in", str(tmp_path / "chain.pem"),
        "-inkey", str(tmp_path / "key.pem"), "-passout", "pass:secret",
    )  # fmt: skip
    material = load_material(data, b"secret")
    assert material.source_format is SourceFormat.PKCS12
    assert material.chain == (client.certificate, ca.intermediate)
    assert material.key_matches is True
    assert _code(data, b"not-the-secret") == "wrong_passphrase"


@pytest.mark.openssl
@needs_openssl
def test_pkcs12_openssl_empty_password(client: Identity, tmp_path: Path) -> None:
    """A PKCS#12 exported by openssl with an empty password loads with no passphrase given."""
    (tmp_path / "chain.pem").write_bytes(client.chain_pem)
    (tmp_path / "key.pem").write_bytes(client.key_pem())
    data = _openssl(
        "pkcs12", "-export", "-in", str(tmp_path / "chain.pem"),
        "-inkey", str(tmp_path / "key.pem"), "-passout", "pass:",
    )  # fmt: skip
    material = load_material(data)
    assert material.leaf == client.certificate
    assert material.key_matches is True


# --- CSRs ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def csr() -> x509.CertificateSigningRequest:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "csr.example.com")])
    return x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())


@pytest.mark.parametrize("encoding", [serialization.Encoding.PEM, serialization.Encoding.DER])
def test_csr(csr: x509.CertificateSigningRequest, encoding: serialization.Encoding) -> None:
    """A CSR in PEM or DER loads as a CSR, with no certificate and no key."""
    material = load_material(csr.public_bytes(encoding))
    assert material.csr == csr
    assert material.leaf is None
    assert material.key is None


def test_new_certificate_request_label(csr: x509.CertificateSigningRequest) -> None:
    """The ``NEW CERTIFICATE REQUEST`` label some Windows tools write is accepted."""
    data = csr.public_bytes(serialization.Encoding.PEM).replace(
        b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST"
    )
    assert load_material(data).csr == csr


# --- combined files ------------------------------------------------------------------------------


def test_combined_pem_in_order(client: Identity, ca: TestCA) -> None:
    """Chain then key, in order: leaf, chain and matching key, no findings."""
    material = load_material(client.combined_pem())
    assert material.chain == (client.certificate, ca.intermediate)
    assert material.key_matches is True
    assert material.findings == ()
    leaf, _ = material.require_identity()
    assert leaf == client.certificate


def test_combined_pem_key_first_chain_reversed(client: Identity, ca: TestCA) -> None:
    """Key first and chain root-first: the key picks the leaf and the chain is put leaf-first."""
    assert ca.intermediate is not None
    data = client.key_pem() + _pem(ca.root, ca.intermediate, client.certificate)
    material = load_material(data)
    assert material.leaf == client.certificate
    assert material.chain == (client.certificate, ca.intermediate, ca.root)
    assert material.key_matches is True
    finding = material.finding("chain_out_of_order")
    assert finding is not None
    assert finding.hint


def test_unrelated_certificate_is_reported(client: Identity, other_ca: TestCA) -> None:
    """A certificate that is not on the leaf's chain is kept aside with a finding."""
    material = load_material(client.chain_pem + other_ca.root_pem)
    assert material.leaf == client.certificate
    assert material.extra_certificates == (other_ca.root,)
    assert material.finding("unrelated_certificates") is not None


def test_key_mismatch_in_combined_pem(client: Identity, server: Identity) -> None:
    """A combined file whose key belongs to another certificate loads, says so, and refuses use."""
    material = load_material(client.chain_pem + server.key_pem())
    assert material.leaf == client.certificate
    assert material.key_matches is False
    assert material.finding("key_mismatch") is not None
    with pytest.raises(KeyMismatch) as excinfo:
        material.require_identity()
    assert excinfo.value.code == "key_mismatch"


def test_unneeded_passphrase_is_noted(client: Identity) -> None:
    """A passphrase given for unencrypted input is ignored with a finding."""
    material = load_material(client.combined_pem(), PASSPHRASE)
    assert material.key_matches is True
    assert material.finding("passphrase_not_needed") is not None


# --- load_identity and load_certificates ---------------------------------------------------------


def test_load_identity_separate_files(client: Identity, ca: TestCA) -> None:
    """Certificate file plus encrypted key file give a matching identity."""
    material = load_identity(client.chain_pem, client.key_pem(PASSPHRASE), PASSPHRASE)
    assert material.chain == (client.certificate, ca.intermediate)
    assert material.key_matches is True
    assert material.key_was_encrypted


def test_load_identity_key_file_is_a_certificate(client: Identity) -> None:
    """A certificate given as the key file is refused, saying a key was expected."""
    with pytest.raises(MutlsError) as excinfo:
        load_identity(client.cert_pem, client.cert_pem)
    assert excinfo.value.code == "unsupported_format"
    assert "private key" in excinfo.value.message


def test_load_identity_wrong_key(client: Identity, server: Identity) -> None:
    """A key file for another certificate loads as a mismatch and refuses use."""
    material = load_identity(client.cert_pem, server.key_pem())
    assert material.key_matches is False
    with pytest.raises(KeyMismatch):
        material.require_identity()


def test_load_identity_second_key_is_refused(client: Identity) -> None:
    """A key in the certificate file plus a key file is two keys: refused."""
    with pytest.raises(MutlsError) as excinfo:
        load_identity(client.combined_pem(), client.key_pem())
    assert excinfo.value.code == "unsupported_format"


def test_load_certificates_keeps_file_order(client: Identity, ca: TestCA) -> None:
    """load_certificates returns every certificate of a bundle in file order."""
    assert ca.intermediate is not None
    bundle = _pem(ca.root, ca.intermediate, client.certificate)
    assert load_certificates(bundle) == [ca.root, ca.intermediate, client.certificate]


@pytest.mark.parametrize("which", ["plain", "encrypted", "combined", "der", "encrypted-der"])
def test_load_certificates_refuses_keys(client: Identity, which: str) -> None:
    """A CA bundle holding a private key, in any form, is refused as holding a private key."""
    der = serialization.Encoding.DER
    data = {
        "plain": client.key_pem(),
        "encrypted": client.key_pem(PASSPHRASE),
        "combined": client.combined_pem(),
        "der": _key_bytes(client.key, encoding=der),
        "encrypted-der": _key_bytes(client.key, encoding=der, passphrase=PASSPHRASE),
    }[which]
    with pytest.raises(MutlsError) as excinfo:
        load_certificates(data)
    assert excinfo.value.code == "unsupported_format"
    assert "private key" in excinfo.value.message


def test_load_certificates_refuses_csr(csr: x509.CertificateSigningRequest) -> None:
    """A CSR is not a CA bundle."""
    with pytest.raises(MutlsError) as excinfo:
        load_certificates(csr.public_bytes(serialization.Encoding.PEM))
    assert excinfo.value.code == "unsupported_format"


# --- CRLs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", [serialization.Encoding.PEM, serialization.Encoding.DER])
def test_load_crl(
    ca: TestCA, client: Identity, now: datetime, encoding: serialization.Encoding
) -> None:
    """A CRL in PEM or DER loads."""
    crl = ca.crl([client.certificate], now=now)
    loaded = load_crl(crl.public_bytes(encoding))
    assert loaded.get_revoked_certificate_by_serial_number(client.certificate.serial_number)


def test_load_crl_rejects_a_certificate(client: Identity) -> None:
    """A certificate is not a CRL: unsupported_format."""
    with pytest.raises(MutlsError) as excinfo:
        load_crl(client.cert_pem)
    assert excinfo.value.code == "unsupported_format"


# --- rejections ----------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"   \n\t\r\n"], ids=["empty", "whitespace"])
def test_empty_input(data: bytes) -> None:
    """Empty or blank input is refused as unsupported_format."""
    assert _code(data) == "unsupported_format"


@pytest.mark.parametrize("data", [b"x", b"\x00", b"\x30", b"-"])
def test_one_byte_input(data: bytes) -> None:
    """A single byte is refused as unsupported_format."""
    assert _code(data) == "unsupported_format"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_garbage(seed: int) -> None:
    """Random binary bytes are refused as unsupported_format."""
    data = random.Random(seed).randbytes(2048)
    assert _code(data) == "unsupported_format"


def test_garbage_that_looks_like_der() -> None:
    """Bytes starting like a DER SEQUENCE but holding nothing are refused."""
    assert _code(b"\x30\x82\x01\x00" + b"\x00" * 256) == "unsupported_format"


def test_ssh_public_key_is_refused() -> None:
    """An SSH public key is not X.509 material."""
    assert _code(b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ user@host\n") == "unsupported_format"


def test_truncated_pem(client: Identity) -> None:
    """A PEM certificate cut before its END line is refused and the message says so."""
    data = client.cert_pem[: len(client.cert_pem) // 2]
    with pytest.raises(MutlsError) as excinfo:
        load_material(data)
    assert excinfo.value.code == "unsupported_format"
    assert "END" in excinfo.value.message


def test_truncated_second_block(client: Identity) -> None:
    """A chain whose second certificate lacks its END line is refused."""
    data = client.chain_pem[: -len(b"-----END CERTIFICATE-----\n")]
    assert _code(data) == "unsupported_format"


def test_damaged_base64_in_certificate_block(client: Identity) -> None:
    """Characters that are not base64 inside a CERTIFICATE block: unsupported_format."""
    lines = client.cert_pem.splitlines(keepends=True)
    lines[3] = b"@@@@" + lines[3][4:]
    with pytest.raises(MutlsError) as excinfo:
        load_material(b"".join(lines))
    assert excinfo.value.code == "unsupported_format"
    assert "CERTIFICATE" in excinfo.value.message


def test_missing_base64_in_certificate_block(client: Identity) -> None:
    """A CERTIFICATE block with a line of base64 removed is refused."""
    lines = client.cert_pem.splitlines(keepends=True)
    del lines[4]
    assert _code(b"".join(lines)) == "unsupported_format"


def test_mismatched_end_label(client: Identity) -> None:
    """A block that begins CERTIFICATE and ends PRIVATE KEY is refused."""
    data = client.cert_pem.replace(b"END CERTIFICATE", b"END PRIVATE KEY")
    assert _code(data) == "unsupported_format"


@pytest.mark.parametrize(
    "label", [b"OPENSSH PRIVATE KEY", b"TRUSTED CERTIFICATE", b"SOMETHING ELSE"]
)
def test_unsupported_pem_labels(label: bytes) -> None:
    """PEM blocks mutls cannot use (OpenSSH keys, trusted certificates, unknown) are refused."""
    data = b"-----BEGIN " + label + b"-----\nAAAA\n-----END " + label + b"-----\n"
    assert _code(data) == "unsupported_format"


def test_input_too_large() -> None:
    """50 MB of input is refused as input_too_large before any parsing."""
    assert _code(b"A" * (50 * 1024 * 1024)) == "input_too_large"


def test_max_size_is_a_setting(client: Identity) -> None:
    """max_size lowers the limit: a certificate over it is input_too_large."""
    with pytest.raises(MutlsError) as excinfo:
        load_material(client.cert_pem, max_size=100)
    assert excinfo.value.code == "input_too_large"


@pytest.mark.parametrize("legacy", [False, True], ids=["pkcs8", "proc-type"])
def test_encrypted_pem_key_without_passphrase(client: Identity, legacy: bool) -> None:
    """An encrypted PEM key with no passphrase given: passphrase_required."""
    fmt = (
        serialization.PrivateFormat.TraditionalOpenSSL
        if legacy
        else serialization.PrivateFormat.PKCS8
    )
    data = _key_bytes(client.key, fmt=fmt, passphrase=PASSPHRASE)
    assert _code(data) == "passphrase_required"


@pytest.mark.parametrize("legacy", [False, True], ids=["pkcs8", "proc-type"])
def test_encrypted_pem_key_wrong_passphrase(client: Identity, legacy: bool) -> None:
    """An encrypted PEM key with the wrong passphrase: wrong_passphrase, and no secret echoed."""
    fmt = (
        serialization.PrivateFormat.TraditionalOpenSSL
        if legacy
        else serialization.PrivateFormat.PKCS8
    )
    data = _key_bytes(client.key, fmt=fmt, passphrase=PASSPHRASE)
    with pytest.raises(MutlsError) as excinfo:
        load_material(data, WRONG)
    assert excinfo.value.code == "wrong_passphrase"
    text = str(excinfo.value.to_dict())
    assert WRONG.decode() not in text
    assert PASSPHRASE.decode() not in text


def test_encrypted_der_key_without_and_with_wrong_passphrase(client: Identity) -> None:
    """An encrypted DER key: passphrase_required without one, wrong_passphrase with a bad one."""
    data = _key_bytes(client.key, encoding=serialization.Encoding.DER, passphrase=PASSPHRASE)
    assert _code(data) == "passphrase_required"
    assert _code(data, WRONG) == "wrong_passphrase"


@pytest.mark.parametrize("legacy", [False, True], ids=["modern", "legacy"])
def test_pkcs12_wrong_passphrase(client: Identity, legacy: bool) -> None:
    """A PKCS#12 file opened with the wrong passphrase: wrong_passphrase."""
    assert _code(_p12(client, PASSPHRASE, legacy=legacy), WRONG) == "wrong_passphrase"


def test_pkcs12_passphrase_not_given(client: Identity) -> None:
    """A protected PKCS#12 file with no passphrase given: passphrase_required."""
    assert _code(_p12(client, PASSPHRASE)) == "passphrase_required"


def test_two_keys_in_one_file(client: Identity, server: Identity) -> None:
    """Two private keys in one file are refused, and the message never holds key material."""
    data = client.key_pem() + server.key_pem()
    with pytest.raises(MutlsError) as excinfo:
        load_material(data)
    assert excinfo.value.code == "unsupported_format"
    assert "PRIVATE KEY" not in excinfo.value.message


def test_two_csrs_in_one_file(csr: x509.CertificateSigningRequest) -> None:
    """Two CSRs in one file are refused."""
    data = csr.public_bytes(serialization.Encoding.PEM) * 2
    assert _code(data) == "unsupported_format"


def _with_damaged_public_key(cert: x509.Certificate) -> bytes:
    """The certificate's DER with one bit of its public key point flipped (still parses)."""
    der = bytearray(_der(cert))
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der[der.index(spki) + len(spki) - 5] ^= 0x01
    return bytes(der)


def test_damaged_issuer_name_in_chain_is_a_mutls_error(client: Identity, ca: TestCA) -> None:
    """A certificate whose issuer name is not valid UTF-8, next to another, gives a MutlsError."""
    der = bytearray(_der(client.certificate))
    der[der.index(b"Issuing CA")] = 0xFF  # the issuer name comes before the subject
    damaged = x509.load_der_x509_certificate(bytes(der))  # names are only parsed when read
    with pytest.raises(MutlsError):
        load_material(_pem(damaged) + ca.root_pem)


def test_damaged_public_key_with_key_is_a_mutls_error(client: Identity) -> None:
    """A certificate whose public key cannot be decoded, next to a key, gives a MutlsError."""
    damaged = x509.load_der_x509_certificate(_with_damaged_public_key(client.certificate))
    data = _pem(damaged) + client.key_pem()
    with pytest.raises(MutlsError):
        load_material(data)


def test_pkcs12_with_trailing_byte_raises_no_warning(client: Identity) -> None:
    """A PKCS#12 file with a stray trailing byte loads or is refused, with no library warning."""
    data = _p12(client, PASSPHRASE) + b"\x00"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with contextlib.suppress(MutlsError):
            load_material(data, PASSPHRASE)


def test_pkcs7_with_trailing_byte_raises_no_warning(client: Identity) -> None:
    """A .p7b with a stray trailing byte loads or is refused, with no library warning."""
    data = pkcs7.serialize_certificates(list(client.chain), serialization.Encoding.DER) + b"\x00"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with contextlib.suppress(MutlsError):
            load_material(data)


def test_invalid_country_length_raises_no_warning(
    three_letter_country_root: x509.Certificate, ca: TestCA
) -> None:
    """A bundle holding a CA with ``C=USA`` loads without a library warning leaking out."""
    data = _pem(three_letter_country_root) + ca.root_pem
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        material = load_material(data)
    assert three_letter_country_root in material.chain + material.extra_certificates


def _armour(label: bytes, der: bytes) -> bytes:
    return (
        b"-----BEGIN "
        + label
        + b"-----\n"
        + base64.encodebytes(der)
        + b"-----END "
        + label
        + b"-----\n"
    )


@pytest.mark.parametrize("armoured", [False, True], ids=["der", "pem"])
def test_invalid_certificate_version(client: Identity, armoured: bool) -> None:
    """A certificate claiming X.509 version 8 is unsupported_format, not a library exception."""
    der = _der(client.certificate)
    at = der.index(b"\xa0\x03\x02\x01\x02")  # [0] EXPLICIT INTEGER 2 (v3)
    bad = der[:at] + b"\xa0\x03\x02\x01\x07" + der[at + 5 :]
    data = _armour(b"CERTIFICATE", bad) if armoured else bad
    assert _code(data) == "unsupported_format"


@pytest.mark.parametrize("armoured", [False, True], ids=["der", "pem"])
def test_invalid_csr_version(csr: x509.CertificateSigningRequest, armoured: bool) -> None:
    """A CSR claiming version 6 is unsupported_format, not a library exception."""
    der = csr.public_bytes(serialization.Encoding.DER)
    at = der.index(b"\x02\x01\x00")  # CertificationRequestInfo.version INTEGER 0
    bad = der[:at] + b"\x02\x01\x05" + der[at + 3 :]
    data = _armour(b"CERTIFICATE REQUEST", bad) if armoured else bad
    assert _code(data) == "unsupported_format"


# --- fuzzing -------------------------------------------------------------------------------------


def _mutate(draw: st.DrawFn, data: bytes, seeds: Sequence[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        op = draw(st.sampled_from(("flip", "truncate", "insert", "delete", "splice")))
        if op == "flip" and buf:
            index = draw(st.integers(min_value=0, max_value=len(buf) - 1))
            buf[index] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif op == "truncate":
            del buf[draw(st.integers(min_value=0, max_value=len(buf))) :]
        elif op == "insert":
            index = draw(st.integers(min_value=0, max_value=len(buf)))
            buf[index:index] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete" and buf:
            index = draw(st.integers(min_value=0, max_value=len(buf) - 1))
            del buf[index : index + draw(st.integers(min_value=1, max_value=64))]
        elif op == "splice":
            other = draw(st.sampled_from(seeds))
            start = draw(st.integers(min_value=0, max_value=len(other)))
            end = draw(st.integers(min_value=start, max_value=len(other)))
            at = draw(st.integers(min_value=0, max_value=len(buf)))
            buf[at:] = other[start:end] + buf[at:][: draw(st.integers(0, 64))]
    return bytes(buf)


@st.composite
def _mutated(draw: st.DrawFn, seeds: Sequence[bytes]) -> bytes:
    return _mutate(draw, draw(st.sampled_from(seeds)), seeds)


_Block = tuple[str, bytes, bytes]  # label, RFC 1421 headers (Proc-Type, DEK-Info), DER


@st.composite
def _pem_with_mutated_der(draw: st.DrawFn, files: Sequence[Sequence[_Block]]) -> bytes:
    """A PEM file one of whose blocks carries damaged DER under intact armour."""
    chosen = draw(st.sampled_from(files))
    target = draw(st.integers(min_value=0, max_value=len(chosen) - 1))
    ders = [der for _, _, der in chosen]
    out = b""
    for position, (label, headers, der) in enumerate(chosen):
        body = _mutate(draw, der, ders) if position == target else der
        armour = label.encode()
        out += b"-----BEGIN " + armour + b"-----\n" + headers + base64.encodebytes(body)
        out += b"-----END " + armour + b"-----\n"
    return out


def _pem_blocks(data: bytes) -> list[_Block]:
    blocks: list[_Block] = []
    for chunk in data.split(b"-----BEGIN ")[1:]:
        label, _, rest = chunk.partition(b"-----")
        lines = rest.split(b"-----END ")[0].splitlines(keepends=True)
        fields = b"".join(line for line in lines if b":" in line)
        headers = fields + b"\n" if fields else b""
        body = b"".join(line.strip() for line in lines if b":" not in line)
        blocks.append((label.decode(), headers, base64.b64decode(body)))
    return blocks


@pytest.fixture(scope="module")
def pem_seeds(client: Identity, csr: x509.CertificateSigningRequest) -> list[bytes]:
    key = client.key
    return [
        client.combined_pem(),
        client.chain_pem,
        client.chain_pem + client.key_pem(PASSPHRASE),
        _key_bytes(key, fmt=serialization.PrivateFormat.TraditionalOpenSSL),
        _key_bytes(key, fmt=serialization.PrivateFormat.TraditionalOpenSSL, passphrase=PASSPHRASE),
        csr.public_bytes(serialization.Encoding.PEM),
        pkcs7.serialize_certificates(list(client.chain), serialization.Encoding.PEM),
    ]


@pytest.fixture(scope="module")
def der_seeds(client: Identity, csr: x509.CertificateSigningRequest) -> list[bytes]:
    der = serialization.Encoding.DER
    return [
        _der(client.certificate),
        _key_bytes(client.key, encoding=der),
        _key_bytes(client.key, encoding=der, fmt=serialization.PrivateFormat.TraditionalOpenSSL),
        _key_bytes(client.key, encoding=der, passphrase=PASSPHRASE),
        csr.public_bytes(der),
        pkcs7.serialize_certificates(list(client.chain), der),
        base64.encodebytes(_der(client.certificate)),
    ]


@pytest.fixture(scope="module")
def p12_seeds(client: Identity) -> list[bytes]:
    # Few KDF rounds keep each attempt fast; a flipped bit can at most multiply them modestly.
    return [
        _p12(client, PASSPHRASE, rounds=1),
        _p12(client, PASSPHRASE, legacy=True, rounds=1),
        _p12(client, None),
    ]


_PASSPHRASES = st.sampled_from([None, PASSPHRASE, WRONG, b""])
_FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _must_load_or_refuse(data: bytes, passphrase: bytes | None) -> None:
    try:
        material = load_material(data, passphrase)
    except MutlsError:
        return
    assert isinstance(material, Material)


@_FUZZ
@given(data=st.data(), passphrase=_PASSPHRASES)
def test_fuzz_pem(pem_seeds: list[bytes], data: st.DataObject, passphrase: bytes | None) -> None:
    """Mutated PEM text (bit flips, truncation, insertion, splicing) loads or is a MutlsError."""
    _must_load_or_refuse(data.draw(_mutated(pem_seeds)), passphrase)


@_FUZZ
@given(data=st.data(), passphrase=_PASSPHRASES)
def test_fuzz_pem_der_inside(
    pem_seeds: list[bytes], data: st.DataObject, passphrase: bytes | None
) -> None:
    """PEM with intact armour around damaged DER loads or is a MutlsError."""
    blocks = [_pem_blocks(seed) for seed in pem_seeds]
    _must_load_or_refuse(data.draw(_pem_with_mutated_der(blocks)), passphrase)


@_FUZZ
@given(data=st.data(), passphrase=_PASSPHRASES)
def test_fuzz_der(der_seeds: list[bytes], data: st.DataObject, passphrase: bytes | None) -> None:
    """Mutated DER, PKCS#7 and bare base64 load or are a MutlsError."""
    _must_load_or_refuse(data.draw(_mutated(der_seeds)), passphrase)


@_FUZZ
@given(data=st.data(), passphrase=_PASSPHRASES)
def test_fuzz_pkcs12(p12_seeds: list[bytes], data: st.DataObject, passphrase: bytes | None) -> None:
    """Mutated PKCS#12 files load or are a MutlsError."""
    _must_load_or_refuse(data.draw(_mutated(p12_seeds)), passphrase)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=512), passphrase=_PASSPHRASES)
def test_fuzz_arbitrary_bytes(data: bytes, passphrase: bytes | None) -> None:
    """Arbitrary bytes load or are a MutlsError."""
    _must_load_or_refuse(data, passphrase)


@_FUZZ
@given(data=st.data())
def test_fuzz_loaded_material_can_be_inspected(
    pem_seeds: list[bytes], now: datetime, data: st.DataObject
) -> None:
    """Whatever the importer accepts, inspect describes it or raises a MutlsError, never more."""
    blocks = [_pem_blocks(seed) for seed in pem_seeds]
    try:
        material = load_material(data.draw(_pem_with_mutated_der(blocks)), PASSPHRASE)
    except MutlsError:
        return
    with contextlib.suppress(MutlsError):
        inspect_material(material, now)


def test_text_instead_of_bytes_is_a_type_error() -> None:
    """Passing str is a programming error and stays a TypeError, not unsupported_format."""
    with pytest.raises(TypeError):
        load_material("-----BEGIN CERTIFICATE-----")  # type: ignore[arg-type]


def test_csr_with_a_damaged_public_key_is_unsupported_format_at_load_time() -> None:
    """Found by the fuzzer: the CSR parses, but its EC point is off the curve."""
    damaged = (
        b"-----BEGIN CERTIFICATE REQUEST-----\n"
        b"MIHTMHwCAQAwGjEYMBYGA1UEAwwPY3NyLmV4YW1wbGUuY29tMFkwEwYHK4ZIzj0CAQYIKoZIzj0D\n"
        b"AQcDQgAERsiJL2co2SG4TPgFjC9ui6xv31j90evYlf+vifYWiG39aWnUosc794NwXN64e+1Fg0W5\n"
        b"/VOnEEcZMPYkSwEaoaAAMAoGCCqGSM49BAMCA0cAMEQCIAzUDAukdFlp20O3HBuQ919TM4ZpIhbL\n"
        b"1Npjkfr/eK6yAiBxj//Cv0MzFIfirKbReFqJnz2vRGpCII9ri1wZ2qhAVg==\n"
        b"-----END CERTIFICATE REQUEST-----\n"
    )
    with pytest.raises(UnsupportedFormat, match="CERTIFICATE REQUEST"):
        load_material(damaged)
