"""What `report.json` and `register.json` hold: the report's sections and the register's rows.

Only ids, hashes, times and figures; subject keys truncated; identifiers by kind only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from erasure.run_folder.results import AucReport, EraseResult, RemedyResult, ScopeRow, ServedAdapter, Verdict
from erasure.statistics import FamilyRecord
from erasure.sweep import SweepResult

__all__ = ["KEY_CHARS", "REGISTER_FORMAT", "REPORT_FORMAT", "BlastSection", "Distribution",
           "ErasureReport", "EvidenceSection", "IdentityRow", "IdentitySection", "Point", "ProbePair",
           "ProbeSection", "FormSummary", "ProbeSummary", "RegisterRow", "RemedySection", "RequestSection",
           "ScopeSection", "Stage", "StatisticsSection", "StepMark", "Timeline", "TrainingSection",
           "VerifySection", "ENGINE_ONLY", "hmac_label"]

REPORT_FORMAT = "lethe-erasure-report/v1"
REGISTER_FORMAT = "lethe-erasure-register/v1"
KEY_CHARS = 12  # subject keys are shown truncated: enough to match them, too little to act on


def hmac_label(key: str) -> str:
    """A subject key truncated and marked as an HMAC.

    The mark matters: about one key in 280 starts with 12 decimal digits, and a bare run of them reads
    as a phone number to the personal-data guard (a demo of 30 requests refused its report so).
    """
    return f"hmac:{key[:KEY_CHARS]}…"


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


class FormSummary(BaseModel):
    """One served form's probe of an adapter (unlearning.forms), or the probe after the relearning check
    ("relearned"): what it flagged and its AUCs."""

    flagged: list[str]
    records: int
    auc: dict[str, AucReport]
    generation: str | None = None  # the request's person's extraction test, in a line


class ProbeSummary(BaseModel):
    """One adapter's probe: flagged counts, AUCs, and the score distributions; each served form's figures."""

    adapter: str
    adapter_sha256: str
    records: int
    flagged: list[str]
    alpha: float | None
    per_score_threshold: float
    holdout_ids: int
    holdout_false_flag_rate: float
    auc: dict[str, AucReport]
    distributions: dict[str, Distribution]
    undrawn: dict[str, str]  # score -> why it has no chart
    notes: list[str]
    generation: str | None = None  # the request's person's extraction test, in a line
    forms: dict[str, FormSummary] = {}
    # The same test on each shard adapter that trained on the scope ("shard <index>"), in a line.
    shard_generations: dict[str, str] = {}


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


class IdentityRow(BaseModel):
    """One identifier of the person: kind, truncated key, how it was found and what became of it."""

    kind: str
    key: str
    hop: int
    decision: str
    owned_records: int
    people: int | None
    value_found: bool
    linked_by: list[str]


class IdentitySection(BaseModel):
    """The identity the scope and the sweeps used."""

    expand: bool
    hops: int
    identifiers: list[IdentityRow]
    ambiguous_records: list[str]
    notes: list[str]


class TrainingSection(BaseModel):
    """Whether the subject's own records reached a fine-tune run."""

    subject_records: int
    trained: int
    held_out: int
    not_in_any_run: int
    never_trained: bool
    adapters_trained_on_mentions: list[str]


class StatisticsSection(BaseModel):
    """The run's false-alarm control and this request's flags in it."""

    method: str
    alpha: float
    run_requests: int
    tests_before: int
    tests_after: int
    flags_before: int
    flags_after: int
    own_flags: list[FamilyRecord]


class EvidenceSection(BaseModel):
    """Everything beyond the probes that backs the verdict (None: the step was not reached)."""

    identity: IdentitySection | None
    training: TrainingSection | None
    sweep_before: SweepResult | None
    sweep_after: SweepResult | None
    statistics: StatisticsSection | None


class RemedySection(RemedyResult):
    """The remedy step as the report shows it. `failed` stays in the report/v1 format for its readers and is
    always empty: a remedy that fails stops the run, and the next run resumes it."""

    failed: list[dict[str, Any]] = []


# Fields of the run folder the report leaves out: the full identity keys that brought a record into scope
# (the evidence section shows them truncated), local paths, method settings and stage timings.
ENGINE_ONLY = {
    "scope": {"records": {"__all__": {"via_keys"}}},
    "blast_radius": {"served_adapters": {"__all__": {"sha256"}}},
    "remedy": {"remedies": {"__all__": {"config": True, "new_adapter_path": True, "old_manifest": True,
                                        "stage_seconds": True, "attempts": {"__all__": {"details"}}}}},
}


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
    remedy: RemedySection | None
    erased_at_source: EraseResult | None
    verdict: Verdict | None
    verify: VerifySection | None
    evidence: EvidenceSection

    def as_json(self) -> dict:
        """The report as `report.json` holds it: the run folder's sections less what only the engine needs."""
        return self.model_dump(mode="json", exclude=ENGINE_ONLY)


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
