"""Resolve an erasure request's scope from the person's whole identity: what they own, what names them,
what copies or restates theirs.

1. owned: the records of the person's identifiers (erasure.identity groups them by person; records of a
   shared filed identifier that belong to another group are borderline, for a person to decide);
2. mentioned: the pipeline's Presidio `MENTIONS` edges, plus a fresh scan of every held record for every
   identifier of the identity, in memory: Presidio with deny lists of the plain values (keyed matches),
   and a format-agnostic match of each value and the name's usual variants on token boundaries
   (lineage.pii.identity_match). A strong hit (an email, a phone or account number, a full name) includes
   the record; a weak one only (initials or a title with the surname, or a shared identifier) makes it
   borderline;
3. near-duplicates: MiniLM + FAISS over every held record; a candidate (cosine >= 0.75) is included
   when something beyond cosine confirms it: it is a near-verbatim copy, or it shares rare spans with the
   scope (numbers, codes, names that few records outside the scope contain; lineage.pii.rare_spans),
   because other customers' tickets from the same template reach cosine 0.997. The others are
   borderline: left out unless a person includes them (`--review`).
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import re
import shutil
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from erasure.identity import IdentityResult, other_peoples_spans
from lineage.content_store import ContentStore
from lineage.pii.identity_match import Hit, NeedleSet, identifier_needles, name_variants
from lineage.pii.rare_spans import SpanFrequencies, confirms
from lineage.store import GraphStore, queries

__all__ = ["NEAR_VERBATIM_RATIO", "ScopeRecord", "ScopeResult", "drop_index_cache", "hit_labels", "identity_needles",
           "load_record_index", "resolve_scope"]

# difflib ratio of the normalized texts from which a match is a copy. Two customers' tickets from one
# template differ only in names and numbers and reach 0.95 on the demo corpus: only a copy this close,
# or one sharing rare spans with the scope, is taken in without a person's review.
NEAR_VERBATIM_RATIO = 0.98
FRESH_SCAN_BATCH = 2000
_SPACES = re.compile(r"\s+")
INCLUDED = ("included", "included_reviewed")


@dataclass
class ScopeRecord:
    """One record of the scope: why it is there, how similar (for near-duplicates), and the decision."""

    id: str
    content_sha256: str
    reasons: list[str]
    similarity: float | None = None
    matched: str | None = None  # the scope record a near-duplicate resembles
    confirmation: str | None = None  # what confirmed a near-duplicate: rare_spans | near_verbatim
    decision: str = "included"  # included | excluded_borderline | included_reviewed | excluded_reviewed
    identifiers: list[str] = field(default_factory=list)  # identifier kinds found in it ("name (variant)", …)
    shared_spans: dict[str, int] = field(default_factory=dict)  # rare span kinds shared with the scope
    via_keys: list[str] = field(default_factory=list)  # the identity's keys that brought it (owner, or found)

    @property
    def in_scope(self) -> bool:
        return self.decision in INCLUDED


@dataclass
class ScopeResult:
    """The scope and how it was found (counts only besides ids and hashes)."""

    records: list[ScopeRecord]
    subject_keys_found: int
    scanned: int
    candidates: int
    notes: list[str] = field(default_factory=list)

    @property
    def included(self) -> list[ScopeRecord]:
        return [r for r in self.records if r.in_scope]

    @property
    def borderline(self) -> list[ScopeRecord]:
        return [r for r in self.records if r.decision == "excluded_borderline"]

    def as_json(self) -> dict:
        return {"records": [vars(r) for r in self.records], "subject_keys_found": self.subject_keys_found,
                "scanned": self.scanned, "candidates": self.candidates, "notes": self.notes}


def identity_needles(identity: IdentityResult, values: Mapping[str, str]) -> NeedleSet:
    """Needles of every active identifier whose plain value is known: weak for a shared one."""
    needles = []
    for ident in identity.active():
        if ident.key in values:
            needles += identifier_needles(ident.kind, values[ident.key], ident.key, strong=not ident.shared)
    return NeedleSet(needles)


def hit_labels(hits: Sequence[Hit], resolved: Collection[str]) -> list[str]:
    """What was found, for people: 'email', 'name (variant)', 'account (resolved)', 'secret'."""
    labels = set()
    for hit in hits:
        label = hit.kind + (" (variant)" if hit.form in ("initials", "title") else "")
        labels.add(label + (" (resolved)" if hit.key in resolved else ""))
    return sorted(labels)


def _graph_mentions(graph: GraphStore, keys: Sequence[str]) -> dict[str, dict]:
    rows = graph.read("MATCH (r:Record)-[:MENTIONS]->(s:Subject) WHERE s.key IN $keys "
                      "RETURN r.id AS id, r.content_sha256 AS sha, r.state AS state, collect(s.key) AS keys",
                      keys=list(keys))
    return {row["id"]: row for row in rows}


def _held_records(graph: GraphStore) -> dict[str, str]:
    """id -> content hash of every record not yet erased."""
    rows = graph.read("MATCH (r:Record) WHERE coalesce(r.state, 'active') <> 'erased' "
                      "RETURN r.id AS id, r.content_sha256 AS sha")
    return {row["id"]: row["sha"] for row in rows}


def _presidio_mentions(scanner, keys: set[str], texts: Mapping[str, str]) -> dict[str, set[str]]:
    """Record id -> the identity's keys Presidio found in it (deny lists of the plain values, keyed)."""
    ids = list(texts)
    hits: dict[str, set[str]] = {}
    for start in range(0, len(ids), FRESH_SCAN_BATCH):
        chunk = ids[start:start + FRESH_SCAN_BATCH]
        for rid, result in zip(chunk, scanner.scan([texts[i] for i in chunk])):
            found = {m.key for m in result.mentions if m.key in keys}
            if found:
                hits[rid] = found
    return hits


