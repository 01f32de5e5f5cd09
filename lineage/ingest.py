"""Ingesting a validated batch: refuse conflicts and erased records, then write content and graph."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lineage.content_store import ContentStore
from lineage.errors import ContentConflictError, ErasedContentError
from lineage.record_batch import ParsedBatch
from lineage.store.graph import WriteSummary
from lineage.store.writers import LineageWriter


@dataclass
class IngestReport:
    """What an ingest did, in counts only (no identifiers)."""

    records: int
    already_present: int
    repeats_dropped: int
    erased_skipped: int
    subject_keys: int
    graph: WriteSummary
    kept: list[tuple[str, str]] = field(default_factory=list, repr=False)  # (id, hash) written


def ingest_batch(
    batch: ParsedBatch,
    writer: LineageWriter,
    content: ContentStore,
    *,
    skip_erased: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> IngestReport:
    """Write a batch after checking it against the graph; a refused batch writes nothing."""
    records = batch.records
    known = writer.known_records([r.id for r in records])
    conflicts = [(r.line, r.id) for r in records
                 if r.id in known and known[r.id]["sha"] != r.content_sha256]
    if conflicts:
        raise ContentConflictError(conflicts)
    erased_hashes = writer.erased_hashes(sorted({r.content_sha256 for r in records}))
    erased = [(r.line, r.id) for r in records
              if (r.id in known and known[r.id]["state"] == "erased") or r.content_sha256 in erased_hashes]
    if erased and not skip_erased:
        raise ErasedContentError(erased)
    erased_ids = {rid for _, rid in erased}
    keep = [r for r in records if r.id not in erased_ids]

    content.put_many((r.id, r.content_sha256, r.text, r.turns) for r in keep)
    rows = [
        {"id": r.id, "content_sha256": r.content_sha256, "source": r.source, "created_at": r.created_at,
         "content_ref": ContentStore.ref(r.id), "owners": [{"key": k, "kind": kind} for k, kind in r.owners]}
        for r in keep
    ]
    summary = writer.records_with_owners(rows, on_batch=on_batch)
    return IngestReport(
        records=len(keep), already_present=sum(1 for r in keep if r.id in known),
        repeats_dropped=batch.repeats_dropped, erased_skipped=len(erased),
        subject_keys=len({k for r in keep for k, _ in r.owners}), graph=summary,
        kept=[(r.id, r.content_sha256) for r in keep],
    )
