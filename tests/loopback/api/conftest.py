"""The ``api`` fixture: the admin API app over a real database, driven through a TestClient.

Tokens for each role are minted directly through the services (as ``Principal.system("test")``),
so a test of one endpoint does not depend on the token endpoints working.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

from mutls.accounts import service
from mutls.accounts.principal import Principal
from mutls.api.app import create_app
from mutls.ca.issuer import CA_PASSPHRASE_SECRET, register_platform_ca
from mutls.ca.offline import OfflineCA
from mutls.config import Settings
from mutls.runtime.bootstrap import PLATFORM_CA_NAME
from mutls.runtime.platform import Platform
from mutls.store.database import Database
from mutls.testing import Identity, TestCA
from mutls.vault.keysource import KeySource
from mutls.vault.masterkeys import ensure_registered
from mutls.vault.secrets import create_secret
from tests.secretscan import register_secret

with warnings.catch_warnings():
    # Starlette 1.x prefers the httpx2 package for its TestClient and warns, once at import,
    # when it falls back to httpx (which the project depends on). The client works the same.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

__all__ = ["Api", "TestClient"]

SYSTEM = Principal.system("test")
CA_PASSPHRASE = "api-tests-platform-ca-passphrase-7Qw"


@dataclass(kw_only=True)
class Api:
    """The app under test, its client, and shortcuts to set up state through the services."""

    app: FastAPI
    client: TestClient
    platform: Platform
    tokens: dict[tuple[str, str | None], str] = field(default_factory=dict)

    @property
    def db(self) -> Database:
        return self.platform.db

    def now(self) -> datetime:
        return self.platform.clock()

    def token(self, role: str = "admin", account_id: str | None = None) -> str:
        """A token of ``role`` (scoped to ``account_id``), minted once per test and cached."""
        key = (role, account_id)
        if key not in self.tokens:
            issued = service.create_token(
                self.db,
                SYSTEM,
                name=f"{role} test token",
                role=role,
                account_id=account_id,
                now=self.now(),
            )
            register_secret(issued.token)
            self.tokens[key] = issued.token
        return self.tokens[key]

    def auth(self, role: str = "admin", account_id: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, account_id)}"}

    def account(self, name: str) -> str:
        return service.create_account(
            self.db, SYSTEM, name=name, display_name=None, now=self.now()
        ).id

    def call(
        self,
        method: str,
        path: str,
        *,
        role: str | None = "admin",
        account_id: str | None = None,
        **kw: Any,
    ) -> Any:
        headers = dict(kw.pop("headers", {}))
        if role is not None:
            headers.update(self.auth(role, account_id))
        return self.client.request(method, path, headers=headers, **kw)


@pytest.fixture
def api(db: Database, key_source: KeySource, tmp_path: Path) -> Iterator[Api]:
    platform = Platform(settings=Settings(data_dir=tmp_path), db=db, keys=key_source)
    ensure_registered(db, key_source, now=platform.clock())
    app = create_app(platform)
    with TestClient(app) as client:
        yield Api(app=app, client=client, platform=platform)


@pytest.fixture(scope="session")
def ca() -> TestCA:
    return TestCA(now=datetime.now(UTC))


@pytest.fixture(scope="session")
def identity(ca: TestCA) -> Identity:
    """A client certificate valid for a year, with its chain and key."""
    return ca.issue("partner-client.example.com")


@pytest.fixture(scope="session")
def platform_ca_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The offline platform CA as `mutls up` makes it (root and intermediate), made once."""
    register_secret(CA_PASSPHRASE)
    directory = tmp_path_factory.mktemp("platform-ca") / "ca"
    directory.mkdir(mode=0o700)
    OfflineCA.init(
        directory,
        name=PLATFORM_CA_NAME,
        organization="mutls",
        passphrase=CA_PASSPHRASE.encode(),
        intermediate=True,
        now=datetime.now(UTC),
    )
    return directory


@pytest.fixture
def platform_ca(api: Api, platform_ca_template: Path) -> Path:
    """The api's platform gets the platform CA the way bootstrap sets it up: the CA directory,
    its key passphrase as an internal vault secret, and its registered row."""
    ca_dir = api.platform.settings.ca_dir
    shutil.copytree(platform_ca_template, ca_dir)
    create_secret(
        api.db,
        api.platform.keys,
        Principal.system("system:bootstrap"),
        name=CA_PASSPHRASE_SECRET,
        secret_type="string",
        values={"production": {"value": CA_PASSPHRASE}},
        description="passphrase of the platform CA's private keys",
        internal=True,
        now=api.now(),
    )
    register_platform_ca(api.db, ca_dir, now=api.now())
    return ca_dir
