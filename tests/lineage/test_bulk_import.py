"""The offline importer's input: typed headers, quoting, the writers' merge rules, edge ends checked."""

from __future__ import annotations

import csv
import stat

import pytest

from lineage.errors import NotFoundError
from lineage.models import Adapter, Edge, Shard
from lineage.store.bulk_import import BulkLoad

KEY = "a" * 64


def _rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_records_with_owners_writes_typed_files_and_keeps_awkward_strings_as_data(tmp_path):
    load = BulkLoad()
    awkward = 'id with "quotes", commas,\nand a newline'
    summary = load.records_with_owners([
        {"id": awkward, "content_sha256": "b" * 64, "source": "x') DETACH DELETE (n", "owners": [
            {"key": KEY, "kind": "email"}, {"key": "c" * 64, "kind": "phone"}]},
        {"id": "r-2", "content_sha256": "d" * 64, "source": "helpdesk", "created_at": "2025-01-01T00:00:00Z",
         "owners": [{"key": KEY, "kind": "email"}]},
    ])
    assert (summary.nodes_created, summary.relationships_created) == (4, 3)
    files = load.write_files(tmp_path / "in")
    assert stat.S_IMODE((tmp_path / "in").stat().st_mode) == 0o700
    header, data = files.nodes["Record"]
    assert _rows(header) == [[":ID(Record)", "id:string", "content_ref:string", "content_sha256:string",
                              "created_at:string", "erased_at:string", "source:string", "state:string"]]
    rows = _rows(data)
    assert rows[0][:2] == ["0", awkward] and rows[0][6] == "x') DETACH DELETE (n" and rows[0][4] == ""
    assert rows[1] == ["1", "r-2", "", "d" * 64, "2025-01-01T00:00:00Z", "", "helpdesk", "active"]
    assert files.multiline  # the id spans two lines: the importer is told to parse quoted line breaks
    owns_header, owns = files.relationships["OWNS"]
    assert _rows(owns_header) == [[":START_ID(Subject)", ":END_ID(Record)"]]
    subjects = {row[1]: row[0] for row in _rows(files.nodes["Subject"][1])}  # key → import id
    assert sorted(_rows(owns)) == sorted([[subjects[KEY], "0"], [subjects["c" * 64], "0"], [subjects[KEY], "1"]])
    assert (files.node_count, files.relationship_count) == (4, 3)
    args = files.importer_arguments()
    assert f"--relationships=OWNS={owns_header},{owns}" in args and "--id-type=integer" in args and len(args) == 5
    assert "--multiline-fields=true" in args


def test_merge_rules_match_the_transactional_writers(tmp_path):
    load = BulkLoad()
    assert load.nodes([Shard(id=KEY, record_count=3)]).nodes_created == 1
    assert load.nodes([Shard(id=KEY, record_count=99)]).nodes_created == 0  # immutable: first write wins
    load.nodes([Adapter(id="a-1", sha256="1" * 64, uri="file:///a")])
    load.nodes([Adapter(id="a-1", sha256="1" * 64, uri="file:///a", state="quarantined")])  # mutable: updated
    load.edges("MERGED_INTO", [Edge(source="a-1", target="a-1", props={"weight": 0.5})])
    assert load.edges("MERGED_INTO", [Edge(source="a-1", target="a-1")]).relationships_created == 0
    files = load.write_files(tmp_path)
    assert not files.multiline and "--multiline-fields=false" in files.importer_arguments()
    assert _rows(files.nodes["Shard"][0]) == [[":ID(Shard)", "id:string", "record_count:long"]]
    assert _rows(files.nodes["Shard"][1]) == [["0", KEY, "3"]]
    assert "quarantined" in _rows(files.nodes["Adapter"][1])[0]
    assert _rows(files.relationships["MERGED_INTO"][0]) == [[":START_ID(Adapter)", ":END_ID(Adapter)", "weight:double"]]
    assert _rows(files.relationships["MERGED_INTO"][1]) == [["0", "0", "0.5"]]


def test_an_edge_to_a_node_outside_the_load_is_refused_before_any_file(tmp_path):
    load = BulkLoad()
    load.nodes([Shard(id=KEY, record_count=1)])
    load.edges("IN", [Edge(source="r-missing", target=KEY)])
    with pytest.raises(NotFoundError, match=r"1 of 1 IN edge\(s\) name a node that is not in the load"):
        load.write_files(tmp_path / "in")
    assert not (tmp_path / "in").exists()


def test_bad_input_is_named(tmp_path):
    load = BulkLoad()
    with pytest.raises(ValueError, match="unknown edge type 'LIKES'"):
        load.edges("LIKES", [])
    with pytest.raises(TypeError, match="one kind per call"):
        load.nodes([Shard(id=KEY, record_count=1), Adapter(id="a", sha256="1" * 64, uri="u")])
    load.nodes([Adapter(id="a", sha256="1" * 64, uri="u")])
    load.edges("MERGED_INTO", [Edge(source="a", target="a", props={"w": 1}), Edge(source="a", target="b")])
    load.nodes([Adapter(id="b", sha256="1" * 64, uri="u")])
    load.edges("MERGED_INTO", [Edge(source="a", target="b", props={"w": "one"})])
    with pytest.raises(TypeError, match="MERGED_INTO.w holds both long and string values"):
        load.write_files(tmp_path)


def test_empty_strings_stay_empty_strings_and_booleans_stay_booleans(tmp_path):
    load = BulkLoad()
    load.nodes([Adapter(id="a", sha256="1" * 64, uri="")])
    load.edges("MERGED_INTO", [Edge(source="a", target="a", props={"kept": True})])
    files = load.write_files(tmp_path)
    data = files.nodes["Adapter"][1].read_text()
    assert ',""' in data  # quoted: an empty string, where an empty field would mean "no property"
    assert files.relationships["MERGED_INTO"][1].read_text() == "0,0,true\n"


def test_ids_0_and_1_are_not_read_as_booleans(tmp_path):
    # In Python 0 == False and 1 == True: the import ids must not send every table to the slow writer,
    # nor may a real boolean be missed.
    load = BulkLoad()
    load.nodes([Adapter(id=f"a-{n}", sha256="1" * 64, uri="u") for n in range(3)])
    load.edges("MERGED_INTO", [Edge(source="a-1", target="a-0", props={"weight": 0.5})])
    load.edges("REPLACES", [Edge(source="a-2", target="a-1", props={"kept": False})])
    files = load.write_files(tmp_path)
    assert files.nodes["Adapter"][1].read_text().startswith("0,a-0,")  # plain csv: no quotes were needed
    assert files.relationships["MERGED_INTO"][1].read_text() == "1,0,0.5\n"
    assert files.relationships["REPLACES"][1].read_text() == "2,1,false\n"  # the exact writer: a boolean
