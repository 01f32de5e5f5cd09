"""The pydantic models of a run folder's step files and of every step's result, as the engine writes them.

`save_step` checks each result against its model before writing it, and readers (the engine's later steps,
the attestation, the report, the CLI, the API, the demo) read results through the same models, so a field
cannot be written one way and read another. Every model forbids fields it does not name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from attestation.predicate_v2 import Training
from erasure.identity import IdentityResult
from erasure.scope import INCLUDED
from erasure.statistics import StatisticsResult
from erasure.sweep import SweepResult
from lineage.impact import BlastRadius
from unlearning.probes.report import AucReport, ProbeReport

__all__ = ["AttestResult", "Attempt", "AucReport", "BlastResult", "DeletedWeights", "EraseResult", "ManifestRef",
           "Noop", "ProbeReport", "ProbeResult", "RESULT_MODELS", "Remedy", "RemedyResult", "ReportResult",
           "ScopeResult", "ScopeReview", "ScopeRow", "ServedAdapter", "StepFile", "StepModel", "Utility", "Verdict"]


class StepModel(BaseModel):
    """A part of a run-folder file: every field named, none other accepted."""

    model_config = ConfigDict(extra="forbid")


class StepFile(StepModel):
    """One `steps/<name>.json`: when the step ran and what it found."""

    step: str
    started_at: datetime
    finished_at: datetime
    seconds: float
    result: dict[str, Any]


class ScopeRow(StepModel):
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
    via_keys: list[str] = []  # the identity's keys (HMACs) that brought it

    @property
    def included(self) -> bool:
        return self.decision in INCLUDED


class ScopeReview(StepModel):
    """One person's review of the scope: the records they put in or left out, and why (no identifier in it)."""

    at: datetime
    included: list[str] = []
    excluded: list[str] = []
    dropped_identifiers: int = 0
    reason: str


class ScopeResult(StepModel):
    """The scope step's result."""

    records: list[ScopeRow]
    subject_keys_found: int
    scanned: int | None = None
    candidates: int | None = None
    notes: list[str] = []
    reviews: list[ScopeReview] = []  # the reviews with a reason, oldest first

    def included_ids(self) -> list[str]:
        """Ids of the records in scope (included by rule or by review), sorted."""
        return sorted(r.id for r in self.records if r.included)

    def included_hashes(self) -> dict[str, str]:
        """id -> content hash of the records in scope."""
        return {r.id: r.content_sha256 for r in self.records if r.included}


class ServedAdapter(StepModel):
    """An adapter that serves a deployment."""

    id: str
    uri: str
    sha256: str | None = None
    forms: list[str] = []  # the forms its deployments record serving (unlearning.forms); empty: none recorded


class BlastResult(BlastRadius):
    """The blast_radius step's result: the subgraph, the adapters serving deployments, the training status."""

    model_config = ConfigDict(extra="forbid")

    served_adapters: list[ServedAdapter] = []
    training: Training


class Noop(StepModel):
    """An adapter a probe or a remedy left alone, and why."""

    adapter: str
    reason: str


class ProbeResult(StepModel):
    """A probe step's result: one probe report per adapter, and the adapters it could not probe."""

    adapters: dict[str, ProbeReport]
    noop: list[Noop] = []
    # Before the remedy: this request's share of the time the run's shared generation batches took
    # (erasure.generation_prefetch): the batches' seconds over the requests in them. Its probes read them.
    shared_generation_seconds: float = 0.0


class Attempt(StepModel):
    """One remedy attempt (a method run and probed again)."""

    method: str
    kind: Literal["exact", "approximate"]
    sha256: str | None = None
    steps: int | None = None
    seconds: float | None = None
    flagged_after: list[str] = []
    details: dict[str, Any] = {}  # what the method reports of itself (shards retrained, seeds, losses)


class Utility(StepModel):
    """Mean NLL of a record set under the old and the new adapter."""

    records: int
    nll_before: float
    nll_after: float
    relative_change: float


class DeletedWeights(StepModel):
    """Weights deleted from the model store, with the digest of what was deleted."""

    adapter: str
    sha256: str
    deleted_at: datetime


class ManifestRef(StepModel):
    """The dataset version an adapter trained on: its id, manifest root and size, and what trained it
    ("lethe", or "external:<trainer>" for an adapter registered from elsewhere: lethe.external_adapters)."""

    dataset_version: str
    root: str
    size: int
    trained_by: str = "lethe"


class Remedy(StepModel):
    """What one remedy did to one served adapter."""

    remedy_id: str
    old_adapter: str
    old_adapter_sha256: str | None = None
    new_adapter: str
    new_adapter_path: str | None = None
    new_adapter_sha256: str
    requested_method: str | None = None
    method: str
    kind: Literal["exact", "approximate"]
    config: dict[str, Any] = {}
    escalated: bool
    escalation_reason: str | None = None
    attempts: list[Attempt] = []
    utility: dict[str, Utility] = {}
    deleted_weights: list[DeletedWeights] = []
    new_dataset_version: str | None = None
    old_manifest: ManifestRef | None = None
    coalesced_with: list[str] = []
    still_flagged: list[str] = []
    stage_seconds: dict[str, float] = {}
    seconds: float
    # The relearning check after each attempt: its config, or why it was turned off (None: an older run).
    relearning: dict[str, Any] | None = None


class RemedyResult(StepModel):
    """The remedy step's result."""

    remedies: list[Remedy]
    noop: list[Noop] = []


class EraseResult(StepModel):
    """The erase_records step's result: what was deleted at the source (counts only)."""

    records: int
    tombstoned_now: int | None = None
    texts_deleted: int | None = None
    index_caches_dropped: int | None = None
    batch_lines_removed: dict[str, int] = {}


class Verdict(StepModel):
    """The attested verdict."""

    status: Literal["erased", "incomplete"]
    reasons: list[str] = []


class AttestResult(StepModel):
    """The attest step's result."""

    bundle: str
    envelope_sha256: str
    log_index: int
    verdict: Verdict
    registry: str
    subjects: dict[str, str] = {}


class ReportResult(StepModel):
    """The report step's result: the report's file name."""

    html: str


RESULT_MODELS: dict[str, type[BaseModel]] = {
    "identity": IdentityResult, "scope": ScopeResult, "sweep_before": SweepResult, "blast_radius": BlastResult,
    "probe_before": ProbeResult, "remedy": RemedyResult, "probe_after": ProbeResult, "sweep_after": SweepResult,
    "statistics": StatisticsResult, "erase_records": EraseResult, "attest": AttestResult, "report": ReportResult}
