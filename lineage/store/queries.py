"""Impact queries: blast radius of a subject, record or dataset version, and dataset preflight.

Each is one parameterized Cypher query that walks the lineage stage by stage, collecting DISTINCT
nodes per stage, so its cost follows the size of the answer, not the size of the graph.
"""

from __future__ import annotations

from collections.abc import Sequence

from lineage.errors import InvalidValueError, NotFoundError
from lineage.impact import BlastRadius, Preflight
from lineage.store.graph import GraphStore

MAX_DEPTH = 32

_FROM_SUBJECTS = """
CALL () { MATCH (s:Subject) WHERE s.key IN $keys RETURN count(s) AS subject_keys_found }
CALL () {
  CALL () {
    MATCH (s:Subject)-[:OWNS]->(r:Record) WHERE s.key IN $keys RETURN r
    UNION
    MATCH (r:Record)-[:MENTIONS]->(s:Subject) WHERE s.key IN $keys RETURN r
  }
  RETURN collect(r) AS rs
}
"""

_FROM_RECORDS = """
CALL () { MATCH (r:Record) WHERE r.id IN $ids RETURN collect(r) AS rs }
WITH rs, 0 AS subject_keys_found
"""

_RECORDS_TO_SHARDS = """
CALL (rs) {
  UNWIND rs AS r MATCH (r)-[:IN]->(sh:Shard)
  RETURN collect(DISTINCT [r.id, sh.id]) AS record_shard, collect(DISTINCT sh) AS shards
}
CALL (rs) {
  UNWIND rs AS r MATCH (r)-[:HELD_OUT]->(dv:DatasetVersion)
  RETURN collect(DISTINCT dv {.id, .name}) AS held_out_in, count(DISTINCT r) AS records_held_out
}
WITH *, size(rs) AS records, size([r IN rs WHERE r.state = 'erased']) AS records_erased
"""

_FROM_DATASET = """
MATCH (start:DatasetVersion {id: $dataset})
CALL (start) {
  MATCH (sh:Shard)-[:PART_OF]->(start) RETURN collect(sh) AS shards, coalesce(sum(sh.record_count), 0) AS records
}
CALL (start) { MATCH (r:Record)-[:HELD_OUT]->(start) RETURN count(r) AS records_held_out }
WITH *, 0 AS subject_keys_found, 0 AS records_erased, [] AS record_shard, [] AS held_out_in
"""

_DOWNSTREAM = """
CALL (shards) {
  UNWIND shards AS sh MATCH (sh)-[:PART_OF]->(dv:DatasetVersion)
  RETURN collect(DISTINCT [sh.id, dv.id]) AS shard_dataset, collect(DISTINCT dv {.id, .name}) AS datasets
}
CALL (shards) {
  UNWIND shards AS sh MATCH (run:FineTuneRun)-[:TRAINED_ON]->(sh)
  RETURN collect(DISTINCT [run.id, sh.id]) AS run_shard, collect(DISTINCT run) AS runs
}
CALL (runs) {
  UNWIND runs AS run MATCH (run)-[:PRODUCED]->(a:Adapter)
  RETURN collect(DISTINCT [run.id, a.id]) AS run_adapter, collect(DISTINCT a) AS produced
}
CALL (produced) {
  UNWIND produced AS a
  MATCH p = (a)-[:MERGED_INTO*1..$$DEPTH$$]->(m:Adapter)
  WITH p, m, length(p) = $$DEPTH$$ AND EXISTS { (m)-[:MERGED_INTO]->(:Adapter) } AS cut
  UNWIND relationships(p) AS rel
  RETURN collect(DISTINCT [startNode(rel).id, endNode(rel).id]) AS adapter_merged,
         collect(DISTINCT m) AS merged, true IN collect(cut) AS depth_limit_hit
}
WITH *, produced + [m IN merged WHERE NOT m IN produced] AS adapters
CALL (adapters) {
  UNWIND adapters AS a MATCH (a)-[:DEPLOYED_TO]->(d:Deployment)
  RETURN collect(DISTINCT [a.id, d.id]) AS adapter_deployment, collect(DISTINCT d {.id, .endpoint}) AS deployments
}
RETURN subject_keys_found, records, records_erased, records_held_out, held_out_in, datasets,
       [sh IN shards | sh.id] AS shards, [r IN runs | r.id] AS runs,
       [a IN adapters | [a.id, a.state]] AS adapters, deployments, depth_limit_hit,
       record_shard, shard_dataset, run_shard, run_adapter, adapter_merged, adapter_deployment
"""


def _downstream(depth: int) -> str:
    if not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
        raise InvalidValueError(f"depth must be an integer between 1 and {MAX_DEPTH}, got {depth!r}")
    return _DOWNSTREAM.replace("$$DEPTH$$", str(depth))


