"""What a user uploads for each secret type, checked and split into a secret and a public part.

An upload is checked completely before anything is stored, so a credential that cannot work
(a key that does not match its certificate, a wrong passphrase, an expired certificate, an OAuth2
token URL over plain HTTP) is refused at upload time with the reason, not at 3 a.m. when the
egress proxy first uses it.

Each type turns into a :class:`Prepared` value:

* ``plaintext``: canonical JSON of the secret fields, to be sealed by ``envelope.py``. It is
  what :func:`reveal` gives back to the data planes.
* ``metadata``: JSON-safe facts that are not secret (subject, expiry, fingerprint, which OAuth2
  method, whether a passphrase exists), stored in clear and shown by the API and the portal.

Certificate metadata stores ``valid_until`` but not the days remaining: those change every day,
so the service computes them when reading, with :func:`expiry_view`. ``chain_length`` counts the
stored certificates, leaf included.

Sans-IO: no files, no clock (``now`` is an argument), no database. Every failure is a
:class:`~mutls.errors.MutlsError` whose message says what was expected and what was found, and
never contains a key, a passphrase, a client secret or a string secret.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mutls.errors import (
    CertificateExpired,
    DecryptionFailed,
    InputTooLarge,
    InvalidArgument,
)
from mutls.pki.export import private_key_pem
from mutls.pki.inspect import (
    URGENT_DAYS,
    WARNING_DAYS,
    CertificateReport,
    ExpiryStatus,
    describe_certificate,
    name_to_text,
)
from mutls.pki.keys import KeyInfo, key_weakness
from mutls.pki.loader import DEFAULT_MAX_INPUT, load_certificates, load_material
from mutls.pki.material import Material, Severity

__all__ = [
    "FIELDS",
    "CertificateInput",
    "OAuth2AuthMethod",
    "OAuth2Input",
    "Prepared",
    "SecretType",
    "StringInput",
    "expiry_view",
    "prepare",
    "prepare_certificate",
    "prepare_oauth2",
    "prepare_string",
    "reveal",
]

MAX_PASSPHRASE = 1024
MAX_TOKEN_URL = 2048
MAX_CLIENT_ID = 512
MAX_CLIENT_SECRET = 4096
MAX_AUDIENCE = 2048
MAX_SCOPES = 100
MAX_SCOPE = 256
MAX_STRING_BYTES = 64 * 1024
# base64 grows data by 4/3; a PKCS#12 above the loader's limit is refused before decoding.
_MAX_PKCS12_BASE64 = DEFAULT_MAX_INPUT * 4 // 3 + 4

# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# A secret name or id (``sec_...``), as the service layer spells them.
_SECRET_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_KEY_BLOCK = re.compile(
    r"-----BEGIN ((?:ENCRYPTED |RSA |EC |DSA )?PRIVATE KEY)-----.*?-----END \1-----", re.DOTALL
)
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class SecretType(enum.StrEnum):
    CERTIFICATE = "certificate"  # client certificate, key, passphrase, chain, CA bundle
    OAUTH2 = "oauth2"  # client credentials for a token endpoint
    STRING = "string"  # an API key, a password, anything else


class OAuth2AuthMethod(enum.StrEnum):
    """How the client authenticates at the token endpoint (RFC 6749 2.3.1, RFC 8705 2)."""

    CLIENT_SECRET_BASIC = "client_secret_basic"
    CLIENT_SECRET_POST = "client_secret_post"
    TLS_CLIENT_AUTH = "tls_client_auth"
    SELF_SIGNED_TLS_CLIENT_AUTH = "self_signed_tls_client_auth"

    @property
    def uses_certificate(self) -> bool:
        """RFC 8705 methods: the TLS client certificate is the credential; no secret is sent."""
        return self in (
            OAuth2AuthMethod.TLS_CLIENT_AUTH,
            OAuth2AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH,
        )


#: The fields each secret type accepts, as the API receives them.
FIELDS: Mapping[SecretType, tuple[str, ...]] = {
    SecretType.CERTIFICATE: (
        "ca_bundle_pem",
        "certificate_pem",
        "chain_pem",
        "passphrase",
        "pkcs12_base64",
        "private_key_pem",
    ),
    SecretType.OAUTH2: (
        "audience",
        "auth_method",
        "certificate_secret",
        "client_id",
        "client_secret",
        "scopes",
        "token_url",
    ),
    SecretType.STRING: ("value",),
}
# What reveal() insists on finding in a decrypted value.
_REQUIRED_PLAINTEXT: Mapping[SecretType, tuple[str, ...]] = {
    SecretType.CERTIFICATE: ("certificate_pem", "private_key_pem"),
    SecretType.OAUTH2: ("token_url", "client_id", "auth_method"),
    SecretType.STRING: ("value",),
}


@dataclass(frozen=True, kw_only=True)
class Prepared:
    """A checked upload: the plaintext to seal and the public metadata to store beside it."""

    plaintext: bytes = field(repr=False)
    metadata: dict[str, object]


@dataclass(frozen=True, kw_only=True)
class CertificateInput:
    """A client certificate upload: PEM fields (in any combination) or one PKCS#12 file.

    ``certificate_pem`` may hold the certificate, its chain and its key together (a combined
    PEM); ``chain_pem`` and ``private_key_pem`` add what it lacks. ``ca_bundle_pem`` is the CA
    that the partner's server certificate is verified against, when it is not a public one.
    """

    certificate_pem: str | None = None
    private_key_pem: str | None = None
    passphrase: str | None = None
    chain_pem: str | None = None
    ca_bundle_pem: str | None = None
    pkcs12_base64: str | None = None

    def __repr__(self) -> str:  # any field may carry a key: say only which are set
        given = [name for name in FIELDS[SecretType.CERTIFICATE] if getattr(self, name)]
        return f"CertificateInput(<{', '.join(given) or 'nothing'} given>)"


@dataclass(frozen=True, kw_only=True)
class OAuth2Input:
    """OAuth2 client credentials; ``certificate_secret`` names the certificate for RFC 8705."""

    token_url: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    scopes: Sequence[str] = ()
    auth_method: str = OAuth2AuthMethod.CLIENT_SECRET_BASIC.value
    certificate_secret: str | None = None
    audience: str | None = None


@dataclass(frozen=True, kw_only=True)
class StringInput:
    value: str = field(repr=False)


# --- certificates ---------------------------------------------------------------------------


def prepare_certificate(data: CertificateInput, *, now: datetime) -> Prepared:
    """Check that the upload is a usable client identity and split it for storage."""
    _require_aware(now)
    certificate_pem = _optional_text(data.certificate_pem, "certificate_pem")
    pkcs12_base64 = _optional_text(data.pkcs12_base64, "pkcs12_base64")
    chain_pem = _optional_text(data.chain_pem, "chain_pem")
    key_text = _optional_text(data.private_key_pem, "private_key_pem")
    ca_bundle_pem = _optional_text(data.ca_bundle_pem, "ca_bundle_pem")
    passphrase = _passphrase(data.passphrase)
    given = [n for n, v in (("certificate_pem", certificate_pem), ("pkcs12", pkcs12_base64)) if v]
    if len(given) != 1:
        raise InvalidArgument(
            "expected exactly one of certificate_pem (PEM certificate, optionally with its chain "
            "and key) or pkcs12_base64 (a .p12/.pfx file in base64); found "
            + ("neither" if not given else "both"),
            hint="send certificate_pem with private_key_pem (and chain_pem, passphrase), or "
            "pkcs12_base64 with passphrase; ca_bundle_pem may go with either",
        )
    warnings_out: list[dict[str, str]] = []
    secret_passphrase = passphrase.decode("utf-8") if passphrase is not None else None
    if pkcs12_base64 is not None:
        for name, value in (("private_key_pem", key_text), ("chain_pem", chain_pem)):
            if value is not None:
                raise InvalidArgument(
                    f"expected pkcs12_base64 to carry the key and chain by itself; found "
                    f"{name} as well",
                    hint="send either a PKCS#12 file or the PEM fields, not both",
                )
        material = load_material(_decode_pkcs12(pkcs12_base64), passphrase)
        leaf, key = material.require_identity()
        # The PKCS#12 container is not kept: the key is stored as PKCS#8 PEM, encrypted with
        # the same passphrase, so every secret of this type has one shape for the data planes.
        stored_key = private_key_pem(key, passphrase).decode("ascii")
    else:
        assert certificate_pem is not None
        pem = "\n".join(t for t in (certificate_pem, chain_pem, key_text) if t is not None)
        material = load_material(_utf8(pem, "certificate_pem"), passphrase)
        leaf, key = material.require_identity()
        stored_key, encrypted = _key_as_given(pem, key_text, material, passphrase)
        if not encrypted and secret_passphrase is not None:
            secret_passphrase = None  # a passphrase for an unencrypted key would break loading
            warnings_out.append(
                _warning(
                    "passphrase_not_needed",
                    "a passphrase was given but the private key is not encrypted; the "
                    "passphrase was not stored",
                )
            )
    _require_current(leaf, now)
    bundle = load_certificates(_utf8(ca_bundle_pem, "ca_bundle_pem")) if ca_bundle_pem else []
    plaintext = _canonical(
        {
            "certificate_pem": _pem_text(material.chain),
            "private_key_pem": stored_key,
            "passphrase": secret_passphrase,
            "ca_bundle_pem": _pem_text(bundle) if bundle else None,
        }
    )
    with warnings.catch_warnings():  # odd encodings were already noted by the loader
        warnings.simplefilter("ignore")
        report = describe_certificate(leaf, now)
    warnings_out = [*_certificate_warnings(material, report, now), *warnings_out]
    metadata: dict[str, object] = {
        "subject": report.subject,
        "issuer": report.issuer,
        "serial": report.serial,
        "valid_from": _iso(report.not_before),
        "valid_until": _iso(report.not_after),
        "fingerprint_sha256": report.sha256_fingerprint,
        "key_type": _key_type(report.key),
        "has_private_key": True,
        "has_passphrase": secret_passphrase is not None,
        "chain_length": len(material.chain),
        "has_ca_bundle": bool(bundle),
        "ca_bundle_subjects": [name_to_text(c.subject) for c in bundle],
        # Public facts of the other certificates, so the expiry inventory needs no decryption.
        "chain": [_certificate_dates(c) for c in material.chain[1:]],
        "ca_bundle": [_certificate_dates(c) for c in bundle],
        "san": list(report.subject_alt_names),
        "extended_key_usage": list(report.extended_key_usage),
        "warnings": warnings_out,
    }
    return Prepared(plaintext=plaintext, metadata=metadata)


def _decode_pkcs12(text: str) -> bytes:
    compact = "".join(text.split())
    if len(compact) > _MAX_PKCS12_BASE64:
        raise InputTooLarge(
            f"expected pkcs12_base64 of at most {_MAX_PKCS12_BASE64} characters; found "
            f"{len(compact)}"
        )
    standard = compact.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        data = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument(
            "expected pkcs12_base64 to be a .p12/.pfx file encoded in base64; found text that "
            "is not valid base64",
            hint="encode the file with `base64 -w0 client.p12` and send that text",
        ) from None
    if not data:
        raise InvalidArgument("expected pkcs12_base64 to hold a .p12/.pfx file; it decodes empty")
    return data


def _key_as_given(
    pem: str, key_text: str | None, material: Material, passphrase: bytes | None
) -> tuple[str, bool]:
    """The private key PEM exactly as uploaded (still encrypted if it was), and whether it is.

    Keeping the user's encrypted block, rather than re-encrypting the key, means the stored
    secret is byte for byte what the partner's tooling produced.
    """
    blocks = list(_KEY_BLOCK.finditer(pem))
    if len(blocks) == 1:
        block = blocks[0].group(0)
        encrypted = block.startswith("-----BEGIN ENCRYPTED") or "Proc-Type: 4,ENCRYPTED" in block
        if key_text is not None and key_text.strip() == block:
            return key_text, encrypted
        return block + "\n", encrypted
    # Not PEM text (a bare base64 DER key): store it as PKCS#8 PEM, encrypted if it was.
    encrypted = material.key_was_encrypted and passphrase is not None
    key = material.require_key()
    return private_key_pem(key, passphrase if encrypted else None).decode("ascii"), encrypted


def _require_current(leaf: x509.Certificate, now: datetime) -> None:
    not_after = leaf.not_valid_after_utc
    if now >= not_after:
        raise CertificateExpired(
            f"expected a certificate valid at {_iso(now)}; the certificate "
            f"{name_to_text(leaf.subject)} expired at {_iso(not_after)}",
            hint="renew the certificate (a new CSR signed by the same CA) and upload the new "
            "certificate",
        )


def _certificate_warnings(
    material: Material, report: CertificateReport, now: datetime
) -> list[dict[str, str]]:
    found: list[dict[str, str]] = [
        _warning(f.code, f.message)
        for f in material.findings
        if f.severity in (Severity.WARNING, Severity.ERROR)
    ]
    if now < report.not_before:
        found.append(
            _warning(
                "certificate_not_yet_valid",
                f"the certificate is valid only from {_iso(report.not_before)}; it is stored "
                "for a staged rotation and will be refused by servers before then",
            )
        )
    eku = report.extended_key_usage
    if eku and "clientAuth" not in eku and "anyExtendedKeyUsage" not in eku:
        found.append(
            _warning(
                "no_client_auth",
                "the certificate's extendedKeyUsage lacks clientAuth "
                f"(it has {', '.join(eku)}); mTLS servers will refuse it as a client certificate",
            )
        )
    weakness = key_weakness(material.chain[0].public_key())
    if weakness:
        found.append(_warning("weak_key", f"the certificate's key is weak: {weakness}"))
    for position, cert in enumerate(material.chain[1:], start=1):
        if now >= cert.not_valid_after_utc:
            found.append(
                _warning(
                    "chain_certificate_expired",
                    f"chain certificate {position} ({name_to_text(cert.subject)}) expired at "
                    f"{_iso(cert.not_valid_after_utc)}",
                )
            )
    if len(material.chain) == 1 and not report.self_signed:
        found.append(
            _warning(
                "chain_incomplete",
                "only the leaf certificate was given; servers that do not already hold its "
                "intermediate CA need it sent too (add it in chain_pem)",
            )
        )
    return found


def _certificate_dates(certificate: x509.Certificate) -> dict[str, str]:
    return {
        "subject": name_to_text(certificate.subject),
        "serial": format(certificate.serial_number, "X"),
        "valid_until": _iso(certificate.not_valid_after_utc),
    }


def _key_type(info: KeyInfo) -> str:
    """ "EC P-256", "RSA 2048", "Ed25519": what people call the key."""
    if info.curve:
        return f"{info.type} {info.curve}"
    if info.type in ("RSA", "DSA"):
        return f"{info.type} {info.size}"
    return info.type


def expiry_view(metadata: Mapping[str, object], *, now: datetime) -> dict[str, object]:
    """Days until ``valid_until`` and the status, as ``mutls.pki.inspect.expiry_status`` says.

    Computed when read because it changes daily; the stored metadata holds the dates only.
    """
    _require_aware(now)
    not_after = _parse_iso(metadata.get("valid_until"), "valid_until")
    raw_from = metadata.get("valid_from")
    not_before = _parse_iso(raw_from, "valid_from") if raw_from is not None else None
    days = int((not_after - now).total_seconds() // 86400)
    if not_before is not None and now < not_before:
        status = ExpiryStatus.NOT_YET_VALID
    elif now >= not_after:
        status = ExpiryStatus.EXPIRED
    elif days < URGENT_DAYS:
        status = ExpiryStatus.URGENT
    elif days < WARNING_DAYS:
        status = ExpiryStatus.WARNING
    else:
        status = ExpiryStatus.OK
    return {"days_remaining": days, "expiry_status": status.value}


# --- OAuth2 ---------------------------------------------------------------------------------


def prepare_oauth2(data: OAuth2Input, *, now: datetime) -> Prepared:
    """Check client credentials for the token endpoint. ``now`` is unused, for symmetry."""
    _require_aware(now)
    token_url = _token_url(data.token_url)
    client_id = _required(_single_line(data.client_id, "client_id", MAX_CLIENT_ID), "client_id")
    method = _auth_method(data.auth_method)
    client_secret = _client_secret(data.client_secret)
    scopes = _scopes(data.scopes)
    certificate_secret = _certificate_secret(data.certificate_secret)
    audience = _single_line(data.audience, "audience", MAX_AUDIENCE)
    if method.uses_certificate:
        if client_secret is not None:
            raise InvalidArgument(
                f"expected no client_secret with auth_method {method}: RFC 8705 clients prove "
                "who they are with their certificate and send no secret; found a client_secret",
                hint="remove client_secret, or use client_secret_basic or client_secret_post",
            )
        if certificate_secret is None:
            raise InvalidArgument(
                f"expected certificate_secret (the name or id of a certificate secret) with "
                f"auth_method {method}; found none",
                hint="store the client certificate as a certificate secret first, then name it",
            )
    elif client_secret is None:
        raise InvalidArgument(
            f"expected client_secret with auth_method {method}; found none",
            hint="give the secret the authorization server issued, or use tls_client_auth",
        )
    public: dict[str, object] = {
        "token_url": token_url,
        "client_id": client_id,
        "scopes": scopes,
        "auth_method": method.value,
        "certificate_secret": certificate_secret,
        "audience": audience,
    }
    return Prepared(
        plaintext=_canonical({**public, "client_secret": client_secret}),
        metadata={**public, "has_client_secret": client_secret is not None},
    )


def _token_url(value: object) -> str:
    text = _required(_single_line(value, "token_url", MAX_TOKEN_URL), "token_url")
    if any(c.isspace() for c in text):
        raise InvalidArgument("expected token_url without spaces; found some")
    try:
        parts = urlsplit(text)
        host = parts.hostname
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError:
        raise InvalidArgument(
            "expected token_url to be an absolute URL such as https://auth.example.com/token; "
            "found text that does not parse as one (check the host and port)"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not host:
        raise InvalidArgument(
            "expected token_url to be an absolute https:// URL such as "
            f"https://auth.example.com/token; found {'a ' + scheme + ':' if scheme else 'no'} "
            f"scheme{'' if host else ' and no host'}"
        )
    if "@" in parts.netloc:
        raise InvalidArgument(
            "expected token_url without user:password@ in it; found credentials in the URL",
            hint="put the client id and secret in client_id and client_secret",
        )
    if "#" in text:
        raise InvalidArgument("expected token_url without a #fragment (RFC 6749 3.2); found one")
    if scheme == "http" and host not in _LOOPBACK_HOSTS:
        raise InvalidArgument(
            f"expected an https:// token_url; found http:// for host {host} (plain HTTP is "
            "accepted only for localhost, 127.0.0.1 and ::1)",
            hint="client credentials must travel over TLS (RFC 6749 section 2.3.1)",
        )
    return text


def _auth_method(value: object) -> OAuth2AuthMethod:
    accepted = ", ".join(m.value for m in OAuth2AuthMethod)
    if not isinstance(value, str):
        raise InvalidArgument(
            f"expected auth_method to be one of {accepted}; found {_json_type(value)}"
        )
    try:
        return OAuth2AuthMethod(value.strip())
    except ValueError:
        raise InvalidArgument(
            f"expected auth_method to be one of {accepted}; found {_shown(value)}"
        ) from None


def _client_secret(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"expected client_secret to be a string; found {_json_type(value)}")
    if not value.strip():
        return None
    if len(value) > MAX_CLIENT_SECRET:
        raise InvalidArgument(
            f"expected a client_secret of at most {MAX_CLIENT_SECRET} characters; found a "
            "longer one"
        )
    if _CONTROL.search(value):
        raise InvalidArgument(
            "expected client_secret without control characters (such as a pasted trailing "
            "newline); found some"
        )
    _utf8(value, "client_secret")
    return value


def _scopes(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):  # the RFC 6749 form: space-separated
        items: list[object] = list(value.split())
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise InvalidArgument(f"expected scopes to be a list of strings; found {_json_type(value)}")
    if len(items) > MAX_SCOPES:
        raise InvalidArgument(f"expected at most {MAX_SCOPES} scopes; found {len(items)}")
    scopes: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidArgument(f"expected each scope to be a string; found {_json_type(item)}")
        if len(item) > MAX_SCOPE or not _SCOPE.fullmatch(item):
            raise InvalidArgument(
                f"expected each scope to be one token of printable ASCII without spaces, quotes "
                f"or backslashes (RFC 6749 3.3), up to {MAX_SCOPE} characters; found "
                f"{_shown(item)}"
            )
        if item not in scopes:
            scopes.append(item)
    return scopes


def _certificate_secret(value: object) -> str | None:
    text = _single_line(value, "certificate_secret", 128)
    if text is not None and not _SECRET_REF.fullmatch(text):
        raise InvalidArgument(
            "expected certificate_secret to be the name or id of a certificate secret (letters, "
            f"digits, '_', '.', '-'); found {_shown(text)}"
        )
    return text


# --- strings --------------------------------------------------------------------------------


def prepare_string(data: StringInput, *, now: datetime) -> Prepared:
    """Any text secret. Its metadata does not even reveal its length."""
    _require_aware(now)
    value: object = data.value
    if not isinstance(value, str):
        raise InvalidArgument(f"expected value to be a string; found {_json_type(value)}")
    if not value:
        raise InvalidArgument("expected a non-empty value; found an empty string")
    if len(_utf8(value, "value")) > MAX_STRING_BYTES:
        raise InputTooLarge(
            f"expected a value of at most {MAX_STRING_BYTES} bytes (UTF-8); found a longer one",
            hint="a string secret holds a token or password; store files as certificate secrets",
        )
    return Prepared(plaintext=_canonical({"value": value}), metadata={"has_value": True})


# --- from the API's plain dicts, and back -----------------------------------------------------


def prepare(secret_type: SecretType, fields: Mapping[str, object], *, now: datetime) -> Prepared:
    """Check the fields of one upload, as the API received them (a JSON object)."""
    kind = _secret_type(secret_type)
    accepted = FIELDS[kind]
    raw: object = fields
    if not isinstance(raw, Mapping):
        raise InvalidArgument(
            f"expected the {kind.value} fields as a JSON object; found {_json_type(raw)}"
        )
    unknown = sorted(_shown(k) for k in fields if k not in accepted)
    if unknown:
        raise InvalidArgument(
            f"expected only the fields {', '.join(accepted)} for a {kind.value} secret; found "
            f"{', '.join(unknown)}"
        )
    if kind is SecretType.CERTIFICATE:
        return prepare_certificate(
            CertificateInput(**{name: _string_field(fields, name) for name in accepted}),
            now=now,
        )
    if kind is SecretType.OAUTH2:
        scopes = fields.get("scopes")
        if scopes is not None and not isinstance(scopes, str | list | tuple):
            raise InvalidArgument(
                f"expected scopes to be a list of strings; found {_json_type(scopes)}"
            )
        return prepare_oauth2(
            OAuth2Input(
                token_url=_required(_string_field(fields, "token_url"), "token_url"),
                client_id=_required(_string_field(fields, "client_id"), "client_id"),
                client_secret=_string_field(fields, "client_secret"),
                scopes=_scopes(scopes),
                auth_method=_string_field(fields, "auth_method")
                or OAuth2AuthMethod.CLIENT_SECRET_BASIC.value,
                certificate_secret=_string_field(fields, "certificate_secret"),
                audience=_string_field(fields, "audience"),
            ),
            now=now,
        )
    value = _string_field(fields, "value")
    if value is None:
        raise InvalidArgument("expected the field value for a string secret; found none")
    return prepare_string(StringInput(value=value), now=now)


def reveal(secret_type: SecretType, plaintext: bytes) -> dict[str, object]:
    """The secret fields of a decrypted value (for the data planes; never for the admin API)."""
    kind = _secret_type(secret_type)
    damaged = DecryptionFailed(
        f"expected the decrypted {kind.value} value to be a JSON object with "
        f"{', '.join(_REQUIRED_PLAINTEXT[kind])}; it is not",
        hint="the stored value is damaged: upload the secret again from its source",
    )
    try:
        data = json.loads(bytes(plaintext).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise damaged from None
    if not isinstance(data, dict) or any(
        not isinstance(data.get(name), str) for name in _REQUIRED_PLAINTEXT[kind]
    ):
        raise damaged
    return {str(k): v for k, v in data.items()}


# --- helpers --------------------------------------------------------------------------------


def _secret_type(value: object) -> SecretType:
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return SecretType(value)
    except ValueError:
        raise InvalidArgument(
            f"expected secret_type to be one of {', '.join(t.value for t in SecretType)}; "
            f"found {_shown(value)}"
        ) from None


def _string_field(fields: Mapping[str, object], name: str) -> str | None:
    value = fields.get(name)
    if value is None or isinstance(value, str):
        return value
    raise InvalidArgument(f"expected {name} to be a string; found {_json_type(value)}")


def _optional_text(value: object, name: str) -> str | None:
    """A multi-line text field; blank counts as absent (web forms send empty fields)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"expected {name} to be a string; found {_json_type(value)}")
    return value if value.strip() else None


