"""The vault fixtures, for the egress snapshot tests."""

from tests.loopback.vault.conftest import test_ca, vault

__all__ = ["test_ca", "vault"]
