"""Black-box helpers: run the installed ``mutls`` command as a user would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

MUTLS = Path(sys.executable).parent / "mutls"


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, object]:
        data = json.loads(self.stdout)
        assert isinstance(data, dict)
        return data

    def error_code(self) -> str:
        error = self.json()["error"]
        assert isinstance(error, dict)
        code = error["code"]
        assert isinstance(code, str)
        return code


Run = Callable[..., Result]


@pytest.fixture
def run(tmp_path: Path) -> Run:
    """Run ``mutls ARGS`` in ``tmp_path`` with no terminal, like CI or a script would."""

    def _run(*args: str, env: Mapping[str, str] | None = None, check: bool = False) -> Result:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("MUTLS_")}
        full_env.update(env or {})
        proc = subprocess.run(
            [str(MUTLS), *args],
            cwd=tmp_path,
            env=full_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
        if check:
            assert proc.returncode == 0, f"mutls {' '.join(args)} failed:\n{proc.stderr}"
        return result

    return _run


@pytest.fixture
def openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.fail("the openssl command is required for interop tests (make install adds it)")
    return path
