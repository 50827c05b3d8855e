"""One TLS client context per identity, for the Python adapters (requests, httpx).

Python's stdlib cannot take an encrypted key with a passphrase from memory, and requests has
never accepted a key passphrase at all (psf/requests#1573). This module closes that gap:

* **Any material, one loader.** The certificate and key come as file paths or bytes, in any
  format :func:`mutls.pki.loader.load_material` reads (PEM, combined PEM, PKCS#12, encrypted
  PKCS#8, legacy encrypted PEM, DER). Every failure is a :class:`~mutls.errors.MutlsError`:
  ``wrong_passphrase``, ``passphrase_required``, ``key_mismatch``, ``file_unreadable``, ...
* **No plaintext key on disk.** :func:`mutls.tls.context.client_context` hands the key to
  OpenSSL re-encrypted under a random one-time password (``secrets.token_bytes``) through an
  anonymous ``memfd_create`` file, closed right after loading; where memfd does not exist, a 0600
  file in a fresh 0700 directory holds only the encrypted form and is removed at once.
* **Built once.** Contexts are cached by a fingerprint of what went into them (the certificate
  chain, the trust anchors, the verification switch), so every adapter, session, request and
  pooled connection for one identity shares one ``ssl.SSLContext``: one key load, and TLS
  session resumption across connections. A renewed certificate has another fingerprint and so
  gets its own context on the next adapter built from it. The key is decrypted every time an
  adapter is made (a wrong passphrase is always reported), never kept by the cache.
* **Verification.** The server is verified against the system CA store by default, or against a
  CA bundle (``ca=``, a path or bytes); a certificate in that bundle may end the chain (OpenSSL's
  PARTIAL_CHAIN), because the bundle is exactly what the partner said to trust. ``verify=False``
  exists for test servers only and warns loudly each time it is used.
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
import sys
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mutls.errors import CertificateExpired, InvalidArgument
from mutls.files import read_input
from mutls.pki.inspect import name_to_text, sha256_fingerprint
from mutls.pki.loader import DEFAULT_MAX_INPUT, load_certificates, load_identity, load_material
from mutls.pki.material import Material
from mutls.tls.context import client_context

__all__ = [
    "MAX_CACHED_CONTEXTS",
    "ClientTls",
    "InsecureTlsWarning",
    "Source",
    "clear_context_cache",
    "client_tls",
    "client_tls_from_material",
    "resolve_client_tls",
]

logger = logging.getLogger("mutls.client")

#: A file path (``str`` or ``os.PathLike``) or the file's content (``bytes``). A ``str`` that
#: holds PEM armour (``-----BEGIN``) is taken as the content, as environment variables carry it.
Source = str | os.PathLike[str] | bytes

#: Contexts kept by the cache; the least recently used one goes first. Each holds one identity.
MAX_CACHED_CONTEXTS = 64


class InsecureTlsWarning(UserWarning):
    """A client was built with ``verify=False``: the server's certificate is not checked."""


@dataclass(frozen=True, kw_only=True)
class ClientTls:
    """A ready TLS client configuration: the shared context and what it presents and trusts.

    Safe to print: it names the certificate, never the key.
    """

    context: ssl.SSLContext
    subject: str
    fingerprint_sha256: str
    not_after: datetime
    trust: str  # "system CAs", "CA bundle: <subjects>", or "NOT VERIFIED"

    @property
    def verifies(self) -> bool:
        return self.context.verify_mode != ssl.CERT_NONE

    def __repr__(self) -> str:
        return (
            f"ClientTls(subject={self.subject!r}, fingerprint_sha256="
            f"{self.fingerprint_sha256!r}, trust={self.trust!r})"
        )


# --- the cache ----------------------------------------------------------------------------------

_cache: OrderedDict[str, ClientTls] = OrderedDict()
_cache_lock = threading.Lock()


def clear_context_cache() -> None:
    """Forget every cached context (connections already open keep theirs)."""
    with _cache_lock:
        _cache.clear()


def _cached(key: str, build: Callable[[], ClientTls]) -> ClientTls:
    with _cache_lock:  # builds are serialised: cheap, and two threads never build one twice
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
        built = build()
        _cache[key] = built
        while len(_cache) > MAX_CACHED_CONTEXTS:
            _cache.popitem(last=False)
        return built


# --- building ------------------------------------------------------------------------------------


def client_tls(
    cert: Source,
    key: Source | None = None,
    *,
    passphrase: str | bytes | None = None,
    ca: Source | None = None,
    verify: bool = True,
    now: datetime | None = None,
) -> ClientTls:
    """Load a client identity and return its (cached) TLS configuration.

    ``cert`` holds the certificate (and its chain; with the key for a combined PEM or a PKCS#12
    file); ``key`` the private key when it is a separate file. ``passphrase`` decrypts the key or
    the PKCS#12 file. ``ca`` is the CA bundle the server is verified against (default: the
    system CA store).
    """
    secret = _passphrase(passphrase)
    cert_data = _read(cert, "cert")
    if key is None:
        material = load_material(cert_data, secret)
    else:
        material = load_identity(cert_data, _read(key, "key"), secret)
    cas = load_certificates(_read(ca, "ca")) if ca is not None else []
    return client_tls_from_material(material, cas=cas, verify=verify, now=now)