def _result(store: GraphStore, start: str, query: str, depth: int, **params) -> BlastRadius:
    rows = store.read_values(query, **params)  # the query returns ids, counts and maps only
    if not rows:
        return BlastRadius(start=start, depth_limit=depth)
    row = rows[0]
    row["depth_limit_hit"] = bool(row["depth_limit_hit"])
    # Adapters come as [id, state] pairs (fewer values to decode than maps on large answers).
    row["adapters"] = [{"id": a_id, "state": state} for a_id, state in row["adapters"]]
    return BlastRadius(start=start, depth_limit=depth, **row)


def blast_radius_of_subject(store: GraphStore, keys: Sequence[str], depth: int = 8) -> BlastRadius:
    """Everything trained on the records a subject owns or is mentioned in (keys: subject HMACs)."""
    return _result(store, "subject", _FROM_SUBJECTS + _RECORDS_TO_SHARDS + _downstream(depth), depth,
                   keys=list(keys))


def blast_radius_of_records(store: GraphStore, ids: Sequence[str], depth: int = 8) -> BlastRadius:
    """Everything trained on these records."""
    return _result(store, "record", _FROM_RECORDS + _RECORDS_TO_SHARDS + _downstream(depth), depth,
                   ids=list(ids))


def blast_radius_of_dataset(store: GraphStore, dataset_id: str, depth: int = 8) -> BlastRadius:
    """Everything trained on any shard of a dataset version; NotFoundError if there is no such version."""
    result = _result(store, "dataset", _FROM_DATASET + _downstream(depth), depth, dataset=dataset_id)
    if not store.read("MATCH (d:DatasetVersion {id: $id}) RETURN d.id", id=dataset_id):
        raise NotFoundError(f"no dataset version {dataset_id!r}; `lethe preflight` lists nothing for it "
                            "either — check the id (name:hash) printed by `lethe ingest --dataset`")
    return result


_PREFLIGHT = """
MATCH (dv:DatasetVersion {id: $id})
CALL (dv) { MATCH (sh:Shard)-[:PART_OF]->(dv) RETURN count(sh) AS shards }
CALL (dv) {
  MATCH (r:Record)-[:IN]->(:Shard)-[:PART_OF]->(dv) RETURN count(DISTINCT r) AS records
}
CALL (dv) { MATCH (r:Record)-[:HELD_OUT]->(dv) RETURN count(r) AS held_out }
CALL (dv) {
  CALL (dv) {
    MATCH (r:Record)-[:IN]->(:Shard)-[:PART_OF]->(dv) RETURN r
    UNION
    MATCH (r:Record)-[:HELD_OUT]->(dv) RETURN r
  }
  RETURN
    count(CASE WHEN r.state = 'erased' THEN 1 END) AS tombstoned_records,
    count(CASE WHEN r.state <> 'erased' AND EXISTS {
      MATCH (t:Record {content_sha256: r.content_sha256}) WHERE t.state = 'erased' } THEN 1 END)
      AS erased_content_matches,
    count(CASE WHEN EXISTS { MATCH (q:ErasureRequest)-[:SCOPES]->(r) WHERE q.status IN $open }
                 OR EXISTS { MATCH (q:ErasureRequest)-[:TARGETS]->(:Subject)-[:OWNS|MENTIONS]-(r)
                             WHERE q.status IN $open } THEN 1 END) AS records_under_open_requests,
    count(CASE WHEN EXISTS { MATCH (q:ErasureRequest)-[:SCOPES]->(r) WHERE NOT q.status IN $open }
                 OR EXISTS { MATCH (q:ErasureRequest)-[:TARGETS]->(:Subject)-[:OWNS|MENTIONS]-(r)
                             WHERE NOT q.status IN $open } THEN 1 END) AS records_under_closed_requests
}
CALL (dv) {
  CALL (dv) {
    MATCH (s:Subject)-[:OWNS|MENTIONS]-(:Record)-[:IN]->(:Shard)-[:PART_OF]->(dv) RETURN s
    UNION
    MATCH (s:Subject)-[:OWNS|MENTIONS]-(:Record)-[:HELD_OUT]->(dv) RETURN s
  }
  RETURN count(s) AS subjects
}
RETURN dv.id AS dataset, records, held_out, shards, subjects, records_under_open_requests,
       records_under_closed_requests, tombstoned_records, erased_content_matches
"""


def preflight(store: GraphStore, dataset_id: str) -> Preflight:
    """Counts that tell whether a dataset version is safe to fine-tune on."""
    rows = store.read(_PREFLIGHT, id=dataset_id, open=["open", "in_progress"])
    if not rows:
        raise NotFoundError(f"no dataset version {dataset_id!r}; check the id (name:hash) printed by "
                            "`lethe ingest --dataset`, or list versions with `lethe datasets`")
    return Preflight(**rows[0])


