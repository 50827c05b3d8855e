"""One context per identity, built once; and the private key never lands on disk in plaintext."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import requests

import mutls.client
from mutls.client import MtlsAdapter, MtlsTransport, client_tls, mtls_transport
from mutls.client import egress as client_egress
from mutls.client import secret as client_secret
from mutls.routing import egress_fields
from mutls.vault import secrets as vault_secrets
from tests.loopback.client.conftest import PASSPHRASE, Files, Pki, TlsServer, write_files


@dataclass
class KeyHandOver:
    """What the TLS layer wrote for OpenSSL to read: every write, and every memfd made."""

    memfds: int = 0
    writes: list[bytes] = field(default_factory=list)
    created: list[tuple[str, int, int]] = field(default_factory=list)  # path, mode, dir mode

    @property
    def key_writes(self) -> list[bytes]:
        return [w for w in self.writes if b"PRIVATE KEY" in w]


@pytest.fixture
def handover(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[KeyHandOver]:
    """Spy on os.memfd_create / os.write / os.open; the temporary directory is the test's."""
    seen = KeyHandOver()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    real_write, real_open = os.write, os.open
    real_memfd = getattr(os, "memfd_create", None)

    def write(fd: int, data: bytes) -> int:
        seen.writes.append(bytes(data))
        return real_write(fd, data)

    def open_(path: str, flags: int, mode: int = 0o777, **kwargs: object) -> int:
        if flags & os.O_CREAT:
            directory = Path(path).parent
            seen.created.append((str(path), mode, stat.S_IMODE(directory.stat().st_mode)))
        fd: int = real_open(path, flags, mode, **kwargs)  # type: ignore[arg-type]
        return fd

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "open", open_)
    if real_memfd is not None:

        def memfd(name: str, flags: int = 0) -> int:
            seen.memfds += 1
            fd: int = real_memfd(name, flags)
            return fd

        monkeypatch.setattr(os, "memfd_create", memfd)
    yield seen
    assert list(scratch.iterdir()) == [], "a temporary file was left behind"


def _open_fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


@pytest.fixture
def fresh(pki: Pki, tmp_path: Path) -> Files:
    """An identity no other test has used, so its context is not cached yet."""
    return write_files(tmp_path / "fresh", pki.ca.issue("fresh.partner.example"), pki.ca)


def test_the_key_reaches_openssl_encrypted_through_a_closed_memfd(
    handover: KeyHandOver, fresh: Files
) -> None:
    """A plaintext key file on input, yet OpenSSL only ever reads an encrypted copy in memory."""
    before = _open_fds()
    tls = client_tls(fresh.chain, fresh.key, ca=fresh.ca)
    assert _open_fds() == before  # every memfd was closed
    assert handover.memfds == 2  # the key and the chain
    assert len(handover.key_writes) == 1
    assert handover.key_writes[0].startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert handover.created == []  # no file was created for the hand-over
    assert tls.context.cert_store_stats()["x509_ca"] == 1


def test_without_memfd_a_private_temporary_file_holds_only_the_encrypted_key(
    handover: KeyHandOver, fresh: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback (macOS, BSD): 0600 file in a 0700 directory, removed right after loading."""
    monkeypatch.delattr(os, "memfd_create")
    before = _open_fds()
    client_tls(fresh.p12, passphrase=PASSPHRASE, ca=fresh.ca)
    assert _open_fds() == before
    assert [(mode, dir_mode) for _, mode, dir_mode in handover.created] == [(0o600, 0o700)] * 2
    assert len(handover.key_writes) == 1
    assert handover.key_writes[0].startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    # The handover fixture then checks that the temporary directory is empty again.


def test_one_context_serves_every_request_and_connection(
    handover: KeyHandOver, mtls_server: TlsServer, fresh: Files
) -> None:
    """Built once: no further key hand-over however many requests and new connections follow."""
    adapter = MtlsAdapter(fresh.chain, fresh.encrypted_key, passphrase=PASSPHRASE, ca=fresh.ca)
    context = adapter.ssl_context
    built = handover.memfds
    handshakes = len(mtls_server.handshakes)
    with requests.Session() as session:
        session.mount("https://", adapter)
        for _ in range(3):
            response = session.get(mtls_server.url + "/", headers={"Connection": "close"})
            assert response.json()["subject"] == "fresh.partner.example"
        session.get(mtls_server.url + "/")
        pool = adapter.get_connection_with_tls_context(
            requests.Request("GET", mtls_server.url + "/").prepare(), True
        )
        assert pool.conn_kw["ssl_context"] is context
    assert len(mtls_server.handshakes) - handshakes == 4  # four connections, one context
    assert adapter.ssl_context is context
    assert handover.memfds == built


def test_adapters_and_transports_for_one_identity_share_the_context(
    handover: KeyHandOver, fresh: Files
) -> None:
    """Keyed by fingerprint: another adapter, another format, another library, same object."""
    first = MtlsAdapter(fresh.chain, fresh.key, ca=fresh.ca)
    built = handover.memfds
    second = MtlsAdapter(fresh.p12, passphrase=PASSPHRASE, ca=fresh.ca)
    third = MtlsTransport(fresh.combined, ca=fresh.ca.read_bytes())
    assert second.ssl_context is first.ssl_context
    assert id(third.ssl_context) == id(first.ssl_context)
    assert handover.memfds == built  # no second build
    # Another trust setting is another context.
    fourth = mtls_transport(fresh.combined)
    assert fourth.ssl_context is not first.ssl_context
    for closeable in (first, second, third, fourth):
        closeable.close()


def test_httpx_uses_the_cached_context_for_its_connections(
    mtls_server: TlsServer, fresh: Files
) -> None:
    transport = MtlsTransport(fresh.combined, ca=fresh.ca)
    with httpx.Client(transport=transport) as client:
        for _ in range(2):
            assert (
                client.get(mtls_server.url + "/", headers={"Connection": "close"}).json()["subject"]
                == "fresh.partner.example"
            )
    assert transport._pool._ssl_context is transport.ssl_context


def test_the_package_exports_a_sorted_all_that_resolves() -> None:
    names = mutls.client.__all__
    assert names == sorted(names)
    for name in names:
        assert getattr(mutls.client, name) is not None


def test_the_client_repeats_the_platforms_names_exactly() -> None:
    """The client keeps copies to stay light; these are the originals."""
    assert client_secret.DEFAULT_ENVIRONMENT == vault_secrets.DEFAULT_ENVIRONMENT
    assert client_egress.ROUTE_NAME.pattern == egress_fields.ROUTE_NAME.pattern
    assert client_egress.ENVIRONMENT_NAME.pattern == egress_fields.ENVIRONMENT_NAME.pattern


def test_importing_the_client_imports_neither_requests_nor_the_store() -> None:
    """A plain HTTP client should not pay for SQLAlchemy, and requests is an optional extra."""
    code = (
        "import sys, mutls.client; "
        "print(sorted(m for m in ('requests', 'mutls.store.database', 'mutls.vault.secrets') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_without_requests_the_adapters_say_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "mutls.client.requests_adapters")
    monkeypatch.setitem(sys.modules, "requests", None)
    with pytest.raises(ImportError, match=r"mutls\[requests\]"):
        _ = mutls.client.MtlsAdapter
