"""The error tree: stable unique codes, hints where users meet errors, the JSON shape."""

from __future__ import annotations

import pytest

import mutls
from mutls import errors
from mutls.errors import (
    CAAlreadyExists,
    CANotInitialized,
    CertificateExpired,
    InputError,
    MissingPrivateKey,
    MutlsError,
    PolicyViolation,
    RuleViolation,
    SerialNotFound,
    UnsupportedFormat,
    all_error_classes,
)


def _concrete() -> list[type[MutlsError]]:
    """The leaves of the tree: the classes code actually raises."""
    return [cls for cls in all_error_classes() if not cls.__subclasses__()]


def test_every_code_is_unique() -> None:
    """No two error classes share a code, so programs can match on it."""
    codes = [cls.code for cls in all_error_classes()]
    assert len(codes) == len(set(codes)), sorted(c for c in codes if codes.count(c) > 1)


def test_all_error_classes_covers_every_exported_error() -> None:
    """all_error_classes() finds every MutlsError subclass that errors.py exports."""
    exported = {
        obj
        for name in errors.__all__
        if isinstance(obj := getattr(errors, name), type) and issubclass(obj, MutlsError)
    }
    assert exported <= set(all_error_classes())
    assert len(all_error_classes()) >= 30


def test_codes_are_snake_case() -> None:
    """Codes are lower snake_case identifiers (digits allowed, as in oauth2), safe in JSON, URLs
    and shell scripts."""
    for cls in all_error_classes():
        assert cls.code.replace("_", "").isalnum(), cls
        assert cls.code[0].isalpha(), cls
        assert cls.code == cls.code.lower(), cls


@pytest.mark.parametrize("cls", _concrete(), ids=lambda c: c.code)
def test_concrete_error_has_default_hint(cls: type[MutlsError]) -> None:
    """Every error a user can hit tells them how to fix it, even when the raiser gives no hint."""
    assert cls.default_hint.strip(), f"{cls.__name__} has no default hint"


def test_errors_behave_like_their_builtins() -> None:
    """``except ValueError`` / ``LookupError`` / ``FileExistsError`` keep working for callers."""
    assert issubclass(InputError, ValueError)
    assert issubclass(UnsupportedFormat, ValueError)
    assert issubclass(MissingPrivateKey, LookupError)
    assert issubclass(MissingPrivateKey, ValueError)
    assert issubclass(CertificateExpired, ValueError)
    assert issubclass(PolicyViolation, ValueError)
    assert issubclass(CANotInitialized, LookupError)
    assert issubclass(CAAlreadyExists, FileExistsError)
    assert issubclass(SerialNotFound, LookupError)


def test_to_dict_shape() -> None:
    """to_dict is exactly code, message and hint; the default hint fills in when none is given."""
    error = CertificateExpired("the certificate expired on 2020-01-01")
    assert error.to_dict() == {
        "code": "certificate_expired",
        "message": "the certificate expired on 2020-01-01",
        "hint": CertificateExpired.default_hint,
    }
    assert str(error) == "the certificate expired on 2020-01-01"


def test_explicit_hint_overrides_default() -> None:
    """A hint given by the raiser replaces the class default, and an empty one is kept empty."""
    assert UnsupportedFormat("x", hint="do y").to_dict()["hint"] == "do y"
    assert UnsupportedFormat("x", hint="").hint == ""


def test_policy_violation_lists_every_rule() -> None:
    """PolicyViolation names every broken rule in its message and its JSON."""
    violations = [
        RuleViolation(rule="country_code", message="found 'XX'"),
        RuleViolation(rule="common_name_fqdn", message="found 'localhost'"),
    ]
    error = PolicyViolation(violations)
    assert error.code == "csr_policy_violation"
    assert error.violations == tuple(violations)
    assert "2" in error.message
    assert "country_code" in error.message
    assert "common_name_fqdn" in error.message
    data = error.to_dict()
    assert set(data) == {"code", "message", "hint", "violations"}
    assert data["violations"] == [
        {"rule": "country_code", "message": "found 'XX'"},
        {"rule": "common_name_fqdn", "message": "found 'localhost'"},
    ]


def test_errors_all_is_sorted() -> None:
    """errors.__all__ is sorted, like every public __all__ in mutls."""
    assert errors.__all__ == sorted(errors.__all__)


def test_package_all_is_sorted() -> None:
    """mutls.__all__ (the re-exports) is sorted and every name in it resolves."""
    assert mutls.__all__ == sorted(mutls.__all__)
    for name in mutls.__all__:
        assert hasattr(mutls, name), name


def test_package_reexports_the_error_base() -> None:
    """``from mutls import MutlsError`` is the class every mutls error derives from."""
    assert mutls.MutlsError is MutlsError
