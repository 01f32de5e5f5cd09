"""The auditor's report of one erasure request, and the register of every request.

A report is built only from what the request's run folder holds (`request.json`, `steps/*.json`, the
attestation bundle): ids, hashes, times and figures. A step the request has not reached is reported as
not reached, never filled in. Before anything is written, every input file and the report itself are
scanned for text that looks like an email address or phone number; a hit refuses the report, naming
the file and the JSON path (never the text). The HTML is rendered from the checked report alone.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from attestation.identifier_guard import find_identifiers
from erasure.errors import ErasureError
from erasure.identity import IdentityResult
from erasure.report_evidence import EvidenceSection, evidence_section
from erasure.report_html import render_register, render_report
from erasure.requests import FiledRequest, RequestNotFoundError, list_requests, request_dir, write_json_atomic
from erasure.run_folder import ATTESTED_STEPS
from erasure.statistics import StatisticsResult
from erasure.sweep import SweepResult
from lineage.impact import BlastRadius
from lineage.local_files import write_private_text

__all__ = ["SCORE_ORIENTATION", "STEPS", "ErasureReport", "RegisterRow", "ReportError", "ReportPaths", "build_report",
           "load_report_inputs", "make_report", "oriented_score", "register", "write_register"]

STEPS = ATTESTED_STEPS
REPORT_FORMAT = "lethe-erasure-report/v1"
REGISTER_FORMAT = "lethe-erasure-register/v1"
KEY_CHARS = 12  # subject keys are shown truncated: enough to match them, too little to act on
SECONDS_PER_DAY = 86400.0
_REQUEST_ID = re.compile(r"er-[0-9a-f]{24}")

# Mirrors unlearning.probes.calibration.SCORES (a test keeps the two equal): importing that module loads
# torch, which a report does not need. score -> (higher means memorized, compared on a log scale).
SCORE_ORIENTATION = {"ratio": (False, True), "min_k_pp": (True, False), "es": (True, False), "em": (True, False)}


class ReportError(ErasureError):
    """A run folder cannot be reported: a file is unreadable, malformed, or holds personal data."""


@dataclass(frozen=True)
class ReportPaths:
    """Where a report was written."""

    json: Path
    html: Path


class _View(BaseModel):
    """A reading of a run-folder file: fields the report uses, others ignored (they never reach it)."""

    model_config = ConfigDict(extra="ignore")


class StepFile(_View):
    """One `steps/<name>.json`: when the step ran and what it found."""

    step: str
    started_at: datetime
    finished_at: datetime
    seconds: float
    result: dict[str, Any]


class ScopeRow(_View):
    """One record of the scope, by id and hash."""

    id: str
    content_sha256: str
    reasons: list[Literal["owned", "mentioned", "near_duplicate", "shared_identifier", "swept"]]
    similarity: float | None = None
    decision: Literal["included", "excluded_borderline", "included_reviewed", "excluded_reviewed"]
    matched: str | None = None  # the scope record a near-duplicate resembles
    confirmation: str | None = None  # what confirmed a near-duplicate beyond cosine
    identifiers: list[str] = []  # identifier kinds found in it
    shared_spans: dict[str, int] = {}  # kinds of the rare spans it shares with the scope


class ScopeResult(_View):
    """The scope step's result."""

    records: list[ScopeRow]
    subject_keys_found: int
    scanned: int | None = None
    candidates: int | None = None
    notes: list[str] = []


class ServedAdapter(_View):
    """An adapter that serves a deployment."""

    id: str
    uri: str


class ProbedRecord(_View):
    """A scope record's raw scores and verdict in one probe."""

    record_id: str
    scores: dict[str, float | int | None]
    flagged: bool
    flagged_by: list[str] = []


class Auc(_View):
    """Forget-vs-holdout AUC of one score with its interval."""

    value: float
    ci_low: float
    ci_high: float
    forget: int
    holdout: int
    forget_people: int | None = None  # set when the interval resampled people, then their texts
    holdout_people: int | None = None


