"""The egress proxy's TLS client contexts: pyOpenSSL over the OpenSSL inside ``cryptography``.

One context per (certificate secret version, CA bundle, preset, verification) is built when the
egress snapshot is loaded, never on the request path, and shared by every pooled connection made
with it. Why pyOpenSSL rather than the stdlib ``ssl`` module (which the OAuth2 token client and
the Python adapters use):

* **CPU per request.** Over ``tls.pipe.TlsPipe`` a keep-alive request costs about 22 us of client
  CPU against about 50 us through uvloop's ``ssl=`` transports (measured against nginx on this
  project's machines); the egress proxy's hot loop is that request.
* **Keys from memory.** ``use_privatekey`` takes the decrypted key object: the key never passes
  through a file, not even an encrypted one in ``memfd``.
* **Handshake errors by name.** The alert the partner sent (unknown CA, expired, bad
  certificate, certificate required) and the verification result are read off the connection,
  so ``egress.tlserrors`` can say which one it was.

Each default, with its reason:

* TLS 1.2 is the floor (RFC 8996). Presets: ``default`` (1.2-1.3, Mozilla intermediate suites),
  ``tls12`` (1.2 only, for partners such as seed 004's that pin it), ``tls13`` (1.3 only), and
  ``fapi`` (FAPI 2.0 Security Profile section 5.2.1 / FAPI 1.0 Advanced 8.5: TLS 1.2 limited to
  its four permitted suites, or TLS 1.3).
* The partner's certificate is always verified against the system store or the route's CA
  bundle, and its name checked (``TlsPipe.client``); ``verify=False`` exists only for routes that
  switched verification off for a non-production environment. With a CA bundle, a certificate in
  it may end the chain (``PARTIAL_CHAIN``): the bundle is what the partner told you to trust,
  intermediate or root.
* ALPN offers ``http/1.1`` only, so a partner that prefers HTTP/2 does not pick it.
* No compression (CRIME), no renegotiation, ``MODE_RELEASE_BUFFERS`` (idle pooled connections
  give their record buffers back).
"""

from __future__ import annotations

import enum
import ssl
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from OpenSSL import SSL, crypto

from mutls.pki.material import Material
from mutls.tls.context import TlsPolicy

__all__ = ["EgressTlsPreset", "SystemTrustUnavailable", "partner_client_context"]


class EgressTlsPreset(enum.StrEnum):
    DEFAULT = "default"
    TLS12 = "tls12"
    TLS13 = "tls13"
    FAPI = "fapi"

    @property
    def versions(self) -> tuple[int, int]:
        return {
            EgressTlsPreset.DEFAULT: (SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION),
            EgressTlsPreset.TLS12: (SSL.TLS1_2_VERSION, SSL.TLS1_2_VERSION),
            EgressTlsPreset.TLS13: (SSL.TLS1_3_VERSION, SSL.TLS1_3_VERSION),
            EgressTlsPreset.FAPI: (SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION),
        }[self]

    @property
    def describe(self) -> str:
        return {
            EgressTlsPreset.DEFAULT: "TLS 1.2-1.3, Mozilla intermediate cipher suites",
            EgressTlsPreset.TLS12: "TLS 1.2 only",
            EgressTlsPreset.TLS13: "TLS 1.3 only",
            EgressTlsPreset.FAPI: "FAPI: TLS 1.3, or TLS 1.2 with its four permitted suites",
        }[self]

    def stdlib_policy(self) -> TlsPolicy:
        """The same version bounds for a stdlib ``ssl`` context (the OAuth2 token client)."""
        low, high = self.versions
        names = {
            SSL.TLS1_2_VERSION: ssl.TLSVersion.TLSv1_2,
            SSL.TLS1_3_VERSION: ssl.TLSVersion.TLSv1_3,
        }
        return TlsPolicy(minimum_version=names[low], maximum_version=names[high])

    @property
    def tls12_ciphers(self) -> str:
        return _FAPI_TLS12 if self is EgressTlsPreset.FAPI else _INTERMEDIATE_TLS12


_INTERMEDIATE_TLS12 = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)
# FAPI 2.0 Security Profile 5.2.1 (and FAPI 1.0 Advanced 8.5): with TLS 1.2 only these four.
_FAPI_TLS12 = (
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"
)
_TLS13_SUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"


class SystemTrustUnavailable(RuntimeError):
    """This machine has no CA store that OpenSSL can read (no ca-certificates package)."""


def _system_locations() -> tuple[str | None, str | None]:
    """The system CA file and directory, as the stdlib's OpenSSL knows them. The OpenSSL in the
    ``cryptography`` wheel was built elsewhere and looks in other places."""
    paths = ssl.get_default_verify_paths()
    cafile = paths.cafile if paths.cafile and Path(paths.cafile).is_file() else None
    capath = paths.capath if paths.capath and Path(paths.capath).is_dir() else None
    if cafile is None and capath is None:
        for candidate in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"):
            if Path(candidate).is_file():
                return candidate, None
    return cafile, capath


def partner_client_context(
    identity: Material | None,
    *,
    cas: Sequence[x509.Certificate] = (),
    preset: EgressTlsPreset = EgressTlsPreset.DEFAULT,
    verify: bool = True,
) -> SSL.Context:
    """A client context presenting ``identity`` (if any) and verifying the partner against
    ``cas`` (the system store when empty) unless ``verify`` is False."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    low, high = preset.versions
    context.set_min_proto_version(low)
    context.set_max_proto_version(high)
    context.set_cipher_list(preset.tls12_ciphers.encode("ascii"))
    context.set_tls13_ciphersuites(_TLS13_SUITES.encode("ascii"))
    options = SSL.OP_NO_COMPRESSION | getattr(SSL, "OP_NO_RENEGOTIATION", 0)
    context.set_options(options)
    context.set_mode(SSL.MODE_RELEASE_BUFFERS)
    context.set_alpn_protos([b"http/1.1"])
    if identity is not None:
        leaf, key = identity.require_identity()
        context.use_certificate(leaf)
        for intermediate in identity.chain[1:]:
            context.add_extra_chain_cert(intermediate)
        context.use_privatekey(key)
        context.check_privatekey()
    if not verify:
        context.set_verify(SSL.VERIFY_NONE)
        return context
    if cas:
        store = context.get_cert_store()
        assert store is not None
        for ca in cas:
            store.add_cert(crypto.X509.from_cryptography(ca))
        store.set_flags(crypto.X509StoreFlags.PARTIAL_CHAIN)
    else:
        cafile, capath = _system_locations()
        if cafile is None and capath is None:
            raise SystemTrustUnavailable(
                "no system CA store found (install the ca-certificates package), and the route "
                "names no ca_bundle_secret"
            )
        context.load_verify_locations(cafile, capath)
    context.set_verify(SSL.VERIFY_PEER)
    context.set_verify_depth(8)
    return context
