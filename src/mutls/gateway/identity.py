"""The gateway's own server certificate: uploaded files, or issued by the platform CA.

Uploaded files (``MUTLS_GATEWAY_CERT_FILE`` / ``MUTLS_GATEWAY_KEY_FILE``) are watched: when either
changes on disk (or on SIGHUP), each worker loads the pair, checks the key matches, and builds new
TLS contexts. New handshakes get the new certificate; open connections keep theirs, so replacing a
certificate drops nothing. A pair that fails to load keeps the old one in service (logged).

An issued certificate (no files) is issued at start and again by each worker at two thirds of its
life (``MUTLS_SERVER_CERT_DAYS``, 90 by default), the same way: a gateway that runs for months
never serves an expired certificate. A failed issuance keeps the current one and is retried.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from mutls.ca.server_identity import renewal_time
from mutls.errors import InvalidArgument, MissingPrivateKey
from mutls.pki.loader import load_material
from mutls.pki.material import Material

__all__ = ["ServerIdentity", "load_identity_files"]


def _stamp(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


def load_identity_files(cert_file: Path, key_file: Path) -> Material:
    """The certificate chain and its unencrypted key, checked to belong together."""
    try:
        data = cert_file.read_bytes() + b"\n" + key_file.read_bytes()
    except OSError as error:
        raise InvalidArgument(
            f"expected readable MUTLS_GATEWAY_CERT_FILE and MUTLS_GATEWAY_KEY_FILE; "
            f"{error.strerror or error}: {error.filename}"
        ) from None
    material = load_material(data)
    if material.leaf is None:
        raise InvalidArgument(f"expected a certificate in {cert_file}; found none")
    if material.key is None:
        raise MissingPrivateKey(f"expected a private key in {key_file}; found none")
    if material.key_matches is False:
        from mutls.errors import KeyMismatch  # noqa: PLC0415

        raise KeyMismatch(
            f"the key in {key_file} does not belong to the certificate in {cert_file}"
        )
    return material


Issue = Callable[[datetime], Material]
"""Issues a new server certificate at the given time (the platform CA's, for ``issued``)."""


@dataclass(frozen=True, kw_only=True)
class ServerIdentity:
    material: Material = field(repr=False)
    cert_file: Path | None = None
    key_file: Path | None = None
    stamps: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))
    _reload: list[bool] = field(default_factory=lambda: [False])
    issue: Issue | None = field(default=None, repr=False, compare=False)
    """For an issued certificate: how to issue the next one."""
    renew_at: datetime | None = None
    """For an issued certificate: when to issue the next one."""

    @classmethod
    def from_files(cls, cert_file: Path, key_file: Path) -> ServerIdentity:
        stamps = (_stamp(cert_file), _stamp(key_file))
        return cls(
            material=load_identity_files(cert_file, key_file),
            cert_file=cert_file,
            key_file=key_file,
            stamps=stamps,
        )

    @classmethod
    def issued(
        cls, material: Material, *, issue: Issue | None = None, now: datetime | None = None
    ) -> ServerIdentity:
        """A certificate issued at ``now``; with ``issue``, renewed at two thirds of its life."""
        renew_at = None
        if issue is not None and now is not None:
            renew_at = renewal_time(material, now)
        return cls(material=material, issue=issue, renew_at=renew_at)

    def renewal_due(self, now: datetime) -> bool:
        return self.renew_at is not None and now >= self.renew_at

    def renewed(self, now: datetime) -> ServerIdentity:
        """A newly issued certificate (blocking: it reads the CA and signs; run it in a thread)."""
        assert self.issue is not None
        return ServerIdentity.issued(self.issue(now), issue=self.issue, now=now)

    def request_reload(self) -> None:
        self._reload[0] = True

    def changed(self) -> bool:
        if self.cert_file is None or self.key_file is None:
            return False
        if self._reload[0]:
            return True
        return (_stamp(self.cert_file), _stamp(self.key_file)) != self.stamps

    def reload(self) -> ServerIdentity:
        assert self.cert_file is not None
        assert self.key_file is not None
        self._reload[0] = False
        stamps = (_stamp(self.cert_file), _stamp(self.key_file))
        try:
            material = load_identity_files(self.cert_file, self.key_file)
        except Exception:
            # Remember the stamps of the bad pair so it is not retried every second.
            object.__setattr__(self, "stamps", stamps)
            raise
        return replace(self, material=material, stamps=stamps, _reload=[False])
