"""Where the master keys come from: ``MUTLS_MASTER_KEY`` or the key file, never the database.

The source is re-read when a version it does not know is asked for, so a server keeps working
while ``mutls vault rotate-master-key`` adds a version to the file next to it.
"""

from __future__ import annotations

import threading
from pathlib import Path

from mutls.config import Settings
from mutls.errors import InvalidArgument, MasterKeyUnavailable
from mutls.vault.keyring import (
    MasterKey,
    add_key_to_file,
    create_keyring_file,
    parse_keyring,
    read_keyring_file,
    remove_key_from_file,
)

__all__ = ["KeySource"]


class KeySource:
    """A cache over the keyring text, reloaded on a miss."""

    def __init__(self, *, env_text: str | None = None, path: Path | None = None) -> None:
        if (env_text is None) == (path is None):
            raise ValueError("give exactly one of env_text or path")
        self._env_text = env_text
        self.path = path
        self._lock = threading.Lock()
        self._keys: dict[int, MasterKey] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> KeySource:
        if settings.master_key:
            return cls(env_text=settings.master_key)
        return cls(path=settings.effective_master_key_file)

    @property
    def description(self) -> str:
        return "MUTLS_MASTER_KEY" if self.path is None else str(self.path)

    @property
    def writable(self) -> bool:
        """Only a key file can gain versions; an environment variable is the operator's to edit."""
        return self.path is not None

    def exists(self) -> bool:
        return self.path is None or self.path.exists()

    def create(self) -> MasterKey:
        """Create the key file with version 1 (first start)."""
        if self.path is None:
            raise InvalidArgument("MUTLS_MASTER_KEY is set; there is no key file to create")
        with self._lock:
            key = create_keyring_file(self.path)
            self._keys = None
            return key

    def keys(self, *, reload: bool = False) -> dict[int, MasterKey]:
        with self._lock:
            if self._keys is None or reload:
                if self.path is None:
                    assert self._env_text is not None
                    self._keys = parse_keyring(self._env_text, source="MUTLS_MASTER_KEY")
                else:
                    self._keys = read_keyring_file(self.path)
            return dict(self._keys)

    def get(self, version: int) -> MasterKey:
        found = self.keys().get(version) or self.keys(reload=True).get(version)
        if found is None:
            raise MasterKeyUnavailable(
                f"expected master key version {version} in {self.description}; it has versions "
                f"{', '.join(str(v) for v in sorted(self.keys())) or 'none'}"
            )
        return found

    def add_version(self) -> MasterKey:
        if self.path is None:
            raise InvalidArgument(
                "expected a master key file to add a version to; MUTLS_MASTER_KEY is set",
                hint=(
                    "generate a key with `mutls vault generate-master-key --version N`, append "
                    "it to MUTLS_MASTER_KEY everywhere, restart, then run rotate-master-key"
                ),
            )
        with self._lock:
            key = add_key_to_file(self.path)
            self._keys = None
            return key

    def remove_version(self, version: int) -> None:
        if self.path is None:
            return
        with self._lock:
            remove_key_from_file(self.path, version)
            self._keys = None
