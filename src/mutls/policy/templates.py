"""Header templates of egress routes: literal text with ``{{secret:NAME}}`` placeholders (seed 002).

Pure functions. A template is parsed once when the route is saved (so a typo such as
``{{secret:}}`` or ``{{secrets:key}}`` is refused then, not at the first request), and rendered
per environment when the egress snapshot is built, with the string secrets' values for that
environment. A missing value is ``environment_value_missing``, never an empty string and never
another environment's value.

Only ``{{secret:NAME}}`` and ``{{environment}}`` are placeholders; any other ``{{`` is an error
rather than literal text, so a mistyped placeholder never travels to a partner. A rendered value
may not contain a line break or another control character: it would split the header (request
smuggling); such a secret is refused at render time with the secret's name, never its value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from mutls.errors import EnvironmentValueMissing, InvalidArgument

__all__ = ["MAX_TEMPLATE", "EnvironmentRef", "SecretRef", "Template", "parse_template", "render"]

MAX_TEMPLATE = 8192
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_SECRET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# RFC 9110 5.5: field-value = *field-content; visible ASCII, spaces, tabs, obs-text.
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True)
class SecretRef:
    """A ``{{secret:NAME}}`` placeholder."""

    name: str


@dataclass(frozen=True)
class EnvironmentRef:
    """The ``{{environment}}`` placeholder: the request's environment name."""


_ENVIRONMENT = EnvironmentRef()
Part = str | SecretRef | EnvironmentRef


@dataclass(frozen=True)
class Template:
    """A parsed template: literal strings and placeholders, in order."""

    parts: tuple[Part, ...]

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secret names the template uses, in order of first use."""
        return tuple(dict.fromkeys(p.name for p in self.parts if isinstance(p, SecretRef)))


def parse_template(text: str, *, where: str = "the header") -> Template:
    """Parse ``text``; ``invalid_argument`` names the placeholder that is wrong."""
    if len(text) > MAX_TEMPLATE:
        raise InvalidArgument(
            f"expected {where} to be at most {MAX_TEMPLATE} characters; found {len(text)}"
        )
    if _BAD_VALUE.search(text):
        raise InvalidArgument(
            f"expected {where} on one line without control characters; found some",
            hint="a header value cannot hold a line break",
        )
    parts: list[Part] = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        literal = text[position : match.start()]
        _no_stray_braces(literal, where)
        if literal:
            parts.append(literal)
        inner = match.group(1)
        kind, _, name = inner.partition(":")
        if inner == "environment":
            parts.append(_ENVIRONMENT)
        elif kind.strip() == "secret" and _SECRET_NAME.fullmatch(name.strip()):
            parts.append(SecretRef(name.strip()))
        else:
            raise InvalidArgument(
                f"expected placeholders in {where} to be {{{{secret:NAME}}}} (a string secret's "
                f"name) or {{{{environment}}}}; found {{{{{inner[:80]}}}}}",
                hint="for example: {{secret:partner_api_key}}",
            )
        position = match.end()
    tail = text[position:]
    _no_stray_braces(tail, where)
    if tail:
        parts.append(tail)
    return Template(parts=tuple(parts))


def _no_stray_braces(literal: str, where: str) -> None:
    if "{{" in literal or "}}" in literal:
        raise InvalidArgument(
            f"expected every '{{{{' in {where} to open a placeholder closed by '}}}}'; found an "
            "unmatched one",
            hint="write placeholders as {{secret:NAME}}",
        )


def render(
    template: Template,
    values: Mapping[str, str | None],
    *,
    environment: str,
    where: str = "the header",
) -> str:
    """The text for ``environment``; ``values`` maps each secret name to its value there (None
    when the secret has no value for the environment)."""
    out: list[str] = []
    for part in template.parts:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, SecretRef):
            value = values.get(part.name)
            if value is None:
                raise EnvironmentValueMissing(
                    f"expected secret {part.name!r} (used in {where}) to have a "
                    f"{environment!r} value; it has none"
                )
            if _BAD_VALUE.search(value):
                raise InvalidArgument(
                    f"expected secret {part.name!r} ({environment}) to be one line of text for "
                    f"{where}; it contains a line break or control character",
                    hint="store the value without a trailing newline "
                    "(`mutls secret set NAME --value-file F` strips one)",
                )
            out.append(value)
        else:
            out.append(environment)
    return "".join(out)
