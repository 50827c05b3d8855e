"""Who issued whom: ordering a bag of certificates into a chain, leaf first.

A certificate's issuer is the one whose subject equals its issuer name and whose key verifies its
signature. Names alone are not enough (re-keyed CAs keep their name), so the signature decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from mutls.pki.keys import SigningKey, public_key_sha256

__all__ = ["OrderedChain", "is_self_signed", "issued_by", "order_chain"]

_MAX_DEPTH = 16  # far beyond any real PKI; bounds the walk on hostile input


def issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer``'s key signed ``certificate`` and the names agree."""
    try:
        if certificate.issuer != issuer.subject:
            return False
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def is_self_signed(certificate: x509.Certificate) -> bool:
    return issued_by(certificate, certificate)


@dataclass(frozen=True, kw_only=True)
class OrderedChain:
    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # leaf first, then each issuer found in the input
    extras: tuple[x509.Certificate, ...]  # in the input but not on the leaf's chain
    reordered: bool  # True when the input order differed from ``chain``


def order_chain(
    certificates: Sequence[x509.Certificate], *, key: SigningKey | None = None
) -> OrderedChain:
    """Pick the leaf and follow issuers upward.

    The leaf is the certificate matching ``key`` if there is one; otherwise the certificate that
    issued none of the others (the end of the chain), preferring the first in input order.
    """
    certs = list(certificates)
    leaf = _pick_leaf(certs, key)
    chain = [leaf]
    remaining = [c for c in certs if c is not leaf]
    current = leaf
    while remaining and len(chain) < _MAX_DEPTH and not is_self_signed(current):
        parent = next((c for c in remaining if issued_by(current, c)), None)
        if parent is None:
            break
        chain.append(parent)
        remaining.remove(parent)
        current = parent
    in_input_order = [c for c in certs if any(c is x for x in chain)]
    reordered = in_input_order != chain
    return OrderedChain(leaf=leaf, chain=tuple(chain), extras=tuple(remaining), reordered=reordered)


def _pick_leaf(certs: list[x509.Certificate], key: SigningKey | None) -> x509.Certificate:
    if key is not None:
        key_fp = public_key_sha256(key.public_key())
        for cert in certs:
            if public_key_sha256(cert.public_key()) == key_fp:
                return cert
    issuers = {
        id(parent)
        for child in certs
        for parent in certs
        if parent is not child and issued_by(child, parent)
    }
    candidates = [c for c in certs if id(c) not in issuers]
    return candidates[0] if candidates else certs[0]
