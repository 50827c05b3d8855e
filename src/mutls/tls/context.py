"""One factory for every TLS context, each default with its reason (after urllib3's ``ssl_``).

Private keys reach OpenSSL without ever touching a regular file in plaintext: the key is
re-encrypted under a random one-time passphrase and handed over through an anonymous in-memory
file (``memfd_create``), which OpenSSL reads by its ``/proc/self/fd`` path. Where memfd does not
exist, a private temporary file holds only the encrypted form and is removed at once.
"""

from __future__ import annotations

import contextlib
import enum
import os
import secrets
import ssl
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mutls.pki.export import private_key_pem
from mutls.pki.material import Material

__all__ = [
    "ClientCertMode",
    "RotatingServerContext",
    "TlsPolicy",
    "client_context",
    "server_context",
]

# Forward-secret AEAD suites only for TLS 1.2 (TLS 1.3 suites are all AEAD and always on).
# Matches Mozilla's "intermediate" profile: what every client from the last decade speaks.
_TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)


# OpenSSL's X509_V_FLAG_NO_CHECK_TIME (x509_vfy.h); the ssl module has no name for it.
_X509_V_FLAG_NO_CHECK_TIME = 0x200000


class ClientCertMode(enum.StrEnum):
    NONE = "none"  # do not ask
    OPTIONAL = "optional"  # ask; the handshake succeeds without one (decide later, in HTTP)
    REQUIRED = "required"  # ask; fail the handshake without one


@dataclass(frozen=True, kw_only=True)
class TlsPolicy:
    """Protocol bounds. TLS 1.2 is the floor: 1.0 and 1.1 are deprecated by RFC 8996."""

    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    maximum_version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED


def _apply_policy(context: ssl.SSLContext, policy: TlsPolicy) -> None:
    context.minimum_version = policy.minimum_version
    context.maximum_version = policy.maximum_version
    context.set_ciphers(_TLS12_CIPHERS)
    # No TLS compression (CRIME) and no session renegotiation by clients (DoS lever).
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION


@contextlib.contextmanager
def _key_file(pem: bytes) -> Iterator[str]:
    """A path OpenSSL can read ``pem`` from; memory-backed where the OS allows it."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("mutls-key", os.MFD_CLOEXEC)
        try:
            os.write(fd, pem)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    # No memfd (macOS, BSD): a 0600 file in a fresh 0700 directory, removed with the directory as
    # soon as OpenSSL has read it. Callers only ever pass public certificates or encrypted keys.
    with tempfile.TemporaryDirectory(prefix="mutls-key-") as directory:
        path = str(Path(directory) / "material.pem")
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(handle, pem)
        finally:
            os.close(handle)
        yield path


def _load_identity(context: ssl.SSLContext, identity: Material) -> None:
    """Put the leaf, its chain and its key into ``context`` without a plaintext key on disk."""
    identity.require_identity()
    one_time = secrets.token_bytes(32).hex().encode()
    key_pem = private_key_pem(identity.require_key(), one_time)
    chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in identity.chain)
    with _key_file(key_pem) as key_path, _key_file(chain_pem) as chain_path:
        context.load_cert_chain(chain_path, key_path, password=one_time)


def _load_cas(context: ssl.SSLContext, cas: Sequence[x509.Certificate]) -> None:
    pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in cas)
    context.load_verify_locations(cadata=pem)


def server_context(
    identity: Material,
    *,
    client_cas: Sequence[x509.Certificate] = (),
    client_cert: ClientCertMode = ClientCertMode.REQUIRED,
    policy: TlsPolicy | None = None,
    check_time: bool = True,
) -> ssl.SSLContext:
    """A server context presenting ``identity`` and checking client certificates against
    ``client_cas``.

    The CertificateRequest names no acceptable CAs: Python's ``ssl`` module has no binding for
    ``SSL_CTX_set_client_CA_list``, so a client holding several certificates cannot pick by
    issuer here (openssl s_client prints "No client certificate CA names sent"). The gateway's
    TLS engine must do better (pyOpenSSL's ``set_client_ca_list``).

    ``check_time=False`` leaves the client certificate's validity dates to the application: the
    handshake still refuses a chain that does not lead to ``client_cas``, but an expired or
    not-yet-valid certificate gets through, so that the server can answer in HTTP with
    ``certificate_expired`` and a hint instead of a TLS alert the client cannot act on. The
    application must then check the dates itself.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _apply_policy(context, policy or TlsPolicy())
    # Prefer the server's cipher order: ours lists the strongest first.
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    _load_identity(context, identity)
    if client_cert is not ClientCertMode.NONE:
        if not client_cas:
            raise ValueError("client_cas must name at least one CA when client certs are asked")
        _load_cas(context, client_cas)
        context.verify_mode = (
            ssl.CERT_REQUIRED if client_cert is ClientCertMode.REQUIRED else ssl.CERT_OPTIONAL
        )
        if not check_time:
            context.verify_flags |= _X509_V_FLAG_NO_CHECK_TIME
    return context


def client_context(
    identity: Material | None = None,
    *,
    cas: Sequence[x509.Certificate] = (),
    policy: TlsPolicy | None = None,
    check_hostname: bool = True,
    partial_chain: bool = False,
    verify: bool = True,
) -> ssl.SSLContext:
    """A client context that verifies the server against ``cas`` (the system store when empty)
    and presents ``identity`` when given.

    ``partial_chain=True`` lets an intermediate in ``cas`` end the chain (OpenSSL's
    X509_V_FLAG_PARTIAL_CHAIN): right when ``cas`` came from the same download as our own
    certificate and names exactly the CA we expect, never for the system store.

    ``verify=False`` checks neither the server's chain nor its name. Only for callers that were
    asked for it by name and say so loudly (``mutls.client`` warns); never a default.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _apply_policy(context, policy or TlsPolicy())
    # Always verify the server; hostname checking can only be relaxed for IP-pinned tests.
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = check_hostname
    if cas:
        _load_cas(context, cas)
        if partial_chain:
            context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if not verify:
        # Hostname checking first: OpenSSL refuses CERT_NONE while it is on.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if identity is not None:
        _load_identity(context, identity)
    return context


class RotatingServerContext:
    """A listener's server context whose certificate can be replaced while it serves.

    A running server keeps the ``ssl.SSLContext`` it was given, and loading a new certificate into
    a context that other threads are handshaking on is not safe. So the listener gets
    :attr:`front`, whose SNI callback (called on every handshake, with or without SNI) moves each
    new connection to :attr:`current`. Assigning a context built the same way around a new
    certificate to :attr:`current` rotates it; open connections keep the context they began with.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self.front = self.current = context
        context.sni_callback = self._pick

    def _pick(self, connection: ssl.SSLObject, _name: str | None, context: ssl.SSLContext) -> None:
        current = self.current
        if current is not context:
            connection.context = current