_ERASED_IN_DATASET = """
MATCH (dv:DatasetVersion {id: $id})
CALL (dv) {
  MATCH (t:Record) WHERE t.state = 'erased'
  OPTIONAL MATCH (r:Record {content_sha256: t.content_sha256}) WHERE r.state <> 'erased'
  WITH dv, t, r
  RETURN count(DISTINCT CASE WHEN EXISTS { (t)-[:IN]->(:Shard)-[:PART_OF]->(dv) }
                                 OR EXISTS { (t)-[:HELD_OUT]->(dv) } THEN t END) AS tombstoned_records,
         count(DISTINCT CASE WHEN r IS NOT NULL AND (EXISTS { (r)-[:IN]->(:Shard)-[:PART_OF]->(dv) }
                                 OR EXISTS { (r)-[:HELD_OUT]->(dv) }) THEN r END) AS erased_content_matches
}
RETURN tombstoned_records, erased_content_matches
"""


def erased_in_dataset(store: GraphStore, dataset_id: str) -> dict[str, int]:
    """Preflight's two erased-data counts, starting from the tombstones rather than every record.

    Costs a pass over the (few) erased records instead of the version's millions; the training
    guards call this, `preflight` gives the full picture.
    """
    rows = store.read(_ERASED_IN_DATASET, id=dataset_id)
    if not rows:
        raise NotFoundError(f"no dataset version {dataset_id!r}")
    return rows[0]


def dataset_versions(store: GraphStore) -> list[dict]:
    """All dataset versions, newest first."""
    return store.read(
        "MATCH (d:DatasetVersion) OPTIONAL MATCH (s:Shard)-[:PART_OF]->(d) "
        "RETURN d.id AS id, d.name AS name, d.created_at AS created_at, count(s) AS shards, "
        "d.manifest_root AS manifest_root ORDER BY created_at DESC"
    )


def graph_counts(store: GraphStore) -> dict[str, int]:
    """Node counts per label and the relationship count (for status displays)."""
    counts = {row["label"]: row["n"] for row in store.read(
        "CALL db.labels() YIELD label CALL (label) { MATCH (n) WHERE label IN labels(n) RETURN count(n) AS n } "
        "RETURN label, n")}
    counts["relationships"] = store.read("MATCH ()-[r]->() RETURN count(r) AS n")[0]["n"]
    return counts


def holdout_record_ids(store: GraphStore, dataset_id: str) -> list[str]:
    """Ids of the records a dataset version holds out (what probes calibrate against), erased ones left out."""
    rows = store.read("MATCH (d:DatasetVersion {id: $id}) OPTIONAL MATCH (r:Record)-[:HELD_OUT]->(d) "
                      "WHERE coalesce(r.state, 'active') <> 'erased' RETURN d.id AS id, collect(r.id) AS ids",
                      id=dataset_id)
    if not rows:
        raise NotFoundError(f"no dataset version {dataset_id!r}; list versions with `lethe datasets`")
    return sorted(rows[0]["ids"])


def record_owners(store: GraphStore, record_ids: Sequence[str]) -> dict[str, list[str]]:
    """Subject keys that own each record (records without an owner map to an empty list)."""
    rows = store.read("UNWIND $ids AS id MATCH (r:Record {id: id}) OPTIONAL MATCH (s:Subject)-[:OWNS]->(r) "
                      "RETURN r.id AS id, collect(s.key) AS keys", ids=list(record_ids))
    return {row["id"]: row["keys"] for row in rows}


def holdout_sharing_people_with_training(store: GraphStore, dataset_id: str) -> set[str]:
    """Held-out records that share a person with the records the version trains on, either way round.

    Their owner is named in a trained record (another person's ticket), or they name a person whose own
    records are trained on. Either way the model read part of their text, so they are not text it never
    saw: probes leave them out of the calibration (an erasure removes the records that name its subject,
    so the holdout must be as clean).
    """
    trained = "(t:Record)-[:IN]->(:Shard)-[:PART_OF]->(d)"
    rows = store.read(
        "MATCH (h:Record)-[:HELD_OUT]->(d:DatasetVersion {id: $id}) "
        f"WHERE EXISTS {{ MATCH (s:Subject)-[:OWNS]->(h), (t:Record)-[:MENTIONS]->(s) WHERE {trained} "
        "AND NOT (s)-[:OWNS]->(t) } "
        f"OR EXISTS {{ MATCH (h)-[:MENTIONS]->(s:Subject)-[:OWNS]->(t:Record) WHERE {trained} "
        "AND NOT (s)-[:OWNS]->(h) } RETURN h.id AS id", id=dataset_id)
    return {row["id"] for row in rows}