def _normalized(text: str) -> str:
    return _SPACES.sub(" ", text).strip().casefold()


def _index_key(held: Mapping[str, str]) -> str:
    digest = hashlib.sha256()
    for rid in sorted(held):
        digest.update(f"{rid}\0{held[rid]}\n".encode())
    return digest.hexdigest()[:24]


@dataclass
class _Found:
    """Records found so far: id -> reasons, identifier hits, and whether a strong hit backs them."""

    held: Mapping[str, str]
    records: dict[str, ScopeRecord] = field(default_factory=dict)
    strong: set[str] = field(default_factory=set)

    def add(self, rid: str, reason: str, *, strong: bool = True, labels: Sequence[str] = (),
            keys: Collection[str | None] = ()) -> None:
        record = self.records.setdefault(rid, ScopeRecord(rid, self.held[rid], [], decision="excluded_borderline"))
        if reason not in record.reasons:
            record.reasons = sorted([*record.reasons, reason])
        record.identifiers = sorted(set(record.identifiers) | set(labels))
        record.via_keys = sorted(set(record.via_keys) | {k for k in keys if k})
        if strong:
            self.strong.add(rid)
            record.decision = "included"


def _mentions(found: _Found, graph: GraphStore, scanner_factory, identity: IdentityResult,
              values: Mapping[str, str], texts: Mapping[str, str], fresh_scan_limit: int, notes: list[str]) -> int:
    """Records that name the person: the graph's MENTIONS edges, Presidio and the identity matcher."""
    keys = identity.keys()
    weak_keys = {i.key for i in identity.active() if i.shared}
    resolved = {i.key for i in identity.active() if i.hop > 0}
    for rid, row in _graph_mentions(graph, sorted(keys)).items():
        if rid in found.held:
            strong = bool(set(row["keys"]) - weak_keys)
            found.add(rid, "mentioned", strong=strong, labels=sorted({keys[k] for k in row["keys"]}), keys=row["keys"])
    known = [(keys[key], value) for key, value in values.items() if key in keys]
    # A name's other strong spellings (without the middle name, surname first) are deny-listed too.
    aliases = [("name", text, key) for key, value in values.items() if keys.get(key) == "name"
               for form, strong, text in name_variants(value) if strong and form != "full"]
    scanned = 0
    if known and texts and len(texts) <= fresh_scan_limit:
        for rid, hit_keys in _presidio_mentions(scanner_factory(known, aliases), set(keys), texts).items():
            found.add(rid, "mentioned", strong=bool(hit_keys - weak_keys),
                      labels=sorted({keys[k] + (" (resolved)" if k in resolved else "") for k in hit_keys}),
                      keys=hit_keys)
        scanned = len(texts)
    elif known:
        notes.append(f"fresh Presidio scan skipped: {len(texts)} records exceed the limit of {fresh_scan_limit}; "
                     "the graph's scan results and the identity matcher were used")
    for rid, hits in identity_needles(identity, values).scan(texts).items():
        found.add(rid, "mentioned", strong=any(h.strong for h in hits), labels=hit_labels(hits, resolved),
                  keys=[h.key for h in hits])
    return scanned