class ProbeView(_View):
    """The parts of `unlearning.probes.report.ProbeReport` the report shows."""

    adapter: str
    adapter_sha256: str
    config: dict[str, Any]
    per_score_threshold: float
    scores: list[str]
    holdout_ids: int
    holdout_stats: dict[str, dict[str, float | int]]
    holdout_false_flag_rate: float
    records: list[ProbedRecord]
    flagged: list[str]
    auc: dict[str, Auc]
    notes: list[str] = []
    seconds: float


class Attempt(_View):
    """One remedy attempt (a method run and probed again)."""

    method: str
    kind: Literal["exact", "approximate"]
    sha256: str | None = None
    steps: int | None = None
    seconds: float | None = None
    flagged_after: list[str] = []


class Utility(_View):
    """Mean NLL of a record set under the old and the new adapter."""

    records: int
    nll_before: float
    nll_after: float
    relative_change: float


class DeletedWeights(_View):
    """Weights deleted from the model store, with the digest of what was deleted."""

    adapter: str
    sha256: str
    deleted_at: datetime


class Remedy(_View):
    """What one remedy did to one served adapter."""

    remedy_id: str
    old_adapter: str
    old_adapter_sha256: str | None = None
    new_adapter: str | None = None
    new_adapter_sha256: str | None = None
    requested_method: str | None = None
    method: str
    kind: Literal["exact", "approximate"]
    escalated: bool
    escalation_reason: str | None = None
    attempts: list[Attempt] = []
    utility: dict[str, Utility] = {}
    deleted_weights: list[DeletedWeights] = []
    new_dataset_version: str | None = None
    coalesced_with: list[str] = []
    still_flagged: list[str] = []
    seconds: float


class Noop(_View):
    """An adapter the remedy left alone, and why."""

    adapter: str
    reason: str


class RemedyResult(_View):
    """The remedy step's result."""

    remedies: list[Remedy]
    noop: list[Noop] = []
    failed: list[dict[str, Any]] = []


class EraseResult(_View):
    """The erase_records step's result: what was deleted at the source (counts only)."""

    records: int
    tombstoned_now: int | None = None
    texts_deleted: int | None = None
    index_caches_dropped: int | None = None
    batch_lines_removed: dict[str, int] = {}


class Verdict(_View):
    """The attested verdict."""

    status: Literal["erased", "incomplete"]
    reasons: list[str] = []


class AttestResult(_View):
    """The attest step's result."""

    bundle: str
    envelope_sha256: str
    log_index: int
    verdict: Verdict
    registry: str


_RESULTS: dict[str, type[BaseModel]] = {"scope": ScopeResult, "remedy": RemedyResult, "erase_records": EraseResult,
                                         "attest": AttestResult, "identity": IdentityResult,
                                         "sweep_before": SweepResult, "sweep_after": SweepResult,
                                         "statistics": StatisticsResult}


# ---- the report ----

class RequestSection(BaseModel):
    """The request as filed, subject keys truncated."""

    id: str
    regime: str
    status: str
    review: bool
    requester: str
    received_at: datetime
    filed_at: datetime
    due_at: datetime
    extended_due_at: datetime | None
    extension_reason: str | None
    deadline: datetime
    subject_keys: dict[str, str]


class StepMark(BaseModel):
    """A step's times, or that it was not reached."""

    step: str
    reached: bool
    started_at: datetime | None = None
    finished_at: datetime | None = None
    seconds: float | None = None


class Timeline(BaseModel):
    """The steps against the deadline, measured at `as_of` (the attestation, or now)."""

    received_at: datetime
    due_at: datetime
    deadline: datetime
    as_of: datetime
    finished: bool
    days_left: int
    overdue: bool
    steps: list[StepMark]


class ScopeSection(BaseModel):
    """The scope records with counts per reason and per decision."""

    records: list[ScopeRow]
    per_reason: dict[str, int]
    per_decision: dict[str, int]
    in_scope: int
    subject_keys_found: int
    scanned: int | None
    candidates: int | None
    notes: list[str]


