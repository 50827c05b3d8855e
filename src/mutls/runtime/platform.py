"""The handle every adapter (API, CLI, data planes) is given: settings, store, keys and clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mutls.config import Settings
from mutls.store.database import Database
from mutls.vault.keysource import KeySource

__all__ = ["Clock", "Platform", "utc_now"]

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class Platform:
    """What a running mutls process holds. Services take its parts as arguments."""

    settings: Settings
    db: Database
    keys: KeySource
    clock: Clock = field(default=utc_now)

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock = utc_now) -> Platform:
        return cls(
            settings=settings,
            db=Database(settings.effective_database_url),
            keys=KeySource.from_settings(settings),
            clock=clock,
        )

    def close(self) -> None:
        self.db.dispose()
