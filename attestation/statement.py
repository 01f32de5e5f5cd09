"""in-toto Statement v1 carrying the erasure predicate: build, serialize canonically, sign, parse.

The payload is canonical JSON (sorted keys, no whitespace, UTF-8), so the same statement always
has the same bytes, and parsing refuses any other spelling of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Mapping, Self, Sequence

from pydantic import Field, ValidationError, model_validator

from attestation.digests import path_sha256
from attestation.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, sign_envelope
from attestation.encoding import canonical_json, loads_canonical
from attestation.errors import InputError, StatementError
from attestation.identifier_guard import refuse_identifiers
from attestation.keys import SigningKey
from attestation.predicate import PREDICATE_TYPE_V1, ErasurePredicate, check_evidence
from attestation.predicate_v2 import PREDICATE_TYPE_V2 as PREDICATE_TYPE, ErasurePredicateV2
from attestation.schema import Name, Sha256Hex, StrictModel

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"


class DigestSet(StrictModel):
    """A subject's digests; SHA-256 is the one Lethe writes and checks."""

    sha256: Sha256Hex


class ResourceDescriptor(StrictModel):
    """A statement subject: a name (e.g. adapter:before:<id>) and its digests."""

    name: Name
    digest: DigestSet


class _StatementBase(StrictModel):
    """An in-toto Statement v1: its type and subjects (the predicate is the subclass's)."""

    type_: Literal["https://in-toto.io/Statement/v1"] = Field(alias="_type")
    subject: Annotated[list[ResourceDescriptor], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_subjects(self) -> Self:
        names = [s.name for s in self.subject]
        if len(set(names)) != len(names):
            raise ValueError("subject names must be unique")
        return self

    def subject_digests(self) -> dict[str, str]:
        """Subject name -> hex SHA-256."""
        return {s.name: s.digest.sha256 for s in self.subject}

    def to_json(self) -> dict:
        """The statement as a JSON value, with in-toto's field names."""
        return self.model_dump(mode="json", by_alias=True)


class Statement(_StatementBase):
    """A statement whose predicate is the current `ErasurePredicateV2` (what Lethe issues)."""

    predicateType: Literal["https://lethe.dev/attestation/erasure/v2"]  # noqa: N815 (in-toto's field name)
    predicate: ErasurePredicateV2


class StatementV1(_StatementBase):
    """A statement issued before v2, whose predicate is an `ErasurePredicate` (v1); still verifiable."""

    predicateType: Literal["https://lethe.dev/attestation/erasure/v1"]  # noqa: N815
    predicate: ErasurePredicate


AnyStatement = Statement | StatementV1
STATEMENTS: dict[str, type[_StatementBase]] = {PREDICATE_TYPE: Statement, PREDICATE_TYPE_V1: StatementV1}


def subject(name: str, sha256: str) -> ResourceDescriptor:
    """A subject from a name and a hex SHA-256."""
    return ResourceDescriptor(name=name, digest=DigestSet(sha256=sha256))


def subject_of_path(name: str, path: Path) -> ResourceDescriptor:
    """A subject whose digest is that of a file, or of a directory as `digests.dir_sha256` computes it."""
    return subject(name, path_sha256(path))


def build_statement(subjects: Sequence[ResourceDescriptor], predicate: ErasurePredicateV2) -> Statement:
    """A statement over `subjects`; refused if invalid, if its evidence fails, or if it names a person."""
    try:
        statement = Statement.model_validate({"_type": STATEMENT_TYPE, "subject": list(subjects),
                                              "predicateType": PREDICATE_TYPE, "predicate": predicate})
    except ValidationError as exc:
        raise StatementError(f"the statement is not valid: {_summary(exc)}") from exc
    check_evidence(statement.predicate)
    refuse_identifiers(statement.to_json())
    return statement


def statement_payload(statement: Statement) -> bytes:
    """The canonical payload bytes of a statement."""
    value = statement.to_json()
    refuse_identifiers(value)
    return canonical_json(value)


def sign_statement(statement: Statement, keys: Sequence[SigningKey]) -> Envelope:
    """A DSSE envelope (in-toto payload type) of the statement, signed by each key."""
    return sign_envelope(statement_payload(statement), PAYLOAD_TYPE_IN_TOTO, keys)


def parse_statement(payload: bytes) -> AnyStatement:
    """Parse payload bytes into a Statement: type, predicate type, schema and policy, in that order."""
    try:
        raw = loads_canonical(payload, "statement payload")
    except InputError as exc:
        raise StatementError(str(exc)) from exc
    if not isinstance(raw, dict):
        raise StatementError("the statement payload is not a JSON object")
    if raw.get("_type") != STATEMENT_TYPE:
        raise StatementError(f"statement _type is {raw.get('_type')!r}, expected {STATEMENT_TYPE!r}")
    kind = STATEMENTS.get(raw.get("predicateType")) if isinstance(raw.get("predicateType"), str) else None
    if kind is None:
        raise StatementError(f"predicateType is {raw.get('predicateType')!r}, expected one of "
                             f"{sorted(STATEMENTS)}; this verifier knows only Lethe erasure predicates of those versions")
    refuse_identifiers(raw)
    try:
        # JSON mode: timestamps arrive as strings, everything else must already have its type.
        return kind.model_validate_json(payload)
    except ValidationError as exc:
        raise StatementError(f"the statement does not match {raw['predicateType']}: {_summary(exc)}") from exc


def _summary(exc: ValidationError, shown: int = 5) -> str:
    # Locations and messages only: pydantic's default text echoes input values, which could be personal.
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()[:shown]]
    more = f" (and {exc.error_count() - shown} more)" if exc.error_count() > shown else ""
    return "; ".join(parts) + more


def subjects_from(mapping: Mapping[str, str]) -> list[ResourceDescriptor]:
    """Subjects from a name -> hex SHA-256 mapping, in name order."""
    return [subject(name, digest) for name, digest in sorted(mapping.items())]
