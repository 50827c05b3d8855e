"""The platform's issuing CA as the online services use it: registered in the store, key in memory.

The platform CA is the offline CA directory made at first start (``<data dir>/ca``); its key
passphrase is an internal vault secret. Decrypting the CA key costs a key derivation, so it is
done once per process and the signing key is kept in memory (never on disk in clear, never in a
log) by :class:`IssuerCache`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from mutls.accounts.principal import Principal
from mutls.audit.log import record
from mutls.ca.offline import OfflineCA
from mutls.pki.inspect import name_to_text, sha256_fingerprint
from mutls.pki.keys import SigningKey
from mutls.store.database import Database
from mutls.store.ids import new_id
from mutls.store.models import CertificateAuthority
from mutls.vault.keysource import KeySource
from mutls.vault.secrets import reveal_secret

__all__ = [
    "CA_PASSPHRASE_SECRET",
    "PLATFORM_CA",
    "IssuerCache",
    "IssuingCA",
    "platform_ca_passphrase",
    "register_platform_ca",
]

CA_PASSPHRASE_SECRET = "platform-ca-passphrase"
PLATFORM_CA = "platform"
"""The name of the platform CA's row (and of its ``/ca/{name}/...`` endpoints)."""


@dataclass(frozen=True, kw_only=True)
class IssuingCA:
    """A CA ready to sign: its row id, certificate, chain above it, and private key."""

    ca_id: str
    name: str
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    """The issuing certificate first, the root last."""
    key: SigningKey = field(repr=False)

    @property
    def root(self) -> x509.Certificate:
        return self.chain[-1]

    def chain_pem(self, *, include_root: bool = True) -> str:
        certs = self.chain if include_root else self.chain[:-1]
        return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def platform_ca_passphrase(db: Database, keys: KeySource, *, purpose: str, now: datetime) -> bytes:
    """The platform CA key's passphrase, from the vault (audited as a secret access)."""
    revealed = reveal_secret(
        db,
        keys,
        Principal.system("system:ca"),
        CA_PASSPHRASE_SECRET,
        "production",
        purpose=purpose,
        now=now,
        internal=True,
    )
    value = revealed.fields["value"]
    assert isinstance(value, str)
    return value.encode()


def register_platform_ca(db: Database, ca_dir: Path, *, now: datetime) -> str:
    """Make sure the platform CA has its row; returns the row id. Idempotent."""
    offline = OfflineCA.open(ca_dir)
    chain = offline.chain()
    issuing = chain[0]
    fingerprint = sha256_fingerprint(issuing)
    with db.write() as session:
        existing = session.execute(
            select(CertificateAuthority).where(CertificateAuthority.name == PLATFORM_CA)
        ).scalar()
        if existing is not None:
            return existing.id
        row = CertificateAuthority(
            id=new_id("ca"),
            name=PLATFORM_CA,
            kind="platform",
            account_id=None,
            chain_pem="".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain),
            subject=name_to_text(issuing.subject),
            fingerprint_sha256=fingerprint,
            not_after=issuing.not_valid_after_utc,
            subject_patterns=[],
            crl_number=0,
            created_at=now,
            created_by="system:bootstrap",
        )
        session.add(row)
        session.flush()
        record(
            session,
            principal=Principal.system("system:bootstrap"),
            action="ca.register",
            resource_type="ca",
            resource_id=row.id,
            details={"name": PLATFORM_CA, "kind": "platform", "fingerprint": fingerprint},
            now=now,
        )
        return row.id


class IssuerCache:
    """Loads the platform issuing CA once per process (thread-safe) and hands it out."""

    def __init__(self, db: Database, keys: KeySource, ca_dir: Path) -> None:
        self._db, self._keys, self._ca_dir = db, keys, ca_dir
        self._lock = threading.Lock()
        self._issuer: IssuingCA | None = None

    def platform(self, *, now: datetime) -> IssuingCA:
        with self._lock:
            if self._issuer is None:
                offline = OfflineCA.open(self._ca_dir)
                passphrase = platform_ca_passphrase(
                    self._db, self._keys, purpose="load the platform issuing CA", now=now
                )
                key = offline.issuer_key(passphrase)
                ca_id = register_platform_ca(self._db, self._ca_dir, now=now)
                chain = tuple(offline.chain())
                self._issuer = IssuingCA(
                    ca_id=ca_id, name=PLATFORM_CA, certificate=chain[0], chain=chain, key=key
                )
            return self._issuer
