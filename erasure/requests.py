"""Erasure requests: intake (raw identifiers, memory only) and the filed request (subject keys only).

Legal files an `ErasureIntake`: the subject's identifiers, the regime, when it was received, who asks,
and an idempotency key. `file_request` turns the identifiers into keyed HMACs at once and keeps only
those: the graph gets an `ErasureRequest` node (TARGETS the subject keys it knows), the request's run
folder gets `request.json`. The request id is an HMAC of the idempotency key under the pepper, so the
same request filed twice is one request (a different request under a used key is refused) and the id
says nothing about the person.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator,
                      model_validator)

from erasure.errors import InvalidRequestError, RequestConflictError, RequestNotFoundError
from lineage.keys import IdentifierKind, SubjectKeyer
from lineage.limits import control_character
from lineage.local_files import exclusive_lock, private_dir, write_private_text
from lineage.models import ErasureRequest
from lineage.store import GraphStore
from lineage.store.writers import LineageWriter

__all__ = ["ErasureIntake", "FiledRequest", "Regime", "RequestConflictError", "RequestNotFoundError",
           "RequestState", "SubjectIdentifiers", "due_dates", "file_request", "list_requests", "load_request",
           "extend_request", "request_dir", "request_id_for", "request_lock", "write_json_atomic"]

RequestId = Annotated[str, StringConstraints(pattern=r"^er-[0-9a-f]{24}$")]


def _printable(value: str) -> str:
    if control_character(value) is not None:
        raise InvalidRequestError("holds a control character (NUL, a line break, an escape); remove it")
    return value


Handle = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
                   AfterValidator(_printable)]


class Regime(StrEnum):
    """The law the request is filed under; it sets the deadlines."""

    GDPR = "gdpr"  # Art. 12(3): one month, extendable by two more with reasons
    CCPA = "ccpa"  # Cal. Civ. Code 1798.130: 45 days, extendable once by 45


# The day each law began to apply: a request received earlier is a typing error (the year 161, 0026…).
IN_FORCE_SINCE = {Regime.GDPR: datetime(2018, 5, 25, tzinfo=timezone.utc),
                  Regime.CCPA: datetime(2020, 1, 1, tzinfo=timezone.utc)}


class RequestState(StrEnum):
    """Where a request stands (stored on the graph node as `status`)."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    AWAITING_REVIEW = "awaiting_review"
    CLOSED = "closed"  # erased, attested
    INCOMPLETE = "incomplete"  # attested, but the verdict is `incomplete`
    REJECTED = "rejected"


def _add_months(moment: datetime, months: int) -> datetime:
    """The same day `months` later, or the month's last day when it has no such day (Jan 31 + 1 = Feb 28/29)."""
    month0 = moment.month - 1 + months
    year, month = moment.year + month0 // 12, month0 % 12 + 1
    for day in (moment.day, 30, 29, 28):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable: every month has 28 days")


def due_dates(regime: Regime, received_at: datetime) -> tuple[datetime, datetime]:
    """(due, latest extended due) of a request received at `received_at`."""
    if regime is Regime.GDPR:
        due = _add_months(received_at, 1)
        return due, _add_months(due, 2)
    due = received_at + timedelta(days=45)
    return due, due + timedelta(days=45)


