"""What the OpenLineage events say, read from the lineage graph: roots, digests and counts, never record ids."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from lineage.store import GraphStore

__all__ = ["AdapterFacts", "DatasetVersionFacts", "DeploymentFacts", "FactsError", "FineTuneFacts",
           "read_dataset_version", "read_deployment", "read_fine_tune"]


class FactsError(LookupError):
    """The graph lacks what an event must describe (a node not written, or written without its edges)."""


class _Facts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DatasetVersionFacts(_Facts):
    id: str
    name: str
    manifest_root: str
    holdout_root: str
    created_at: datetime
    shard_count: int
    training_records: int
    held_out_records: int
    parent_id: str | None = None


class AdapterFacts(_Facts):
    id: str
    sha256: str
    state: str


class FineTuneFacts(_Facts):
    """The runs that trained one served adapter (one per shard), merged into it."""

    dataset_version_id: str
    run_ids: tuple[str, ...]
    base_model_sha256: str
    config_sha256: str
    seed: int
    code_version: str
    started_at: datetime
    ended_at: datetime
    adapter: AdapterFacts


class DeploymentFacts(_Facts):
    id: str
    form: str | None
    adapters: tuple[AdapterFacts, ...]


def read_dataset_version(graph: GraphStore, version_id: str) -> DatasetVersionFacts:
    """A dataset version's roots, its counts of shards and records, and the version it derives from."""
    rows = graph.read(
        "MATCH (d:DatasetVersion {id: $id}) "
        "OPTIONAL MATCH (s:Shard)-[:PART_OF]->(d) "
        "WITH d, count(s) AS shards, coalesce(sum(s.record_count), 0) AS records "
        "OPTIONAL MATCH (d)-[:DERIVED_FROM]->(p:DatasetVersion) "
        "WITH d, shards, records, p ORDER BY p.created_at DESC "
        "WITH d, shards, records, collect(p.id)[0] AS parent "
        "RETURN d.id AS id, d.name AS name, d.manifest_root AS manifest_root, d.holdout_root AS holdout_root, "
        "d.created_at AS created_at, shards, records, parent, "
        "COUNT { (:Record)-[:HELD_OUT]->(d) } AS held_out", id=version_id)
    if not rows:
        raise FactsError(f"dataset version {version_id!r} is not in the graph; materialize dataset_version first")
    row = rows[0]
    return DatasetVersionFacts(
        id=row["id"], name=row["name"], manifest_root=row["manifest_root"], holdout_root=row["holdout_root"],
        created_at=row["created_at"], shard_count=row["shards"], training_records=row["records"],
        held_out_records=row["held_out"], parent_id=row["parent"])


def read_fine_tune(graph: GraphStore, adapter_id: str, dataset_version_id: str) -> FineTuneFacts:
    """The shard runs whose adapters were MERGED_INTO the served adapter `adapter_id`."""
    rows = graph.read(
        "MATCH (served:Adapter {id: $id}) "
        "OPTIONAL MATCH (r:FineTuneRun)-[:PRODUCED]->(:Adapter)-[:MERGED_INTO]->(served) "
        "RETURN served.sha256 AS sha256, served.state AS state, "
        "collect(DISTINCT r {.id, .base_model_sha256, .config_sha256, .seed, .code_version, .started_at, "
        ".ended_at}) AS runs", id=adapter_id)
    if not rows:
        raise FactsError(f"adapter {adapter_id!r} is not in the graph; materialize fine_tune first")
    runs = sorted(rows[0]["runs"], key=lambda r: r["id"])
    if not runs:
        raise FactsError(f"adapter {adapter_id!r} has no FineTuneRun that PRODUCED a shard adapter MERGED_INTO it")
    recipes = {(r["base_model_sha256"], r["config_sha256"], r["seed"], r["code_version"]) for r in runs}
    if len(recipes) != 1:
        raise FactsError(f"the {len(runs)} runs merged into {adapter_id!r} disagree on base model, config, seed "
                         f"or code version ({len(recipes)} combinations); one event cannot describe them")
    base, config, seed, code = recipes.pop()
    return FineTuneFacts(
        dataset_version_id=dataset_version_id, run_ids=tuple(r["id"] for r in runs), base_model_sha256=base,
        config_sha256=config, seed=seed, code_version=code,
        started_at=min(datetime.fromisoformat(r["started_at"]) for r in runs),
        ended_at=max(datetime.fromisoformat(r["ended_at"] or r["started_at"]) for r in runs),
        adapter=AdapterFacts(id=adapter_id, sha256=rows[0]["sha256"], state=rows[0]["state"] or "active"))


def read_deployment(graph: GraphStore, deployment_id: str) -> DeploymentFacts:
    """A deployment, its served form and the adapters DEPLOYED_TO it now."""
    rows = graph.read(
        "MATCH (dep:Deployment {id: $id}) "
        "OPTIONAL MATCH (a:Adapter)-[:DEPLOYED_TO]->(dep) "
        "WITH dep, a ORDER BY a.id "
        "RETURN dep.form AS form, [x IN collect(a) | x {.id, .sha256, .state}] AS adapters", id=deployment_id)
    if not rows:
        raise FactsError(f"deployment {deployment_id!r} is not in the graph; materialize deployment first")
    adapters = tuple(AdapterFacts(id=a["id"], sha256=a["sha256"], state=a["state"] or "active")
                     for a in rows[0]["adapters"])
    return DeploymentFacts(id=deployment_id, form=rows[0]["form"], adapters=adapters)
