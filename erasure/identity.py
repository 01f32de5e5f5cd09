"""Resolve a person's whole identity from the identifiers legal filed, through Lethe's own records.

A request filed with an email finds the records that email owns; those records also carry the
person's phone number, account id and name (the `subject` fields of one record are owned together).
Following those co-owners one hop finds the person's other identifiers and their other records, so the
scope and the residual sweep look for all of them, not only what legal typed in.

An identifier that several people share (a family's account, a common name) must not pull in someone
else: the records a key owns are grouped by their other owners, and a key whose records fall into two
or more groups is reported as shared, never followed. A shared identifier that was filed keeps the
records of the person's own group (the one another filed identifier is in) and leaves the others
out, for a person to review.

Only keys, kinds, counts and record ids are kept. The plain values are read back from the source
records (the content store, Lethe's batch files) while the request is in memory, and never stored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from lineage.batch_files import BatchFileError, read_batch_lines
from lineage.content_store import ContentStore
from lineage.keys import SubjectKeyer
from lineage.pii.identity_match import candidate_values
from lineage.pii.rare_spans import spans_of
from lineage.record_batch import SUBJECT_FIELDS
from lineage.store import GraphStore, queries
from erasure.errors import InvalidRequestError

__all__ = ["MAX_HOPS", "MAX_IDENTIFIERS", "Decision", "IdentityResult", "ResolvedIdentifier", "other_peoples_spans",
           "recover_values", "resolve_identity"]

log = logging.getLogger(__name__)
MAX_IDENTIFIERS = 16  # identifiers followed beyond those filed
MAX_HOPS = 3
MAX_OWNED = 5000  # a key owning more records than this is not grouped (and never followed)
LINKS_KEPT = 20  # record ids kept per identifier to show why it was linked
BATCH_SUFFIXES = (".jsonl", ".json", ".ndjson", ".parquet")


class Decision(StrEnum):
    """What became of one identifier of the identity."""

    GIVEN = "given"  # filed by legal
    FOLLOWED = "followed"  # found on the person's records, one person's: scanned for and swept
    SHARED = "shared_not_followed"  # its records belong to several people: reported, not followed
    NOT_FOLLOWED = "not_followed"  # expansion was turned off (--no-expand)
    OVER_LIMIT = "over_limit"  # more identifiers than the bound
    DROPPED = "dropped_by_reviewer"


class ResolvedIdentifier(BaseModel):
    """One identifier of the person: its kind and key, how it was found, and what was done with it."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    key: str
    hop: int = Field(ge=0)
    decision: Decision
    linked_by: list[str] = []  # records that tie it to the identity (owned together), at most LINKS_KEPT
    owned_records: int = 0
    people: int | None = None  # groups of other identifiers among its records; None when not grouped
    value_source: str | None = None  # given | text | batch_file | None (plain value not found)

    @property
    def active(self) -> bool:
        """Scanned for and swept (filed, or followed)."""
        return self.decision in (Decision.GIVEN, Decision.FOLLOWED)

    @property
    def shared(self) -> bool:
        return self.people is not None and self.people >= 2


class IdentityResult(BaseModel):
    """The identity step's result: every identifier met, the person's records and the ambiguous ones."""

    model_config = ConfigDict(extra="forbid")

    expand: bool
    hops: int
    max_identifiers: int
    identifiers: list[ResolvedIdentifier]
    records: list[str]  # the person's own records (owned by an identifier of theirs, in their group)
    ambiguous_records: list[str] = []  # owned by a shared filed identifier, in another person's group
    notes: list[str] = []

    def active(self) -> list[ResolvedIdentifier]:
        return [i for i in self.identifiers if i.active]

    def keys(self) -> dict[str, str]:
        """Active key -> kind."""
        return {i.key: i.kind for i in self.active()}

    def counts(self) -> dict[str, int]:
        """How many identifiers ended in each decision."""
        out: dict[str, int] = {}
        for i in self.identifiers:
            out[i.decision.value] = out.get(i.decision.value, 0) + 1
        return out


