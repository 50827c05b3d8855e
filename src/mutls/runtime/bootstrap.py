"""First start and every start: make the data directory whole, then hand back a Platform.

On an empty data directory this creates, in order: the directory (0700), the master key file
(0600), the database schema, the platform CA (an offline CA whose key passphrase is a random
value kept in the vault, so the CA key is protected by the master key like every other secret),
and the first admin token, written once to ``<data dir>/admin-token`` (0600). On later starts it
only applies pending migrations and checks that the master key matches the database.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Role
from mutls.accounts.service import create_token
from mutls.ca.issuer import CA_PASSPHRASE_SECRET, register_platform_ca
from mutls.ca.issuer import platform_ca_passphrase as _ca_passphrase
from mutls.ca.offline import OfflineCA
from mutls.config import Settings
from mutls.errors import CANotInitialized, SecretNotFound
from mutls.files import PRIVATE, write_atomic
from mutls.runtime.platform import Clock, Platform, utc_now
from mutls.store.migrate import upgrade
from mutls.store.models import ApiToken
from mutls.vault.masterkeys import ensure_registered
from mutls.vault.secrets import create_secret

__all__ = ["CA_PASSPHRASE_SECRET", "BootstrapReport", "bootstrap", "platform_ca_passphrase"]

PLATFORM_CA_NAME = "mutls Platform Root CA"


@dataclass(kw_only=True)
class BootstrapReport:
    """What this start did; ``admin_token`` is set only when the first token was just made."""

    created: list[str] = field(default_factory=list)
    migrated_from: str | None = None
    migrated_to: str | None = None
    admin_token: str | None = field(default=None, repr=False)


def bootstrap(settings: Settings, *, clock: Clock = utc_now) -> tuple[Platform, BootstrapReport]:
    report = BootstrapReport()
    data_dir = settings.data_dir
    if not data_dir.exists():
        data_dir.mkdir(parents=True, mode=0o700)
        report.created.append(f"data directory {data_dir}")
    platform = Platform.from_settings(settings, clock=clock)
    try:
        if not platform.keys.exists():
            platform.keys.create()
            report.created.append(f"master key {platform.keys.description} (mode 0600)")
        before, after = upgrade(platform.db)
        if before != after:
            report.migrated_from, report.migrated_to = before, after
        ensure_registered(platform.db, platform.keys, now=clock())
        if _ensure_platform_ca(platform):
            report.created.append(f"platform CA in {settings.ca_dir}")
        register_platform_ca(platform.db, settings.ca_dir, now=clock())
        report.admin_token = _ensure_first_admin(platform)
        if report.admin_token:
            report.created.append(f"first admin token in {settings.admin_token_file} (mode 0600)")
    except BaseException:
        platform.close()
        raise
    return platform, report


def platform_ca_passphrase(platform: Platform, *, purpose: str) -> bytes:
    """The platform CA key's passphrase, from the vault (audited as a secret access)."""
    return _ca_passphrase(platform.db, platform.keys, purpose=purpose, now=platform.clock())


def _ensure_platform_ca(platform: Platform) -> bool:
    ca_dir = platform.settings.ca_dir
    if (ca_dir / "ca.json").exists():
        return False
    try:
        passphrase = platform_ca_passphrase(platform, purpose="platform CA init (resumed)")
    except SecretNotFound:
        passphrase = secrets.token_urlsafe(32).encode()
        create_secret(
            platform.db,
            platform.keys,
            Principal.system("system:bootstrap"),
            name=CA_PASSPHRASE_SECRET,
            secret_type="string",
            values={"production": {"value": passphrase.decode()}},
            description="passphrase of the platform CA's private keys",
            internal=True,
            now=platform.clock(),
        )
    ca_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    OfflineCA.init(
        ca_dir,
        name=PLATFORM_CA_NAME,
        organization="mutls",
        passphrase=passphrase,
        intermediate=True,
        now=platform.clock(),
    )
    return True


def open_platform_ca(platform: Platform) -> OfflineCA:
    try:
        return OfflineCA.open(platform.settings.ca_dir)
    except CANotInitialized:
        raise CANotInitialized(
            f"expected the platform CA in {platform.settings.ca_dir}; it is missing",
            hint="run `mutls up` once to create it",
        ) from None


def _ensure_first_admin(platform: Platform) -> str | None:
    """Make the first admin token when the platform has no token at all."""
    with platform.db.read() as session:
        count = session.execute(select(func.count()).select_from(ApiToken)).scalar_one()
    if count:
        return None
    issued = create_token(
        platform.db,
        Principal.system("system:bootstrap"),
        name="first admin (created by mutls up)",
        role=Role.ADMIN.value,
        now=platform.clock(),
    )
    path: Path = platform.settings.admin_token_file
    write_atomic(path, (issued.token + "\n").encode(), mode=PRIVATE)
    return issued.token
