"""Dataset versions: deterministic shards, content-addressed ids, manifest and holdout roots."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from lineage.hashing import shard_index
from lineage.merkle import Manifest
from lineage.models import DatasetVersion, Edge, Shard
from lineage.store.graph import WriteSummary
from lineage.store.writers import LineageWriter
from lineage.errors import InvalidValueError


@dataclass(frozen=True)
class ShardPlan:
    """One shard: its content-addressed id and its records (id, content hash)."""

    id: str
    index: int
    records: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class DatasetPlan:
    """A dataset version before it is written: shards, holdout, roots."""

    version: DatasetVersion
    shards: tuple[ShardPlan, ...]
    holdout: tuple[tuple[str, str], ...]

    @property
    def manifest(self) -> Manifest:
        """The Merkle manifest of the training records' hashes."""
        return Manifest.of(h for s in self.shards for _, h in s.records)


def _in_holdout(content_sha256: str, fraction: float, seed: int) -> bool:
    # Decided by content, not id: copies of one text go to the holdout together or not at all, so
    # a held-out record is never a duplicate of a training record (it must be truly unseen).
    digest = hashlib.sha256(f"holdout:{seed}:{content_sha256}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < fraction * 2**64


def plan_dataset_version(
    name: str,
    records: Sequence[tuple[str, str]],
    created_at: datetime,
    shard_count: int = 4,
    holdout_fraction: float = 0.05,
    seed: int = 0,
    groups: Mapping[str, str] | None = None,
) -> DatasetPlan:
    """Split (id, hash) records into a seeded holdout and `shard_count` shards, all deterministic.

    `groups` maps a record id to the key it is sharded by (its owner's subject key): one person's
    records then share a shard, so erasing them retrains one shard of K, not up to K of them, and the
    holdout is drawn by person. Records without a group are sharded by their own id.
    """
    if not name.strip():
        raise InvalidValueError("a dataset version needs a non-empty name")
    if not 1 <= shard_count <= 4096:
        raise InvalidValueError(f"shard_count must be between 1 and 4096, got {shard_count}")
    if not 0.0 <= holdout_fraction < 1.0:
        raise InvalidValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
    if not records:
        raise InvalidValueError(f"dataset version {name!r} has no records; ingest records first")
    # With groups, whole people are held out: an erasure removes a person, so the calibration set must be
    # people the model never saw; a held-out ticket of a trained customer still shares their identifiers.
    held_hashes = {sha for rid, sha in records
                   if _in_holdout((groups or {}).get(rid) or sha, holdout_fraction, seed)}
    holdout = tuple(sorted(r for r in records if r[1] in held_hashes))  # copies of a held-out text go too
    held = {rid for rid, _ in holdout}
    buckets: list[list[tuple[str, str]]] = [[] for _ in range(shard_count)]
    for rid, sha in records:
        if rid not in held:
            buckets[shard_index((groups or {}).get(rid, rid), shard_count)].append((rid, sha))
    shards = tuple(
        ShardPlan(Manifest.of(h for _, h in bucket).root, i, tuple(sorted(bucket)))
        for i, bucket in enumerate(buckets) if bucket
    )
    manifest_root = Manifest.of(h for s in shards for _, h in s.records).root
    holdout_root = Manifest.of(h for _, h in holdout).root
    version_id = name + ":" + hashlib.sha256(f"{manifest_root}:{holdout_root}".encode()).hexdigest()[:16]
    version = DatasetVersion(id=version_id, name=name, manifest_root=manifest_root,
                             holdout_root=holdout_root, created_at=created_at)
    return DatasetPlan(version, shards, holdout)


def write_shards(writer: LineageWriter, plan: DatasetPlan) -> WriteSummary:
    """Write the shard nodes and their records' IN edges; idempotent (shards are content-addressed)."""
    return (writer.nodes([Shard(id=s.id, record_count=len(s.records)) for s in plan.shards])
            + writer.edges("IN", [Edge(source=rid, target=s.id) for s in plan.shards for rid, _ in s.records]))


def write_version(writer: LineageWriter, plan: DatasetPlan, parent_id: str | None = None,
                  reason: str | None = None) -> WriteSummary:
    """Write the version node, PART_OF, HELD_OUT and DERIVED_FROM edges; idempotent."""
    steps = [
        writer.nodes([plan.version]),
        writer.edges("PART_OF", [Edge(source=s.id, target=plan.version.id) for s in plan.shards]),
        writer.edges("HELD_OUT", [Edge(source=rid, target=plan.version.id) for rid, _ in plan.holdout]),
    ]
    if parent_id is not None and parent_id != plan.version.id:
        steps.append(writer.edges("DERIVED_FROM", [
            Edge(source=plan.version.id, target=parent_id, props={"reason": reason or "update"})]))
    return sum(steps, WriteSummary())


def write_dataset_version(writer: LineageWriter, plan: DatasetPlan, parent_id: str | None = None,
                          reason: str | None = None) -> WriteSummary:
    """Write shards, then the version that binds them; idempotent."""
    return write_shards(writer, plan) + write_version(writer, plan, parent_id, reason)


def derive_without(plan: DatasetPlan, removed: set[str], created_at: datetime) -> DatasetPlan:
    """The dataset version `plan` becomes once `removed` records are taken out (shards keep their slots).

    Records stay in the shard they were assigned to, so a shard that held none of the removed records
    keeps its id (its records are unchanged) and only the touched shards get new ids. A shard left empty
    is dropped.
    """
    shards = []
    for shard in plan.shards:
        kept = tuple(r for r in shard.records if r[0] not in removed)
        if kept == shard.records:
            shards.append(shard)
        elif kept:
            shards.append(ShardPlan(Manifest.of(h for _, h in kept).root, shard.index, kept))
    if not shards:
        raise InvalidValueError(f"removing {len(removed)} record(s) leaves dataset version {plan.version.id!r} empty")
    holdout = tuple(r for r in plan.holdout if r[0] not in removed)
    manifest_root = Manifest.of(h for s in shards for _, h in s.records).root
    holdout_root = Manifest.of(h for _, h in holdout).root
    name = plan.version.name
    version_id = name + ":" + hashlib.sha256(f"{manifest_root}:{holdout_root}".encode()).hexdigest()[:16]
    version = DatasetVersion(id=version_id, name=name, manifest_root=manifest_root, holdout_root=holdout_root,
                             created_at=created_at)
    return DatasetPlan(version, tuple(shards), holdout)