def _groups(key: str, owned: Mapping[str, Mapping[str, str]]) -> list[set[str]]:
    """The records `key` owns, grouped by their other owners (records linked by any shared owner)."""
    parent = {record: record for record in owned}

    def root(record: str) -> str:
        while parent[record] != record:
            parent[record] = parent[parent[record]]
            record = parent[record]
        return record

    first_of: dict[str, str] = {}
    for record, owners in owned.items():
        for owner in owners:
            if owner != key:
                if owner in first_of:
                    parent[root(record)] = root(first_of[owner])
                else:
                    first_of[owner] = record
    groups: dict[str, set[str]] = {}
    for record, owners in owned.items():
        if set(owners) - {key}:
            groups.setdefault(root(record), set()).add(record)
    return list(groups.values())


def _given(graph: GraphStore, given: Mapping[str, str]) -> tuple[list[ResolvedIdentifier], set[str], set[str],
                                                                 dict[str, dict[str, str]], list[str]]:
    """The filed identifiers: their records, split into the person's and, for shared ones, the others'."""
    counts = queries.owned_record_counts(graph, list(given))
    groupable = [key for key in given if counts.get(key, ("", 0))[1] <= MAX_OWNED]
    owned = queries.ownership(graph, groupable)
    identifiers, mine, ambiguous, owners, notes = [], set(), set(), {}, []
    for key, kind in given.items():
        records = owned.get(key, {})
        owners.update(records)
        groups = _groups(key, records) if key in owned else None
        n = counts.get(key, ("", 0))[1]
        identifiers.append(ResolvedIdentifier(kind=kind, key=key, hop=0, decision=Decision.GIVEN,
                                              owned_records=n, people=None if groups is None else len(groups),
                                              value_source="given"))
        if groups is None:
            notes.append(f"the filed {kind} owns {n} records, more than {MAX_OWNED}: its records were not grouped "
                         "by person, and none of them was taken as the subject's")
            continue
        if len(groups) <= 1:
            mine.update(records)
            continue
        others = set(given) - {key}
        anchored = [g for g in groups if any(set(records[r]) & others for r in g)]
        mine.update(*anchored)
        ambiguous.update(set(records) - set().union(*anchored))
        notes.append(f"the filed {kind} is shared: its {n} records belong to {len(groups)} groups of other "
                     f"identifiers; {len(ambiguous)} record(s) outside the subject's group are left for review")
    return identifiers, mine - ambiguous, ambiguous, owners, notes


def resolve_identity(graph: GraphStore, given: Mapping[str, str], *, expand: bool = True, hops: int = 1,
                     max_identifiers: int = MAX_IDENTIFIERS) -> IdentityResult:
    """The identity behind the filed keys (key -> kind): the other identifiers their records link to."""
    if not 0 <= hops <= MAX_HOPS:
        raise InvalidRequestError(f"hops must be between 0 and {MAX_HOPS}, got {hops}")
    if not 0 <= max_identifiers <= 256:
        raise InvalidRequestError(f"max_identifiers must be between 0 and 256, got {max_identifiers}")
    identifiers, mine, ambiguous, owners, notes = _given(graph, given)
    seen = {i.key for i in identifiers}
    frontier = set(mine)
    followed = 0
    for hop in range(1, hops + 1):
        links: dict[str, tuple[str, set[str]]] = {}
        for record in sorted(frontier):
            for key, kind in owners.get(record, {}).items():
                if key not in seen:
                    links.setdefault(key, (kind, set()))[1].add(record)
        if not links:
            break
        found, frontier, followed = _follow(graph, links, hop, expand, max_identifiers - followed, owners)
        identifiers += found
        seen.update(links)
        mine.update(frontier)
    if not expand:
        notes.append("expansion turned off: only the filed identifiers were scanned for")
    return IdentityResult(expand=expand, hops=hops, max_identifiers=max_identifiers, identifiers=identifiers,
                          records=sorted(mine), ambiguous_records=sorted(ambiguous), notes=notes)


