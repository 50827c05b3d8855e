"""Chain building: who issued whom, and ordering a bag of certificates leaf first."""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from mutls.pki.authority import build_ca_certificate
from mutls.pki.chain import is_self_signed, issued_by, order_chain
from mutls.testing import Identity, TestCA


def test_issued_by_follows_the_signature(client: Identity, ca: TestCA) -> None:
    """A leaf is issued by its intermediate, the intermediate by the root, not the reverse."""
    assert ca.intermediate is not None
    assert issued_by(client.certificate, ca.intermediate)
    assert issued_by(ca.intermediate, ca.root)
    assert not issued_by(ca.intermediate, client.certificate)
    assert not issued_by(client.certificate, ca.root)


def test_same_name_other_key_is_not_the_issuer(client: Identity, ca: TestCA, now: datetime) -> None:
    """A re-keyed CA with the same name did not issue certificates signed by the old key."""
    assert ca.intermediate is not None
    new_key = ec.generate_private_key(ec.SECP256R1())
    rekeyed = build_ca_certificate(
        subject=ca.intermediate.subject,
        public_key=new_key.public_key(),
        signing_key=ca.root_key,
        issuer=ca.root,
        now=now,
        validity=timedelta(days=30),
        path_length=0,
    )
    assert client.certificate.issuer == rekeyed.subject
    assert not issued_by(client.certificate, rekeyed)


def test_is_self_signed(client: Identity, ca: TestCA) -> None:
    """Only the root is self-signed."""
    assert ca.intermediate is not None
    assert is_self_signed(ca.root)
    assert not is_self_signed(ca.intermediate)
    assert not is_self_signed(client.certificate)


def test_order_chain_in_order(client: Identity, ca: TestCA) -> None:
    """A chain already leaf first is kept and not marked reordered."""
    assert ca.intermediate is not None
    ordered = order_chain([client.certificate, ca.intermediate, ca.root])
    assert ordered.leaf == client.certificate
    assert ordered.chain == (client.certificate, ca.intermediate, ca.root)
    assert ordered.extras == ()
    assert not ordered.reordered


def test_order_chain_reversed_without_key(client: Identity, ca: TestCA) -> None:
    """Without a key the leaf is the certificate that issued none of the others."""
    assert ca.intermediate is not None
    ordered = order_chain([ca.root, ca.intermediate, client.certificate])
    assert ordered.leaf == client.certificate
    assert ordered.chain == (client.certificate, ca.intermediate, ca.root)
    assert ordered.reordered


def test_order_chain_key_picks_the_leaf(client: Identity, ca: TestCA) -> None:
    """With a key, the certificate matching it is the leaf even if another looks like one."""
    assert ca.intermediate is not None
    ordered = order_chain([ca.root, ca.intermediate], key=ca.issuer_key)
    assert ordered.leaf == ca.intermediate
    assert ordered.chain == (ca.intermediate, ca.root)
    assert ordered.reordered


def test_order_chain_extras(client: Identity, other_ca: TestCA) -> None:
    """Certificates off the leaf's chain are returned as extras."""
    ordered = order_chain([client.certificate, other_ca.root], key=client.key)
    assert ordered.chain == (client.certificate,)
    assert ordered.extras == (other_ca.root,)


def test_order_chain_missing_middle(client: Identity, ca: TestCA) -> None:
    """Leaf and root without the intermediate: the walk stops at the leaf; the root is extra."""
    ordered = order_chain([client.certificate, ca.root])
    assert ordered.leaf == client.certificate
    assert ordered.chain == (client.certificate,)
    assert ordered.extras == (ca.root,)


def test_order_chain_single(client: Identity) -> None:
    """One certificate is its own chain."""
    ordered = order_chain([client.certificate])
    assert ordered.chain == (client.certificate,)
    assert not ordered.reordered


def test_order_chain_duplicate_certificate(client: Identity, ca: TestCA) -> None:
    """The same intermediate twice is used once; the copy is an extra, and nothing loops."""
    assert ca.intermediate is not None
    copy = x509.load_der_x509_certificate(ca.intermediate.public_bytes(Encoding.DER))
    ordered = order_chain([client.certificate, ca.intermediate, copy])
    assert ordered.chain == (client.certificate, ca.intermediate)
    assert len(ordered.extras) == 1
