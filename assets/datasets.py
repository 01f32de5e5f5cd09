"""Dataset assets: deterministic shards with a calibration holdout, then the version that binds them."""


from datetime import datetime, timezone

import dagster as dg

from assets.records import pii_scan, raw_records
from assets.resources import Neo4jResource, OpenLineageResource
from lineage.dataset import DatasetPlan, plan_dataset_version, write_shards, write_version
from lineage.store import queries
from lineage.store.writers import LineageWriter


class DatasetConfig(dg.Config):
    """How records become a dataset version."""

    name: str = "support-tickets"
    shard_count: int = 4
    holdout_fraction: float = 0.05
    seed: int = 0
    shard_by: str = "subject"  # "subject": a person's records share a shard (an erasure retrains one); "record"


@dg.asset(group_name="lineage", deps=[pii_scan], ins={"raw_records": dg.AssetIn()}, kinds={"neo4j"})
def shards(context: dg.AssetExecutionContext, config: DatasetConfig, raw_records,
           neo4j: Neo4jResource) -> dg.Output[DatasetPlan]:
    """Every batch's records assigned to K content-addressed shards, with a seeded holdout."""
    # Dagster hands over {partition: records}, or the bare records when one partition exists.
    batches = raw_records.values() if isinstance(raw_records, dict) else [raw_records]
    records = sorted({tuple(r) for batch in batches for r in batch})
    if config.shard_by not in ("subject", "record"):
        raise dg.Failure(f"shard_by must be 'subject' or 'record', got {config.shard_by!r}")
    groups = None
    if config.shard_by == "subject":
        owners = queries.record_owners(neo4j.graph, [rid for rid, _ in records])
        groups = {rid: min(keys) for rid, keys in owners.items() if keys}
    try:
        plan = plan_dataset_version(config.name, records, datetime.now(timezone.utc), config.shard_count,
                                    config.holdout_fraction, config.seed, groups)
    except ValueError as exc:
        raise dg.Failure(f"cannot build dataset {config.name!r}: {exc}") from exc
    with neo4j.graph.transaction() as tx:
        summary = write_shards(LineageWriter(neo4j.graph, tx=tx), plan)
    return dg.Output(plan, metadata={
        "shards": len(plan.shards), "records": sum(len(s.records) for s in plan.shards),
        "held_out": len(plan.holdout), "relationships_created": summary.relationships_created,
        **{f"shard_{s.index}": f"{s.id[:16]}… ({len(s.records)} records)" for s in plan.shards},
    })


@dg.asset(group_name="lineage", kinds={"neo4j"})
def dataset_version(context: dg.AssetExecutionContext, shards: DatasetPlan, neo4j: Neo4jResource,
                    openlineage: OpenLineageResource) -> dg.Output[DatasetPlan]:
    """The dataset version: its shards (PART_OF), holdout (HELD_OUT) and manifest roots."""
    plan = shards
    previous = neo4j.graph.read(
        "MATCH (d:DatasetVersion {name: $name}) WHERE d.id <> $id "
        "RETURN d.id AS id ORDER BY d.created_at DESC LIMIT 1", name=plan.version.name, id=plan.version.id)
    parent = previous[0]["id"] if previous else None
    with neo4j.graph.transaction() as tx:
        write_version(LineageWriter(neo4j.graph, tx=tx), plan, parent_id=parent, reason="update")
    openlineage.emitter.dataset_version(neo4j.graph, plan.version.id)
    return dg.Output(plan, metadata={
        "dataset_version": plan.version.id, "manifest_root": plan.version.manifest_root,
        "holdout_root": plan.version.holdout_root, "derived_from": parent or "-",
    })
