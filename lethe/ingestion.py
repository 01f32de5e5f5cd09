"""Ingest a JSONL file into the content store and the graph, optionally as a dataset version."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from lineage.batch_files import BatchFileError
from lineage.dataset import DatasetPlan, plan_dataset_version, write_dataset_version
from lineage.ingest import IngestReport, ingest_batch
from lineage.record_batch import ParsedBatch, parse_jsonl
from lineage.store import GraphStore
from lineage.store.writers import LineageWriter
from lineage.content_store import ContentStore
from lineage.keys import SubjectKeyer
from lineage.limits import iter_lines_bounded

log = logging.getLogger(__name__)


@dataclass
class DatasetOptions:
    name: str
    shards: int = 4
    holdout: float = 0.05
    seed: int = 0
    parent: str | None = None


@dataclass
class IngestOutcome:
    report: IngestReport
    dataset: DatasetPlan | None


def read_batch(path: Path, keyer: SubjectKeyer) -> ParsedBatch:
    """Read and validate a JSONL file; the whole file is rejected if any record is invalid."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; give a JSONL file of records")
    lines = list(iter_lines_bounded(path))  # one bounded line at a time: a 1 GB line is refused at 4 MiB
    if not lines:
        raise BatchFileError(f"{path}: the batch is empty; it needs at least one record")
    return parse_jsonl(lines, keyer, source_name=str(path))


def ingest_file(
    batch: ParsedBatch,
    graph: GraphStore,
    content: ContentStore,
    dataset: DatasetOptions | None = None,
    skip_erased: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> IngestOutcome:
    """Write a validated batch; with `dataset`, also shard it into a new dataset version."""
    writer = LineageWriter(graph)
    report = ingest_batch(batch, writer, content, skip_erased=skip_erased, on_batch=on_batch)
    log.info("ingested %d records (%d already present, %d repeats dropped, %d erased skipped)",
             report.records, report.already_present, report.repeats_dropped, report.erased_skipped)
    plan = None
    if dataset is not None:
        plan = plan_dataset_version(dataset.name, report.kept, datetime.now(timezone.utc),
                                    dataset.shards, dataset.holdout, dataset.seed)
        write_dataset_version(writer, plan, parent_id=dataset.parent,
                              reason="update" if dataset.parent else None)
        log.info("dataset version %s: %d shards, %d held out", plan.version.id, len(plan.shards),
                 len(plan.holdout))
    return IngestOutcome(report, plan)
