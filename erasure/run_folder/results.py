"""The pydantic models of a run folder's step files and of each step's result, as the engine writes them.

Readers (the report, and whoever needs a step's figures) validate a step file against these; a field a
reader does not use is ignored, so a model names what is read, never more.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from erasure.identity import IdentityResult
from erasure.statistics import StatisticsResult
from erasure.sweep import SweepResult

__all__ = ["AttestResult", "Attempt", "Auc", "BlastServed", "DeletedWeights", "EraseResult", "Noop", "ProbeResult",
           "ProbeView", "ProbedRecord", "RESULT_MODELS", "Remedy", "RemedyResult", "ScopeResult", "ScopeRow",
           "ServedAdapter", "StepFile", "StepView", "Utility", "Verdict"]


class StepView(BaseModel):
    """A reading of a run-folder file: fields the report uses, others ignored (they never reach it)."""

    model_config = ConfigDict(extra="ignore")


class StepFile(StepView):
    """One `steps/<name>.json`: when the step ran and what it found."""

    step: str
    started_at: datetime
    finished_at: datetime
    seconds: float
    result: dict[str, Any]


class ScopeRow(StepView):
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


class ScopeResult(StepView):
    """The scope step's result."""

    records: list[ScopeRow]
    subject_keys_found: int
    scanned: int | None = None
    candidates: int | None = None
    notes: list[str] = []


class ServedAdapter(StepView):
    """An adapter that serves a deployment."""

    id: str
    uri: str


class ProbedRecord(StepView):
    """A scope record's raw scores and verdict in one probe."""

    record_id: str
    scores: dict[str, float | int | None]
    flagged: bool
    flagged_by: list[str] = []


class Auc(StepView):
    """Forget-vs-holdout AUC of one score with its interval."""

    value: float
    ci_low: float
    ci_high: float
    forget: int
    holdout: int
    forget_people: int | None = None  # set when the interval resampled people, then their texts
    holdout_people: int | None = None


class ProbeView(StepView):
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


class Attempt(StepView):
    """One remedy attempt (a method run and probed again)."""

    method: str
    kind: Literal["exact", "approximate"]
    sha256: str | None = None
    steps: int | None = None
    seconds: float | None = None
    flagged_after: list[str] = []


class Utility(StepView):
    """Mean NLL of a record set under the old and the new adapter."""

    records: int
    nll_before: float
    nll_after: float
    relative_change: float


class DeletedWeights(StepView):
    """Weights deleted from the model store, with the digest of what was deleted."""

    adapter: str
    sha256: str
    deleted_at: datetime


class Remedy(StepView):
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


class Noop(StepView):
    """An adapter the remedy left alone, and why."""

    adapter: str
    reason: str


class RemedyResult(StepView):
    """The remedy step's result."""

    remedies: list[Remedy]
    noop: list[Noop] = []
    failed: list[dict[str, Any]] = []


class EraseResult(StepView):
    """The erase_records step's result: what was deleted at the source (counts only)."""

    records: int
    tombstoned_now: int | None = None
    texts_deleted: int | None = None
    index_caches_dropped: int | None = None
    batch_lines_removed: dict[str, int] = {}


class Verdict(StepView):
    """The attested verdict."""

    status: Literal["erased", "incomplete"]
    reasons: list[str] = []


class AttestResult(StepView):
    """The attest step's result."""

    bundle: str
    envelope_sha256: str
    log_index: int
    verdict: Verdict
    registry: str


class BlastServed(StepView):
    """The adapters serving deployments, listed beside the blast radius."""

    served_adapters: list[ServedAdapter] = []
    training: dict[str, Any] | None = None  # whether the subject's own records were trained on


class ProbeResult(StepView):
    """A probe step's result: one probe report per adapter."""

    adapters: dict[str, ProbeView]


RESULT_MODELS: dict[str, type[BaseModel]] = {"scope": ScopeResult, "remedy": RemedyResult, "erase_records": EraseResult,
                                         "attest": AttestResult, "identity": IdentityResult,
                                         "sweep_before": SweepResult, "sweep_after": SweepResult,
                                         "statistics": StatisticsResult}
