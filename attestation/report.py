"""Verification reports: each step's outcome, the first error, and its exit code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from attestation.checkpoint import Checkpoint
from attestation.errors import AttestationError, exit_code_for
from attestation.statement import AnyStatement

# The verifier's steps, in the order they run.
STEPS = ("bundle", "envelope", "signature", "payload_type", "statement_type", "predicate",
         "signing_key_window", "evidence", "subjects", "checkpoint", "inclusion", "consistency")


@dataclass(frozen=True)
class StepResult:
    """One verification step's outcome and what it found."""

    name: str
    status: Literal["pass", "fail", "skipped"]
    detail: str


@dataclass
class VerificationReport:
    """Every step's outcome, the first error, and what was verified."""

    steps: list[StepResult] = field(default_factory=list)
    error: AttestationError | None = None
    statement: AnyStatement | None = None
    signers: tuple[str, ...] = ()
    checkpoint: Checkpoint | None = None

    @property
    def ok(self) -> bool:
        """True when no step failed."""
        return self.error is None

    @property
    def exit_code(self) -> int:
        """0, or the failing error's documented exit code."""
        return exit_code_for(self.error)

    @property
    def summary(self) -> str:
        """The verdict line `lethe attest verify` and the console print under the steps."""
        if self.ok:
            return f"verified: signed by {', '.join(self.signers)}"
        return f"NOT VERIFIED ({type(self.error).__name__}, exit code {self.exit_code}): {self.error}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary for scripts."""
        error = (None if self.error is None
                 else {"type": type(self.error).__name__, "message": str(self.error)})
        return {"ok": self.ok, "exit_code": self.exit_code, "error": error,
                "steps": [{"name": s.name, "status": s.status, "detail": s.detail} for s in self.steps],
                "signers": list(self.signers)}

    def run(self, name: str, check: Callable[[], str] | None, skip_reason: str = "not requested") -> None:
        """Run one step (None: not requested) unless an earlier one failed, and record its outcome."""
        if self.error is not None:
            self.steps.append(StepResult(name, "skipped", "an earlier check failed"))
        elif check is None:
            self.steps.append(StepResult(name, "skipped", skip_reason))
        else:
            try:
                detail = check()
            except AttestationError as exc:
                self.error = exc
                self.steps.append(StepResult(name, "fail", str(exc)))
                return
            self.steps.append(StepResult(name, "pass", detail))
