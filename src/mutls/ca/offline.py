"""An offline CA kept in a directory: seed 004's OpenSSL tutorial as one object.

Layout of the directory (everything public is 0644, every key 0600 and encrypted)::

    ca.json               settings: validity, URLs, which certificate issues
    root.pem              the root CA certificate
    root.key.pem          its key, encrypted PKCS#8 (AES-256-CBC, PBKDF2) under the CA passphrase
    intermediate.pem      with --intermediate: the issuing CA, signed by the root
    intermediate.key.pem  its key, encrypted under the same passphrase
    chain.pem             the issuing CA's chain, issuing CA first, root last
    issued/SERIAL.pem     every certificate issued
    index.json            what was issued, and what was revoked, when and why
    crl.pem               the latest CRL (``mutls ca crl``)

Every change takes an exclusive lock on the directory and rewrites files atomically, so two
``mutls ca sign`` runs never hand out the same state and a crash never leaves a torn index.
The clock is an argument: ``now`` comes from the caller.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from mutls.errors import (
    AlreadyRevoked,
    CAAlreadyExists,
    CANotInitialized,
    InvalidArgument,
    SerialNotFound,
    UnsupportedFormat,
    WeakKey,
)
from mutls.files import PRIVATE, PUBLIC, write_atomic
from mutls.pki.authority import (
    IssuerUrls,
    Profile,
    RevocationReason,
    RevokedEntry,
    build_ca_certificate,
    build_crl,
    require_ca,
    sign_csr,
)
from mutls.pki.export import private_key_pem
from mutls.pki.inspect import name_to_text, serial_hex, sha256_fingerprint
from mutls.pki.keys import KeySpec, SigningKey, generate_key, key_weakness
from mutls.pki.loader import load_material
from mutls.policy.issuance import DEFAULT_RULES, SERVER_RULES, IssuanceRequest, check_request

__all__ = ["IssuedRecord", "OfflineCA", "OfflineCAConfig"]

_CONFIG = "ca.json"
_INDEX = "index.json"
MIN_PASSPHRASE = 8


@dataclass(frozen=True, kw_only=True)
class OfflineCAConfig:
    """Settings kept in ``ca.json``. Bounded defaults: a client certificate lives a year."""

    name: str
    issuer: str = "root"  # "root" or "intermediate": which certificate signs leaves
    default_validity_days: int = 365
    max_validity_days: int = 825
    crl_days: int = 7
    crl_url: str | None = None
    ocsp_url: str | None = None
    ca_issuers_url: str | None = None
    crl_number: int = 0

    @property
    def urls(self) -> IssuerUrls:
        return IssuerUrls(crl=self.crl_url, ocsp=self.ocsp_url, ca_issuers=self.ca_issuers_url)


@dataclass(frozen=True, kw_only=True)
class IssuedRecord:
    serial: str
    subject: str
    profile: str
    not_before: str
    not_after: str
    sha256_fingerprint: str
    revoked_at: str | None = None
    reason: str | None = None

    def status(self, now: datetime) -> str:
        if self.revoked_at:
            return "revoked"
        if datetime.fromisoformat(self.not_after) <= now:
            return "expired"
        return "live"

    def to_dict(self, now: datetime) -> dict[str, object]:
        data: dict[str, object] = dict(asdict(self))
        data["status"] = self.status(now)
        return data


@dataclass
class _Index:
    records: list[IssuedRecord] = field(default_factory=list)

    def find(self, serial: str) -> IssuedRecord:
        wanted = _normalise_serial(serial)
        for record in self.records:
            if record.serial == wanted:
                return record
        raise SerialNotFound(f"expected a serial this CA issued; {wanted} is not among them")


def _normalise_serial(serial: str) -> str:
    text = serial.strip().replace(":", "").upper().removeprefix("0X")
    try:
        return serial_hex(int(text, 16))
    except ValueError:
        raise InvalidArgument(
            f"expected a hexadecimal serial number such as 1A2B; found {serial!r}"
        ) from None


class OfflineCA:
    """A CA in a directory. Create with :meth:`init`, open with :meth:`open`."""

    def __init__(self, directory: Path, config: OfflineCAConfig) -> None:
        self.directory = directory
        self.config = config

    # --- creation -------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        directory: Path,
        *,
        name: str,
        passphrase: bytes,
        now: datetime,
        organization: str | None = None,
        country: str | None = None,
        key_spec: KeySpec = KeySpec.EC_P384,
        intermediate: bool = False,
        root_validity_days: int = 3650,
        intermediate_validity_days: int = 1825,
        default_validity_days: int = 365,
        max_validity_days: int = 825,
        urls: IssuerUrls | None = None,
    ) -> OfflineCA:
        directory = Path(directory)
        if (directory / _CONFIG).exists():
            raise CAAlreadyExists(f"expected an empty directory; {directory} already holds a CA")
        if len(passphrase) < MIN_PASSPHRASE:
            raise InvalidArgument(
                f"expected a CA passphrase of at least {MIN_PASSPHRASE} characters; "
                f"found {len(passphrase)}",
                hint="the CA key is the most valuable secret here; use a long passphrase",
            )
        if not 1 <= default_validity_days <= max_validity_days:
            raise InvalidArgument(
                f"expected 1 <= default validity <= maximum validity; found "
                f"{default_validity_days} and {max_validity_days} days"
            )
        urls = urls or IssuerUrls()
        attributes = []
        try:
            if country:
                attributes.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country))
            if organization:
                attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
            root_name = x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, name)])
            issuing_name = x509.Name(
                [*attributes, x509.NameAttribute(NameOID.COMMON_NAME, f"{name} Issuing CA")]
            )
        except ValueError as exc:
            raise InvalidArgument(f"the CA name is not valid: {exc}") from None
        root_key = generate_key(key_spec)
        root = build_ca_certificate(
            subject=root_name,
            public_key=root_key.public_key(),
            signing_key=root_key,
            issuer=None,
            now=now,
            validity=timedelta(days=root_validity_days),
            path_length=1 if intermediate else 0,
        )
        files: dict[str, tuple[bytes, int]] = {
            "root.pem": (root.public_bytes(serialization.Encoding.PEM), PUBLIC),
            "root.key.pem": (private_key_pem(root_key, passphrase), PRIVATE),
        }
        chain = [root]
        if intermediate:
            key = generate_key(key_spec)
            inter = build_ca_certificate(
                subject=issuing_name,
                public_key=key.public_key(),
                signing_key=root_key,
                issuer=root,
                now=now,
                validity=timedelta(days=intermediate_validity_days),
                path_length=0,
                urls=IssuerUrls(crl=None, ocsp=None, ca_issuers=None),
            )
            files["intermediate.pem"] = (inter.public_bytes(serialization.Encoding.PEM), PUBLIC)
            files["intermediate.key.pem"] = (private_key_pem(key, passphrase), PRIVATE)
            chain.insert(0, inter)
        files["chain.pem"] = (
            b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain),
            PUBLIC,
        )
        config = OfflineCAConfig(
            name=name,
            issuer="intermediate" if intermediate else "root",
            default_validity_days=default_validity_days,
            max_validity_days=max_validity_days,
            crl_url=urls.crl,
            ocsp_url=urls.ocsp,
            ca_issuers_url=urls.ca_issuers,
        )
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        (directory / "issued").mkdir(exist_ok=True)
        for filename, (data, mode) in files.items():
            write_atomic(directory / filename, data, mode=mode)
        ca = cls(directory, config)
        ca._save_index(_Index())
        # ca.json last: its presence is what marks the directory as a complete CA.
        ca._save_config(config)
        return ca

    @classmethod
    def open(cls, directory: Path) -> OfflineCA:
        directory = Path(directory)
        path = directory / _CONFIG
        if not path.is_file():
            raise CANotInitialized(f"expected a CA in {directory}; there is no {_CONFIG} there")
        try:
            raw = json.loads(path.read_text())
            config = OfflineCAConfig(**raw)
        except (ValueError, TypeError) as exc:
            raise CANotInitialized(f"{path} is damaged: {exc}") from None
        return cls(directory, config)

    # --- reading ---------------------------------------------------------------------------

    @property
    def issuer_stem(self) -> str:
        return self.config.issuer

    def issuer_certificate(self) -> x509.Certificate:
        return _read_cert(self.directory / f"{self.issuer_stem}.pem")

    def root_certificate(self) -> x509.Certificate:
        return _read_cert(self.directory / "root.pem")

    def chain(self) -> list[x509.Certificate]:
        """The issuing CA first, the root last."""
        certs = [self.issuer_certificate()]
        if self.issuer_stem != "root":
            certs.append(self.root_certificate())
        return certs

    def records(self) -> list[IssuedRecord]:
        return self._load_index().records

    def issuer_key(self, passphrase: bytes) -> SigningKey:
        data = (self.directory / f"{self.issuer_stem}.key.pem").read_bytes()
        return load_material(data, passphrase).require_key()

    # --- changes -------------------------------------------------------------------------

    def sign(
        self,
        csr_data: bytes,
        *,
        passphrase: bytes,
        now: datetime,
        profile: Profile = Profile.CLIENT,
        validity_days: int | None = None,
    ) -> x509.Certificate:
        """Issue a certificate for a CSR after every policy rule passes."""
        material = load_material(csr_data)
        if material.csr is None:
            raise UnsupportedFormat(
                "expected a certificate signing request (CSR); the input holds none",
                hint="create one with `mutls csr new` or `openssl req -new`",
            )
        csr = material.csr
        days = validity_days if validity_days is not None else self.config.default_validity_days
        check_request(
            IssuanceRequest(
                csr=csr,
                validity=timedelta(days=days),
                max_validity=timedelta(days=self.config.max_validity_days),
            ),
            SERVER_RULES if profile is Profile.SERVER else DEFAULT_RULES,
        )
        with self._locked():
            key = self.issuer_key(passphrase)
            issuer = self.issuer_certificate()
            cert = sign_csr(
                csr,
                issuer=issuer,
                issuer_key=key,
                profile=profile,
                now=now,
                validity=timedelta(days=days),
                urls=self.config.urls,
            )
            serial = serial_hex(cert.serial_number)
            write_atomic(
                self.directory / "issued" / f"{serial}.pem",
                cert.public_bytes(serialization.Encoding.PEM),
            )
            index = self._load_index()
            index.records.append(
                IssuedRecord(
                    serial=serial,
                    subject=name_to_text(cert.subject),
                    profile=profile.value,
                    not_before=cert.not_valid_before_utc.isoformat(),
                    not_after=cert.not_valid_after_utc.isoformat(),
                    sha256_fingerprint=sha256_fingerprint(cert),
                )
            )
            self._save_index(index)
        return cert

    def revoke(
        self, serial: str, *, now: datetime, reason: RevocationReason = RevocationReason.UNSPECIFIED
    ) -> IssuedRecord:
        with self._locked():
            index = self._load_index()
            record = index.find(serial)
            if record.revoked_at:
                raise AlreadyRevoked(
                    f"certificate {record.serial} was already revoked on {record.revoked_at}"
                )
            updated = IssuedRecord(
                **{**asdict(record), "revoked_at": now.isoformat(), "reason": reason.value}
            )
            index.records[index.records.index(record)] = updated
            self._save_index(index)
        return updated

    def crl(self, *, passphrase: bytes, now: datetime) -> x509.CertificateRevocationList:
        """A new CRL with the next CRL number, written to ``crl.pem`` and returned."""
        with self._locked():
            key = self.issuer_key(passphrase)
            revoked = [
                RevokedEntry(
                    serial=int(r.serial, 16),
                    revoked_at=datetime.fromisoformat(r.revoked_at),
                    reason=RevocationReason(r.reason or "unspecified"),
                )
                for r in self._load_index().records
                if r.revoked_at
            ]
            number = self.config.crl_number + 1
            crl = build_crl(
                issuer=self.issuer_certificate(),
                issuer_key=key,
                revoked=revoked,
                now=now,
                next_update=timedelta(days=self.config.crl_days),
                crl_number=number,
            )
            write_atomic(self.directory / "crl.pem", crl.public_bytes(serialization.Encoding.PEM))
            self.config = OfflineCAConfig(**{**asdict(self.config), "crl_number": number})
            self._save_config(self.config)
        return crl

    # --- storage -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.directory / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _load_index(self) -> _Index:
        try:
            raw = json.loads((self.directory / _INDEX).read_text())
            return _Index(records=[IssuedRecord(**r) for r in raw["issued"]])
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise CANotInitialized(
                f"the CA index {self.directory / _INDEX} is damaged: {exc}"
            ) from None

    def _save_index(self, index: _Index) -> None:
        data = {"issued": [asdict(r) for r in index.records]}
        write_atomic(self.directory / _INDEX, json.dumps(data, indent=2).encode() + b"\n")

    def _save_config(self, config: OfflineCAConfig) -> None:
        write_atomic(
            self.directory / _CONFIG, json.dumps(asdict(config), indent=2).encode() + b"\n"
        )


def _read_cert(path: Path) -> x509.Certificate:
    try:
        cert = load_material(path.read_bytes()).require_certificate()
    except FileNotFoundError:
        raise CANotInitialized(f"the CA directory is incomplete: {path} is missing") from None
    weakness = key_weakness(cert.public_key())
    if weakness:
        raise WeakKey(f"the CA certificate {path} has a weak key: {weakness}")
    require_ca(cert)
    return cert
