"""The erasure predicate v2 (https://lethe.dev/attestation/erasure/v2): v1 plus the evidence that the verdict
is true both ways.

An `erased` verdict must not stand with residue left, and `incomplete` must not come from chance alone.
v2 carries what an auditor needs to see both: the identity the scope was resolved from (kinds, counts and
decisions, never values), the residual sweeps before and after the remedy, the false-alarm control across
the run (Holm over the records of every request), and whether the subject's own records ever reached a
fine-tune run. An `erased` verdict may stand beside a flagged record only when an exact remedy provably
removed it and its cause was looked for and not found (the flag is listed with its corrected p-value).
Bundles issued as v1 still verify as v1.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from attestation.predicate import ErasurePredicate, Reason
from attestation.schema import Count, Name, Probability, Sha256Hex, StrictModel

PREDICATE_TYPE_V2 = "https://lethe.dev/attestation/erasure/v2"

IdentifierDecision = Literal["given", "followed", "shared_not_followed", "not_followed", "over_limit",
                             "dropped_by_reviewer"]


class IdentifierSummary(StrictModel):
    """One identifier of the subject's identity: kind, how far from the filed ones, what was done with it."""

    kind: Name
    hop: Count
    decision: IdentifierDecision
    owned_records: Count
    people: Count | None  # groups of other identifiers among its records (2+: shared); None: not grouped
    value_found: bool  # its plain value was read back from the source records (and swept for)


class IdentitySummary(StrictModel):
    """The identity the scope and the sweeps were resolved from."""

    expand: bool
    hops: Count
    identifiers: Annotated[list[IdentifierSummary], Field(min_length=1)]
    ambiguous_records: Count  # owned by a shared filed identifier, in another person's group

    @model_validator(mode="after")
    def _filed_first(self) -> Self:
        if not any(i.decision == "given" for i in self.identifiers):
            raise ValueError("an identity needs at least one filed (given) identifier")
        return self


class SweepHitSummary(StrictModel):
    """A record outside the scope that held the subject's identifiers or secrets."""

    record_hash: Sha256Hex
    places: list[Literal["content_store", "batch_file", "training"]]
    kinds: list[Name]
    disposition: Literal["joined_scope", "excluded_by_reviewer", "not_held", "residue"]


class SweepSummary(StrictModel):
    """What one residual sweep scanned and found (counts and kinds)."""

    texts_scanned: Count
    batch_lines_scanned: Count
    training_texts_scanned: Count | None
    identifier_kinds: list[Name]
    secrets: Count
    hits: list[SweepHitSummary]
    weak_hits: Count


class Sweeps(StrictModel):
    """The sweep before the remedy (its hits joined the scope) and after it (its hits are residue)."""

    before: SweepSummary
    after: SweepSummary


class Flag(StrictModel):
    """A scope record that still flags after the remedy under the run's correction, and its cause if any."""

    adapter: Name
    record_hash: Sha256Hex
    p_value: Probability
    p_adjusted: Probability
    cause: Reason | None  # None: looked for (near-duplicates, identifiers in the training set), none found


class FalseAlarmControl(StrictModel):
    """Holm's step-down over the (adapter, record) tests of every request of the run."""

    method: Literal["holm"]
    alpha: Annotated[float, Field(gt=0.0, lt=1.0)]
    run_requests: Annotated[int, Field(ge=1)]
    tests_before: Count
    tests_after: Count
    flags_after: list[Flag]  # this request's records flagged after the remedy

    @model_validator(mode="after")
    def _flags(self) -> Self:
        for flag in self.flags_after:
            if flag.p_adjusted < flag.p_value or flag.p_adjusted > self.alpha:
                raise ValueError("a flag's adjusted p-value lies between its p-value and alpha")
        return self


class Training(StrictModel):
    """Whether the subject's own records reached a fine-tune run, and who trained on records naming them."""

    subject_records: Count
    trained: Count
    held_out: Count
    not_in_any_run: Count
    never_trained: bool
    adapters_trained_on_mentions: list[Name]

    @model_validator(mode="after")
    def _counts(self) -> Self:
        if self.trained + self.held_out + self.not_in_any_run != self.subject_records:
            raise ValueError("trained + held_out + not_in_any_run must equal subject_records")
        if self.never_trained != (self.trained == 0):
            raise ValueError("never_trained holds exactly when none of the subject's records was trained")
        return self


class ErasurePredicateV2(ErasurePredicate):
    """The v1 predicate with the identity, the sweeps, the run's false-alarm control and the training status."""

    identity: IdentitySummary
    sweeps: Sweeps
    false_alarm_control: FalseAlarmControl
    training: Training

    @model_validator(mode="after")
    def _erased_is_backed(self) -> Self:
        """`erased` only with no residue, no flag with a cause, and no unexplained flag but after an exact remedy."""
        if self.verdict.status != "erased":
            return self
        if self.sweeps.after.hits:
            raise ValueError("verdict 'erased' but the sweep after the remedy found the subject's identifiers or "
                             "secrets outside the scope")
        chance = {(f.adapter, f.record_hash) for f in self.false_alarm_control.flags_after if f.cause is None}
        if any(f.cause is not None for f in self.false_alarm_control.flags_after):
            raise ValueError("verdict 'erased' but a flag after the remedy has a cause")
        for probe in self.probes.after:
            flagged = {(probe.adapter, r.record_hash) for r in probe.records if r.flagged}
            if flagged - chance:
                raise ValueError(f"verdict 'erased' but scope records flag on {probe.adapter} without being listed "
                                 "as chance flags of the run's false-alarm control")
            if flagged and self.method.kind != "exact":
                raise ValueError("verdict 'erased' with flagged records needs an exact remedy")
        short = [m.after.dataset_version for m in self.manifests if len(m.non_inclusion) != self.scope.record_count]
        if short:
            raise ValueError(f"verdict 'erased' needs a non-inclusion proof for each of the {self.scope.record_count} "
                             f"scope records in every after-manifest; short: {short}")
        return self
