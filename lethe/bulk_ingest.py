"""First loads into Lethe's own Neo4j through the offline importer (`lethe ingest --bulk`).

Order, so that a failure loses nothing: check the graph is empty (the importer replaces the database's
files), write the importer's input while the server still runs (a bad load stops here), stop the
server, import, start it again whatever happened, apply the schema (constraints and indexes are built
over the imported data) and check the counts. The input files live in a private folder that is removed
on every path.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from lethe import wiring
from erasure.errors import ConfigurationError
from lethe.errors import Neo4jServerError
from lethe.ingestion import DatasetOptions, IngestOutcome
from lethe.neo4j_server import LocalNeo4j
from lethe.settings import Settings
from lineage.content_store import ContentStore
from lineage.dataset import plan_dataset_version, write_dataset_version
from lineage.ingest import ingest_batch
from lineage.record_batch import ParsedBatch
from lineage.store.bulk_import import BulkLoad

log = logging.getLogger(__name__)


@dataclass
class BulkImportReport:
    """What a bulk first load wrote and how long each stage took (seconds)."""

    nodes: int
    relationships: int
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


class EmptyGraphLoad(BulkLoad):
    """A `BulkLoad` that answers the ingest's look-ups for an empty graph (nothing known, nothing erased)."""

    def known_records(self, ids) -> dict[str, dict]:
        return {}

    def erased_hashes(self, hashes) -> set[str]:
        return set()


def require_empty_local_graph(settings: Settings) -> LocalNeo4j:
    """Lethe's own server, started, holding an empty graph; else a clear error and nothing touched."""
    if not settings.uses_local_server:
        raise ConfigurationError(
            "a bulk import writes the database files of Lethe's own Neo4j; with NEO4J_URI set, ingest "
            "without --bulk (or run `neo4j-admin database import` on that server's host)")
    server = LocalNeo4j(settings)
    server.start()
    with wiring.open_graph(settings, apply_schema=False) as graph:
        present = graph.read("MATCH (n) RETURN count(n) AS n")[0]["n"]
    if present:
        raise ConfigurationError(
            f"the graph already holds {present} node(s); a bulk import only fills an empty database (it "
            "replaces the database's files). Ingest without --bulk: it merges into what is there")
    return server


def bulk_import(settings: Settings, load: BulkLoad, server: LocalNeo4j | None = None,
                on_stage: Callable[[str], None] | None = None) -> BulkImportReport:
    """Import `load` into the empty graph of Lethe's own server (see the module docstring)."""
    server = server or require_empty_local_graph(settings)
    stage = on_stage or (lambda _: None)
    seconds: dict[str, float] = {}
    folder = settings.state_dir / "import" / f"bulk-{os.getpid()}-{time.time_ns()}"
    try:
        started = time.perf_counter()
        stage("writing the importer's input")
        files = load.write_files(folder)
        seconds["write_files"] = time.perf_counter() - started
        started = time.perf_counter()
        stage("stopping Neo4j for the offline import")
        server.stop()
        seconds["stop"] = time.perf_counter() - started
        try:
            started = time.perf_counter()
            stage(f"importing {files.node_count} nodes and {files.relationship_count} relationships")
            summary = server.import_full(files.importer_arguments(), folder)
            seconds["import"] = time.perf_counter() - started
            log.info("bulk import: %s", " ".join(summary.split()))
        finally:
            started = time.perf_counter()
            stage("starting Neo4j")
            server.start()
            seconds["start"] = time.perf_counter() - started
    finally:
        if folder.exists():
            shutil.rmtree(folder)
    started = time.perf_counter()
    stage("building constraints and indexes")
    with wiring.open_graph(settings) as graph:
        seconds["schema"] = time.perf_counter() - started
        nodes = graph.read("MATCH (n) RETURN count(n) AS n")[0]["n"]
        relationships = graph.read("MATCH ()-[r]->() RETURN count(r) AS n")[0]["n"]
    if (nodes, relationships) != (files.node_count, files.relationship_count):
        raise Neo4jServerError(f"the import wrote {nodes} nodes and {relationships} relationships, "
                               f"{files.node_count} and {files.relationship_count} were expected")
    return BulkImportReport(nodes, relationships, {k: round(v, 2) for k, v in seconds.items()})


def bulk_ingest_file(settings: Settings, batch: ParsedBatch, content: ContentStore,
                     dataset: DatasetOptions | None = None,
                     on_stage: Callable[[str], None] | None = None) -> tuple[IngestOutcome, BulkImportReport]:
    """`ingest_file` for a first load: the same checks and content writes, the graph through the importer."""
    if dataset is not None and dataset.parent:
        raise ConfigurationError(f"--parent {dataset.parent!r}: a bulk import starts an empty graph, so there "
                                 "is no parent version to derive from; drop --parent")
    server = require_empty_local_graph(settings)
    load = EmptyGraphLoad()
    report = ingest_batch(batch, load, content)
    plan = None
    if dataset is not None:
        plan = plan_dataset_version(dataset.name, report.kept, datetime.now(timezone.utc),
                                    dataset.shards, dataset.holdout, dataset.seed)
        write_dataset_version(load, plan)
    imported = bulk_import(settings, load, server, on_stage)
    report.graph.nodes_created, report.graph.relationships_created = imported.nodes, imported.relationships
    log.info("bulk-ingested %d records: %d nodes, %d relationships in %.1f s", report.records, imported.nodes,
             imported.relationships, imported.total_seconds)
    return IngestOutcome(report, plan), imported
