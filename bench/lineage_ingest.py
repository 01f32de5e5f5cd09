"""Lineage ingest throughput: batched UNWIND/MERGE writes versus one transaction per record.

Builds a SISA-shaped graph from synthetic records held in memory: each record has a content hash
and 1-2 owners (subject keys = HMACs under a fixed bench pepper, never raw identifiers). Records,
subjects and OWNS go through `LineageWriter.records_with_owners`; then 10 dataset versions are
written, one per batch of records/10: the batch is split into K=4 content-addressed shards plus a
5% holdout (`plan_dataset_version`), version v holds the shards of batches 0..v and DERIVED_FROM
v-1, and a fine-tune run per version TRAINED_ON its shards PRODUCED one adapter per shard, each
MERGED_INTO the version's served adapter, DEPLOYED_TO a deployment.

Measured: edges_per_s = relationships created by the batched path / wall time of all its writes
(nodes included; planning, hashing and Merkle roots happen before the clock starts). The naive
writer runs first in the same server, on distinct ids: one `execute_write` per record (record +
subjects + OWNS + IN), 1k untimed records (JIT warm-up, for both paths) then a timed 10k sample;
ratio_vs_naive = batched edges/s / naive edges/s.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from bench._graph import bench_settings, emit, fresh_graph, progress
from lineage.content_store import ContentStore
from lineage.dataset import plan_dataset_version
from lineage.hashing import content_sha256
from lineage.keys import IdentifierKind, SubjectKeyer
from lineage.merkle import Manifest
from lineage.models import Adapter, DatasetVersion, Deployment, Edge, FineTuneRun, Shard
from lineage.store import GraphStore
from lineage.store.graph import DEFAULT_BATCH_SIZE, WriteSummary
from lineage.store.writers import LineageWriter

BENCH_PEPPER = hashlib.sha256(b"lethe-bench-pepper").digest()  # fixed, so keys are reproducible
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
VERSIONS, SHARDS, HOLDOUT = 10, 4, 0.05
NAIVE_RECORDS, NAIVE_WARMUP = 10_000, 1_000


@dataclass
class Corpus:
    """Synthetic records as `records_with_owners` rows, and the subject keys they use (first-use order)."""

    rows: list[dict]
    subject_keys: list[str]


def make_corpus(n: int, prefix: str = "bench", seed: int = 0) -> Corpus:
    """n records, ~n/4 email subjects (1 owner each) and ~n/8 phone subjects (30% of records)."""
    rng = random.Random(seed)
    keyer = SubjectKeyer(BENCH_PEPPER)
    emails = [keyer.key(IdentifierKind.EMAIL, f"{prefix}-user{j}@example.org") for j in range(max(1, n // 4))]
    area = 555 if prefix == "bench" else 556  # phone keys use digits only: keep the naive sample's apart
    phones = [keyer.key(IdentifierKind.PHONE, f"+1 {area} {j:07d}") for j in range(max(1, n // 8))]
    created = NOW.isoformat()
    rows = []
    for i in range(n):
        rid = f"{prefix}-{i:08d}"
        owners = [{"key": rng.choice(emails), "kind": "email"}]
        if rng.random() < 0.3:
            owners.append({"key": rng.choice(phones), "kind": "phone"})
        rows.append({"id": rid, "content_sha256": content_sha256(f"{prefix} record {i}: synthetic text"),
                     "source": "bench", "created_at": created, "content_ref": ContentStore.ref(rid),
                     "owners": owners})
    used = dict.fromkeys(o["key"] for r in rows for o in r["owners"])
    return Corpus(rows, list(used))


def plan_lineage(corpus: Corpus, versions: int = VERSIONS) -> list[tuple[str, str | None, list]]:
    """The lineage writes after the records, in order: ('nodes', None, nodes) or ('edges', type, edges)."""
    rows, per = corpus.rows, max(1, len(corpus.rows) // versions)
    ops: list[tuple[str, str | None, list]] = []
    shards: list[tuple[str, tuple]] = []  # (shard id, its records) of every batch so far
    parent = None
    for v in range(versions):
        batch = rows[v * per:(v + 1) * per if v < versions - 1 else len(rows)]
        plan = plan_dataset_version(f"bench-b{v}", [(r["id"], r["content_sha256"]) for r in batch], NOW,
                                    shard_count=SHARDS, holdout_fraction=HOLDOUT, seed=v)
        shards += [(s.id, s.records) for s in plan.shards]
        manifest = Manifest.of(h for _, recs in shards for _, h in recs).root
        holdout = Manifest.of(h for _, h in plan.holdout).root
        dv = DatasetVersion(id=f"bench-v{v}:{manifest[:16]}", name=f"bench-v{v}", manifest_root=manifest,
                            holdout_root=holdout, created_at=NOW)
        run = FineTuneRun(id=f"bench-run-v{v}", base_model="bench-base", base_model_sha256="0" * 64,
                          config_sha256=content_sha256("bench-config"), seed=v, code_version="bench",
                          started_at=NOW)
        per_shard = [Adapter(id=f"bench-adapter-v{v}-{sid[:16]}", sha256=content_sha256(f"{v}{sid}"),
                             uri=f"models://bench/v{v}/{sid[:16]}") for sid, _ in shards]
        served = Adapter(id=f"bench-served-v{v}", sha256=content_sha256(f"served{v}"),
                         uri=f"models://bench/v{v}")
        deployment = Deployment(id=f"bench-deploy-v{v}", endpoint=f"https://bench.invalid/v{v}")
        ops += [
            ("nodes", None, [Shard(id=s.id, record_count=len(s.records)) for s in plan.shards]),
            ("nodes", None, [dv]),
            ("edges", "IN", [Edge(source=rid, target=s.id) for s in plan.shards for rid, _ in s.records]),
            ("edges", "HELD_OUT", [Edge(source=rid, target=dv.id) for rid, _ in plan.holdout]),
            ("edges", "PART_OF", [Edge(source=sid, target=dv.id) for sid, _ in shards]),
            ("edges", "DERIVED_FROM", [Edge(source=dv.id, target=parent, props={"reason": "update"})]
             if parent else []),
            ("nodes", None, [run]),
            ("nodes", None, per_shard + [served]),
            ("nodes", None, [deployment]),
            ("edges", "TRAINED_ON", [Edge(source=run.id, target=sid) for sid, _ in shards]),
            ("edges", "PRODUCED", [Edge(source=run.id, target=a.id) for a in per_shard]),
            ("edges", "MERGED_INTO", [Edge(source=a.id, target=served.id) for a in per_shard]),
            ("edges", "DEPLOYED_TO", [Edge(source=served.id, target=deployment.id)]),
        ]
        parent = dv.id
    return ops


def last_deployment_edge(versions: int = VERSIONS) -> tuple[str, str]:
    """The last edge `build_graph` writes (its presence means a complete graph)."""
    return f"bench-served-v{versions - 1}", f"bench-deploy-v{versions - 1}"


def build_graph(store: GraphStore, corpus: Corpus, batch_size: int = DEFAULT_BATCH_SIZE) -> dict:
    """Plan, then write the whole bench graph with the batched writer; figures of the write."""
    started, records = time.perf_counter(), len(corpus.rows)
    ops = plan_lineage(corpus)
    progress(f"planned {records} records and {len(ops)} lineage writes "
             f"in {time.perf_counter() - started:.1f} s")
    writer, total, expected = LineageWriter(store, batch_size), WriteSummary(), 0
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if done % (20 * batch_size) < n:
            progress(f"  records {done}/{records} ({time.perf_counter() - t0:.0f} s)")

    t0 = time.perf_counter()
    parts = [writer.records_with_owners(corpus.rows, on_batch=tick)]
    t_records = time.perf_counter() - t0
    expected += sum(len(r["owners"]) for r in corpus.rows)
    for what, type_, items in ops:
        if items:
            parts.append(writer.nodes(items) if what == "nodes" else writer.edges(type_, items))
            expected += len(items) if what == "edges" else 0
    seconds = time.perf_counter() - t0
    for part in parts:
        total.nodes_created += part.nodes_created
        total.relationships_created += part.relationships_created
    if total.relationships_created != expected:
        progress(f"warning: {total.relationships_created} edges created, {expected} written "
                 "(graph not empty?)")
    progress(f"batched: {total.nodes_created} nodes, {total.relationships_created} edges in {seconds:.1f} s "
             f"(records+subjects+OWNS {t_records:.1f} s)")
    return {"records": records, "batch_size": batch_size, "nodes": total.nodes_created,
            "edges": total.relationships_created, "seconds": round(seconds, 2),
            "records_pass_seconds": round(t_records, 2),
            "edges_per_s": round(total.relationships_created / seconds)}


_NAIVE = """
MERGE (r:Record {id: $row.id})
  ON CREATE SET r.content_sha256 = $row.content_sha256, r.source = $row.source,
                r.created_at = $row.created_at, r.content_ref = $row.content_ref, r.state = 'active'