def _follow(graph: GraphStore, links: Mapping[str, tuple[str, set[str]]], hop: int, expand: bool, room: int,
            owners: dict[str, dict[str, str]]) -> tuple[list[ResolvedIdentifier], set[str], int]:
    """Decide on one hop's candidates (most-linked first): follow the ones that are one person's."""
    ordered = sorted(links, key=lambda key: (-len(links[key][1]), key))
    counts = queries.owned_record_counts(graph, ordered)
    owned = queries.ownership(graph, [k for k in ordered if counts.get(k, ("", 0))[1] <= MAX_OWNED])
    found, new_records, taken = [], set(), 0
    for key in ordered:
        kind, linked = links[key]
        records = owned.get(key)
        people = None if records is None else len(_groups(key, records))
        if people is None or people >= 2:
            decision = Decision.SHARED
        elif not expand:
            decision = Decision.NOT_FOLLOWED
        elif taken >= room:
            decision = Decision.OVER_LIMIT
        else:
            decision, taken = Decision.FOLLOWED, taken + 1
            owners.update(records)
            new_records.update(records)
        found.append(ResolvedIdentifier(kind=kind, key=key, hop=hop, decision=decision,
                                        linked_by=sorted(linked)[:LINKS_KEPT],
                                        owned_records=counts.get(key, ("", 0))[1], people=people))
    return found, new_records, taken


def recover_values(content: ContentStore, batches_dir: Path | None, keyer: SubjectKeyer, wanted: Mapping[str, str],
                   record_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Plain values of the wanted keys (key -> kind), read from the source records: key -> (value, source).

    The texts of the records come first (a value whose key matches is the value); the batch files' subject
    fields next, for keys no text spelled out. In memory only: the caller must not store them.
    """
    found: dict[str, tuple[str, str]] = {}
    texts = content.get_many(list(record_ids))
    for text in texts.values():
        for kind in set(wanted.values()):
            for candidate in candidate_values(text, kind):
                key = _key(keyer, kind, candidate)
                if key in wanted and key not in found:
                    found[key] = (candidate, "text")
    missing = {key: kind for key, kind in wanted.items() if key not in found}
    if missing and batches_dir is not None:
        for key, value in _batch_values(batches_dir, keyer, missing, set(record_ids)).items():
            found[key] = (value, "batch_file")
    return found


def _key(keyer: SubjectKeyer, kind: str, value: str) -> str | None:
    try:
        return keyer.key(kind, value)
    except ValueError:
        return None


def _batch_values(folder: Path, keyer: SubjectKeyer, wanted: Mapping[str, str], ids: set[str]) -> dict[str, str]:
    """Values of the wanted keys in the subject fields of the batch lines of `ids`."""
    found: dict[str, str] = {}
    kinds = {field: kind.value for field, kind in SUBJECT_FIELDS.items()}
    for path in sorted(p for p in folder.glob("*") if p.suffix.lower() in BATCH_SUFFIXES) if folder.is_dir() else []:
        for record in _records_of(path, ids):
            for field, values in (record.get("subject") or {}).items():
                kind = kinds.get(field)
                for value in [values] if isinstance(values, str) else values if isinstance(values, list) else []:
                    key = _key(keyer, kind, value) if kind and isinstance(value, str) else None
                    if key in wanted:
                        found.setdefault(key, value)
        if len(found) == len(wanted):
            break
    return found


def _records_of(path: Path, ids: set[str]) -> Iterable[dict]:
    """The parsed lines of a batch file whose id is in `ids` (unreadable files and lines are skipped)."""
    try:
        lines = read_batch_lines(path)
    except (OSError, BatchFileError, ValueError) as exc:
        log.warning("batch file %s unreadable while resolving an identity: %s", path.name, type(exc).__name__)
        return
    marks = [i.encode() for i in ids]
    for _, raw in lines:
        if not any(mark in raw for mark in marks):
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("id") in ids:
            yield record


def other_peoples_spans(graph: GraphStore, keyer: SubjectKeyer, texts: Iterable[str],
                        identity_keys: Collection[str]) -> set[tuple[str, str]]:
    """Spans of these texts that are identifiers of someone the graph knows outside the identity.

    A subject's ticket may name a colleague with their email; the colleague's own tickets hold that email
    too. Such a span is shared, and rare, yet says nothing about the subject: it must not confirm a
    near-duplicate or count as one of the subject's secrets.
    """
    spans_by_key: dict[str, set[tuple[str, str]]] = {}
    for text in texts:
        for kind in ("email", "phone", "account", "name"):
            for candidate in candidate_values(text, kind):
                key = _key(keyer, kind, candidate)
                if key is not None and key not in identity_keys:
                    spans_by_key.setdefault(key, set()).update(spans_of(candidate))
    known = queries.known_subject_keys(graph, sorted(spans_by_key))
    return set().union(*(spans_by_key[key] for key in known))
