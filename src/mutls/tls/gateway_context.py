"""The gateway's TLS server context: pyOpenSSL over the OpenSSL inside the ``cryptography`` wheel.

Why not the stdlib ``ssl`` module here (it serves the admin and renewal listeners):

* **Handshake cost.** A full EC P-256 mTLS handshake costs about 0.85 ms of server CPU with the
  wheel's OpenSSL against about 1.5 ms with Debian's OpenSSL 3.0 that ``ssl`` links (measured on
  this project's machines; ``bench/gateway``). New connections per second is half the gateway's
  job.
* **Acceptable CA names.** Only pyOpenSSL can set the CertificateRequest's list of CA names
  (``SSL_CTX_set_client_CA_list``), which browsers and Java use to pick a certificate and which
  ``openssl s_client`` prints; the stdlib cannot.

Each default, with its reason:

* TLS 1.2 is the floor (RFC 8996 deprecates 1.0 and 1.1); a listener may narrow to 1.2 only (seed
  004) or 1.3 only.
* TLS 1.2 suites: forward-secret AEAD only (Mozilla "intermediate"); the ``strict`` preset drops
  ChaCha20 and AES-128 for deployments that pin AES-256-GCM.
* The certificate is *requested*, never required, and the verify callback lets expired, not yet
  valid and wrong-purpose certificates through: the gateway answers those in HTTP with a reason
  (``certificate_expired``, ``wrong_key_usage``) instead of an alert the client cannot read.
  Certificates from CAs nobody trusts still fail the handshake.
* ``MODE_RELEASE_BUFFERS``: idle connections give their 34 KiB of record buffers back (as nginx).
* No compression (CRIME), no client-initiated renegotiation (a CPU lever for attackers).
* A fixed session id context, so resumed sessions keep their verified client certificate; no
  stateless session tickets (see the comment in the code), sessions cached per worker for 5 min.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL, crypto

from mutls.pki.material import Material

__all__ = [
    "ALLOWED_VERIFY_ERRORS",
    "CipherPreset",
    "GatewayTlsPolicy",
    "TlsVersion",
    "gateway_server_context",
]


class TlsVersion(enum.StrEnum):
    TLS1_2 = "1.2"
    TLS1_3 = "1.3"

    @property
    def openssl(self) -> int:
        return SSL.TLS1_2_VERSION if self is TlsVersion.TLS1_2 else SSL.TLS1_3_VERSION


class CipherPreset(enum.StrEnum):
    INTERMEDIATE = "intermediate"
    STRICT = "strict"


_TLS12_SUITES = {
    CipherPreset.INTERMEDIATE: (
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
    ),
    CipherPreset.STRICT: "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384",
}
_TLS13_SUITES = {
    CipherPreset.INTERMEDIATE: (
        "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
    ),
    CipherPreset.STRICT: "TLS_AES_256_GCM_SHA384",
}

# X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CERT_HAS_EXPIRED, X509_V_ERR_INVALID_PURPOSE
# (x509_vfy.h): decided per request in HTTP by policy.authorize, not by a handshake alert.
ALLOWED_VERIFY_ERRORS = frozenset({9, 10, 26})
_SESSION_ID_CONTEXT = b"mutls-gateway"
_SESSION_SECONDS = 300
"""How long a worker keeps a session for resumption (OpenSSL's own default for TLS 1.2)."""


@dataclass(frozen=True, kw_only=True)
class GatewayTlsPolicy:
    minimum: TlsVersion = TlsVersion.TLS1_2
    maximum: TlsVersion = TlsVersion.TLS1_3
    ciphers: CipherPreset = CipherPreset.INTERMEDIATE

    def describe(self) -> str:
        versions = (
            f"TLS {self.minimum}"
            if self.minimum == self.maximum
            else f"TLS {self.minimum}-{self.maximum}"
        )
        return f"{versions}, {self.ciphers} ciphers"


def _verify(
    _connection: SSL.Connection, _cert: crypto.X509, errnum: int, _depth: int, ok: int
) -> bool:
    return bool(ok) or errnum in ALLOWED_VERIFY_ERRORS


def gateway_server_context(
    identity: Material,
    anchors: Sequence[x509.Certificate],
    policy: GatewayTlsPolicy,
) -> SSL.Context:
    """A server context presenting ``identity`` that requests a client certificate chaining to
    one of ``anchors`` (the platform CA chain and every account CA)."""
    if identity.key is None or identity.leaf is None:
        raise ValueError("the gateway's server identity needs a certificate and its private key")
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(policy.minimum.openssl)
    context.set_max_proto_version(policy.maximum.openssl)
    context.set_cipher_list(_TLS12_SUITES[policy.ciphers].encode("ascii"))
    context.set_tls13_ciphersuites(_TLS13_SUITES[policy.ciphers].encode("ascii"))
    # No stateless session tickets: a TLS 1.3 ticket carries the whole session, client
    # certificate chain included, encrypted twice per handshake (about 1.5 KB and a sixth of the
    # handshake's CPU, measured). Sessions stay resumable from each worker's own cache instead
    # (stateful tickets of about 80 bytes), and resumption skips nothing that matters here:
    # revocation, dates and access are decided per request anyway.
    options = SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE | SSL.OP_NO_TICKET
    options |= getattr(SSL, "OP_NO_RENEGOTIATION", 0)
    context.set_options(options)
    context.set_mode(SSL.MODE_RELEASE_BUFFERS)
    context.use_certificate(identity.leaf)
    for intermediate in identity.chain[1:]:  # chain[0] is the leaf
        context.add_extra_chain_cert(intermediate)
    context.use_privatekey(identity.key)
    context.check_privatekey()
    store = context.get_cert_store()
    assert store is not None
    seen: set[bytes] = set()
    for anchor in anchors:
        der = anchor.public_bytes(Encoding.DER)
        if der in seen:
            continue
        seen.add(der)
        store.add_cert(crypto.X509.from_cryptography(anchor))
        context.add_client_ca(anchor)  # the CertificateRequest's acceptable CA names
    context.set_verify(SSL.VERIFY_PEER, _verify)
    context.set_verify_depth(8)
    context.set_session_id(_SESSION_ID_CONTEXT)
    context.set_timeout(_SESSION_SECONDS)
    return context
