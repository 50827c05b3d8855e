"""Writing files the safe way: atomically, and private files with mode 0600 from the start.

A private key written with the default umask is world-readable for the moment between ``open``
and ``chmod``; these helpers create the file with its final mode, write it under a temporary name
and rename it into place, so a crash never leaves a half-written key or CA index.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mutls.errors import FileUnreadable, InputTooLarge, InvalidArgument

__all__ = ["read_input", "write_atomic"]

PRIVATE = 0o600
PUBLIC = 0o644


def write_atomic(path: Path, data: bytes, *, mode: int = PUBLIC, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` in one step, created with ``mode``."""
    path = Path(path)
    if not overwrite and path.exists():
        raise InvalidArgument(
            f"expected a new file; {path} already exists",
            hint="choose another --out path, or pass --force to replace it",
        )
    directory = path.parent if str(path.parent) else Path()
    if not directory.is_dir():
        raise InvalidArgument(f"expected an existing directory for {path}; {directory} is missing")
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise InvalidArgument(
            f"expected a writable directory for {path}; {exc.strerror or exc}",
            hint="choose an --out path in a directory you can write to",
        ) from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise InvalidArgument(f"could not write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_input(path: Path, *, max_size: int) -> bytes:
    """Read a user-named file with a size bound and a clear error."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise FileUnreadable(f"expected a file; {path} is a directory")
        if size > max_size:
            raise InputTooLarge(
                f"expected certificate material of at most {max_size} bytes; "
                f"{path} has {size} bytes"
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise FileUnreadable(f"expected a file at {path}; there is none") from None
    except PermissionError:
        raise FileUnreadable(f"expected to read {path}; permission denied") from None
    except (IsADirectoryError, OSError) as exc:
        if isinstance(exc, FileUnreadable | InputTooLarge):
            raise
        raise FileUnreadable(f"could not read {path}: {exc.strerror or exc}") from None