WITH r
MATCH (sh:Shard {id: $shard})
MERGE (r)-[:IN]->(sh)
WITH r
UNWIND $row.owners AS owner
MERGE (s:Subject {key: owner.key}) ON CREATE SET s.kind = owner.kind
MERGE (s)-[:OWNS]->(r)
"""


def naive_write(store: GraphStore, records: int = NAIVE_RECORDS, warmup: int = NAIVE_WARMUP) -> dict:
    """One managed transaction per record (record, subjects, OWNS, IN): edges/s after `warmup` untimed."""
    corpus = make_corpus(warmup + records, prefix="naive", seed=1)
    shard = Manifest.of(r["content_sha256"] for r in corpus.rows).root
    LineageWriter(store).nodes([Shard(id=shard, record_count=len(corpus.rows))])

    def write(row: dict) -> int:
        return store.run_in_transaction(
            lambda tx: tx.run(_NAIVE, row=row, shard=shard).consume().counters.relationships_created)

    for row in corpus.rows[:warmup]:
        write(row)
    t0 = time.perf_counter()
    edges = sum(write(row) for row in corpus.rows[warmup:])
    seconds = time.perf_counter() - t0
    progress(f"naive: {edges} edges for {records} records in {seconds:.1f} s")
    return {"naive_records": records, "naive_edges": edges, "naive_seconds": round(seconds, 2),
            "naive_edges_per_s": round(edges / seconds)}


def bulk_build(corpus: Corpus) -> dict:
    """The same graph as a first load through the offline importer (`lethe ingest --bulk`'s path).

    Timed from the first row handed over to the graph answering with its constraints and indexes built:
    collecting and checking the load, writing the CSV files, stopping Neo4j, importing, starting it,
    building the schema. Needs the benchmark's own server (the importer writes its files).
    """
    from lethe.bulk_ingest import bulk_import
    from lethe.neo4j_server import LocalNeo4j
    from lineage.store.bulk_import import BulkLoad

    settings = bench_settings()
    if not settings.uses_local_server:
        progress("bulk import skipped: NEO4J_URI names a server whose files the importer cannot write")
        return {"bulk_skipped": "NEO4J_URI set"}
    server = LocalNeo4j(settings)
    server.stop()
    shutil.rmtree(server.home / "data", ignore_errors=True)
    server.start()
    try:
        started = time.perf_counter()
        ops = plan_lineage(corpus)  # planned again, untimed like the batched path's plan
        planned = time.perf_counter() - started
        started = time.perf_counter()
        load = BulkLoad()
        load.records_with_owners(corpus.rows)
        for what, type_, items in ops:
            if items:
                load.nodes(items) if what == "nodes" else load.edges(type_, items)
        collect = time.perf_counter() - started
        report = bulk_import(settings, load, on_stage=lambda s: progress(f"bulk: {s}"))
    finally:
        if not os.environ.get("LETHE_BENCH_KEEP_NEO4J"):
            server.stop()
    seconds = collect + report.total_seconds
    progress(f"bulk: {report.nodes} nodes, {report.relationships} edges in {seconds:.1f} s "
             f"(plan {planned:.1f} s untimed; stages {report.seconds})")
    return {"bulk_nodes": report.nodes, "bulk_edges": report.relationships, "bulk_seconds": round(seconds, 2),
            "bulk_stage_seconds": {"collect": round(collect, 2), **report.seconds},
            "bulk_edges_per_s": round(report.relationships / seconds)}


def main() -> None:
    """Run the naive sample, then the batched build, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--naive-records", type=int, default=NAIVE_RECORDS)
    parser.add_argument("--no-bulk", action="store_true", help="skip the offline importer's run")
    args = parser.parse_args()
    corpus = make_corpus(args.records)
    with fresh_graph() as store:
        naive = naive_write(store, args.naive_records)  # first: it also warms up the server's JIT
        figures = build_graph(store, corpus, args.batch_size)
        figures.update(naive)
        figures.update(neo4j=store.server_version(), cores=os.cpu_count(),
                       ratio_vs_naive=round(figures["edges_per_s"] / figures["naive_edges_per_s"], 1))
    if not args.no_bulk:
        figures.update(bulk_build(corpus))
        if "bulk_edges_per_s" in figures:
            figures["bulk_ratio_vs_naive"] = round(figures["bulk_edges_per_s"] / figures["naive_edges_per_s"], 1)
            figures["bulk_ratio_vs_batched"] = round(figures["bulk_edges_per_s"] / figures["edges_per_s"], 1)
    emit(figures)


if __name__ == "__main__":
    main()