def resolve_client_tls(
    cert: Source | None,
    key: Source | None,
    *,
    passphrase: str | bytes | None,
    ca: Source | None,
    verify: bool,
    tls: ClientTls | None,
) -> ClientTls:
    """What the adapters' constructors take: either files/bytes or a ready :class:`ClientTls`."""
    if tls is not None:
        if cert is not None or key is not None or passphrase is not None or ca is not None:
            raise InvalidArgument(
                "expected either tls= or cert=/key=/passphrase=/ca=; found both",
                hint="a ClientTls already holds the certificate and the trust settings",
            )
        return tls
    if cert is None:
        raise InvalidArgument(
            "expected a client certificate: cert= (a path or bytes), tls=, or from_secret(...)",
            hint="pass the certificate file (PEM, combined PEM or PKCS#12) as cert=",
        )
    return client_tls(cert, key, passphrase=passphrase, ca=ca, verify=verify)


def client_tls_from_material(
    material: Material,
    *,
    cas: Sequence[x509.Certificate] = (),
    verify: bool = True,
    now: datetime | None = None,
) -> ClientTls:
    """The cached TLS configuration for ``material`` (which must hold a leaf and its key)."""
    leaf, _ = material.require_identity()  # key_mismatch, missing_private_key, not_a_certificate
    _require_current(leaf, now or datetime.now(UTC))
    if not verify:
        if cas:
            raise InvalidArgument(
                "expected either a CA bundle to verify the server with or verify=False; found both",
                hint="drop verify=False: with ca= the server is verified against that bundle",
            )
        _warn_insecure(leaf)
    key = _cache_key(material.chain, cas, verify)
    return _cached(key, lambda: _build(material, cas, verify))


def _build(material: Material, cas: Sequence[x509.Certificate], verify: bool) -> ClientTls:
    leaf = material.chain[0]
    try:
        context = client_context(material, cas=cas, partial_chain=bool(cas), verify=verify)
    except ssl.SSLError as exc:  # OpenSSL refused what the loader accepted (rare: odd key types)
        raise InvalidArgument(
            f"expected OpenSSL to accept the client certificate {name_to_text(leaf.subject)} "
            f"and its key; it refused them ({exc.reason or exc.__class__.__name__})",
            hint="convert the key to PKCS#8 PEM (`mutls cert convert KEY --to key`) and use an "
            "ECDSA P-256 or RSA key",
        ) from None
    except OSError as exc:  # no memfd and no writable temporary directory
        raise InvalidArgument(
            f"expected to hand the encrypted key to OpenSSL through a private temporary file; "
            f"{exc.strerror or exc.__class__.__name__}",
            hint="set TMPDIR to a directory this process can write to",
        ) from None
    if not verify:
        trust = "NOT VERIFIED"
    elif cas:
        trust = "CA bundle: " + "; ".join(name_to_text(c.subject) for c in cas)
    else:
        trust = "system CAs"
    return ClientTls(
        context=context,
        subject=name_to_text(leaf.subject),
        fingerprint_sha256=sha256_fingerprint(leaf),
        not_after=leaf.not_valid_after_utc,
        trust=trust,
    )


def _cache_key(
    chain: Sequence[x509.Certificate], cas: Sequence[x509.Certificate], verify: bool
) -> str:
    digest = hashlib.sha256()
    for part, certificates in ((b"chain", chain), (b"cas", cas)):
        digest.update(part)
        for certificate in certificates:
            der = certificate.public_bytes(serialization.Encoding.DER)
            digest.update(len(der).to_bytes(4, "big") + der)
    digest.update(b"verify" if verify else b"no-verify")
    return digest.hexdigest()


def _require_current(leaf: x509.Certificate, now: datetime) -> None:
    """An expired certificate cannot work anywhere: say so now, not as a TLS alert later."""
    if now >= leaf.not_valid_after_utc:
        raise CertificateExpired(
            f"expected a client certificate valid now ({now:%Y-%m-%dT%H:%M:%SZ}); "
            f"{name_to_text(leaf.subject)} expired at "
            f"{leaf.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}",
            hint="renew the certificate (`mutls renew`, or a new CSR to the partner's portal) "
            "and point the client at the new file",
        )


def _warn_insecure(leaf: x509.Certificate) -> None:
    message = (
        f"mutls.client: verify=False for the client certificate {name_to_text(leaf.subject)}: "
        "the server's certificate and name are NOT checked, so anyone on the network path can "
        "impersonate the server. Use ca= with the server's CA bundle instead."
    )
    logger.warning("%s", message)
    warnings.warn(message, InsecureTlsWarning, stacklevel=_outside_this_package())


def _outside_this_package() -> int:
    """The ``stacklevel`` of the first caller outside ``mutls.client``: the line that asked."""
    level, frame = 1, sys._getframe(1)  # the frame that will call warnings.warn
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(__package__):
        level, frame = level + 1, frame.f_back
    return level


# --- inputs --------------------------------------------------------------------------------------


def _passphrase(value: str | bytes | None) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    raise InvalidArgument(f"expected the passphrase as str or bytes; found {type(value).__name__}")


def _read(source: Source, what: str) -> bytes:
    """The bytes of ``source``: its content when it is bytes (or PEM text), else the file."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    if isinstance(source, str) and "-----BEGIN" in source:
        return source.encode("utf-8")
    if isinstance(source, str | os.PathLike):
        return read_input(Path(source), max_size=DEFAULT_MAX_INPUT)  # file_unreadable, ...
    raise InvalidArgument(
        f"expected {what} as a file path (str or pathlib.Path) or the file's bytes; found "
        f"{type(source).__name__}"
    )
