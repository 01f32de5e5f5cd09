"""The erasure predicate v1 (https://lethe.dev/attestation/erasure/v1): what was erased, how, and the evidence.

Lethe issues v2 (attestation.predicate_v2: this, identity, sweeps, false-alarm control, training); v1 verifies.

Every field is required, even the optional ones (they must be given as null): a reader can tell
"not measured" from "forgotten", and no default is ever filled in. Validators enforce policy that
needs no cryptography (an `erased` verdict has no reasons and no flagged record left); `check_evidence`
checks the non-inclusion proofs.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, JsonValue, StringConstraints, model_validator

from attestation.errors import EvidenceError
from attestation.generation import GenerationSummary
from attestation.manifest_proofs import NonInclusionProof, scope_root, verify_non_inclusion
from attestation.schema import Count, Name, Probability, Sha256Hex, StrictModel, UtcDatetime

PREDICATE_TYPE_V1 = "https://lethe.dev/attestation/erasure/v1"

# A random request reference: letters, digits and ._:- only, so it cannot be an email or a name.
RequestReference = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{7,127}$")]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=r"\S")]


class Request(StrictModel):
    """The erasure request, by random reference and subject key, with its regime and deadlines."""

    reference: RequestReference
    subject_key: Sha256Hex  # the subject's keyed HMAC, never the identifier
    regime: Name
    received_at: UtcDatetime
    due_at: UtcDatetime
    extended_due_at: UtcDatetime | None
    extension_reason: Reason | None

    @model_validator(mode="after")
    def _deadlines(self) -> Self:
        if self.due_at < self.received_at:
            raise ValueError("due_at is before received_at")
        if (self.extended_due_at is None) != (self.extension_reason is None):
            raise ValueError("extended_due_at and extension_reason go together: give both or neither")
        if self.extended_due_at is not None and self.extended_due_at <= self.due_at:
            raise ValueError("extended_due_at must be later than due_at")
        return self


class Scope(StrictModel):
    """The scope records: their number and the RFC 6962 root of their sorted record hashes."""

    record_count: Count
    root: Sha256Hex


class BlastCounts(StrictModel):
    """How many of each kind of thing the scope reached."""

    datasets: Count
    shards: Count
    runs: Count
    adapters: Count
    deployments: Count


class BlastIds(StrictModel):
    """The ids of what the scope reached (internal ids, never personal data)."""

    datasets: list[Name]
    shards: list[Name]
    runs: list[Name]
    adapters: list[Name]
    deployments: list[Name]


class BlastRadius(StrictModel):
    """What the scope reached: counts, and the ids they count."""

    counts: BlastCounts
    ids: BlastIds

    @model_validator(mode="after")
    def _counts_match(self) -> Self:
        for kind in BlastCounts.model_fields:
            ids = getattr(self.ids, kind)
            if getattr(self.counts, kind) != len(ids) or len(set(ids)) != len(ids):
                raise ValueError(f"counts.{kind} must equal the number of distinct ids.{kind}")
        return self


class Method(StrictModel):
    """The remediation method: registry name, exact or approximate, and its configuration."""

    name: Name
    kind: Literal["exact", "approximate"]
    config: dict[str, JsonValue]


class ManifestRef(StrictModel):
    """A dataset version's manifest: its root and number of leaves."""

    dataset_version: Name
    root: Sha256Hex
    size: Count


class ManifestChange(StrictModel):
    """A manifest before and after erasure, with proofs that the scope is absent from the after one."""

    before: ManifestRef
    after: ManifestRef
    non_inclusion: list[NonInclusionProof]

    @model_validator(mode="after")
    def _unique_targets(self) -> Self:
        targets = [p.target for p in self.non_inclusion]
        if len(set(targets)) != len(targets):
            raise ValueError("non_inclusion proves a target twice; one proof per scope record hash")
        return self


class HoldoutStats(StrictModel):
    """A score's distribution on held-out records no run trained on."""

    n: Annotated[int, Field(ge=1)]
    mean: float
    std: Annotated[float, Field(ge=0.0)]


class AucEstimate(StrictModel):
    """Scope-vs-holdout AUC with its confidence interval, beside the retrained reference's AUC."""

    value: Probability
    ci_low: Probability
    ci_high: Probability
    ci_level: Annotated[float, Field(gt=0.0, lt=1.0)]
    # bootstrap: records resampled one by one; bootstrap_people: people, then each one's records.
    method: Literal["bootstrap", "bootstrap_people", "delong"]
    n_scope: Annotated[int, Field(ge=1)]
    n_holdout: Annotated[int, Field(ge=1)]
    reference_value: Probability | None
    # People on each side, with method bootstrap_people only. Optional (unlike the other fields) so that
    # bundles issued before they existed still verify.
    n_scope_people: Annotated[int, Field(ge=1)] | None = None
    n_holdout_people: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _interval(self) -> Self:
        if not self.ci_low <= self.value <= self.ci_high:
            raise ValueError("the AUC must lie inside its confidence interval")
        counted = (self.n_scope_people is not None, self.n_holdout_people is not None)
        if counted != ((self.method == "bootstrap_people"),) * 2:
            raise ValueError("n_scope_people and n_holdout_people are given with method bootstrap_people, "
                             "and only with it")
        if self.method == "bootstrap_people" and (self.n_scope_people > self.n_scope
                                                   or self.n_holdout_people > self.n_holdout):
            raise ValueError("more people than records on a side of the AUC")
        return self