def _single_line(value: object, name: str, max_chars: int) -> str | None:
    """A one-line, non-secret text field, trimmed; blank counts as absent."""
    text = _optional_text(value, name)
    if text is None:
        return None
    text = text.strip()
    if len(text) > max_chars:
        raise InvalidArgument(
            f"expected {name} of at most {max_chars} characters; found {len(text)}"
        )
    if _CONTROL.search(text):
        raise InvalidArgument(f"expected {name} on one line without control characters; found some")
    _utf8(text, name)
    return text


def _required(value: str | None, name: str) -> str:
    if value is None:
        raise InvalidArgument(f"expected the field {name}; found none")
    return value


def _passphrase(value: object) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"expected passphrase to be a string; found {_json_type(value)}")
    if value == "":
        return None
    if len(value) > MAX_PASSPHRASE:
        raise InvalidArgument(
            f"expected a passphrase of at most {MAX_PASSPHRASE} characters; found a longer one"
        )
    return _utf8(value, "passphrase")


def _utf8(text: str, name: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(
            f"expected {name} to be valid Unicode text; found unpaired surrogate characters"
        ) from None


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime (UTC)")


def _canonical(data: Mapping[str, object]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _pem_text(certificates: Sequence[x509.Certificate]) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certificates)


def _warning(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(value: object, name: str) -> datetime:
    try:
        if not isinstance(value, str):
            raise ValueError(name)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(
            f"expected certificate metadata {name} as an ISO 8601 time such as "
            f"2030-01-31T12:00:00Z; found {_shown(value)}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _shown(value: object) -> str:
    """A short repr of a value that is not secret (a field name, a scope, a method name)."""
    text = repr(value)
    return text if len(text) <= 64 else text[:60] + "...'"
