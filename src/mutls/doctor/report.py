"""The doctor's checklist: steps in order, each passed or failed with a stable code and a hint.

The JSON form is stable: ``{"url", "ok", "steps": [{"name", "ok", "detail", "code"?, "reason"?,
"hint"?}], "cause"?: {"code", "message", "hint", "reason"?}}``. ``name`` is one of
:data:`STEP_NAMES`; ``code`` is a code of :mod:`mutls.errors` (or ``http_status`` for an HTTP
error answer without a mutls code). No step ever holds key material or a passphrase.
"""

from __future__ import annotations

from dataclasses import dataclass

from mutls.errors import MutlsError

__all__ = ["STEP_NAMES", "Cause", "Report", "Step"]

#: Every step the doctor may report, in the order it runs them.
STEP_NAMES = (
    "material.load",
    "material.key",
    "material.validity",
    "material.usage",
    "material.chain",
    "dns",
    "tcp",
    "tls.versions",
    "server.certificate",
    "server.client_ca",
    "handshake",
    "http",
)


@dataclass(frozen=True, kw_only=True)
class Step:
    """One line of the checklist."""

    name: str
    ok: bool
    detail: str
    code: str | None = None
    reason: str | None = None
    hint: str | None = None

    @classmethod
    def passed(cls, name: str, detail: str, *, hint: str | None = None) -> Step:
        return cls(name=name, ok=True, detail=detail, hint=hint)

    @classmethod
    def failed(cls, name: str, error: MutlsError, *, hint: str | None = None) -> Step:
        """A failed step named after ``error`` (its code, reason, message and hint)."""
        return cls(
            name=name,
            ok=False,
            detail=error.message,
            code=error.code,
            reason=getattr(error, "reason", None),
            hint=hint or error.hint or None,
        )

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"name": self.name, "ok": self.ok, "detail": self.detail}
        if self.code is not None:
            data["code"] = self.code
        if self.reason is not None:
            data["reason"] = self.reason
        if self.hint:
            data["hint"] = self.hint
        return data


@dataclass(frozen=True, kw_only=True)
class Cause:
    """What stopped the walk: the first failed step, as an error."""

    code: str
    message: str
    hint: str
    reason: str | None = None

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"code": self.code, "message": self.message, "hint": self.hint}
        if self.reason is not None:
            data["reason"] = self.reason
        return data


@dataclass(frozen=True, kw_only=True)
class Report:
    """The whole walk. ``ok`` only when every step passed."""

    url: str
    steps: tuple[Step, ...]

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    @property
    def cause(self) -> Cause | None:
        failed = next((step for step in self.steps if not step.ok), None)
        if failed is None:
            return None
        return Cause(
            code=failed.code or "doctor_failed",
            message=failed.detail,
            hint=failed.hint or "",
            reason=failed.reason,
        )

    def step(self, name: str) -> Step | None:
        return next((step for step in self.steps if step.name == name), None)

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "url": self.url,
            "ok": self.ok,
            "steps": [step.to_dict() for step in self.steps],
        }
        cause = self.cause
        if cause is not None:
            data["cause"] = cause.to_dict()
        return data