class RecordScore(StrictModel):
    """One scope record's probe scores, keyed by its hash (never its text)."""

    record_hash: Sha256Hex
    scores: dict[Name, float]
    p_value: Probability | None
    flagged: bool


class ProbeSummary(StrictModel):
    """Probe results on one adapter: calibration, thresholds, counts, AUC and per-record scores."""

    adapter: Name
    adapter_sha256: Sha256Hex
    alpha: Annotated[float, Field(gt=0.0, lt=1.0)]
    correction: Name
    tail_estimate: Literal["empirical", "normal", "skew-normal"]
    thresholds: dict[Name, float]
    holdout: dict[Name, HoldoutStats]
    records_probed: Count
    records_flagged: Count
    auc: AucEstimate | None
    records: list[RecordScore]
    generation: GenerationSummary | None = None  # optional: bundles issued before it existed still verify
    shard_generations: dict[Name, GenerationSummary] = {}  # "shard <index>" -> the same test on that shard adapter

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if set(self.thresholds) != set(self.holdout):
            raise ValueError("every thresholded score needs its holdout statistics, and only those")
        if len(self.records) != self.records_probed:
            raise ValueError("records_probed must equal the number of per-record scores")
        if sum(r.flagged for r in self.records) != self.records_flagged:
            raise ValueError("records_flagged must equal the number of records marked flagged")
        return self


class Probes(StrictModel):
    """Probe summaries of the adapters before and after remediation."""

    before: list[ProbeSummary]
    after: list[ProbeSummary]


class UtilitySnapshot(StrictModel):
    """Utility metrics of one adapter (e.g. retained and holdout NLL)."""

    adapter: Name
    metrics: Annotated[dict[Name, float], Field(min_length=1)]


class Utility(StrictModel):
    """Utility of the adapters before and after remediation."""

    before: list[UtilitySnapshot]
    after: list[UtilitySnapshot]


class Timings(StrictModel):
    """When the erasure ran, and seconds per step."""

    started_at: UtcDatetime
    finished_at: UtcDatetime
    steps_seconds: dict[Name, Annotated[float, Field(ge=0.0)]]

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.finished_at < self.started_at:
            raise ValueError("finished_at is before started_at")
        return self


class Versions(StrictModel):
    """The code and base model the erasure ran with."""

    code_version: Name
    base_model_sha256: Sha256Hex


class Verdict(StrictModel):
    """`erased` (no reasons), or `incomplete` with at least one reason."""

    status: Literal["erased", "incomplete"]
    reasons: list[Reason]

    @model_validator(mode="after")
    def _reasons(self) -> Self:
        if self.status == "erased" and self.reasons:
            raise ValueError("an 'erased' verdict carries no reasons; use 'incomplete' if any remain")
        if self.status == "incomplete" and not self.reasons:
            raise ValueError("an 'incomplete' verdict must say why (at least one reason)")
        return self


class ErasurePredicate(StrictModel):
    """The predicate of an erasure attestation."""

    attested_at: UtcDatetime
    request: Request
    scope: Scope
    blast_radius: BlastRadius
    method: Method
    manifests: list[ManifestChange]
    probes: Probes
    utility: Utility
    timings: Timings
    versions: Versions
    verdict: Verdict

    @model_validator(mode="after")
    def _erased_is_backed(self) -> Self:
        if self.verdict.status != "erased":
            return self
        flagged = [p.adapter for p in self.probes.after if p.records_flagged]
        if flagged:
            raise ValueError(f"verdict 'erased' but scope records still flag on adapters {flagged}")
        short = [m.after.dataset_version for m in self.manifests
                 if len(m.non_inclusion) != self.scope.record_count]
        if short:
            raise ValueError(f"verdict 'erased' needs a non-inclusion proof for each of the "
                             f"{self.scope.record_count} scope records in every after-manifest; "
                             f"short: {short}")
        return self


def check_evidence(predicate: ErasurePredicate) -> None:
    """Verify every non-inclusion proof, and that complete sets name exactly the scope; else EvidenceError."""
    for change in predicate.manifests:
        for proof in change.non_inclusion:
            verify_non_inclusion(proof, change.after.root, change.after.size)
        targets = [p.target for p in change.non_inclusion]
        if len(targets) > predicate.scope.record_count:
            raise EvidenceError(f"manifest {change.after.dataset_version}: {len(targets)} non-inclusion "
                                f"proofs for a scope of {predicate.scope.record_count} records")
        if len(targets) == predicate.scope.record_count and scope_root(targets) != predicate.scope.root:
            # Without this, proofs of absence of unrelated hashes could stand in for the scope's.
            raise EvidenceError(f"manifest {change.after.dataset_version}: the proven-absent hashes have "
                                f"root {scope_root(targets)}, not the scope root {predicate.scope.root}")