def trained_in_dataset(store: GraphStore, dataset_id: str, record_ids: Sequence[str]) -> set[str]:
    """Which of `record_ids` are in a shard of the dataset version (what its adapters trained on)."""
    rows = store.read("UNWIND $ids AS id MATCH (r:Record {id: id})-[:IN]->(:Shard)-[:PART_OF]->"
                      "(:DatasetVersion {id: $dataset}) RETURN DISTINCT r.id AS id",
                      ids=list(record_ids), dataset=dataset_id)
    return {row["id"] for row in rows}


def dataset_plan(store: GraphStore, dataset_id: str):
    """A written dataset version read back as a DatasetPlan: its shards' records and its holdout, by id."""
    from lineage.dataset import DatasetPlan, ShardPlan
    from lineage.models import DatasetVersion

    rows = store.read("MATCH (d:DatasetVersion {id: $id}) RETURN properties(d) AS d", id=dataset_id)
    if not rows:
        raise NotFoundError(f"no dataset version {dataset_id!r}; list versions with `lethe datasets`")
    shards = store.read(
        "MATCH (s:Shard)-[:PART_OF]->(:DatasetVersion {id: $id}) MATCH (r:Record)-[:IN]->(s) "
        "RETURN s.id AS id, collect([r.id, r.content_sha256]) AS records", id=dataset_id)
    holdout = store.read("MATCH (r:Record)-[:HELD_OUT]->(:DatasetVersion {id: $id}) "
                         "RETURN r.id AS id, r.content_sha256 AS sha", id=dataset_id)
    version = DatasetVersion(**{k: v.to_native() if hasattr(v, "to_native") else v for k, v in rows[0]["d"].items()
                                if k in DatasetVersion.model_fields})
    # A record sits in shards of several versions; only the shards PART_OF this one are read above.
    plans = sorted((ShardPlan(row["id"], i, tuple(sorted((rid, sha) for rid, sha in row["records"])))
                    for i, row in enumerate(sorted(shards, key=lambda r: r["id"]))), key=lambda s: s.id)
    return DatasetPlan(version, tuple(plans), tuple(sorted((r["id"], r["sha"]) for r in holdout)))


def erased_record_ids(store: GraphStore, record_ids: Sequence[str]) -> set[str]:
    """Which of `record_ids` are tombstoned."""
    rows = store.read("UNWIND $ids AS id MATCH (r:Record {id: id}) WHERE r.state = 'erased' RETURN r.id AS id",
                      ids=list(record_ids))
    return {row["id"] for row in rows}


def owned_record_counts(store: GraphStore, keys: Sequence[str]) -> dict[str, tuple[str, int]]:
    """Subject key -> (its identifier kind, how many records it owns that are not erased)."""
    rows = store.read("UNWIND $keys AS key MATCH (s:Subject {key: key}) "
                      "OPTIONAL MATCH (s)-[:OWNS]->(r:Record) WHERE coalesce(r.state, 'active') <> 'erased' "
                      "RETURN s.key AS key, s.kind AS kind, count(r) AS n", keys=list(keys))
    return {row["key"]: (row["kind"], row["n"]) for row in rows}


def ownership(store: GraphStore, keys: Sequence[str]) -> dict[str, dict[str, dict[str, str]]]:
    """Subject key -> {record id -> {owner key -> kind}} for the records each key owns (not erased)."""
    rows = store.read("UNWIND $keys AS key MATCH (s:Subject {key: key})-[:OWNS]->(r:Record) "
                      "WHERE coalesce(r.state, 'active') <> 'erased' MATCH (o:Subject)-[:OWNS]->(r) "
                      "RETURN s.key AS key, r.id AS record, collect([o.key, o.kind]) AS owners", keys=list(keys))
    out: dict[str, dict[str, dict[str, str]]] = {key: {} for key in keys}
    for row in rows:
        out[row["key"]][row["record"]] = {key: kind for key, kind in row["owners"]}
    return out


def known_subject_keys(store: GraphStore, keys: Sequence[str]) -> set[str]:
    """Which of `keys` are subject keys the graph knows."""
    rows = store.read("UNWIND $keys AS key MATCH (s:Subject {key: key}) RETURN s.key AS key", keys=list(keys))
    return {row["key"] for row in rows}


def training_status(store: GraphStore, record_ids: Sequence[str]) -> dict[str, str]:
    """Record id -> trained (in a shard a fine-tune run trained on), held_out (held out of a dataset version
    and never trained), or none (never reached a run)."""
    rows = store.read("UNWIND $ids AS id MATCH (r:Record {id: id}) "
                      "RETURN r.id AS id, EXISTS { (r)-[:IN]->(:Shard)<-[:TRAINED_ON]-(:FineTuneRun) } AS trained, "
                      "EXISTS { (r)-[:HELD_OUT]->(:DatasetVersion) } AS held_out", ids=list(record_ids))
    return {row["id"]: "trained" if row["trained"] else "held_out" if row["held_out"] else "none" for row in rows}
