"""Certificate authority services: the offline (directory-backed) CA today."""

from __future__ import annotations

from mutls.ca.offline import IssuedRecord, OfflineCA, OfflineCAConfig

__all__ = ["IssuedRecord", "OfflineCA", "OfflineCAConfig"]
