"""`lethe ingest --bulk`: a first load through Neo4j's offline importer into a private local server.

The importer stops and restarts its server, so these tests run their own (not the session's) and
compare what it builds with what the transactional ingest writes into the session's graph.
"""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from lethe import wiring
from lethe.bulk_ingest import bulk_ingest_file
from lethe.cli.main import app
from erasure.errors import ConfigurationError
from lethe.errors import Neo4jServerError
from lethe.ingestion import DatasetOptions
from lethe.neo4j_server import LocalNeo4j
from lethe.settings import Settings
from lineage.content_store import ContentStore
from lineage.record_batch import parse_jsonl
from lineage.store import GraphStore
from lineage.store.bulk_import import BulkFiles
from tests.neo4j_servers import BULK_PEPPER, EARLY
from tests.lineage.lineage_fixtures import jsonl, tickets

PEPPER = BULK_PEPPER
RAW = ("ada.lovelace@example.com", "Ada Lovelace", "Lovelace", "202 555 0142", "2025550142")


def _records() -> list[dict]:
    records = tickets(30)
    records.append({"id": 't-"q", 1', "subject": {"email": "eve@example.org"}, "text": "Quoted id, odd source.",
                    "source": "helpdesk\", 'x') MATCH (n) DETACH DELETE n //", "created_at": "2025-06-02T10:00:00Z"})
    return records


@pytest.fixture(scope="module")
def bulk_server():
    """A private local Neo4j (its own folder and port; started early, tests/neo4j_servers.py), stopped at the end."""
    with EARLY.serving("bulk_server") as settings:
        yield settings


def _open(settings: Settings) -> GraphStore:
    return GraphStore.connect(settings.resolved_neo4j_uri(), settings.neo4j_user,
                              settings.resolved_neo4j_password())


def _dump(graph: GraphStore) -> tuple[list, list]:
    """Every node (labels, properties) and relationship (type, ends' keys, properties), sorted."""
    nodes = graph.read("MATCH (n) RETURN labels(n) AS labels, properties(n) AS props")
    rels = graph.read("MATCH (a)-[r]->(b) RETURN type(r) AS type, coalesce(a.id, a.key) AS a, "
                      "coalesce(b.id, b.key) AS b, properties(r) AS props")
    for node in nodes:
        if "DatasetVersion" in node["labels"]:
            node["props"].pop("created_at")  # the time of each ingest
    key = lambda row: json.dumps(row, sort_keys=True)  # noqa: E731
    return sorted(nodes, key=key), sorted(rels, key=key)


# slow (24 s): the server stopped, an import failed, the server started again; the default run covers a good import.
@pytest.mark.slow
def test_a_failed_import_leaves_the_server_up_with_its_empty_graph(bulk_server, monkeypatch, tmp_path):
    (tmp_path / "bad-header.csv").write_text("id:ID(Shard),record_count:long\n")
    (tmp_path / "bad.csv").write_text('"' + "a" * 64 + '",not-a-number\n')
    arguments = BulkFiles.importer_arguments
    monkeypatch.setattr(BulkFiles, "importer_arguments", lambda self: arguments(self) + [
        f"--nodes=Shard={tmp_path / 'bad-header.csv'},{tmp_path / 'bad.csv'}"])  # fails the importer mid-way
    batch = parse_jsonl(jsonl(tickets(10)), wiring.subject_keyer(bulk_server))
    with pytest.raises(Neo4jServerError, match="the Neo4j importer failed .*; the database is left empty"):
        bulk_ingest_file(bulk_server, batch, ContentStore(bulk_server.content_store_path))
    assert LocalNeo4j(bulk_server).status().running
    assert not any((bulk_server.state_dir / "import").iterdir())  # its input files are gone
    with _open(bulk_server) as graph:
        assert graph.read("MATCH (n) RETURN count(n) AS n") == [{"n": 0}]
        graph.apply_schema()  # a working database: schema and writes go through
        assert graph.execute("CREATE (s:Shard {id: 'probe'}) DELETE s RETURN 1 AS ok") == [{"ok": 1}]


def test_bulk_ingest_builds_the_graph_the_transactional_ingest_builds(bulk_server, neo4j_server, graph, tmp_path):
    path = tmp_path / "tickets.jsonl"
    path.write_bytes(jsonl(_records()))
    common = {"LETHE_PEPPER": PEPPER, "NEO4J_USER": "neo4j"}
    bulk_env = {**common, "LETHE_STATE_DIR": str(bulk_server.state_dir), "NEO4J_URI": None,
                "NEO4J_PASSWORD": None, "LETHE_NEO4J_PORT": str(bulk_server.local_bolt_port),
                "LETHE_NEO4J_HEAP": "512m", "LETHE_NEO4J_PAGE_CACHE": "128m"}
    session_env = {**common, "LETHE_STATE_DIR": str(tmp_path / "state"), "NEO4J_URI": neo4j_server.resolved_neo4j_uri(),
                   "NEO4J_PASSWORD": neo4j_server.resolved_neo4j_password()}
    args = ["ingest", str(path), "--dataset", "tickets", "--shards", "3"]
    runner = CliRunner()
    bulk = runner.invoke(app, [*args, "--bulk"], env=bulk_env, catch_exceptions=False)
    assert bulk.exit_code == 0, bulk.output
    assert "bulk import in" in bulk.output and re.search(r"records written\s+│\s+31", bulk.output), bulk.output
    transactional = runner.invoke(app, args, env=session_env, catch_exceptions=False)
    assert transactional.exit_code == 0, transactional.output

    with _open(bulk_server) as bulk_graph:
        nodes, rels = _dump(bulk_graph)
        assert (nodes, rels) == _dump(graph)
        assert len(rels) > 31
        text = json.dumps([nodes, rels]).lower()
        assert not [raw for raw in RAW if raw.lower() in text]
        # The schema holds on the imported data: a duplicate record id is refused by its constraint.
        with pytest.raises(Exception, match="already exists"):
            bulk_graph.execute("CREATE (:Record {id: 't-0000'})")

    radius = runner.invoke(app, ["blast-radius", "--subject-email", "ADA.lovelace@example.com", "--json"],
                           env=bulk_env, catch_exceptions=False)
    assert radius.exit_code == 0, radius.output
    assert json.loads(radius.output)["records"] == 6

    again = runner.invoke(app, [*args, "--bulk"], env=bulk_env, catch_exceptions=False)
    assert again.exit_code == 2 and "already holds" in again.output and "without --bulk" in again.output
    with _open(bulk_server) as bulk_graph:
        assert _dump(bulk_graph) == (nodes, rels)


def test_bulk_needs_lethes_own_server(tmp_path):
    settings = Settings(state_dir=tmp_path, NEO4J_URI="bolt://127.0.0.1:1", LETHE_PEPPER=PEPPER)
    batch = parse_jsonl(jsonl(tickets(3)), wiring.subject_keyer(settings))
    with pytest.raises(ConfigurationError, match="Lethe's own Neo4j; with NEO4J_URI set, ingest without --bulk"):
        bulk_ingest_file(settings, batch, ContentStore(tmp_path / "content.sqlite"),
                         DatasetOptions("tickets"))
