"""A team's own records in Lethe's shape: `lethe.toml`'s [records] table names their columns (pure, no I/O).

    [records]
    id = "ticket_id"
    messages = "conversation"        # chat records: [{role, content}, ...]; or text = "body"
    source = "channel"               # or source_value = "zendesk" for every record
    created_at = "opened_at"

    [records.subject]                # identifier field -> column; a dotted path reaches into objects
    email = "customer.email"
    account_id = "account"

A chat record's text is its rendering by a chat template (the base model's when it has one: what is
trained on is what is stored); the messages are checked one by one, and the record's `turns` say where each
message's content sits in the rendering (lineage.turns): the PII scan reads each message, the loss and the
probes may cover the assistant turns only (unlearning.token_spans).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lineage.errors import InvalidRecordError, InvalidValueError
from lineage.record_batch import SUBJECT_FIELDS
from lineage.turns import locate_turns

__all__ = ["ChatMessage", "ChatRenderer", "RecordMapping", "canonical_record", "parse_messages"]

ChatRenderer = Callable[[list[dict[str, str]]], str]


class ChatMessage(BaseModel):
    """One turn of a chat record."""

    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant", "tool"]
    content: str


class RecordMapping(BaseModel):
    """Which of the user's columns holds each field of a Lethe record."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = "id"
    text: str | None = None
    messages: str | None = None
    source: str | None = None
    source_value: str | None = Field(None, min_length=1, max_length=200)
    created_at: str | None = None
    subject: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _complete(self) -> RecordMapping:
        if self.text is not None and self.messages is not None:
            raise ValueError("map either text or messages, not both")
        if self.source is not None and self.source_value is not None:
            raise ValueError("map either source (a column) or source_value (one value for all), not both")
        unknown = sorted(set(self.subject) - set(SUBJECT_FIELDS))
        if unknown:
            raise ValueError(f"unknown subject field(s) {unknown}; use {sorted(SUBJECT_FIELDS)}")
        return self

    @property
    def text_column(self) -> str:
        return self.messages or self.text or "text"

    def user_column(self, field: str) -> str:
        """The user's column behind a Lethe field name (for messages that name what to fix)."""
        head, _, rest = field.partition(".")
        if head == "subject" and rest in self.subject:
            return self.subject[rest]
        columns = {"id": self.id, "text": self.text_column, "messages": self.text_column,
                   "source": self.source or "source", "created_at": self.created_at or "created_at"}
        return columns.get(head, field)

    def digest_input(self) -> str:
        return json.dumps(self.model_dump(), sort_keys=True)


def _lookup(row: Mapping[str, Any], path: str) -> Any:
    """The value at a column name, or a dotted path into nested objects; None when absent."""
    if path in row:
        return row[path]
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def parse_messages(value: Any, line: int, column: str) -> list[dict[str, str]]:
    """A chat record's messages (a list of {role, content}, or its JSON text as CSV holds it), checked."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InvalidRecordError(line, column, f"not a JSON list of messages ({exc.msg})") from None
    if not isinstance(value, list) or not value:
        raise InvalidRecordError(line, column, "expected a non-empty list of {role, content} messages")
    messages = []
    for n, item in enumerate(value):
        try:
            message = ChatMessage.model_validate(item)
        except ValidationError as exc:
            first = exc.errors(include_input=False, include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "message"
            raise InvalidRecordError(line, f"{column}[{n}].{where}", first["msg"]) from None
        messages.append({"role": message.role, "content": message.content})
    if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
        raise InvalidRecordError(line, column, "a chat record needs an assistant turn with content")
    return messages


def _subject(row: Mapping[str, Any], mapping: RecordMapping) -> dict[str, Any]:
    subject = {}
    for field, column in (mapping.subject or {k: f"subject.{k}" for k in SUBJECT_FIELDS}).items():
        value = _lookup(row, column)
        if value is None or value == "":
            continue
        subject[field] = [str(v) for v in value] if isinstance(value, list) else str(value)
    return subject


def canonical_record(row: Mapping[str, Any], mapping: RecordMapping, line: int,
                     render: ChatRenderer | None = None) -> dict[str, Any]:
    """A user's row as a Lethe record (id, text, source, subject, created_at), ready for validation."""
    record_id = _lookup(row, mapping.id)
    if record_id is None or isinstance(record_id, (dict, list)):
        raise InvalidRecordError(line, mapping.id, "missing, or not a single value; every record needs an id")
    record: dict[str, Any] = {"id": str(record_id)}
    if mapping.messages is not None:
        messages = parse_messages(_lookup(row, mapping.messages), line, mapping.messages)
        if render is None:
            raise ValueError("chat records need a chat renderer (the base model's template)")
        record["text"] = render(messages)
        try:
            record["turns"] = [list(t) for t in locate_turns(record["text"], messages)]
        except InvalidValueError as exc:
            raise InvalidRecordError(line, mapping.messages, str(exc)) from None
    else:
        record["text"] = _lookup(row, mapping.text_column)
    record["source"] = mapping.source_value or _lookup(row, mapping.source or "source")
    record["subject"] = _subject(row, mapping)
    created = _lookup(row, mapping.created_at or "created_at")
    if created is not None:
        record["created_at"] = created if isinstance(created, str) else str(created)
    return {k: v for k, v in record.items() if v is not None}
