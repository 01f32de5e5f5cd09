"""Run a remedy, verify it, escalate: method → adapter really changed → probe the scope → retrain if needed.

An approximate method is only a first try: if any scope record is still flagged after it, the remedy
escalates to exact retraining (configurable) and records why. A method whose adapter did not change
(same digest, or every LoRA B matrix zero) is refused as done. Adapters of attempts that did not stand
are deleted: they were trained from the data being erased.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from unlearning.errors import RemedyError
from unlearning.methods.base import MethodConfig, RemedyInput, RemedyOutcome, StepCallback
from unlearning.methods.registry import get_method, parse_config

__all__ = ["Attempt", "RemedyResult", "remediate"]

EXACT_METHOD = "retrain"


@dataclass(frozen=True)
class Attempt:
    """One method run: what it produced and what the probes said afterwards."""

    outcome: RemedyOutcome
    flagged: tuple[str, ...]
    probe: object  # the ProbeReport after this attempt


@dataclass
class RemedyResult:
    """The remedy as a whole: every attempt, whether it escalated and why, and the adapter that stands."""

    attempts: list[Attempt] = field(default_factory=list)
    escalated: bool = False
    escalation_reason: str | None = None

    @property
    def final(self) -> Attempt:
        """The attempt whose adapter replaces the old one."""
        return self.attempts[-1]

    @property
    def still_flagged(self) -> tuple[str, ...]:
        """Scope records the probes still flag on the final adapter."""
        return self.final.flagged


def _attempt(name: str, config: MethodConfig, remedy: RemedyInput, probe: Callable[[Path], object],
             on_step: StepCallback | None, flagged_of: Callable[[object], Sequence[str]]) -> Attempt:
    from unlearning.methods.changed import check_adapter_changed

    outcome = get_method(name).run(config, remedy, on_step)
    try:
        check_adapter_changed(remedy.adapter_dir, outcome.adapter_dir)
        report = probe(outcome.adapter_dir)
    except BaseException:
        _discard(outcome)
        raise
    return Attempt(outcome, tuple(flagged_of(report)), report)


def _report_flags(report) -> Sequence[str]:
    return report.flagged


def _discard(outcome: RemedyOutcome) -> None:
    """Delete an attempt's output (a run folder for retrain, an adapter directory otherwise)."""
    target = Path(outcome.details.get("run_dir", outcome.adapter_dir))
    if target.exists():
        shutil.rmtree(target)


def remediate(method: str, config: MethodConfig | Mapping | None, make_input: Callable[[str], RemedyInput],
              probe: Callable[[Path], object], *, escalate_to: str | None = EXACT_METHOD,
              on_step: StepCallback | None = None,
              flagged_of: Callable[[object], Sequence[str]] = _report_flags) -> RemedyResult:
    """Run `method`; when scope records stay flagged, run `escalate_to` too. Returns every attempt.

    `flagged_of(report)` says which records a probe report flags (default: its per-record flags; a caller
    judging many records at once passes a multiple-testing rule)."""
    spec = get_method(method)
    parsed = config if isinstance(config, MethodConfig) else parse_config(method, config)
    if not isinstance(parsed, spec.config_class):
        raise RemedyError(f"method {method!r} takes a {spec.config_class.__name__}, got {type(parsed).__name__}")
    if escalate_to is not None:
        get_method(escalate_to)  # an unknown escalation target fails before any work is done
    result = RemedyResult()
    result.attempts.append(_attempt(method, parsed, make_input(method), probe, on_step, flagged_of))
    first = result.attempts[0]
    if first.flagged and escalate_to is not None and method != escalate_to:
        result.escalated = True
        result.escalation_reason = (f"{len(first.flagged)} scope record(s) still flagged after {method} "
                                    f"({first.outcome.steps} steps), e.g. {first.flagged[0]}; escalated to "
                                    f"{escalate_to}")
        _discard(first.outcome)
        result.attempts.append(_attempt(escalate_to, parse_config(escalate_to), make_input(escalate_to), probe,
                                        on_step, flagged_of))
    return result
