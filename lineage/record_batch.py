"""Parsing and validating a JSONL batch of records before anything is written (pure, no I/O)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, StrictInt, StrictStr, ValidationInfo

from lineage.errors import BatchRejectedError, InvalidRecordError, InvalidValueError
from lineage.hashing import content_sha256
from lineage.keys import IdentifierKind, SubjectKeyer
from lineage.limits import InputLimitError, loads_json_bounded
from lineage.turns import Turn, validate_turns

# Field names a record's `subject` may carry, and the identifier kind each one is keyed as.
SUBJECT_FIELDS: dict[str, IdentifierKind] = {
    "email": IdentifierKind.EMAIL,
    "phone": IdentifierKind.PHONE,
    "account_id": IdentifierKind.ACCOUNT,
    "name": IdentifierKind.NAME,
}


class IngestRecord(BaseModel):
    """One line of an ingest file: `id`, `subject` identifiers, `text`, `source`, `created_at`, and for a chat
    record its `turns` ([start, end, role] of each message's content in `text`; lineage.turns)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)
    id: str = Field(min_length=1, max_length=512)
    text: str
    source: str = Field(min_length=1, max_length=200)
    subject: dict[str, str | list[str]] = Field(default_factory=dict)
    created_at: datetime | None = None
    turns: list[list[StrictInt | StrictStr]] | None = Field(default=None, max_length=10_000)

    @field_validator("id")
    @classmethod
    def _id_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise InvalidValueError("the id is blank")
        return v

    @field_validator("text")
    @classmethod
    def _text_not_empty(cls, v: str) -> str:
        if not v.strip():
            raise InvalidValueError("the text is empty; a record needs content")
        return v

    @field_validator("subject")
    @classmethod
    def _known_identifier_kinds(cls, v: dict) -> dict:
        unknown = sorted(set(v) - set(SUBJECT_FIELDS))
        if unknown:
            raise InvalidValueError(f"unknown identifier kind(s) {unknown}; use {sorted(SUBJECT_FIELDS)}")
        return v

    @field_validator("turns")
    @classmethod
    def _turns_inside_text(cls, v: list | None, info: ValidationInfo) -> list | None:
        if v is None or "text" not in info.data:
            return v  # no turns, or the text itself was refused (that error is the one reported)
        return [list(t) for t in validate_turns(v, info.data["text"])]


@dataclass(frozen=True)
class ParsedRecord:
    """A validated record: what the graph keeps (hash, keys) and the text for the content store."""

    line: int
    id: str
    text: str
    content_sha256: str
    source: str
    created_at: str | None
    owners: tuple[tuple[str, str], ...]  # (subject key, identifier kind)
    turns: tuple[Turn, ...] | None = None  # a chat record's messages in `text`


@dataclass
class ParsedBatch:
    """The valid records of a batch, in file order, and how many exact repeats were dropped."""

    records: list[ParsedRecord] = field(default_factory=list)
    repeats_dropped: int = 0


def _field_of(error: dict) -> str:
    loc = error.get("loc") or ("record",)
    return ".".join(str(p) for p in loc)


def _owners(record: IngestRecord, line: int, keyer: SubjectKeyer) -> tuple[tuple[str, str], ...]:
    owners: set[tuple[str, str]] = set()
    for name, values in record.subject.items():
        kind = SUBJECT_FIELDS[name]
        for value in [values] if isinstance(values, str) else values:
            if not value.strip():
                continue
            try:
                owners.add((keyer.key(kind, value), kind.value))
            except ValueError as exc:
                # The message names the field, never the raw value: it may be personal data.
                raise InvalidRecordError(line, f"subject.{name}", str(exc)) from None
    return tuple(sorted(owners))


def parse_line(raw: bytes, line: int, keyer: SubjectKeyer) -> ParsedRecord:
    """Validate one JSONL line; InvalidRecordError names the line and the field."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRecordError(line, "line", f"invalid UTF-8 at byte {exc.start}") from None
    try:
        data = loads_json_bounded(text, "the line")
    except json.JSONDecodeError as exc:
        raise InvalidRecordError(line, "line", f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except InputLimitError as exc:
        raise InvalidRecordError(line, "line", str(exc)) from None
    if not isinstance(data, dict):
        raise InvalidRecordError(line, "line", f"expected a JSON object, got {type(data).__name__}")
    try:
        record = IngestRecord.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        raise InvalidRecordError(line, _field_of(first), first["msg"]) from None
    created = record.created_at
    if created is not None and created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    return ParsedRecord(
        line=line, id=record.id, text=record.text, content_sha256=content_sha256(record.text),
        source=record.source, created_at=created.isoformat() if created else None,
        owners=_owners(record, line, keyer),
        turns=tuple(Turn(*t) for t in record.turns) if record.turns else None,
    )


def parse_lines(lines: list[tuple[int, bytes]], keyer: SubjectKeyer) -> tuple[ParsedBatch, list[InvalidRecordError]]:
    """Validate numbered lines: the valid records (exact repeats dropped) and an error per bad line."""
    batch, errors = ParsedBatch(), []
    first_seen: dict[str, ParsedRecord] = {}
    for number, raw in lines:
        try:
            parsed = parse_line(raw, number, keyer)
        except InvalidRecordError as exc:
            errors.append(exc)
            continue
        earlier = first_seen.get(parsed.id)
        if earlier is None:
            first_seen[parsed.id] = parsed
            batch.records.append(parsed)
        elif earlier.content_sha256 == parsed.content_sha256 and earlier.owners == parsed.owners:
            batch.repeats_dropped += 1
        else:
            errors.append(InvalidRecordError(
                number, "id", f"id {parsed.id!r} already appears on line {earlier.line} with different "
                "content or subject; ids must be unique"))
    return batch, errors


def parse_jsonl(data: bytes | list[tuple[int, bytes]], keyer: SubjectKeyer, source_name: str = "<batch>") -> ParsedBatch:
    """Validate a whole batch (its bytes, or its numbered lines); any invalid record rejects the batch with
    every problem listed."""
    lines = data if isinstance(data, list) else \
        [(n, raw.rstrip(b"\r")) for n, raw in enumerate(data.split(b"\n"), start=1) if raw.strip()]
    batch, errors = parse_lines(lines, keyer)
    if errors:
        raise BatchRejectedError(source_name, errors)
    return batch
