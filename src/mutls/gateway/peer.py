"""The verified client certificate of a finished handshake, as a :class:`Peer` value.

Built once per connection (a few tens of microseconds: parse, hash, read EKU), and cached by the
leaf's DER for the next connection with the same certificate, so keep-alive and reconnecting
clients pay it once.
"""

from __future__ import annotations

import base64
import hashlib
from collections import OrderedDict
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from OpenSSL import SSL

from mutls.pki.inspect import leaf_names, name_to_text, serial_hex
from mutls.policy.snapshot import Peer

__all__ = ["PeerCache", "peer_headers", "peer_of"]


def _client_auth(leaf: x509.Certificate) -> bool:
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True  # RFC 5280 4.2.1.12: no EKU, no restriction
    return (
        ExtendedKeyUsageOID.CLIENT_AUTH in eku or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku
    )


def _build(leaf_der: bytes, verified: list[x509.Certificate], sent: list[bytes]) -> Peer:
    leaf = x509.load_der_x509_certificate(leaf_der)
    cas = verified[1:]
    windows = [leaf, *cas]
    return Peer(
        fingerprint=hashlib.sha256(leaf_der).digest(),
        serial=serial_hex(leaf.serial_number),
        subject=name_to_text(leaf.subject),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        chain_not_before=max(c.not_valid_before_utc for c in windows),
        chain_not_after=min(c.not_valid_after_utc for c in windows),
        client_auth=_client_auth(leaf),
        names=tuple(leaf_names(leaf)),
        ca_fingerprints=tuple(hashlib.sha256(c.public_bytes(Encoding.DER)).digest() for c in cas),
        der=leaf_der,
        chain_der=tuple(sent),
    )


def _path_by_names(
    leaf: x509.Certificate, connection: SSL.Connection, anchors: Sequence[x509.Certificate]
) -> list[x509.Certificate]:
    candidates = [*(connection.get_peer_cert_chain(as_cryptography=True) or ()), *anchors]
    path = [leaf]
    while len(path) < 9 and path[-1].issuer != path[-1].subject:
        issuer = next(
            (c for c in candidates if c.subject == path[-1].issuer and c not in path), None
        )
        if issuer is None:
            break
        path.append(issuer)
    return path


class PeerCache:
    """Peers by the DER of their leaf and what was sent with it; a bounded LRU."""

    def __init__(self, size: int = 4096, anchors: Sequence[x509.Certificate] = ()) -> None:
        self._size = size
        self._peers: OrderedDict[tuple[bytes, tuple[bytes, ...]], Peer] = OrderedDict()
        self._anchors = tuple(anchors)

    def clear(self, anchors: Sequence[x509.Certificate] | None = None) -> None:
        self._peers.clear()
        if anchors is not None:
            self._anchors = tuple(anchors)

    def get(self, connection: SSL.Connection) -> Peer | None:
        leaf = connection.get_peer_certificate(as_cryptography=True)
        if leaf is None:
            return None
        leaf_der = leaf.public_bytes(Encoding.DER)
        sent = [
            c.public_bytes(Encoding.DER)
            for c in connection.get_peer_cert_chain(as_cryptography=True) or ()
        ]
        sent = [der for der in sent if der != leaf_der]
        key = (leaf_der, tuple(sent))
        peer = self._peers.get(key)
        if peer is not None:
            self._peers.move_to_end(key)
            return peer
        verified = connection.get_verified_chain(as_cryptography=True)
        if not verified:
            # A resumed session keeps the peer's certificates but not the path OpenSSL built
            # when it verified them (in this worker, at the full handshake): rebuild it by
            # issuer names from what was sent and what the worker trusts.
            verified = _path_by_names(leaf, connection, self._anchors)
        peer = _build(leaf_der, list(verified), sent)
        self._peers[key] = peer
        if len(self._peers) > self._size:
            self._peers.popitem(last=False)
        return peer


def peer_of(connection: SSL.Connection) -> Peer | None:
    """The verified peer of ``connection``, uncached."""
    return PeerCache(size=1).get(connection)


def _sf_binary(der: bytes) -> bytes:
    """An RFC 8941 Byte Sequence: ``:base64:``."""
    return b":" + base64.b64encode(der) + b":"


def peer_headers(peer: Peer) -> tuple[bytes, bytes]:
    """RFC 9440 ``Client-Cert`` and ``Client-Cert-Chain`` values (without names)."""
    return _sf_binary(peer.der), b", ".join(_sf_binary(d) for d in peer.chain_der)
