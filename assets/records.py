"""Record assets: raw batches into the graph (bad lines quarantined), then the PII scan."""


import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import dagster as dg

from assets.resources import Neo4jResource, SourceStoreResource
from lineage.batch_files import BatchFileError, read_batch_lines
from lineage.errors import InvalidRecordError
from lineage.ingest import ingest_batch
from lineage.local_files import private_dir
from lineage.models import Edge, Subject
from lineage.record_batch import SUBJECT_FIELDS, parse_lines
from lineage.store.writers import LineageWriter

record_batches = dg.DynamicPartitionsDefinition(name="record_batches")


def _quarantine(folder: Path, batch: str, bad: list[InvalidRecordError], line_sha: dict) -> Path | None:
    """Write the reasons (line, field, problem, line hash) — never the line itself: it may be personal."""
    if not bad:
        return None
    private_dir(folder)
    path = folder / f"{batch}.quarantine.jsonl"
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
        for e in bad:
            fh.write(json.dumps({"line": e.line, "field": e.field, "problem": e.problem,
                                 "line_sha256": line_sha.get(e.line)}) + "\n")
    return path


@dg.asset(partitions_def=record_batches, group_name="lineage", kinds={"neo4j"})
def raw_records(context: dg.AssetExecutionContext, source: SourceStoreResource,
                neo4j: Neo4jResource) -> dg.Output[list[tuple[str, str]]]:
    """Records of one batch file written to the graph (hashes and subject keys); bad lines quarantined."""
    path = source.batch_path(context.partition_key)
    try:
        lines = read_batch_lines(path)
    except BatchFileError as exc:
        raise dg.Failure(str(exc)) from exc
    batch, bad = parse_lines(lines, source.keyer())
    line_sha = {n: hashlib.sha256(raw).hexdigest() for n, raw in lines}
    quarantined = _quarantine(Path(source.quarantine_dir), context.partition_key, bad, line_sha)
    if not batch.records:
        reasons = Counter(f"{e.field}: {e.problem}" for e in bad).most_common(3)
        raise dg.Failure(f"batch {context.partition_key!r}: none of its {len(lines)} record(s) is valid; "
                         f"most common problems: {reasons}. Reasons are in {quarantined}.")
    with neo4j.graph.transaction() as tx:
        report = ingest_batch(batch, LineageWriter(neo4j.graph, tx=tx), source.content(), skip_erased=True)
    for e in bad[:20]:
        context.log.warning(f"quarantined line {e.line}: field '{e.field}': {e.problem}")
    return dg.Output(report.kept, metadata={
        "records": report.records, "quarantined": len(bad), "erased_refused": report.erased_skipped,
        "repeats_dropped": batch.repeats_dropped, "subject_keys": report.subject_keys,
        "relationships_created": report.graph.relationships_created,
        "quarantine_file": str(quarantined) if quarantined else "-",
    })


def _known_identifiers(lines: list[tuple[int, bytes]]) -> set[tuple[str, str]]:
    """(kind, raw value) of the identifiers the batch's records carry — in memory only, for deny lists."""
    known: set[tuple[str, str]] = set()
    for _, raw in lines:
        try:
            subject = json.loads(raw).get("subject") or {}
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            continue  # quarantined by raw_records already
        for field, kind in SUBJECT_FIELDS.items():
            values = subject.get(field) if isinstance(subject, dict) else None
            for value in [values] if isinstance(values, str) else (values or []):
                if isinstance(value, str) and value.strip():
                    known.add((kind.value, value))
    return known


@dg.asset(partitions_def=record_batches, group_name="lineage", kinds={"presidio", "neo4j"})
def pii_scan(context: dg.AssetExecutionContext, raw_records: list[tuple[str, str]],
             source: SourceStoreResource, neo4j: Neo4jResource) -> dg.MaterializeResult:
    """Presidio over every record: each subject found in a text becomes a MENTIONS edge (keys only)."""
    from lineage.pii.scanner import PiiScanner  # Presidio is slow to import: only when the asset runs

    lines = read_batch_lines(source.batch_path(context.partition_key))
    keyer = source.keyer()
    scanner = PiiScanner(keyer, known=_known_identifiers(lines))
    ids = [rid for rid, _ in raw_records]
    texts = source.content().get_many(ids)
    missing = [rid for rid in ids if rid not in texts]
    if missing:
        raise dg.Failure(f"{len(missing)} record(s) have no text in the content store (e.g. {missing[:3]}); "
                         "rematerialize raw_records for this batch")
    turns = source.content().turns(ids)  # chat records: each message on its own
    results = scanner.scan_records([texts[rid] for rid in ids], {i: turns[rid] for i, rid in enumerate(ids)
                                                                 if rid in turns})
    subjects, mentions, entities = {}, [], Counter()
    for rid, result in zip(ids, results):
        entities.update(result.entity_counts)
        for m in result.mentions:
            subjects[m.key] = m.kind
            mentions.append(Edge(source=rid, target=m.key))
    with neo4j.graph.transaction() as tx:
        writer = LineageWriter(neo4j.graph, tx=tx)
        writer.nodes([Subject(key=k, kind=kind) for k, kind in subjects.items()])
        summary = writer.edges("MENTIONS", mentions)
    return dg.MaterializeResult(metadata={
        "records_scanned": len(ids), "records_with_mentions": len({e.source for e in mentions}),
        "mentions": len(mentions), "mentions_created": summary.relationships_created,
        **{f"entity_{k.lower()}": v for k, v in sorted(entities.items())},
    })