class Stage(BaseModel):
    """One stage of the blast-radius chain."""

    name: str
    count: int
    ids: list[str]


class BlastSection(BaseModel):
    """Records → shards → dataset versions → runs → adapters → deployments."""

    start: str
    stages: list[Stage]
    records_erased: int
    records_held_out: int
    depth_limit: int
    depth_limit_hit: bool
    served_adapters: list[ServedAdapter]


class Point(BaseModel):
    """A scope record's oriented score (larger = more memorized)."""

    record_id: str
    value: float
    flagged: bool


class Distribution(BaseModel):
    """One score: the oriented holdout quantiles and the scope records' points."""

    holdout: dict[str, float | int]
    points: list[Point]


class ProbeSummary(BaseModel):
    """One adapter's probe: flagged counts, AUCs, and the score distributions."""

    adapter: str
    adapter_sha256: str
    records: int
    flagged: list[str]
    alpha: float | None
    per_score_threshold: float
    holdout_ids: int
    holdout_false_flag_rate: float
    auc: dict[str, Auc]
    distributions: dict[str, Distribution]
    undrawn: dict[str, str]  # score -> why it has no chart
    notes: list[str]


class ProbePair(BaseModel):
    """An adapter probed before, and its replacement probed after (either may be missing)."""

    before: str | None
    after: str | None


class ProbeSection(BaseModel):
    """Probes before and after, per adapter (None: the step was not reached)."""

    before: dict[str, ProbeSummary] | None
    after: dict[str, ProbeSummary] | None
    pairs: list[ProbePair]


class VerifySection(BaseModel):
    """How an auditor checks the attestation offline."""

    command: str
    bundle: str
    bundle_present: bool
    registry: str
    envelope_sha256: str
    log_index: int


class ErasureReport(BaseModel):
    """The auditor's report of one request: only ids, hashes, times and figures from its run folder."""

    format: Literal["lethe-erasure-report/v1"] = REPORT_FORMAT
    generated_at: datetime
    request: RequestSection
    timeline: Timeline
    not_reached: list[str]
    scope: ScopeSection | None
    blast_radius: BlastSection | None
    probes: ProbeSection
    remedy: RemedyResult | None
    erased_at_source: EraseResult | None
    verdict: Verdict | None
    verify: VerifySection | None
    evidence: EvidenceSection


@dataclass(frozen=True)
class ReportInputs:
    """A run folder, read and checked: the request and the steps it reached."""

    folder: Path
    request: FiledRequest
    steps: dict[str, StepFile]
    results: dict[str, Any]


def _guard(value: Any, where: str) -> None:
    """ReportError if any string in `value` looks like an email address or phone number."""
    found = find_identifiers(value)
    if found:
        spots = ", ".join(f"{path} ({kind})" for path, kind in found[:10])
        raise ReportError(f"{where} holds what looks like raw personal data at {spots}; a report may hold only "
                          "ids, hashes and figures, so none was written. Remove or hash the value in that file")


def _describe(exc: ValidationError) -> str:
    """Where and what is wrong, without the input values (they could be personal data)."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '$'}: {e['msg']}" for e in exc.errors()[:5])


def _read_json(path: Path) -> Any:
    """A run-folder JSON file, guarded; ReportError names the file when it is unreadable or unsafe."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: cannot read it as JSON ({exc})") from None
    _guard(value, str(path))
    return value


def _validate(model: type[BaseModel], value: Any, path: Path, what: str) -> Any:
    """`value` as `model`; ReportError names the file and the fields at fault."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise ReportError(f"{path}: {what} does not match the run-folder format: {_describe(exc)}") from None


class _Served(_View):
    """The adapters serving deployments, listed beside the blast radius."""

    served_adapters: list[ServedAdapter] = []
    training: dict[str, Any] | None = None  # whether the subject's own records were trained on


class _Probes(_View):
    """A probe step's result: one probe report per adapter."""

    adapters: dict[str, ProbeView]


