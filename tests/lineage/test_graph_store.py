"""The graph layer against the real Neo4j that the test session started."""

import json
import logging
from datetime import datetime, timezone

import pytest

from lineage.content_store import ContentStore
from lineage.errors import ContentConflictError, ErasedContentError, NotFoundError
from lineage.ingest import ingest_batch
from lineage.models import Edge, ErasureRequest, RequestStatus
from lineage.record_batch import parse_jsonl
from lineage.store import queries
from lineage.store.writers import LineageWriter
from tests.lineage.lineage_fixtures import NOW, build_lineage, jsonl, tickets

RAW_IDENTIFIERS = ["ada.lovelace@example.com", "Ada Lovelace", "+1 202 555 0142", "2025550142", "Lovelace"]


@pytest.fixture
def content(tmp_path):
    store = ContentStore(tmp_path / "content.sqlite")
    yield store
    store.close()


def counts(graph):
    return graph.read("MATCH (n) WITH count(n) AS nodes MATCH ()-[r]->() RETURN nodes, count(r) AS rels")[0]


def all_properties(graph) -> str:
    nodes = graph.read("MATCH (n) RETURN labels(n) AS l, properties(n) AS p")
    rels = graph.read("MATCH ()-[r]->() RETURN type(r) AS t, properties(r) AS p")
    return json.dumps(nodes + rels, default=str)


def test_schema_is_idempotent(graph):
    graph.apply_schema()
    before = graph.read("SHOW CONSTRAINTS YIELD name RETURN count(*) AS n")[0]["n"]
    graph.apply_schema()
    assert graph.read("SHOW CONSTRAINTS YIELD name RETURN count(*) AS n")[0]["n"] == before >= 9


def test_reingesting_the_same_batch_changes_nothing(graph, keyer, content):
    build_lineage(graph, keyer, content)
    before, props = counts(graph), all_properties(graph)
    writer = LineageWriter(graph)
    report = ingest_batch(parse_jsonl(jsonl(tickets(40)), keyer), writer, content)
    assert not report.graph.changed and report.already_present == 40
    build_lineage(graph, keyer, content)
    assert counts(graph) == before and all_properties(graph) == props


def test_no_raw_identifier_reaches_the_graph_or_the_logs(graph, keyer, content, caplog):
    caplog.set_level(logging.DEBUG)
    build_lineage(graph, keyer, content)
    stored = all_properties(graph)
    assert keyer.key("email", "ada.lovelace@example.com") in stored  # the keyed HMAC is there ...
    for raw in RAW_IDENTIFIERS:  # ... and no raw form of it
        assert raw.lower() not in stored.lower()
        assert raw.lower() not in caplog.text.lower()
    assert "Ticket 0" not in stored  # no record text either


def test_cypher_in_identifiers_and_ids_is_stored_as_data(graph, keyer, content):
    evil = "x'}) DETACH DELETE n //"
    records = tickets(3) + [{"id": evil, "subject": {"name": "Robert'); MATCH (n) DETACH DELETE n; //"},
                             "text": "MATCH (n) DETACH DELETE n", "source": "helpdesk"}]
    ingest_batch(parse_jsonl(jsonl(records), keyer), LineageWriter(graph), content)
    assert graph.read("MATCH (r:Record {id: $id}) RETURN count(r) AS n", id=evil)[0]["n"] == 1
    assert graph.read("MATCH (r:Record) RETURN count(r) AS n")[0]["n"] == 4


def test_changed_content_under_a_known_id_is_refused_and_nothing_is_lost(graph, keyer, content):
    writer = LineageWriter(graph)
    ingest_batch(parse_jsonl(jsonl(tickets(5)), keyer), writer, content)
    before = all_properties(graph)
    changed = tickets(6)
    changed[2]["text"] = "A different text under an old id."
    with pytest.raises(ContentConflictError, match="t-0002"):
        ingest_batch(parse_jsonl(jsonl(changed), keyer), writer, content)
    assert all_properties(graph) == before
    assert graph.read("MATCH (r:Record {id: 't-0005'}) RETURN count(r) AS n")[0]["n"] == 0


def test_edges_naming_a_missing_node_roll_back_the_batch(graph, keyer, content):
    writer = LineageWriter(graph)
    ingest_batch(parse_jsonl(jsonl(tickets(3)), keyer), writer, content)
    from lineage.models import Shard
    writer.nodes([Shard(id="a" * 64, record_count=2)])
    with pytest.raises(NotFoundError, match="rolled back"):
        writer.edges("IN", [Edge(source="t-0000", target="a" * 64), Edge(source="t-9999", target="a" * 64)])
    assert graph.read("MATCH ()-[r:IN]->() RETURN count(r) AS n")[0]["n"] == 0
    with pytest.raises(ValueError, match="unknown edge type"):
        writer.edges("LIKES", [])


def test_tombstone_keeps_hash_drops_content_and_refuses_reingest(graph, keyer, content):
    writer = LineageWriter(graph)
    batch = parse_jsonl(jsonl(tickets(5)), keyer)
    ingest_batch(batch, writer, content)
    sha = batch.records[1].content_sha256
    erased = writer.tombstone(["t-0001"], NOW)
    content.delete_many([r["id"] for r in erased])
    assert erased == [{"id": "t-0001", "content_sha256": sha}]
    assert writer.tombstone(["t-0001"], NOW) == []  # idempotent
    node = graph.read("MATCH (r:Record {id: 't-0001'}) RETURN properties(r) AS p")[0]["p"]
    assert node["state"] == "erased" and node["content_sha256"] == sha and "content_ref" not in node
    assert content.get("t-0001") is None and content.get("t-0002") is not None
    assert writer.erased_hashes([sha, batch.records[2].content_sha256]) == {sha}
    # The same content under a new id (a stale snapshot) is refused too.
    stale = tickets(2)
    stale[1]["id"] = "t-restored"
    with pytest.raises(ErasedContentError, match="t-restored"):
        ingest_batch(parse_jsonl(jsonl(stale), keyer), writer, content)
    report = ingest_batch(parse_jsonl(jsonl(stale), keyer), writer, content, skip_erased=True)
    assert report.erased_skipped == 1 and report.records == 1
    assert graph.read("MATCH (r:Record {id: 't-restored'}) RETURN count(r) AS n")[0]["n"] == 0


