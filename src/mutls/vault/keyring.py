"""Master keys: the only secret that is never in the database.

Every vault value is encrypted with its own data key, and each data key is wrapped by one version
of the master key (see ``envelope.py``). The master keys live outside the database, in a key file
(``<data dir>/master.key``, mode 0600) or in the ``MUTLS_MASTER_KEY`` environment variable, so a
stolen database or backup alone decrypts nothing. Losing the keyring loses every secret: it must be
backed up, separately from the database.

The text format, for the file and the variable alike, is one key per line::

    # comments and blank lines are allowed
    mutls-master-key v1 <32 random bytes, base64url without padding>
    mutls-master-key v2 <...>

A value that is one bare base64 or base64url string of 32 bytes (``openssl rand -base64 32``) is
accepted as version 1, so the simplest deployment needs nothing but that.

Which version is active, retired or revoked is recorded in the database by the service layer
(``masterkeys.py``); the database also keeps each version's ``check_value`` so that a wrong key is
detected at start-up instead of as a decryption failure later. Error messages name the source and
the line but never echo the text of a line, since that text may be a key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import enum
import fcntl
import hashlib
import hmac
import itertools
import os
import re
import secrets
import shlex
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mutls.errors import (
    FileUnreadable,
    InputTooLarge,
    InvalidArgument,
    MasterKeyMissing,
    MasterKeyUnavailable,
)
from mutls.files import PRIVATE, write_atomic

__all__ = [
    "KEY_BYTES",
    "KeyState",
    "Keyring",
    "MasterKey",
    "add_key_to_file",
    "create_keyring_file",
    "format_keyring",
    "generate_master_key",
    "parse_keyring",
    "read_keyring_file",
    "remove_key_from_file",
]

#: AES-256: the master key and every data key are 32 bytes.
KEY_BYTES = 32
#: Versions are stored in an SQL INTEGER column; keep them inside its signed 32-bit range.
MAX_VERSION = 2**31 - 1
#: A keyring line is about 70 bytes; this allows thousands of versions and refuses a wrong file.
MAX_KEYRING_BYTES = 256 * 1024

_PREFIX = "mutls-master-key"
_VERSION = re.compile(r"v([1-9][0-9]{0,9})")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_CHECK_LABEL = b"mutls master key check v1"
_FORMAT_HINT = (
    "each line is `mutls-master-key v<N> <key>`, the key being 32 random bytes in base64url; "
    "generate one with `mutls vault generate-master-key`"
)
_HEADER = (
    "# mutls master keyring. THIS FILE IS A SECRET: whoever holds it can decrypt every vault",
    "# secret. Keep it readable by its owner only (chmod 600), and back it up separately from the",
    "# database: without it the encrypted secrets are lost for good.",
    "# One key per line: mutls-master-key v<version> <32 random bytes, base64url, no padding>",
)


class KeyState(enum.StrEnum):
    """Life cycle of a master key version, as recorded in the database by ``masterkeys.py``."""

    ACTIVE = "active"  # wraps every new data key; exactly one version is active
    RETIRED = "retired"  # still unwraps data keys not yet rewrapped by a rotation
    REVOKED = "revoked"  # removed from the keyring; what it still wrapped is crypto-erased


@dataclass(frozen=True)
class MasterKey:
    """One version of the master key. The key bytes never appear in a repr."""

    version: int
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or not isinstance(self.version, int):
            raise InvalidArgument(
                f"expected a master key version as an integer; found {type(self.version).__name__}"
            )
        if not 1 <= self.version <= MAX_VERSION:
            raise InvalidArgument(
                f"expected a master key version from 1 to {MAX_VERSION}; found {self.version}"
            )
        if not isinstance(self.key, bytes) or len(self.key) != KEY_BYTES:
            found = f"{len(self.key)} bytes" if isinstance(self.key, bytes) else "no bytes"
            raise InvalidArgument(
                f"expected master key version {self.version} to be {KEY_BYTES} bytes; found {found}"
            )

    @property
    def check_value(self) -> str:
        """16 hex characters that identify the key without revealing it (stored in the DB).

        An HMAC under the key of a fixed label: it proves a key is the right one, and 64 bits
        are far too few to help anyone find a 256-bit key.
        """
        return hmac.new(self.key, _CHECK_LABEL, hashlib.sha256).hexdigest()[:16]


def generate_master_key(version: int) -> MasterKey:
    """A new random 256-bit master key for ``version``."""
    return MasterKey(version, secrets.token_bytes(KEY_BYTES))


# --- the text format ------------------------------------------------------------------------


def parse_keyring(text: str, *, source: str) -> dict[int, MasterKey]:
    """Every key in ``text``, by version. ``source`` names where the text came from in errors."""
    entries: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            entries.append((number, line))
    if not entries:
        raise MasterKeyMissing(
            f"expected at least one master key in {source}; found "
            f"{'only comments and blank lines' if text.strip() else 'an empty value'}"
        )
    first_number, first_line = entries[0]
    if len(entries) == 1 and len(first_line.split()) == 1 and first_line != _PREFIX:
        where = f"{source} line {first_number}"
        return {1: MasterKey(1, _decode_key(first_line, where=where))}
    keys: dict[int, MasterKey] = {}
    lines_of: dict[int, int] = {}
    for number, line in entries:
        where = f"{source} line {number}"
        version, key = _parse_line(line, where=where)
        if version in keys:
            raise InvalidArgument(
                f"{where}: expected each master key version once; version {version} is also on "
                f"line {lines_of[version]}",
                hint="give each key its own version number; never reuse a version for a new key",
            )
        keys[version] = MasterKey(version, key)
        lines_of[version] = number
    return keys


def _parse_line(line: str, *, where: str) -> tuple[int, bytes]:
    fields = line.split()
    if fields[0] != _PREFIX:
        raise InvalidArgument(
            f"{where}: expected `{_PREFIX} v<N> <key>`, a '#' comment or a blank line; found a "
            f"line that does not start with {_PREFIX}",
            hint=_FORMAT_HINT,
        )
    if len(fields) != 3:
        raise InvalidArgument(
            f"{where}: expected 3 fields (`{_PREFIX} v<N> <key>`); found {len(fields)}",
            hint=_FORMAT_HINT,
        )
    match = _VERSION.fullmatch(fields[1])
    if match is None or int(match.group(1)) > MAX_VERSION:
        raise InvalidArgument(
            f"{where}: expected the second field to be a version from v1 to v{MAX_VERSION}; "
            "found something else",
            hint=_FORMAT_HINT,
        )
    return int(match.group(1)), _decode_key(fields[2], where=where)


def _decode_key(token: str, *, where: str) -> bytes:
    """Base64url or standard base64, padded or not; the token itself never enters a message."""
    unpadded = token.rstrip("=")
    if not _BASE64.fullmatch(token) or len(unpadded) % 4 == 1:
        raise InvalidArgument(
            f"{where}: expected a key of {KEY_BYTES} bytes in base64url; found {len(token)} "
            "characters that are not valid base64",
            hint=_FORMAT_HINT,
        )
    standard = unpadded.replace("-", "+").replace("_", "/")
    try:
        key = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument(
            f"{where}: expected a key of {KEY_BYTES} bytes in base64url; found text that is not "
            "valid base64",
            hint=_FORMAT_HINT,
        ) from None
    if len(key) != KEY_BYTES:
        raise InvalidArgument(
            f"{where}: expected a key of {KEY_BYTES} bytes; found {len(key)} bytes",
            hint=_FORMAT_HINT,
        )
    return key


def _encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode("ascii")


def format_keyring(keys: Iterable[MasterKey]) -> str:
    """The keyring text, versions in order, under a header that says how to treat the file."""
    ordered = sorted(keys, key=lambda k: k.version)
    if not ordered:
        raise InvalidArgument("expected at least one master key to write; found none")
    for earlier, later in itertools.pairwise(ordered):
        if earlier.version == later.version:
            raise InvalidArgument(
                f"expected each master key version once; found version {later.version} twice"
            )
    lines = [*_HEADER, *(f"{_PREFIX} v{k.version} {_encode_key(k.key)}" for k in ordered)]
    return "\n".join(lines) + "\n"


# --- the key file ---------------------------------------------------------------------------


def read_keyring_file(path: Path) -> dict[int, MasterKey]:
    """The keys in the key file, which must exist and be private to its owner."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise MasterKeyMissing(f"expected the master key file {path}; there is none") from None
    except OSError as exc:
        raise FileUnreadable(
            f"expected to read the master key file {path}; {exc.strerror or exc}"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise InvalidArgument(f"expected the master key file {path} to be a file; it is not")
    _require_private(path, info.st_mode)
    if info.st_size > MAX_KEYRING_BYTES:
        raise InputTooLarge(
            f"expected a master key file of at most {MAX_KEYRING_BYTES} bytes; {path} has "
            f"{info.st_size} bytes",
            hint="point MUTLS_MASTER_KEY_FILE at the keyring written by mutls",
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FileUnreadable(
            f"expected to read the master key file {path}; {exc.strerror or exc}"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument(
            f"expected the master key file {path} to be text; found binary data",
            hint=_FORMAT_HINT,
        ) from None
    return parse_keyring(text, source=str(path))


def _require_private(path: Path, mode: int) -> None:
    """Group or other access to the keyring is refused, as ssh refuses a readable private key."""
    if os.name == "posix" and mode & 0o077:
        raise InvalidArgument(
            f"expected the master key file {path} to be accessible by its owner only (mode "
            f"600); found mode {stat.S_IMODE(mode):o}",
            hint=f"chmod 600 {shlex.quote(str(path))}",
        )


def create_keyring_file(path: Path) -> MasterKey:
    """Create the key file with a new version 1, mode 0600 from the first byte."""
    path = Path(path)
    if path.exists():
        raise InvalidArgument(
            f"expected no master key file at {path}; one already exists",
            hint="mutls never overwrites a master key: move the file away if you really mean it",
        )
    key = generate_master_key(1)
    write_atomic(path, format_keyring([key]).encode("ascii"), mode=PRIVATE, overwrite=False)
    return key


def add_key_to_file(path: Path) -> MasterKey:
    """Add the next version (highest + 1) to the key file and return it."""
    path = Path(path)
    with _exclusive(path):
        keys = read_keyring_file(path)
        key = generate_master_key(max(keys) + 1)
        _rewrite(path, [*keys.values(), key])
    return key


def remove_key_from_file(path: Path, version: int) -> None:
    """Drop ``version`` from the key file (revocation). Absent already: nothing to do."""
    path = Path(path)
    with _exclusive(path):
        keys = read_keyring_file(path)
        if version not in keys:
            return
        if len(keys) == 1:
            raise InvalidArgument(
                f"expected another master key to remain in {path}; version {version} is the "
                "only one",
                hint="rotate to a new version first with `mutls vault rotate-master-key`",
            )
        _rewrite(path, [k for v, k in keys.items() if v != version])


def _rewrite(path: Path, keys: Iterable[MasterKey]) -> None:
    write_atomic(path, format_keyring(keys).encode("ascii"), mode=PRIVATE, overwrite=True)


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Serialise read-modify-write of the key file between processes (an advisory lock).

    Two rotations adding a version at once must not both write "v2": one of those keys would be
    lost with everything it wrapped. The file is replaced by rename, so after the lock is taken
    the path must still name the locked inode; otherwise another writer won and we lock anew.
    """
    while True:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise MasterKeyMissing(f"expected the master key file {path}; there is none") from None
        except OSError as exc:
            raise FileUnreadable(
                f"expected to read the master key file {path}; {exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = path.stat().st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if current:
                yield
                return
        finally:
            os.close(fd)  # releases the lock


# --- the keyring in use ---------------------------------------------------------------------


class Keyring:
    """The master keys one operation may use, and which version wraps new data keys."""

    __slots__ = ("_active", "_keys")

    def __init__(self, keys: Mapping[int, MasterKey], active_version: int) -> None:
        for version, key in keys.items():
            if key.version != version:
                raise InvalidArgument(
                    f"expected the key filed under version {version} to be version {version}; "
                    f"it is version {key.version}"
                )
        if active_version not in keys:
            raise MasterKeyUnavailable(
                f"expected the active master key version {active_version} in the keyring; it "
                f"has versions {_versions_text(keys)}"
            )
        self._keys: dict[int, MasterKey] = dict(keys)
        self._active = self._keys[active_version]

    @property
    def active(self) -> MasterKey:
        return self._active

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(sorted(self._keys))

    def get(self, version: int) -> MasterKey:
        try:
            return self._keys[version]
        except KeyError:
            raise MasterKeyUnavailable(
                f"expected master key version {version} in the keyring; it has versions "
                f"{_versions_text(self._keys)}"
            ) from None

    def __contains__(self, version: object) -> bool:
        return version in self._keys

    def __repr__(self) -> str:
        return f"Keyring(active_version={self._active.version}, versions={self.versions})"


def _versions_text(keys: Mapping[int, MasterKey]) -> str:
    return ", ".join(str(v) for v in sorted(keys)) or "none"
