"""Form fields to the API's own models, and their problems as sentences that name fields but never repeat values.

A form's identifiers are a person's: a problem says which field is wrong and why, and the page that shows it
comes back with the identifier fields empty.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from lethe.api.errors import safe_loc

IDENTIFIER_FIELDS = ("email", "phone", "account", "name")
LABELS = {"identifiers": "identifiers", "regime": "regime", "received_at": "received on", "requester": "requester",
          "idempotency_key": "idempotency key", "reason": "reason", "subject": "identifiers", "dataset": "dataset",
          "depth": "depth"}


def problems(exc: ValidationError | RequestValidationError) -> list[str]:
    """One sentence per problem: the field's label and pydantic's message (which never holds the input)."""
    out = []
    for error in exc.errors():
        loc = [str(part) for part in safe_loc(error.get("loc", ())) if part not in ("body", "subject", "identifiers")]
        field = " ".join(LABELS.get(part, part) for part in loc) or "the form"
        message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
        out.append(f"{field}: {message}")
    return out


def identifiers(email: str, phone: str, account: str, name: str) -> dict[str, str]:
    """The identifier fields that were filled in (kind -> value; memory only)."""
    given = dict(zip(IDENTIFIER_FIELDS, (email, phone, account, name)))
    return {kind: value for kind, value in given.items() if value.strip()}


def received_at(value: str) -> datetime | str:
    """The received date (YYYY-MM-DD, read as the start of that day in UTC); today when left empty (so the same
    form sent again that day files the same request); an unreadable date is passed on as it is, for the model to
    refuse with its own message."""
    if not value.strip():
        return datetime.combine(datetime.now(timezone.utc).date(), datetime.min.time(), timezone.utc)
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        return value
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def checkbox(value: str | None) -> bool:
    return value not in (None, "", "off")