def _step_result(name: str, step: StepFile, path: Path) -> Any:
    """The typed result of one step."""
    if name == "blast_radius":
        extra = _validate(_Served, step.result, path, "the blast_radius result")
        return _validate(BlastRadius, step.result, path, "the blast_radius result"), extra.served_adapters, extra.training
    if name in ("probe_before", "probe_after"):
        return _validate(_Probes, step.result, path, f"the {name} result").adapters
    return _validate(_RESULTS[name], step.result, path, f"the {name} result")


def load_report_inputs(state_dir: Path, request_id: str) -> ReportInputs:
    """Read and check a request's run folder (ReportError names the file at fault)."""
    folder = request_dir(state_dir, request_id)
    path = folder / "request.json"
    if not _REQUEST_ID.fullmatch(request_id) or not path.is_file():
        raise RequestNotFoundError(f"no erasure request {request_id!r}; `lethe erase list` shows the filed ones")
    request = _validate(FiledRequest, _read_json(path), path, "the request")
    steps, results = {}, {}
    for name in STEPS:
        path = folder / "steps" / f"{name}.json"
        if not path.is_file():
            continue
        step = _validate(StepFile, _read_json(path), path, "the step file")
        if step.step != name:
            raise ReportError(f"{path}: names step {step.step!r}, expected {name!r}")
        steps[name], results[name] = step, _step_result(name, step, path)
    return ReportInputs(folder, request, steps, results)


def oriented_score(score: str, value: float | int | None) -> float | None:
    """A raw score on the holdout quantiles' scale (larger = more memorized); None if unknown or not finite."""
    if score not in SCORE_ORIENTATION or value is None or not math.isfinite(value):
        return None
    higher, log_scale = SCORE_ORIENTATION[score]
    out = math.log(max(float(value), 1e-12)) if log_scale else float(value)
    return out if higher else -out


def _days_left(deadline: datetime, as_of: datetime) -> int:
    """Whole days from `as_of` to the deadline, rounded down: negative exactly when overdue."""
    return math.floor((deadline - as_of).total_seconds() / SECONDS_PER_DAY)


def _as_of(steps: dict[str, StepFile], now: datetime) -> tuple[datetime, bool]:
    """When the deadline is measured: the attestation's finish, or now; and whether it is finished."""
    attest = steps.get("attest")
    return (attest.finished_at, True) if attest is not None else (now, False)


def _request_section(request: FiledRequest) -> RequestSection:
    """The request, subject keys truncated and marked as HMACs.

    The mark matters: about one key in 280 starts with 12 decimal digits, and a bare run of them reads
    as a phone number to the personal-data guard (a demo of 30 requests refused its report so).
    """
    keys = {kind: f"hmac:{key[:KEY_CHARS]}…" for kind, key in sorted(request.subject_keys.items())}
    return RequestSection(id=request.id, regime=request.regime.value, status=request.status.value,
                          review=request.review, requester=request.requester, received_at=request.received_at,
                          filed_at=request.filed_at, due_at=request.due_at, extended_due_at=request.extended_due_at,
                          extension_reason=request.extension_reason, deadline=request.deadline, subject_keys=keys)


def _timeline(inputs: ReportInputs, now: datetime) -> Timeline:
    """The steps against the deadline."""
    request, steps = inputs.request, inputs.steps
    as_of, finished = _as_of(steps, now)
    marks = [StepMark(step=n, reached=True, started_at=s.started_at, finished_at=s.finished_at, seconds=s.seconds)
             if (s := steps.get(n)) else StepMark(step=n, reached=False) for n in STEPS]
    days = _days_left(request.deadline, as_of)
    return Timeline(received_at=request.received_at, due_at=request.due_at, deadline=request.deadline, as_of=as_of,
                    finished=finished, days_left=days, overdue=days < 0, steps=marks)


