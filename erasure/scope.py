"""Resolve an erasure request's scope: the records it owns, those that mention it, and their near-duplicates.

1. owned: `(Subject)-[:OWNS]->(Record)` for the request's subject keys;
2. mentioned: `(Record)-[:MENTIONS]->(Subject)` from the pipeline's Presidio scan, plus a fresh scan of
   every held record with a deny list of the request's own identifiers (in memory only), which finds
   what the pipeline's scan could not know (a name, with no NER model installed, say);
3. near-duplicates: MiniLM + FAISS over every held record; a candidate (cosine >= 0.75) is included when
   something beyond cosine confirms it — it shares a secret value (a code, an account or phone number)
   with the record it resembles, or it is a near-verbatim copy — because other customers' tickets from
   the same template reach cosine 0.997 (see unlearning/search/near_duplicates.py). The others are
   borderline: left out unless a person includes them (`--review`).
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lineage.content_store import ContentStore
from lineage.store import GraphStore

__all__ = ["NEAR_VERBATIM_RATIO", "ScopeRecord", "ScopeResult", "drop_index_cache", "resolve_scope"]

# difflib ratio of the normalized texts from which a match is a copy. Two customers' tickets from one
# template differ only in names and numbers and reach 0.95 on the demo corpus: only a copy this close,
# or one sharing a secret value, is taken in without a person's review.
NEAR_VERBATIM_RATIO = 0.98
FRESH_SCAN_BATCH = 2000
_SPACES = re.compile(r"\s+")


@dataclass
class ScopeRecord:
    """One record of the scope: why it is there, how similar (for near-duplicates), and the decision."""

    id: str
    content_sha256: str
    reasons: list[str]
    similarity: float | None = None
    matched: str | None = None  # the scope record a near-duplicate resembles
    confirmation: str | None = None  # what confirmed a near-duplicate: shared_secret | near_verbatim
    decision: str = "included"  # included | excluded_borderline | included_reviewed | excluded_reviewed

    @property
    def in_scope(self) -> bool:
        return self.decision in ("included", "included_reviewed")


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


def _graph_records(graph: GraphStore, keys: Sequence[str]) -> tuple[dict[str, dict], int]:
    rows = graph.read(
        "CALL () { MATCH (s:Subject) WHERE s.key IN $keys RETURN count(s) AS found } "
        "CALL () { MATCH (s:Subject)-[:OWNS]->(r:Record) WHERE s.key IN $keys RETURN r, 'owned' AS why "
        "UNION MATCH (r:Record)-[:MENTIONS]->(s:Subject) WHERE s.key IN $keys RETURN r, 'mentioned' AS why } "
        "RETURN found, r.id AS id, r.content_sha256 AS sha, r.state AS state, why", keys=list(keys))
    found = rows[0]["found"] if rows else 0
    out: dict[str, dict] = {}
    for row in rows:
        if row["id"] is None:
            continue
        entry = out.setdefault(row["id"], {"sha": row["sha"], "state": row["state"], "reasons": set()})
        entry["reasons"].add(row["why"])
    return out, found


def _held_records(graph: GraphStore) -> dict[str, str]:
    """id -> content hash of every record not yet erased."""
    rows = graph.read("MATCH (r:Record) WHERE coalesce(r.state, 'active') <> 'erased' "
                      "RETURN r.id AS id, r.content_sha256 AS sha")
    return {row["id"]: row["sha"] for row in rows}


def _fresh_mentions(scanner, keys: set[str], texts: Mapping[str, str]) -> set[str]:
    ids = list(texts)
    hits = set()
    for start in range(0, len(ids), FRESH_SCAN_BATCH):
        chunk = ids[start:start + FRESH_SCAN_BATCH]
        for rid, result in zip(chunk, scanner.scan([texts[i] for i in chunk])):
            if any(m.key in keys for m in result.mentions):
                hits.add(rid)
    return hits


def _normalized(text: str) -> str:
    return _SPACES.sub(" ", text).strip().casefold()


def _secret_values(finder, texts: Mapping[str, str]) -> dict[str, set[str]]:
    ids = list(texts)
    out = {}
    for rid, spans in zip(ids, finder.find([texts[i] for i in ids])):
        out[rid] = {re.sub(r"\D", "", texts[rid][s.start:s.end]) for s in spans}
        out[rid].discard("")
    return out


def _index_key(held: Mapping[str, str]) -> str:
    digest = hashlib.sha256()
    for rid in sorted(held):
        digest.update(f"{rid}\0{held[rid]}\n".encode())
    return digest.hexdigest()[:24]


def resolve_scope(graph: GraphStore, content: ContentStore, subject_keys: Sequence[str], identifiers: Mapping[str, str],
                  keyer, *, index_dir=None, threshold: float | None = None,
                  fresh_scan_limit: int = 200_000) -> ScopeResult:
    """The scope of one request. `identifiers` are the raw values (memory only) for the fresh deny-list scan."""
    from lineage.pii import PiiScanner
    from lineage.pii.secrets import SecretFinder
    from unlearning.search import MiniLMEmbedder, VectorIndex, find_near_duplicates
    from unlearning.search.near_duplicates import PARAPHRASE_THRESHOLD

    threshold = PARAPHRASE_THRESHOLD if threshold is None else threshold
    keys = set(subject_keys)
    found, keys_found = _graph_records(graph, sorted(keys))
    held = _held_records(graph)
    notes = []
    erased_before = sorted(rid for rid, e in found.items() if e["state"] == "erased")
    if erased_before:
        notes.append(f"{len(erased_before)} of the subject's records were erased by an earlier request")
    texts = content.get_many(sorted(held))
    scanned = 0
    if identifiers and len(texts) <= fresh_scan_limit:
        scanner = PiiScanner(keyer, known=list(identifiers.items()))
        for rid in _fresh_mentions(scanner, keys, texts):
            found.setdefault(rid, {"sha": held[rid], "state": "active", "reasons": set()})["reasons"].add("mentioned")
        scanned = len(texts)
    elif identifiers:
        notes.append(f"fresh mention scan skipped: {len(texts)} records exceed the limit of {fresh_scan_limit}; "
                     "the pipeline's scan results in the graph were used")
    records = {rid: ScopeRecord(rid, e["sha"], sorted(e["reasons"])) for rid, e in found.items()
               if e["state"] != "erased"}
    candidates = 0
    queries = [rid for rid in records if rid in texts]
    if queries and len(texts) > 1:
        embedder = MiniLMEmbedder()
        index = _load_or_build_index(embedder, texts, held, index_dir, VectorIndex)
        query_vectors = embedder.encode([texts[rid] for rid in queries])
        matches = find_near_duplicates(index, queries, query_vectors, threshold=threshold, exclude=set(records))
        candidates = len({m.match_id for m in matches})
        best: dict[str, object] = {}
        for m in matches:
            if m.match_id not in best or m.cosine > best[m.match_id].cosine:
                best[m.match_id] = m
        secrets = _secret_values(SecretFinder(), {rid: texts[rid] for rid in set(queries) | set(best)})
        for rid, m in best.items():
            shared = secrets.get(rid, set()) & secrets.get(m.query_id, set())
            ratio = difflib.SequenceMatcher(None, _normalized(texts[rid]), _normalized(texts[m.query_id])).ratio()
            confirmation = "shared_secret" if shared else "near_verbatim" if ratio >= NEAR_VERBATIM_RATIO else None
            records[rid] = ScopeRecord(rid, held[rid], ["near_duplicate"], round(float(m.cosine), 4), m.query_id,
                                       confirmation, "included" if confirmation else "excluded_borderline")
    missing = sorted(rid for rid in records if rid not in texts)
    if missing:
        notes.append(f"{len(missing)} scope record(s) have no text in the content store; they are erased from the "
                     "graph but were not compared for near-duplicates")
    ordered = sorted(records.values(), key=lambda r: (r.decision != "included", r.id))
    return ScopeResult(ordered, keys_found, scanned, candidates, notes)


def _load_or_build_index(embedder, texts: Mapping[str, str], held: Mapping[str, str], index_dir, VectorIndex):
    """The index of the held records, reused from `index_dir` when exactly these records were indexed before."""
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
