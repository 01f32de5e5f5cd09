"""What a report reads from a run folder: typed views of `request.json` and `steps/*.json`, checked first.

Every file is scanned for text that looks like an email address or phone number before it is parsed
further; a hit refuses the report, naming the file and the JSON path (never the text). Error messages
name the file and the fields at fault, never the values (they could be personal data).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from attestation.identifier_guard import find_identifiers
from erasure.errors import ErasureError
from erasure.identity import IdentityResult
from erasure.requests import FiledRequest, RequestNotFoundError, request_dir
from erasure.run_folder import ATTESTED_STEPS
from erasure.statistics import StatisticsResult
from erasure.sweep import SweepResult
from lineage.impact import BlastRadius

__all__ = ["STEPS", "AttestResult", "Auc", "EraseResult", "ProbeView", "RemedyResult", "ReportError",
           "ReportInputs", "ScopeResult", "ScopeRow", "ServedAdapter", "StepFile", "Verdict", "guard",
           "load_report_inputs", "read_attest_step"]

STEPS = ATTESTED_STEPS
_REQUEST_ID = re.compile(r"er-[0-9a-f]{24}")


class ReportError(ErasureError):
    """A run folder cannot be reported: a file is unreadable, malformed, or holds personal data."""


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


class _Served(_View):
    """The adapters serving deployments, listed beside the blast radius."""

    served_adapters: list[ServedAdapter] = []
    training: dict[str, Any] | None = None  # whether the subject's own records were trained on


class _Probes(_View):
    """A probe step's result: one probe report per adapter."""

    adapters: dict[str, ProbeView]


_RESULTS: dict[str, type[BaseModel]] = {"scope": ScopeResult, "remedy": RemedyResult, "erase_records": EraseResult,
                                         "attest": AttestResult, "identity": IdentityResult,
                                         "sweep_before": SweepResult, "sweep_after": SweepResult,
                                         "statistics": StatisticsResult}


@dataclass(frozen=True)
class ReportInputs:
    """A run folder, read and checked: the request and the steps it reached."""

    folder: Path
    request: FiledRequest
    steps: dict[str, StepFile]
    results: dict[str, Any]


def guard(value: Any, where: str) -> None:
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
    guard(value, str(path))
    return value


def _validate(model: type[BaseModel], value: Any, path: Path, what: str) -> Any:
    """`value` as `model`; ReportError names the file and the fields at fault."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise ReportError(f"{path}: {what} does not match the run-folder format: {_describe(exc)}") from None


def _read_step(path: Path) -> StepFile:
    """One step file, guarded and checked."""
    return _validate(StepFile, _read_json(path), path, "the step file")


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
        step = _read_step(path)
        if step.step != name:
            raise ReportError(f"{path}: names step {step.step!r}, expected {name!r}")
        steps[name], results[name] = step, _step_result(name, step, path)
    return ReportInputs(folder, request, steps, results)


def read_attest_step(folder: Path) -> tuple[StepFile, AttestResult] | None:
    """A run folder's attest step and its result, checked; None when the request is not attested yet."""
    path = folder / "steps" / "attest.json"
    if not path.is_file():
        return None
    step = _read_step(path)
    return step, _validate(AttestResult, step.result, path, "the attest result")