def _scope_section(result: ScopeResult) -> ScopeSection:
    """The scope table and its counts."""
    reasons = Counter(reason for r in result.records for reason in r.reasons)
    decisions = Counter(r.decision for r in result.records)
    in_scope = sum(decisions[d] for d in ("included", "included_reviewed"))
    return ScopeSection(records=result.records, per_reason=dict(sorted(reasons.items())),
                        per_decision=dict(sorted(decisions.items())), in_scope=in_scope,
                        subject_keys_found=result.subject_keys_found, scanned=result.scanned,
                        candidates=result.candidates, notes=result.notes)


def _blast_section(radius: BlastRadius, served: list[ServedAdapter]) -> BlastSection:
    """The chain's stages with counts and ids."""
    record_ids = sorted({record for record, _ in radius.record_shard})
    stages = [Stage(name="records", count=radius.records, ids=record_ids),
              Stage(name="shards", count=len(radius.shards), ids=radius.shards),
              Stage(name="dataset versions", count=len(radius.datasets), ids=[d.id for d in radius.datasets]),
              Stage(name="runs", count=len(radius.runs), ids=radius.runs),
              Stage(name="adapters", count=len(radius.adapters), ids=[a.id for a in radius.adapters]),
              Stage(name="deployments", count=len(radius.deployments), ids=[d.id for d in radius.deployments])]
    return BlastSection(start=radius.start, stages=stages, records_erased=radius.records_erased,
                        records_held_out=radius.records_held_out, depth_limit=radius.depth_limit,
                        depth_limit_hit=radius.depth_limit_hit, served_adapters=served)


def _probe_summary(probe: ProbeView) -> ProbeSummary:
    """Flagged counts, AUCs and oriented distributions of one adapter's probe."""
    distributions, undrawn = {}, {}
    for score in probe.scores:
        stats = probe.holdout_stats.get(score, {})
        if score not in SCORE_ORIENTATION:
            undrawn[score] = "the report does not know which way this score points"
        elif not stats.get("n") or "q05" not in stats:
            undrawn[score] = "no holdout statistics"
        else:
            points = [Point(record_id=r.record_id, value=v, flagged=r.flagged) for r in probe.records
                      if (v := oriented_score(score, r.scores.get(score))) is not None]
            distributions[score] = Distribution(holdout=stats, points=points)
    alpha = probe.config.get("alpha")
    return ProbeSummary(adapter=probe.adapter, adapter_sha256=probe.adapter_sha256, records=len(probe.records),
                        flagged=probe.flagged, alpha=alpha if isinstance(alpha, (int, float)) else None,
                        per_score_threshold=probe.per_score_threshold, holdout_ids=probe.holdout_ids,
                        holdout_false_flag_rate=probe.holdout_false_flag_rate, auc=probe.auc,
                        distributions=distributions, undrawn=undrawn, notes=probe.notes)


def _pairs(before: dict | None, after: dict | None, remedy: RemedyResult | None) -> list[ProbePair]:
    """Each adapter probed before with its replacement probed after (by the remedy's old → new)."""
    before, after = before or {}, after or {}
    replaced = {r.old_adapter: r.new_adapter for r in remedy.remedies} if remedy else {}
    pairs, used = [], set()
    for old in before:
        new = replaced.get(old) if replaced.get(old) in after else (old if old in after else None)
        pairs.append(ProbePair(before=old, after=new))
        used.add(new)
    return pairs + [ProbePair(before=None, after=new) for new in after if new not in used]


def _verify_section(result: AttestResult, folder: Path) -> VerifySection:
    """The offline verification command and what it checks against."""
    bundle = folder / result.bundle
    command = f"lethe attest verify {shlex.quote(str(bundle))} --keys {shlex.quote(result.registry)}"
    return VerifySection(command=command, bundle=str(bundle), bundle_present=bundle.is_file(),
                         registry=result.registry, envelope_sha256=result.envelope_sha256, log_index=result.log_index)


