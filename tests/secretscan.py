"""Prove that no secret reaches a log: capture every log record at DEBUG and grep it afterwards.

Tests call ``register_secret(value)`` for every key, passphrase, client secret, string secret and
token they hand to mutls. Each worker writes all log records of the run (mutls, uvicorn,
SQLAlchemy statements with their parameters, httpx) to one file; when the session ends the file is
searched for every registered value, and for its base64 and hex forms. A hit fails the run.
"""

from __future__ import annotations

import base64
import logging
import os
import tempfile
from pathlib import Path

import pytest

_SECRETS: set[str] = set()
_STATE: dict[str, object] = {}
MIN_LENGTH = 8


def register_secret(value: str | bytes) -> None:
    """Remember a secret value; the session fails if it appears in any log line."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    for raw in text.splitlines() if "-----BEGIN" in text else [text]:
        line = raw.strip()
        if len(line) >= MIN_LENGTH and "-----" not in line:
            _SECRETS.add(line)


def forms(value: str) -> list[str]:
    raw = value.encode()
    return [value, base64.b64encode(raw).decode(), raw.hex()]


@pytest.fixture
def secret_registry() -> type[object]:
    """Access to ``register_secret`` as a fixture, for tests that prefer injection."""

    class _Registry:
        add = staticmethod(register_secret)

    return _Registry


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist)
        os.environ["MUTLS_SECRETSCAN_DIR"] = tempfile.mkdtemp(prefix="mutls-secretscan-")


def pytest_sessionstart(session: pytest.Session) -> None:
    directory = Path(os.environ["MUTLS_SECRETSCAN_DIR"])
    path = directory / f"debug-{os.getpid()}.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    # SQL statements and their bound parameters: what would leak if a value went in unencrypted.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    for noisy in ("asyncio", "hypothesis", "filelock", "urllib3", "hpack", "httpcore", "alembic"):
        logging.getLogger(noisy).setLevel(logging.INFO)
    _STATE["handler"], _STATE["path"] = handler, path


def scan(log: str) -> list[str]:
    """Registered secrets found in ``log``, shortened so the report does not leak them again."""
    return sorted({v[:6] + "..." for v in _SECRETS for f in forms(v) if f in log})


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    handler, path = _STATE.get("handler"), _STATE.get("path")
    if isinstance(handler, logging.FileHandler) and isinstance(path, Path):
        logging.getLogger().removeHandler(handler)
        handler.close()
        leaks = scan(path.read_text(encoding="utf-8", errors="replace"))
        (path.parent / f"count-{os.getpid()}.txt").write_text(str(len(_SECRETS)))
        if leaks:
            (path.parent / f"leaks-{os.getpid()}.txt").write_text(
                f"{path}: {', '.join(leaks)}\n", encoding="utf-8"
            )
        else:
            path.unlink(missing_ok=True)
    if hasattr(session.config, "workerinput"):
        return
    directory = Path(os.environ["MUTLS_SECRETSCAN_DIR"])
    reports = [p.read_text(encoding="utf-8") for p in sorted(directory.glob("leaks-*.txt"))]
    _STATE["checked"] = sum(int(p.read_text()) for p in directory.glob("count-*.txt"))
    if reports:
        _STATE["leaks"] = reports
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reports = _STATE.get("leaks")
    if isinstance(reports, list):
        terminalreporter.write_sep(
            "!", "SECRET LEAK: registered secrets found in debug logs", red=True
        )
        for line in reports:
            terminalreporter.write_line(str(line).rstrip(), red=True)
    else:
        terminalreporter.write_line(
            f"secret scan: {_STATE.get('checked', 0)} registered secret value(s) searched for "
            "in every debug log line of the run; none found"
        )
