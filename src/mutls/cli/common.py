"""What every command shares: options, error handling, loading files with a passphrase prompt."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer

from mutls.cli.output import fail
from mutls.cli.passphrase import IN_ENV, OUT_ENV, PassphraseSource
from mutls.errors import InvalidArgument, MutlsError, PassphraseRequired
from mutls.files import read_input
from mutls.pki.loader import DEFAULT_MAX_INPUT, load_identity
from mutls.pki.material import Material

__all__ = [
    "JsonOption",
    "OutPassphraseFileOption",
    "PassphraseFileOption",
    "handle_errors",
    "load_file",
    "parse_time",
]

P = ParamSpec("P")
R = TypeVar("R")

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
PassphraseFileOption = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help=f"File holding the passphrase of the input (else ${IN_ENV}, else a prompt).",
        show_default=False,
    ),
]
OutPassphraseFileOption = Annotated[
    Path | None,
    typer.Option(
        "--out-passphrase-file",
        help=f"File holding the passphrase for the output (else ${OUT_ENV}, else a prompt).",
        show_default=False,
    ),
]


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a :class:`MutlsError` into message + hint (or JSON) and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except MutlsError as error:
            fail(error, as_json=bool(kwargs.get("json_output", False)))

    return wrapper


def in_source(file: Path | None, what: str = "the input") -> PassphraseSource:
    return PassphraseSource(file=file, env=IN_ENV, prompt=f"Passphrase for {what}")


def out_source(file: Path | None, what: str = "the output") -> PassphraseSource:
    return PassphraseSource(file=file, env=OUT_ENV, prompt=f"New passphrase for {what}")


def load_file(
    path: Path,
    *,
    key_path: Path | None = None,
    passphrase: PassphraseSource,
) -> Material:
    """Load ``path`` (and ``key_path``), asking for a passphrase only when one is needed."""
    data = read_input(path, max_size=DEFAULT_MAX_INPUT)
    key_data = read_input(key_path, max_size=DEFAULT_MAX_INPUT) if key_path else None
    secret = passphrase.read(required=False)
    try:
        return load_identity(data, key_data, secret)
    except PassphraseRequired:
        if secret is not None or passphrase.file is not None:
            raise
        try:
            secret = passphrase.ask()
        except InvalidArgument:
            raise PassphraseRequired(
                f"{key_path or path} is encrypted and no passphrase was given"
            ) from None
        return load_identity(data, key_data, secret)


def parse_time(value: str | None) -> datetime:
    """``--at``: an ISO 8601 date or time; naive values are UTC. None means now."""
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(
            f"expected an ISO 8601 time such as 2026-01-31 or 2026-01-31T12:00:00Z; found {value!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
