"""Batched, idempotent writers for every node and edge kind: `UNWIND $rows` + `MERGE` on keys."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from lineage.errors import NotFoundError
from lineage.models import EDGE_KINDS, NODE_KINDS, Edge, Node, check_edge_type, kind_of, node_row
from lineage.store.graph import DEFAULT_BATCH_SIZE, GraphStore, WriteSummary

# Labels, keys and relationship types below come only from the fixed vocabulary in
# lineage.models (never from input), so splicing them into Cypher is safe; values are parameters.

# Rows travel as lists, not maps: the driver packs half as many values (no repeated key strings),
# which matters at millions of rows. Row: [id, content_sha256, source, created_at, content_ref,
# [[subject key, kind], ...]].
_RECORDS_WITH_OWNERS = """
UNWIND $rows AS row
MERGE (r:Record {id: row[0]})
  ON CREATE SET r.content_sha256 = row[1], r.source = row[2],
                r.created_at = row[3], r.content_ref = row[4], r.state = 'active'
WITH r, row
UNWIND row[5] AS owner
MERGE (s:Subject {key: owner[0]}) ON CREATE SET s.kind = owner[1]
MERGE (s)-[:OWNS]->(r)
"""


def _node_query(kind: type[Node]) -> str:
    # Immutable kinds (records, shards, versions, runs) are set on creation only: a rerun changes
    # nothing, and a record's state changes only through `tombstone`.
    merge = f"UNWIND $rows AS row MERGE (n:{kind.label} {{{kind.key_property}: row.{kind.key_property}}})"
    return merge + (" SET n += row" if kind.mutable else " ON CREATE SET n += row")


def _edge_query(type_: str) -> str:
    # Row: [source key, target key, props] (a list, like the record rows above).
    kind = EDGE_KINDS[type_]
    skey, tkey = NODE_KINDS[kind.source].key_property, NODE_KINDS[kind.target].key_property
    return (
        f"UNWIND $rows AS row "
        f"MATCH (a:{kind.source} {{{skey}: row[0]}}) MATCH (b:{kind.target} {{{tkey}: row[1]}}) "
        f"MERGE (a)-[e:{type_}]->(b) SET e += row[2] RETURN count(*) AS matched"
    )


class LineageWriter:
    """Writes lineage in batches; every write is a MERGE, so rerunning it changes nothing."""

    def __init__(self, store: GraphStore, batch_size: int = DEFAULT_BATCH_SIZE, tx=None):
        """With `tx` (from `GraphStore.transaction()`), every write joins that one transaction."""
        self.store, self.batch_size, self.tx = store, batch_size, tx

    def nodes(self, nodes: Sequence[Node], on_batch: Callable[[int], None] | None = None) -> WriteSummary:
        """Merge nodes of one kind on their key."""
        if not nodes:
            return WriteSummary()
        kind = kind_of(nodes, "LineageWriter")
        rows = [node_row(n) for n in nodes]
        return self.store.write_batches(_node_query(kind), rows, self.batch_size, on_batch=on_batch,
                                        tx=self.tx)

    def edges(self, type_: str, edges: Sequence[Edge],
              on_batch: Callable[[int], None] | None = None) -> WriteSummary:
        """Merge edges of one type; a batch naming a missing node rolls back with NotFoundError."""
        check_edge_type(type_)
        rows = [[e.source, e.target, e.props] for e in edges]

        def all_matched(batch: list[list], out: list[dict]) -> None:
            matched = out[0]["matched"] if out else 0
            if matched != len(batch):
                raise NotFoundError(
                    f"{len(batch) - matched} of {len(batch)} {type_} edge(s) name a node that is not in "
                    f"the graph (e.g. one of {[(r[0], r[1]) for r in batch[:3]]}); "
                    "write the nodes first. This batch was rolled back."
                )

        return self.store.write_batches(_edge_query(type_), rows, self.batch_size, check=all_matched,
                                        on_batch=on_batch, tx=self.tx)

    def records_with_owners(self, rows: Sequence[dict],
                            on_batch: Callable[[int], None] | None = None) -> WriteSummary:
        """Merge records, their owners' Subject nodes and the OWNS edges in one pass.

        Each row: id, content_sha256, source, created_at, content_ref, owners: [{key, kind}].
        """
        packed = [[r["id"], r["content_sha256"], r["source"], r.get("created_at"), r.get("content_ref"),
                   [[o["key"], o["kind"]] for o in r["owners"]]] for r in rows]
        return self.store.write_batches(_RECORDS_WITH_OWNERS, packed, self.batch_size, on_batch=on_batch,
                                        tx=self.tx)

    def known_records(self, ids: Sequence[str]) -> dict[str, dict]:
        """Hash and state of the records among `ids` that are already in the graph."""
        found: dict[str, dict] = {}
        for start in range(0, len(ids), 50_000):
            for row in self.store.read(
                "UNWIND $ids AS id MATCH (r:Record {id: id}) "
                "RETURN r.id AS id, r.content_sha256 AS sha, r.state AS state",
                ids=list(ids[start:start + 50_000]),
            ):
                found[row["id"]] = row
        return found

    def tombstone(self, ids: Sequence[str], erased_at: datetime) -> list[dict]:
        """Erase records: drop the link to content, keep the hash, set state=erased. Idempotent.

        Returns the records that were newly erased (id and hash); already-erased ones are skipped.
        """
        query = ("UNWIND $ids AS id MATCH (r:Record {id: id}) WHERE r.state <> 'erased' "
                 "SET r.state = 'erased', r.erased_at = $at REMOVE r.content_ref "
                 "RETURN r.id AS id, r.content_sha256 AS content_sha256")
        params = {"ids": list(ids), "at": erased_at.isoformat()}
        if self.tx is not None:
            return [r.data() for r in self.tx.run(query, params)]
        return self.store.execute(query, **params)

    def erased_hashes(self, hashes: Sequence[str]) -> set[str]:
        """The subset of `hashes` that belong to tombstoned records (checked in bulk)."""
        out: set[str] = set()
        for start in range(0, len(hashes), 50_000):
            out.update(
                row["h"] for row in self.store.read(
                    "UNWIND $hashes AS h MATCH (r:Record {content_sha256: h}) "
                    "WHERE r.state = 'erased' RETURN DISTINCT h",
                    hashes=list(hashes[start:start + 50_000]),
                )
            )
        return out