def make_report(inputs: ReportInputs, now: datetime) -> ErasureReport:
    """The report of a checked run folder (pure: no I/O)."""
    res = inputs.results
    probes = {k: {a: _probe_summary(p) for a, p in res[k].items()} if k in res else None
              for k in ("probe_before", "probe_after")}
    blast = _blast_section(*res["blast_radius"][:2]) if "blast_radius" in res else None
    training = res["blast_radius"][2] if "blast_radius" in res else None
    attest = res.get("attest")
    return ErasureReport(
        generated_at=now, request=_request_section(inputs.request), timeline=_timeline(inputs, now),
        not_reached=[n for n in STEPS if n not in inputs.steps],
        scope=_scope_section(res["scope"]) if "scope" in res else None, blast_radius=blast,
        probes=ProbeSection(before=probes["probe_before"], after=probes["probe_after"],
                            pairs=_pairs(res.get("probe_before"), res.get("probe_after"), res.get("remedy"))),
        remedy=res.get("remedy"), erased_at_source=res.get("erase_records"), verdict=attest.verdict if attest else None,
        evidence=evidence_section(res, training),
        verify=_verify_section(attest, inputs.folder) if attest else None)


def _now(now: datetime | None) -> datetime:
    """`now`, which must carry a timezone, or the current UTC time."""
    if now is None:
        return datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise ValueError("now needs a timezone, e.g. datetime.now(timezone.utc)")
    return now


def build_report(state_dir: Path, request_id: str, *, now: datetime | None = None) -> ReportPaths:
    """Write `report.json` and `report.html` into the request's run folder; refuse if they would hold personal data."""
    now = _now(now)
    inputs = load_report_inputs(state_dir, request_id)
    report = make_report(inputs, now)
    value = report.model_dump(mode="json")
    _guard(value, f"the report of {request_id}")
    html_text = render_report(report)
    paths = ReportPaths(inputs.folder / "report.json", inputs.folder / "report.html")
    write_json_atomic(paths.json, value)
    write_private_text(paths.html, html_text)
    return paths


# ---- the register ----

class RegisterRow(BaseModel):
    """One request in the register: where it stands against its deadline."""

    id: str
    regime: str
    status: str
    received_at: datetime
    deadline: datetime
    days_left: int  # at the attestation when attested, else now; negative when overdue
    overdue: bool
    verdict: Literal["erased", "incomplete"] | None
    attested: bool
    report: str | None


def _register_row(state_dir: Path, request: FiledRequest, now: datetime) -> RegisterRow:
    """A request's row, from its request file and attest step."""
    folder = request_dir(state_dir, request.id)
    path = folder / "steps" / "attest.json"
    attest = _validate(StepFile, _read_json(path), path, "the step file") if path.is_file() else None
    result = _validate(AttestResult, attest.result, path, "the attest result") if attest else None
    as_of, _ = _as_of({"attest": attest} if attest else {}, now)
    days = _days_left(request.deadline, as_of)
    report = folder / "report.html"
    return RegisterRow(id=request.id, regime=request.regime.value, status=request.status.value,
                       received_at=request.received_at, deadline=request.deadline, days_left=days,
                       overdue=days < 0, verdict=result.verdict.status if result else None,
                       attested=bool(result and (folder / result.bundle).is_file()),
                       report=str(report) if report.is_file() else None)


def register(state_dir: Path, *, now: datetime | None = None) -> list[RegisterRow]:
    """Every filed request, soonest deadline first."""
    now = _now(now)
    rows = [_register_row(state_dir, r, now) for r in list_requests(state_dir)]
    return sorted(rows, key=lambda row: (row.deadline, row.id))


def write_register(state_dir: Path, *, now: datetime | None = None) -> Path:
    """Write `requests/register.json` and `register.html`; returns the JSON's path."""
    now = _now(now)
    rows = register(state_dir, now=now)
    value = {"format": REGISTER_FORMAT, "generated_at": now.isoformat(),
             "requests": [row.model_dump(mode="json") for row in rows]}
    _guard(value, "the register")
    root = Path(state_dir) / "requests"
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(root / "register.json", value)
    write_private_text(root / "register.html", render_register(rows, now))
    return root / "register.json"
