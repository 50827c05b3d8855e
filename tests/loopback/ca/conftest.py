"""A platform CA row and its signing material, from each module's own ``test_ca``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization

from mutls.ca.issuer import IssuingCA
from mutls.store.database import Database
from mutls.store.ids import new_id
from mutls.store.models import CertificateAuthority
from mutls.testing import TestCA


@pytest.fixture
def issuer(db: Database, test_ca: TestCA) -> IssuingCA:
    """The module's ``test_ca`` registered as the platform CA, ready to sign."""
    chain = (test_ca.issuer, test_ca.root)
    row = CertificateAuthority(
        id=new_id("ca"),
        name="platform",
        kind="platform",
        account_id=None,
        chain_pem="".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain),
        subject="test",
        fingerprint_sha256="00",
        not_after=test_ca.issuer.not_valid_after_utc,
        subject_patterns=[],
        crl_number=0,
        created_at=datetime.now(UTC),
        created_by="test",
    )
    with db.write() as session:
        session.add(row)
    return IssuingCA(
        ca_id=row.id,
        name="platform",
        certificate=test_ca.issuer,
        chain=chain,
        key=test_ca.issuer_key,
    )