class SubjectIdentifiers(BaseModel):
    """The subject's identifiers as filed; held in memory only (secret strings, never printed or stored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: SecretStr | None = None
    phone: SecretStr | None = None
    account: SecretStr | None = None
    name: SecretStr | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> SubjectIdentifiers:
        if not any(v is not None and v.get_secret_value().strip() for v in self._values().values()):
            raise InvalidRequestError("give at least one identifier of the subject: email, phone, account or name")
        return self

    def _values(self) -> dict[str, SecretStr | None]:
        return {"email": self.email, "phone": self.phone, "account": self.account, "name": self.name}

    def raw(self) -> dict[str, str]:
        """Kind -> raw value of the identifiers given (for keying and scanning in memory only)."""
        return {kind: v.get_secret_value() for kind, v in self._values().items()
                if v is not None and v.get_secret_value().strip()}

    def keys(self, keyer: SubjectKeyer) -> dict[str, str]:
        """Kind -> subject key; a malformed identifier is refused naming its kind (never its value)."""
        out = {}
        for kind, value in self.raw().items():
            try:
                out[kind] = keyer.key(IdentifierKind(kind), value)
            except ValueError as exc:
                raise InvalidRequestError(f"identifiers.{kind}: {exc}") from None
        return out


class ErasureIntake(BaseModel):
    """What legal files: who the subject is, under which law, since when, who asks, and an idempotency key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    identifiers: SubjectIdentifiers
    regime: Regime
    received_at: datetime = Field(description="when the request reached the company (timezone required)")
    requester: Handle = Field(description="who files it: a team or case handle, not the subject")
    idempotency_key: Handle = Field(description="the same key files the same request once")

    @field_validator("received_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise InvalidRequestError("received_at needs a timezone, e.g. 2026-11-25T09:00:00Z")
        try:
            value = value.astimezone(timezone.utc)
        except OverflowError:
            raise InvalidRequestError("received_at is out of range") from None
        if value > datetime.now(timezone.utc) + timedelta(minutes=5):
            raise InvalidRequestError("received_at is in the future")
        return value

    @model_validator(mode="after")
    def _received_under_the_law(self) -> ErasureIntake:
        since = IN_FORCE_SINCE[self.regime]
        if self.received_at < since:
            raise InvalidRequestError(f"received_at {self.received_at:%Y-%m-%d} is before the {self.regime.name} applied "
                             f"({since:%Y-%m-%d}); check the date")
        return self


class FiledRequest(BaseModel):
    """A filed request as Lethe keeps it: subject keys, regime, deadlines, status; never a raw identifier."""

    model_config = ConfigDict(extra="forbid")

    id: RequestId
    subject_keys: dict[str, str]
    regime: Regime
    received_at: datetime
    due_at: datetime
    extended_due_at: datetime | None = None
    extension_reason: str | None = None
    requester: str
    idempotency_hmac: str
    filed_at: datetime
    status: RequestState = RequestState.OPEN
    review: bool = False  # borderline near-duplicates wait for a person before anything runs

    @property
    def deadline(self) -> datetime:
        """The deadline in force (extended, if it was)."""
        return self.extended_due_at or self.due_at


def request_dir(state_dir: Path, request_id: str) -> Path:
    """The run folder of a request: request.json, steps/, the attestation bundle and the reports."""
    return Path(state_dir) / "requests" / request_id


def write_json_atomic(path: Path, value: object) -> None:
    """Write JSON to `path` (owner-only) through a temporary file of its own and a rename, so a crash leaves
    the old or the new file, never half of one, and concurrent writers never share a temporary file."""
    private_dir(path.parent)
    write_private_text(path, json.dumps(value, indent=1, sort_keys=True, default=str) + "\n")


def _idempotency_hmac(keyer: SubjectKeyer, idempotency_key: str) -> str:
    return keyer.tag("idempotency-key", idempotency_key.strip())


def _request_id(keyer: SubjectKeyer, idempotency_hmac: str) -> str:
    return "er-" + keyer.tag("erasure-request-id", idempotency_hmac)[:24]


def request_id_for(keyer: SubjectKeyer, idempotency_key: str) -> str:
    """The request id an idempotency key files under: an HMAC, so it says nothing about the person."""
    return _request_id(keyer, _idempotency_hmac(keyer, idempotency_key))


def request_lock(state_dir: Path, request_id: str):
    """The lock that filing, resolving and extending one request hold (between threads and processes)."""
    return exclusive_lock(Path(state_dir) / "requests" / ".locks" / f"{request_id}.lock")


def differing_fields(existing: FiledRequest, filed: FiledRequest) -> list[str]:
    """The fields in which a refiling differs from the request its idempotency key already names."""
    kinds = sorted(set(existing.subject_keys) | set(filed.subject_keys))
    fields = [f"identifiers.{kind}" for kind in kinds
              if existing.subject_keys.get(kind) != filed.subject_keys.get(kind)]
    return fields + [name for name in ("regime", "received_at", "requester", "review")
                     if getattr(existing, name) != getattr(filed, name)]


def file_request(state_dir: Path, graph: GraphStore, keyer: SubjectKeyer, intake: ErasureIntake,
                 *, review: bool = False, now: datetime | None = None) -> tuple[FiledRequest, bool]:
    """File a request (idempotent): returns it and whether it was new."""
    """File a request (idempotent): returns it and whether it was new. The caller holds `request_lock`
    when several callers may file under one key at once (`erasure.filing.file_and_scope` does)."""
    now = now or datetime.now(timezone.utc)
    keys = intake.identifiers.keys(keyer)
    idem = _idempotency_hmac(keyer, intake.idempotency_key)
    request_id = _request_id(keyer, idem)
    due, _ = due_dates(intake.regime, intake.received_at)
    filed = FiledRequest(id=request_id, subject_keys=keys, regime=intake.regime, received_at=intake.received_at,
                         due_at=due, requester=intake.requester, idempotency_hmac=idem, filed_at=now, review=review)
    folder = request_dir(state_dir, request_id)
    existing = _load(folder)
    if existing is not None:
        differ = differing_fields(existing, filed)
        if differ:
            raise RequestConflictError(
                f"idempotency key already used by request {existing.id}, which differs in {', '.join(differ)}; "
                "file the same request again to get it, or use a new idempotency key for a new request",
                fields=differ)
        _write_node(graph, existing)  # a crash between the folder and the graph write is healed here
        return existing, False
    write_json_atomic(folder / "request.json", filed.model_dump(mode="json"))
    _write_node(graph, filed)
    return filed, True


def _write_node(graph: GraphStore, request: FiledRequest) -> None:
    node = ErasureRequest(id=request.id, regime=request.regime.value, received_at=request.received_at,
                          due_at=request.deadline)
    with graph.transaction() as tx:
        writer = LineageWriter(graph, tx=tx)
        writer.nodes([node])
        # Only the status this request holds in its folder is authoritative; the node mirrors it.
        tx.run("MATCH (q:ErasureRequest {id: $id}) SET q.status = $status, q.due_at = $due",
               id=request.id, status=request.status.value, due=request.deadline.isoformat())
        tx.run("MATCH (q:ErasureRequest {id: $id}) UNWIND $keys AS key MATCH (s:Subject {key: key}) "
               "MERGE (q)-[:TARGETS]->(s)", id=request.id, keys=sorted(request.subject_keys.values()))


def _load(folder: Path) -> FiledRequest | None:
    path = folder / "request.json"
    if not path.is_file():
        return None
    return FiledRequest.model_validate_json(path.read_text(encoding="utf-8"))


def load_request(state_dir: Path, request_id: str) -> FiledRequest:
    """The filed request with this id, or RequestNotFoundError saying how to list them."""
    folder = request_dir(state_dir, request_id)
    request = _load(folder) if "/" not in request_id and request_id not in ("", ".", "..") else None
    if request is None:
        raise RequestNotFoundError(f"no erasure request {request_id!r}; `lethe erase list` shows the filed ones")
    return request


def save_request(state_dir: Path, graph: GraphStore | None, request: FiledRequest) -> None:
    """Persist a request's new status or deadline (folder first, then the graph node)."""
    write_json_atomic(request_dir(state_dir, request.id) / "request.json", request.model_dump(mode="json"))
    if graph is not None:
        _write_node(graph, request)


def extend_request(state_dir: Path, graph: GraphStore, request_id: str, reason: str) -> FiledRequest:
    """Extend the deadline once, by the regime's extension, recording why (under the request's lock)."""
    load_request(state_dir, request_id)  # an unknown id is refused before a lock file is made for it
    with request_lock(state_dir, request_id):
        return _extend(state_dir, graph, load_request(state_dir, request_id), reason)


def _extend(state_dir: Path, graph: GraphStore, request: FiledRequest, reason: str) -> FiledRequest:
    request_id = request.id
    if request.extended_due_at is not None:
        raise InvalidRequestError(f"request {request_id} was already extended to {request.extended_due_at:%Y-%m-%d}; "
                         "the law allows one extension")
    if not reason.strip():
        raise InvalidRequestError("an extension needs a reason (the law asks the subject to be told why)")
    _, extended = due_dates(request.regime, request.received_at)
    request.extended_due_at, request.extension_reason = extended, reason.strip()
    save_request(state_dir, graph, request)
    return request


def list_requests(state_dir: Path) -> list[FiledRequest]:
    """Every filed request, oldest first."""
    root = Path(state_dir) / "requests"
    found = [r for r in (_load(p) for p in sorted(root.iterdir()) if p.is_dir()) if r is not None] \
        if root.is_dir() else []
    return sorted(found, key=lambda r: (r.received_at, r.id))