def test_blast_radius_of_a_subject_reaches_every_adapter_and_deployment(graph, keyer, content):
    plan, _ = build_lineage(graph, keyer, content, merged_depth=2)
    key = keyer.key("email", "ada.lovelace@example.com")
    result = queries.blast_radius_of_subject(graph, [key])
    owned = {f"t-{i:04d}" for i in range(0, 40, 5)}
    held = owned & {rid for rid, _ in plan.holdout}
    assert result.subject_keys_found == 1 and result.records == len(owned)
    assert result.records_held_out == len(held)
    assert {r for r, _ in result.record_shard} == owned - held
    assert [d.id for d in result.datasets] == [plan.version.id]
    expected_shards = {s.id for s in plan.shards if any(rid in owned for rid, _ in s.records)}
    assert set(result.shards) == expected_shards
    assert set(result.runs) == {f"run-{s.index}" for s in plan.shards if s.id in expected_shards}
    assert {a.id for a in result.adapters} == {f"a-shard-{s.index}" for s in plan.shards
                                                if s.id in expected_shards} | {"a-merged-0", "a-merged-1"}
    assert [d.id for d in result.deployments] == ["support-bot"] and not result.depth_limit_hit
    paths, _ = result.paths()
    assert all(p[-1] == "support-bot" for p in paths) and len(paths) == len(result.record_shard)


def test_blast_radius_says_when_the_depth_bound_is_hit(graph, keyer, content):
    build_lineage(graph, keyer, content, merged_depth=5)
    key = keyer.key("email", "ada.lovelace@example.com")
    shallow = queries.blast_radius_of_subject(graph, [key], depth=3)
    assert shallow.depth_limit_hit and not shallow.deployments
    deep = queries.blast_radius_of_subject(graph, [key], depth=5)
    assert not deep.depth_limit_hit and [d.id for d in deep.deployments] == ["support-bot"]


def test_blast_radius_of_records_dataset_and_unknown_subject(graph, keyer, content):
    plan, _ = build_lineage(graph, keyer, content)
    trained = plan.shards[0].records[0][0]
    by_record = queries.blast_radius_of_records(graph, [trained])
    assert by_record.records == 1 and by_record.shards == [plan.shards[0].id]
    assert {a.id for a in by_record.adapters} == {"a-shard-0", "a-merged-0"}
    by_dataset = queries.blast_radius_of_dataset(graph, plan.version.id)
    assert by_dataset.records == sum(len(s.records) for s in plan.shards)
    assert by_dataset.records_held_out == len(plan.holdout) and len(by_dataset.adapters) == 5
    nobody = queries.blast_radius_of_subject(graph, [keyer.key("email", "nobody@example.com")])
    assert nobody.is_empty and nobody.subject_keys_found == 0
    with pytest.raises(NotFoundError, match="no dataset version"):
        queries.blast_radius_of_dataset(graph, "missing:0")


def test_preflight_counts_requests_and_tombstones(graph, keyer, content):
    plan, _ = build_lineage(graph, keyer, content)
    writer = LineageWriter(graph)
    clean = queries.preflight(graph, plan.version.id)
    assert clean.ok and clean.records + clean.held_out == 40 and clean.shards == 4
    assert clean.subjects == 32 + 3  # 32 other customers + Ada's email, phone and name keys
    request = ErasureRequest(id="req-1", regime="gdpr", received_at=NOW, due_at=NOW)
    writer.nodes([request])
    writer.edges("TARGETS", [Edge(source="req-1", target=keyer.key("email", "ada.lovelace@example.com"))])
    writer.tombstone(["t-0001"], datetime.now(timezone.utc))
    blocked = queries.preflight(graph, plan.version.id)
    assert blocked.records_under_open_requests == 8 and blocked.tombstoned_records == 1
    assert queries.erased_in_dataset(graph, plan.version.id) == {
        "tombstoned_records": blocked.tombstoned_records, "erased_content_matches": blocked.erased_content_matches}
    assert not blocked.ok and len(blocked.blocking_reasons) == 2
    writer.nodes([request.model_copy(update={"status": RequestStatus.CLOSED})])
    closed = queries.preflight(graph, plan.version.id)
    assert closed.records_under_open_requests == 0 and closed.records_under_closed_requests == 8
    with pytest.raises(NotFoundError):
        queries.preflight(graph, "nope")


def test_writes_in_one_transaction_commit_together_or_not_at_all(graph, keyer, content):
    from lineage.models import Shard
    with pytest.raises(RuntimeError, match="crash"):
        with graph.transaction() as tx:
            writer = LineageWriter(graph, batch_size=2, tx=tx)
            writer.nodes([Shard(id=f"{i:064x}", record_count=1) for i in range(5)])
            raise RuntimeError("crash mid-materialization")
    assert graph.read("MATCH (s:Shard) RETURN count(s) AS n")[0]["n"] == 0
    with graph.transaction() as tx:
        LineageWriter(graph, batch_size=2, tx=tx).nodes([Shard(id=f"{i:064x}", record_count=1) for i in range(5)])
    assert graph.read("MATCH (s:Shard) RETURN count(s) AS n")[0]["n"] == 5
