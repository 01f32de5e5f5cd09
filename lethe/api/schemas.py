"""The API's request and response bodies (pydantic), so the OpenAPI document says what goes over the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from erasure.requests import ErasureIntake, FiledRequest, Regime, RequestState, SubjectIdentifiers
from lineage.store.queries import MAX_DEPTH

REQUEST_ID_PATTERN = r"^er-[0-9a-f]{24}$"
SUBJECT_KEY_PATTERN = r"^[0-9a-f]{64}$"
NodeId = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class Problem(BaseModel):
    """An error: what was wrong and what to do about it."""

    detail: str


class ConflictProblem(Problem):
    """An idempotency key reused for a different request: the fields that differ (names, never values)."""

    fields: list[str]


class FieldProblem(BaseModel):
    """One invalid part of a request: where (e.g. ["body", "regime"]) and what is wrong; never the value."""

    loc: list[str | int]
    msg: str


class ValidationProblem(BaseModel):
    """A request that does not match the schema; names each field, never echoes what was sent."""

    detail: str
    errors: list[FieldProblem]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class FileRequestBody(ErasureIntake):
    """An erasure request as legal files it (identifiers come as plain strings, are kept as keys only)."""

    review: bool = Field(False, description="hold the request for a person's review before anything runs")
    expand_identity: bool = Field(True, description="follow the other identifiers the subject's records link to "
                                                    "them (false: only the identifiers given)")
    hops: int = Field(1, ge=0, le=3, description="how far to follow linked identifiers")

    @field_validator("received_at", mode="wrap")
    @classmethod
    def _in_range(cls, value: Any, handler: Any) -> datetime:
        # The intake converts to UTC; a date at the edge of the calendar (0001-01-01T00:00+05:00) overflows.
        try:
            return handler(value)
        except OverflowError:
            raise ValueError("received_at is outside the datetimes Lethe can handle") from None

    def intake(self) -> ErasureIntake:
        """The intake without the API's own options."""
        return ErasureIntake(**{name: getattr(self, name) for name in ErasureIntake.model_fields})


class RequestSummary(BaseModel):
    """A filed request as legal sees it: no identifiers, only its id, status and deadlines."""

    id: Annotated[str, StringConstraints(pattern=REQUEST_ID_PATTERN)]
    status: RequestState
    regime: Regime
    received_at: datetime
    due_at: datetime
    deadline: datetime = Field(description="the deadline in force (the extended one, once extended)")
    extended_due_at: datetime | None = None
    review: bool

    @classmethod
    def of(cls, request: FiledRequest, **extra: Any) -> RequestSummary:
        return cls(id=request.id, status=request.status, regime=request.regime,
                   received_at=request.received_at, due_at=request.due_at, deadline=request.deadline,
                   extended_due_at=request.extended_due_at, review=request.review, **extra)


class IdentifierOut(BaseModel):
    """One identifier of the subject's identity: its kind and how it was found (never its value or key)."""

    kind: str
    hop: int = Field(description="0: filed; 1: found on the subject's records one hop away")
    decision: str = Field(description="given | followed | shared_not_followed | not_followed | over_limit | "
                                      "dropped_by_reviewer")
    owned_records: int
    people: int | None = Field(description="groups of other identifiers among its records (2+: shared)")
    value_found: bool = Field(description="its value was read back from the subject's records (and swept for)")
    linked_by: list[str] = Field(description="records that tie it to the identity")


class ScopeCounts(BaseModel):
    """The scope found at filing, in counts."""

    in_scope: int
    borderline: int
    per_reason: dict[str, int]


class FiledRequestOut(RequestSummary):
    """A filed request with what identity resolution found and the scope's size."""

    identity: list[IdentifierOut]
    scope: ScopeCounts | None


class VerdictOut(BaseModel):
    """The attested verdict and why."""

    status: str = Field(description="erased | incomplete")
    reasons: list[str]


class RequestProgress(RequestSummary):
    """A request's status with the steps done so far and, once attested, the verdict."""

    steps_done: list[str] = Field(description="steps finished, by name (e.g. identity, scope, probe_before, attest)")
    verdict: VerdictOut | None = Field(description="the attestation's verdict and its reasons, once attested")


class ExtensionBody(BaseModel):
    """Why the deadline is extended (the law asks that the subject be told)."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class BlastRadiusQuery(BaseModel):
    """Where a blast-radius traversal starts: a subject (identifiers or key), records, or a dataset."""

    model_config = ConfigDict(extra="forbid")

    subject: SubjectIdentifiers | None = Field(None, description="the subject's identifiers (never kept)")
    subject_key: Annotated[str, StringConstraints(pattern=SUBJECT_KEY_PATTERN)] | None = Field(
        None, description="a subject key (HMAC hex) from a report")
    records: Annotated[list[NodeId], Field(min_length=1, max_length=10_000)] | None = None
    dataset: NodeId | None = Field(None, description="a dataset version id (name:hash)")
    depth: int = Field(8, ge=1, le=MAX_DEPTH, description="how many MERGED_INTO hops to follow")

    @model_validator(mode="after")
    def _one_start(self) -> BlastRadiusQuery:
        starts = [self.subject is not None or self.subject_key is not None, self.records is not None,
                  self.dataset is not None]
        if sum(starts) != 1:
            raise ValueError("name exactly one start: subject (and/or subject_key), records, or dataset")
        return self


class CheckpointOut(BaseModel):
    checkpoint: str = Field(description="the latest signed checkpoint note of the transparency log")


class ConsistencyOut(BaseModel):
    """Proof that the log at `old_size` is a prefix of the log under the latest checkpoint."""

    checkpoint: str
    old_size: int
    tree_size: int
    proof: list[str] = Field(description="RFC 6962 consistency proof, standard base64 hashes")


class InclusionOut(BaseModel):
    """Audit path of one log entry in the tree of `tree_size` entries."""

    index: int
    tree_size: int
    proof: list[str] = Field(description="RFC 6962 inclusion proof, standard base64 hashes")
