"""Plugins shared by every test directory."""

from __future__ import annotations

pytest_plugins = ["tests.dbfixtures", "tests.secretscan"]
