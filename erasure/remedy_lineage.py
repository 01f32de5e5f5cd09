"""A remedy's lineage: the derived dataset version, the runs, the adapter that REPLACES the old one, the
deployment moved, the old adapters quarantined (one transaction), then the old weights deleted.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlparse

from lineage.dataset import DatasetPlan, write_dataset_version
from lineage.models import Edge, FineTuneRun
from lineage.store import GraphStore
from lineage.store.writers import LineageWriter
from lineage.training_runs import CODE_VERSION, TrainingRun, adapter_for, shard_run, write_training_lineage

__all__ = ["affected_shard_adapters", "delete_weights", "path_of", "replacement_of", "write_remedy_lineage"]


def path_of(uri: str) -> Path:
    """The local path of an adapter's file: URI."""
    return Path(unquote(urlparse(uri).path)) if uri.startswith("file:") else Path(uri)


def _retrain_runs(outcome, base_model: Path, base_sha: str, now: datetime) -> tuple[list[TrainingRun], list]:
    """The runs of the retrained shards and the adapters of every shard (reused ones too) of an exact remedy."""
    run_dir = Path(outcome.details["run_dir"])
    config_sha = outcome.details["training_config_sha256"]
    retrained = set(outcome.details["shards_retrained"])
    runs, shard_adapters = [], []
    for shard_id, sha in outcome.details["shard_adapters"].items():
        adapter = adapter_for(sha, run_dir / "shards" / shard_id[:16])
        shard_adapters.append(adapter)
        if shard_id in retrained:
            run = shard_run(shard_id, base_model=base_model, base_model_sha256=base_sha, config_sha256=config_sha,
                            seed=outcome.details["seed"], started_at=now, ended_at=now)
            runs.append(TrainingRun(run, shard_id, adapter))
    return runs, shard_adapters


def _method_run(outcome, served, base_model: Path, base_sha: str, now: datetime) -> TrainingRun:
    """The one run of an approximate method: it PRODUCED the served adapter from the old one."""
    config_sha = hashlib.sha256(json.dumps(outcome.config, sort_keys=True).encode()).hexdigest()
    run = FineTuneRun(id=f"remedy-{outcome.adapter_sha256[:16]}", base_model=str(base_model),
                      base_model_sha256=base_sha, config_sha256=config_sha, seed=int(outcome.config.get("seed", 0)),
                      code_version=CODE_VERSION, started_at=now, ended_at=now)
    return TrainingRun(run, None, served)


def write_remedy_lineage(graph: GraphStore, record, old: dict, derived: DatasetPlan | None, plan: DatasetPlan,
                         outcome, affected: list, base_model: Path) -> None:
    """The remedy's lineage in one transaction: derived version, runs, new adapter REPLACES old, deployment."""
    from unlearning.base_model import model_dir_sha256

    now = datetime.now(timezone.utc)
    base_sha = model_dir_sha256(base_model)
    served = adapter_for(outcome.adapter_sha256, outcome.adapter_dir)
    if derived is not None:
        runs, shard_adapters = _retrain_runs(outcome, base_model, base_sha, now)
    else:
        runs, shard_adapters = [_method_run(outcome, served, base_model, base_sha, now)], []
    with graph.transaction() as tx:
        writer = LineageWriter(graph, tx=tx)
        if derived is not None:
            write_dataset_version(writer, derived, parent_id=plan.version.id, reason="erasure")
        write_training_lineage(writer, runs, served, shard_adapters)
        writer.edges("REPLACES", [Edge(source=served.id, target=old["id"],
                                       props={"reason": "erasure", "method": outcome.method,
                                              "kind": outcome.kind.value, "remedy": record.remedy_id or ""})])
        tx.run("MATCH (o:Adapter {id: $old})-[d:DEPLOYED_TO]->(dep:Deployment) MATCH (n:Adapter {id: $new}) "
               "MERGE (n)-[:DEPLOYED_TO]->(dep) DELETE d", old=old["id"], new=served.id)
        tx.run("MATCH (a:Adapter) WHERE a.id IN $ids SET a.state = 'quarantined', a.quarantined_at = $now",
               ids=[old["id"]] + [aid for aid, _ in affected], now=now)


def delete_weights(graph: GraphStore, adapters: list[tuple[str, Path]]) -> list[dict]:
    """Delete quarantined adapters' files, recording each deletion with the files' digest; idempotent."""
    from unlearning.base_model import model_dir_sha256

    deleted = []
    for adapter_id, path in adapters:
        if not path.exists():
            continue  # deleted by an earlier, interrupted run; its record is below
        digest = model_dir_sha256(path)
        shutil.rmtree(path)
        now = datetime.now(timezone.utc)
        graph.execute("MATCH (a:Adapter {id: $id}) SET a.state = 'deleted', a.weights_deleted_at = $now, "
                      "a.deleted_files_sha256 = $sha", id=adapter_id, now=now, sha=digest)
        deleted.append({"adapter": adapter_id, "sha256": digest, "deleted_at": now.isoformat()})
    return deleted


def affected_shard_adapters(graph: GraphStore, served_id: str, plan: DatasetPlan, scope: set[str]) -> list:
    """(id, path) of the old shard adapters that trained on a scope record, by id: they hold the data too."""
    touched = [s.id for s in plan.shards if any(rid in scope for rid, _ in s.records)]
    rows = graph.read("MATCH (run:FineTuneRun)-[:TRAINED_ON]->(s:Shard) WHERE s.id IN $shards "
                      "MATCH (run)-[:PRODUCED]->(a:Adapter)-[:MERGED_INTO]->(:Adapter {id: $served}) "
                      "RETURN DISTINCT a.id AS id, a.uri AS uri ORDER BY id", shards=touched, served=served_id)
    return [(row["id"], path_of(row["uri"])) for row in rows]


def replacement_of(graph: GraphStore, old_adapter: str, remedy_id: str) -> str | None:
    """The adapter that replaced `old_adapter` in remedy `remedy_id`, if that remedy's lineage was committed."""
    rows = graph.read("MATCH (n:Adapter)-[r:REPLACES]->(:Adapter {id: $old}) WHERE r.remedy = $remedy "
                      "RETURN n.id AS id", old=old_adapter, remedy=remedy_id)
    return rows[0]["id"] if rows else None
