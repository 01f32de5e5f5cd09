"""The residual sweep: nothing Lethe keeps may still hold the person's identifiers or secrets.

The sweep looks for every active identifier of the person's identity (its plain value read back from the
source records, with a name's usual variants) and for their secrets (numbers and codes of their own
records that few other records contain), format-agnostically, in every text of the content store and
every line of Lethe's batch files, and it notes which hits lie in what the new adapter trained on.

It runs twice in a request's run. Before the remedy (`sweep_before`), a hit outside the scope joins the
scope, so the same run remedies it; a record a reviewer excluded stays out and is named. After the
remedy (`sweep_after`, before the scope's records are deleted), every hit outside the scope is residue:
the verdict is `incomplete`, naming the record and what it holds. Weak hits (a title with the surname, a
shared identifier) are counted, never acted on: they may name someone else.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from erasure.identity import IdentityResult, other_peoples_spans, recover_values
from erasure.scope import hit_labels, identity_needles
from lineage.batch_files import BatchFileError, read_batch_lines
from lineage.content_store import ContentStore
from lineage.hashing import content_sha256
from lineage.keys import SubjectKeyer
from lineage.pii.identity_match import Hit, NeedleSet, secret_needle
from lineage.pii.rare_spans import SpanFrequencies
from lineage.store import GraphStore

__all__ = ["SweepHit", "SweepNeedles", "SweepResult", "sweep", "sweep_needles"]

BATCH_SUFFIXES = (".jsonl", ".json", ".ndjson", ".parquet")
Place = Literal["content_store", "batch_file", "training"]


class SweepHit(BaseModel):
    """A record outside the scope that holds the person's identifiers or secrets (kinds only)."""

    model_config = ConfigDict(extra="forbid")

    record_id: str
    content_sha256: str
    places: list[Place]
    kinds: list[str]
    disposition: Literal["joined_scope", "excluded_by_reviewer", "not_held", "residue"]


class SweepResult(BaseModel):
    """What one sweep scanned, for what, and what it found (counts, kinds and record ids)."""

    model_config = ConfigDict(extra="forbid")

    phase: Literal["before", "after"]
    texts_scanned: int
    batch_lines_scanned: int
    training_texts_scanned: int | None
    identifier_kinds: list[str]
    values_missing: list[str]  # kinds of active identifiers with no plain value to look for
    secrets: int
    hits: list[SweepHit]
    weak_hits: int
    notes: list[str] = []


@dataclass
class SweepNeedles:
    """What a sweep looks for (in memory only) and what may be said of it."""

    needles: NeedleSet
    kinds: list[str]
    missing: list[str]
    secrets: int
    resolved: set[str] = field(default_factory=set)


def sweep_needles(graph: GraphStore, content: ContentStore, batches_dir: Path | None, keyer: SubjectKeyer,
                  identity: IdentityResult, corpus: Mapping[str, str]) -> SweepNeedles:
    """The needles of the person: identifiers read back from their records, and their rare secrets."""
    keys = identity.keys()
    values = {key: value for key, (value, _) in
              recover_values(content, batches_dir, keyer, keys, identity.records).items()}
    own = {rid: corpus[rid] for rid in identity.records if rid in corpus}
    frequencies = SpanFrequencies(corpus)
    foreign = other_peoples_spans(graph, keyer, own.values(), keys) if own else set()
    secrets = [n for value in sorted(frequencies.secrets_of(own, foreign)) if (n := secret_needle(value))]
    identifiers = identity_needles(identity, values)
    active = identity.active()
    return SweepNeedles(NeedleSet([*identifiers.needles, *secrets]),
                        kinds=sorted({i.kind for i in active if i.key in values}),
                        missing=sorted(i.kind for i in active if i.key not in values), secrets=len(secrets),
                        resolved={i.key for i in active if i.hop > 0})


def _scan_batches(folder: Path | None, needles: NeedleSet) -> tuple[dict[str, list[Hit]], dict[str, str], int]:
    """Record id -> hits in Lethe's batch files (whole lines: text and subject fields), the hit lines' text
    hashes, and the lines scanned."""
    hits: dict[str, list[Hit]] = {}
    hashes: dict[str, str] = {}
    scanned = 0
    paths = sorted(p for p in folder.glob("*") if p.suffix.lower() in BATCH_SUFFIXES) \
        if folder is not None and folder.is_dir() else []
    for path in paths:
        try:
            lines = read_batch_lines(path)
        except BatchFileError:
            continue  # an empty batch file holds nothing
        for _, raw in lines:
            scanned += 1
            found = needles.find(raw.decode("utf-8", errors="replace"))
            if found:
                try:
                    line = json.loads(raw)
                    record_id, text = str(line.get("id")), str(line.get("text", ""))
                except (ValueError, AttributeError):
                    record_id, text = f"{path.name}:unparsable-line", raw.decode("utf-8", errors="replace")
                hits.setdefault(record_id, []).extend(found)
                hashes[record_id] = content_sha256(text)
    return hits, hashes, scanned


def sweep(phase: Literal["before", "after"], needles: SweepNeedles, content: ContentStore, batches_dir: Path | None,
          *, scope: Collection[str], excluded: Collection[str], held: Collection[str],
          training: Collection[str] | None = None) -> SweepResult:
    """Scan the content store and the batch files for the person, skipping the scope's records."""
    found: dict[str, dict[str, object]] = {}
    texts_scanned, stored = 0, set()
    for chunk in content.iter_texts():
        texts_scanned += len(chunk)
        stored.update(chunk)
        for rid, hits in needles.needles.scan({r: t for r, t in chunk.items() if r not in scope}).items():
            found.setdefault(rid, {"hits": [], "places": set()})["hits"] += hits
            found[rid]["places"].add("content_store")
    batch_hits, line_hashes, lines = _scan_batches(batches_dir, needles.needles)
    for rid, hits in batch_hits.items():
        if rid not in scope:
            found.setdefault(rid, {"hits": [], "places": set()})["hits"] += hits
            found[rid]["places"].add("batch_file")
    training = set(training) if training is not None else None
    hashes = {**line_hashes, **content.hashes(sorted(found))}
    out, weak = [], 0
    for rid, entry in sorted(found.items()):
        strong = [h for h in entry["hits"] if h.strong]
        if not strong:
            weak += 1
            continue
        places = entry["places"] | ({"training"} if training is not None and rid in training else set())
        out.append(SweepHit(record_id=rid, content_sha256=hashes[rid], places=sorted(places),
                            kinds=hit_labels(strong, needles.resolved),
                            disposition=_disposition(phase, rid, excluded, held)))
    notes = [f"no plain value of {', '.join(needles.missing)} to look for: those identifiers were matched by key "
             "in the graph only"] if needles.missing else []
    if training is not None and training - stored:
        notes.append(f"{len(training - stored)} training record(s) have no text in the content store to sweep")
    return SweepResult(phase=phase, texts_scanned=texts_scanned, batch_lines_scanned=lines,
                       training_texts_scanned=None if training is None else len(training & stored),
                       identifier_kinds=needles.kinds, values_missing=needles.missing, secrets=needles.secrets,
                       hits=out, weak_hits=weak, notes=notes)


def _disposition(phase: str, record_id: str, excluded: Collection[str], held: Collection[str]) -> str:
    if record_id in excluded:
        return "excluded_by_reviewer"
    if record_id not in held:
        return "not_held"
    return "joined_scope" if phase == "before" else "residue"
