"""Asset checks that keep bad data out of training: erased records, open requests, stale manifests."""


import json
from pathlib import Path

import dagster as dg

from assets.datasets import dataset_version
from assets.resources import Neo4jResource
from lineage.dataset import DatasetPlan
from lineage.store import queries


class PolicyResource(dg.ConfigurableResource):
    """What to do with records of subjects under an open erasure request: warn or block."""

    open_request_policy: str = "block"

    def severity(self) -> dg.AssetCheckSeverity:
        if self.open_request_policy not in {"warn", "block"}:
            raise dg.Failure(f"open_request_policy must be 'warn' or 'block', got {self.open_request_policy!r}")
        return dg.AssetCheckSeverity.ERROR if self.open_request_policy == "block" else dg.AssetCheckSeverity.WARN


@dg.asset_check(asset=dataset_version, blocking=True)
def no_erased_records(dataset_version: DatasetPlan, neo4j: Neo4jResource) -> dg.AssetCheckResult:
    """Fails when the version holds a tombstoned record or an erased record's content (stale snapshot)."""
    counts = queries.erased_in_dataset(neo4j.graph, dataset_version.version.id)
    bad = counts["tombstoned_records"] + counts["erased_content_matches"]
    return dg.AssetCheckResult(
        passed=bad == 0, severity=dg.AssetCheckSeverity.ERROR,
        description=None if bad == 0 else
        f"{bad} erased record(s) are back in {dataset_version.version.id}; rebuild the dataset from "
        "current raw_records (a stale snapshot or backup brought them in). fine_tune will not run on it.",
        metadata=counts,
    )


@dg.asset_check(asset=dataset_version, blocking=True)
def no_open_erasure_requests(dataset_version: DatasetPlan, neo4j: Neo4jResource,
                             policy: PolicyResource) -> dg.AssetCheckResult:
    """Warns or blocks (policy) when records of subjects under an open erasure request are included."""
    result = queries.preflight(neo4j.graph, dataset_version.version.id)
    n = result.records_under_open_requests
    return dg.AssetCheckResult(
        passed=n == 0, severity=policy.severity(),
        description=None if n == 0 else f"{n} record(s) belong to or mention subjects under an open erasure request",
        metadata={"records_under_open_requests": n,
                  "records_under_closed_requests": result.records_under_closed_requests},
    )


def adapter_manifest_problems(graph, adapter: dict) -> list[str]:
    """Differences between a served adapter's files and what the graph says it was trained on."""
    from unlearning.base_model import model_dir_sha256

    problems = []
    path = Path(adapter["path"])
    if model_dir_sha256(path) != adapter["sha256"]:
        problems.append("the adapter's files do not match the digest recorded in the graph")
    manifest = json.loads((path / "lethe_manifest.json").read_text())
    rows = graph.read(
        "MATCH (a:Adapter {id: $id})<-[:MERGED_INTO]-(:Adapter)<-[:PRODUCED]-(:FineTuneRun)-[:TRAINED_ON]->(s:Shard) "
        "RETURN collect(DISTINCT s.id) AS shards", id=adapter["id"])
    if sorted(rows[0]["shards"]) != sorted(manifest["shard_ids"]):
        problems.append("the shards recorded in the adapter's manifest differ from its TRAINED_ON shards")
    root = graph.read("MATCH (d:DatasetVersion {id: $id}) RETURN d.manifest_root AS root", id=manifest["dataset_version"])
    if not root or root[0]["root"] != manifest["manifest_root"]:
        problems.append("the adapter's manifest root differs from its dataset version's")
    return problems


@dg.asset_check(asset="fine_tune", blocking=True)
def adapter_matches_graph(fine_tune: dict, neo4j: Neo4jResource) -> dg.AssetCheckResult:
    """The served adapter's files and training manifest match its digest and lineage in the graph."""
    problems = adapter_manifest_problems(neo4j.graph, fine_tune)
    return dg.AssetCheckResult(passed=not problems, severity=dg.AssetCheckSeverity.ERROR,
                               description="; ".join(problems) or None,
                               metadata={"adapter": fine_tune["id"]})
