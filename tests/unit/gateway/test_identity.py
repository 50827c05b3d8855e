"""The gateway's server certificate from files: loaded, checked, reloaded on change or SIGHUP."""

from __future__ import annotations

from pathlib import Path

import pytest

from mutls.errors import KeyMismatch, MissingPrivateKey
from mutls.gateway.identity import ServerIdentity
from mutls.pki.authority import Profile
from mutls.testing import TestCA


def _write(directory: Path, ca: TestCA, name: str) -> tuple[Path, Path]:
    identity = ca.issue(name, profile=Profile.SERVER, sans=[f"DNS:{name}"])
    cert, key = directory / "server.pem", directory / "server.key"
    cert.write_bytes(identity.chain_pem)
    key.write_bytes(identity.key_pem())
    return cert, key


def test_files_load_and_a_replacement_is_noticed(tmp_path: Path) -> None:
    ca = TestCA()
    cert, key = _write(tmp_path, ca, "one.example")
    identity = ServerIdentity.from_files(cert, key)
    assert identity.material.leaf is not None
    assert not identity.changed()
    _write(tmp_path, ca, "two.example.org")  # a different size, so the stamp moves
    assert identity.changed()
    fresh = identity.reload()
    assert fresh.material.leaf is not None
    assert fresh.material.leaf.subject != identity.material.leaf.subject
    assert not fresh.changed()


def test_sighup_asks_every_later_identity_to_reload(tmp_path: Path) -> None:
    """A reload makes a new identity; the next SIGHUP must reach that one, not the first."""
    ca = TestCA()
    cert, key = _write(tmp_path, ca, "one.example")
    first = ServerIdentity.from_files(cert, key)
    first.request_reload()
    second = first.reload()
    assert not second.changed()
    second.request_reload()
    assert second.changed()


def test_a_key_that_does_not_match_is_refused(tmp_path: Path) -> None:
    ca = TestCA()
    cert, key = _write(tmp_path, ca, "one.example")
    other = ca.issue("other.example", profile=Profile.SERVER, sans=["DNS:other.example"])
    key.write_bytes(other.key_pem())
    with pytest.raises(KeyMismatch):
        ServerIdentity.from_files(cert, key)


def test_a_failed_reload_is_not_retried_until_the_files_change_again(tmp_path: Path) -> None:
    ca = TestCA()
    cert, key = _write(tmp_path, ca, "one.example")
    identity = ServerIdentity.from_files(cert, key)
    key.write_bytes(b"")
    with pytest.raises(MissingPrivateKey):
        identity.reload()
    assert not identity.changed()  # the broken pair is remembered; the old one stays in use


def test_the_worker_sends_sighup_to_the_identity_in_use(tmp_path: Path) -> None:
    import asyncio
    import socket
    from datetime import UTC, datetime

    from mutls.config import GatewayListen, GatewaySettings
    from mutls.gateway.worker import Worker
    from mutls.policy.routing import RouteTable
    from mutls.policy.snapshot import GatewaySnapshot

    ca = TestCA()
    cert, key = _write(tmp_path, ca, "one.example")
    first = ServerIdentity.from_files(cert, key)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        with socket.socket() as sock:
            worker = Worker(
                db=None,  # type: ignore[arg-type]  # not used before serve()
                settings=GatewaySettings(),
                identity=first,
                snapshot=GatewaySnapshot(revision=1, routes=RouteTable.of([])),
                sockets=[(GatewayListen(host="127.0.0.1", port=0), sock)],
                clock=lambda: datetime.now(UTC),
                run_dir=None,
            )
            worker.identity = first.reload()  # what the ticker does after a change
            worker._on_sighup()
            assert worker.identity.changed()
    finally:
        asyncio.set_event_loop(None)
        loop.close()
