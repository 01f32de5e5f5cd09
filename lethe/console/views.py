"""What the legal pages show, derived from the register and a request's run folder (ids, counts and times only).

The templates only lay these out; everything worked out (which step a request is at, how urgent it is, its
timeline, its scope's counts) is worked out here, from the same readers the CLI and the API use.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from erasure.identity import ResolvedIdentifier
from erasure.report_builder import days_left
from erasure.reporting import RegisterRow, register
from erasure.requests import FiledRequest, RequestState, load_request
from erasure.run_folder import STEPS, RunSteps, step_results
from erasure.run_folder.results import ScopeResult, ScopeReview, ScopeRow

DUE_SOON_DAYS = 7
FINISHED = {RequestState.CLOSED.value, RequestState.INCOMPLETE.value, RequestState.REJECTED.value}


@dataclass(frozen=True)
class RegisterLine:
    """One request in legal's register: its row, the last step done and how urgent it is."""

    row: RegisterRow
    step: str
    urgency: str  # "overdue", "due-soon" or "" (a CSS class; the label says it in words too)

    @property
    def urgency_label(self) -> str:
        return {"overdue": "overdue", "due-soon": "due this week"}.get(self.urgency, "")


def urgency(row: RegisterRow) -> str:
    """Overdue (at the attestation, or now), due within a week while still open, or neither."""
    if row.overdue:
        return "overdue"
    if row.status not in FINISHED and row.days_left <= DUE_SOON_DAYS:
        return "due-soon"
    return ""


def last_step(steps: RunSteps) -> str:
    """The furthest step done, in the engine's order ('filed' before any)."""
    done = [name for name in STEPS if name in steps]
    return done[-1] if done else "filed"


def register_lines(state_dir: Path, now: datetime | None = None) -> list[RegisterLine]:
    """Every request, soonest deadline first, with its step and urgency."""
    return [RegisterLine(row, last_step(step_results(state_dir, row.id)), urgency(row))
            for row in register(state_dir, now=now)]


@dataclass(frozen=True)
class TimelineEntry:
    """A moment of a request's life: what happened (or is due) and when."""

    at: datetime
    what: str
    kind: str  # "event", "step" or "deadline"


@dataclass(frozen=True)
class RequestView:
    """One request as legal follows it."""

    request: FiledRequest
    steps_done: list[str]
    steps_left: list[str]
    timeline: list[TimelineEntry]
    days_left: int
    urgency: str
    identity: list[ResolvedIdentifier]
    identity_notes: list[str]
    scope: list[ScopeRow]
    in_scope: int
    borderline: list[ScopeRow]
    others: list[ScopeRow]  # records the person does not own: the ones a review may include or exclude
    per_reason: dict[str, int]
    reviews: list[ScopeReview]
    verdict: tuple[str, list[str]] | None

    @property
    def reviewable(self) -> bool:
        """The scope can still change: resolved, not yet remedied."""
        return "scope" in self.steps_done and "remedy" not in self.steps_done


def _timeline(request: FiledRequest, steps: RunSteps) -> list[TimelineEntry]:
    entries = [TimelineEntry(request.received_at, "received", "event"),
               TimelineEntry(request.filed_at, f"filed by {request.requester}", "event")]
    entries += [TimelineEntry(steps.file(name).finished_at, name.replace("_", " "), "step")
                for name in STEPS if name in steps]
    entries.append(TimelineEntry(request.due_at, "due" if request.extended_due_at is None else "first due",
                                 "deadline"))
    if request.extended_due_at is not None:
        entries.append(TimelineEntry(request.extended_due_at, f"extended deadline: {request.extension_reason}",
                                     "deadline"))
    return sorted(entries, key=lambda e: e.at)


def request_view(state_dir: Path, request_id: str, now: datetime | None = None) -> RequestView:
    """A request's page: timeline, identity resolution, scope (with the borderline records), verdict."""
    request = load_request(state_dir, request_id)
    steps = step_results(state_dir, request_id)
    scope: ScopeResult | None = steps.scope if "scope" in steps else None
    records = scope.records if scope else []
    identity = steps.identity if "identity" in steps else None
    verdict = (steps.attest.verdict.status, steps.attest.verdict.reasons) if "attest" in steps else None
    moment = steps.file("attest").finished_at if "attest" in steps else (now or datetime.now(timezone.utc))
    left = days_left(request.deadline, moment)
    status = request.status.value
    return RequestView(
        request=request, steps_done=[s for s in STEPS if s in steps], steps_left=[s for s in STEPS if s not in steps],
        timeline=_timeline(request, steps), days_left=left,
        urgency="overdue" if left < 0 else ("due-soon" if status not in FINISHED and left <= DUE_SOON_DAYS else ""),
        identity=identity.identifiers if identity else [], identity_notes=identity.notes if identity else [],
        scope=records, in_scope=sum(r.included for r in records),
        borderline=[r for r in records if r.decision == "excluded_borderline"],
        others=[r for r in records if "owned" not in r.reasons],
        per_reason=dict(Counter(reason for r in records if r.included for reason in r.reasons)),
        reviews=scope.reviews if scope else [], verdict=verdict)
