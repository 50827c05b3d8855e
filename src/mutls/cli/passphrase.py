"""Where passphrases come from: a file, an environment variable, or a prompt. Never argv.

Command-line arguments are visible to every user of the machine (``ps``, ``/proc/PID/cmdline``)
and land in shell history, so mutls has no ``--passphrase VALUE`` option at all.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import typer

from mutls.errors import InvalidArgument
from mutls.files import read_input

__all__ = ["IN_ENV", "OUT_ENV", "PassphraseSource"]

IN_ENV = "MUTLS_PASSPHRASE"
OUT_ENV = "MUTLS_OUT_PASSPHRASE"
_MAX_PASSPHRASE_FILE = 4096


@dataclass(frozen=True, kw_only=True)
class PassphraseSource:
    """One passphrase's possible origins, tried in order: file, environment, prompt."""

    file: Path | None
    env: str
    prompt: str

    def given(self) -> bool:
        return self.file is not None or bool(os.environ.get(self.env))

    def read(self, *, required: bool, confirm: bool = False) -> bytes | None:
        """The passphrase, or None when none was given and none is required."""
        if self.file is not None:
            data = read_input(self.file, max_size=_MAX_PASSPHRASE_FILE)
            # Files written by `echo` end in a newline that is not part of the passphrase.
            value = data.removesuffix(b"\n").removesuffix(b"\r")
            if not value:
                raise InvalidArgument(f"expected a passphrase in {self.file}; the file is empty")
            return value
        env_value = os.environ.get(self.env)
        if env_value:
            return env_value.encode()
        if not required:
            return None
        return self.ask(confirm=confirm)

    def ask(self, *, confirm: bool = False) -> bytes:
        if not sys.stdin.isatty():
            raise InvalidArgument(
                f"a passphrase is needed and there is no terminal to ask for it ({self.prompt})",
                hint=f"give it with a passphrase file option or the {self.env} "
                "environment variable",
            )
        value: str = typer.prompt(
            self.prompt, hide_input=True, confirmation_prompt=confirm, err=True
        )
        if not value:
            raise InvalidArgument("expected a passphrase; an empty one was entered")
        return value.encode()