def resolve_scope(graph: GraphStore, content: ContentStore, identity: IdentityResult, values: Mapping[str, str],
                  keyer, *, index_dir=None, threshold: float | None = None,
                  fresh_scan_limit: int = 200_000) -> ScopeResult:
    """The scope of one request. `values`: the plain value of each identity key known now (memory only)."""
    from lineage.pii import PiiScanner

    held = _held_records(graph)
    found, notes = _Found(held), list(identity.notes)
    keys_found = sum(1 for i in identity.active() if i.owned_records)
    keys = identity.keys()
    owners = queries.record_owners(graph, identity.records)
    for rid in identity.records:
        if rid in held:
            found.add(rid, "owned", keys=[k for k in owners.get(rid, []) if k in keys])
    for rid in identity.ambiguous_records:
        if rid in held:
            found.add(rid, "shared_identifier", strong=False)
    missing_values = [i.kind for i in identity.active() if i.key not in values]
    if missing_values:
        notes.append(f"no plain value for {len(missing_values)} identifier(s) ({', '.join(sorted(missing_values))}): "
                     "found by their keys in the graph only")
    texts = content.get_many(sorted(held))
    scanned = _mentions(found, graph, lambda known, aliases: PiiScanner(keyer, known=known, aliases=aliases),
                        identity, values, texts, fresh_scan_limit, notes)
    candidates = _near_duplicates(found, graph, keyer, identity, texts, threshold, index_dir)
    missing = sorted(rid for rid in found.records if rid not in texts)
    if missing:
        notes.append(f"{len(missing)} scope record(s) have no text in the content store; they are erased from the "
                     "graph but were not compared for near-duplicates")
    ordered = sorted(found.records.values(), key=lambda r: (r.decision != "included", r.id))
    return ScopeResult(ordered, keys_found, scanned, candidates, notes)


def _near_duplicates(found: _Found, graph: GraphStore, keyer, identity: IdentityResult, texts: Mapping[str, str],
                     threshold: float | None, index_dir) -> int:
    """Add the confirmed near-duplicates of the included records (others as borderline); candidates seen."""
    from unlearning.search import MiniLMEmbedder, find_near_duplicates
    from unlearning.search.near_duplicates import PARAPHRASE_THRESHOLD

    anchors = [rid for rid in sorted(found.strong) if rid in texts]
    if not anchors or len(texts) <= 1:
        return 0
    embedder = MiniLMEmbedder()
    index = load_record_index(embedder, texts, found.held, index_dir)
    matches = find_near_duplicates(index, anchors, embedder.encode([texts[rid] for rid in anchors]),
                                   threshold=PARAPHRASE_THRESHOLD if threshold is None else threshold,
                                   exclude=set(found.strong))
    best: dict[str, object] = {}
    for m in matches:
        if m.match_id not in best or m.cosine > best[m.match_id].cosine:
            best[m.match_id] = m
    if not best:
        return 0
    frequencies = SpanFrequencies(texts)
    outside = frequencies.outside(anchors)
    foreign = other_peoples_spans(graph, keyer, [texts[r] for r in {*anchors, *best}], identity.keys())
    for rid, m in best.items():
        shared = frequencies.shared_rare(rid, anchors, outside, foreign)
        ratio = difflib.SequenceMatcher(None, _normalized(texts[rid]), _normalized(texts[m.query_id])).ratio()
        confirmation = "near_verbatim" if ratio >= NEAR_VERBATIM_RATIO else "rare_spans" if confirms(shared) else None
        record = found.records.get(rid) or ScopeRecord(rid, found.held[rid], [], decision="excluded_borderline")
        record.reasons = sorted({*record.reasons, "near_duplicate"})
        record.similarity, record.matched, record.confirmation = round(float(m.cosine), 4), m.query_id, confirmation
        record.shared_spans = dict(sorted(Counter(shared).items()))
        if confirmation:
            record.decision = "included"
        found.records[rid] = record
    return len(best)


def load_record_index(embedder, texts: Mapping[str, str], held: Mapping[str, str], index_dir):
    """The index of the held records, reused from `index_dir` when exactly these records were indexed before."""
    from unlearning.search import VectorIndex
    from unlearning.search.errors import IndexFileError

    ids = sorted(texts)
    folder = None if index_dir is None else index_dir / _index_key({i: held[i] for i in ids})
    if folder is not None and folder.is_dir():
        try:
            return VectorIndex.load(folder, embedder_name=embedder.name)
        except IndexFileError as exc:  # a corrupt cache is rebuilt below; the reason goes to the log
            logging.getLogger(__name__).warning("record index cache unusable, rebuilding: %s", exc)
    index = VectorIndex.build(ids, embedder.encode([texts[i] for i in ids]), embedder_name=embedder.name)
    if folder is not None:
        index.save(folder)
    return index


def drop_index_cache(index_dir) -> int:
    """Delete every cached record index (they embed erased records' text); returns how many were removed."""
    if index_dir is None or not index_dir.is_dir():
        return 0
    removed = 0
    for folder in index_dir.iterdir():
        if folder.is_dir():
            shutil.rmtree(folder)
            removed += 1
    return removed
