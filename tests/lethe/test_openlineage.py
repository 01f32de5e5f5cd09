"""OpenLineage emission: events valid against the vendored spec (offline), Lethe's facet carries roots and no
identifiers, nothing is sent unless a transport is configured, and a failing transport never fails a run."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from openlineage.client.serde import Serde

from lethe.openlineage import LineageEmitter, run_uuid, transport_configured
from lethe.openlineage.events import dataset_version_events, deployment_events, failure_events, fine_tune_events
from lethe.openlineage.facts import AdapterFacts, DatasetVersionFacts, DeploymentFacts, FineTuneFacts
from tests.openlineage_schema import RUN_EVENT, assert_valid, validator

NS = "lethe://test"
T0 = datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


VERSION = DatasetVersionFacts(id="support-tickets:0123456789abcdef", name="support-tickets", manifest_root="a" * 64,
                              holdout_root="b" * 64, created_at=T0, shard_count=4, training_records=90,
                              held_out_records=30, parent_id="support-tickets:fedcba9876543210")
ADAPTER = AdapterFacts(id="adapter-0011223344556677", sha256="c" * 64, state="active")
FINE_TUNE = FineTuneFacts(dataset_version_id=VERSION.id, run_ids=("run-00000000000000aa", "run-00000000000000bb"),
                          base_model_sha256="d" * 64, config_sha256="e" * 64, seed=0, code_version="lethe-0.1.0",
                          started_at=T0, ended_at=T0 + timedelta(minutes=3), adapter=ADAPTER)
DEPLOYMENT = DeploymentFacts(id="support-bot", form="fp32", adapters=(ADAPTER,))

BUILT = {
    "dataset_version": lambda: dataset_version_events(NS, VERSION, T0 + timedelta(seconds=2)),
    "fine_tune": lambda: fine_tune_events(NS, FINE_TUNE),
    "deployment": lambda: deployment_events(NS, DEPLOYMENT, T0),
    "failure": lambda: failure_events(NS, "lethe.fine_tune", "dagster-run-1", RuntimeError("x@y.example"), T0),
}


@pytest.mark.parametrize("kind", sorted(BUILT))
def test_the_events_of_each_run_validate_against_the_openlineage_spec(kind):
    events = [Serde.to_dict(e) for e in BUILT[kind]()]
    for event in events:
        assert_valid(event)
    assert [e["eventType"] for e in events] in (["START", "COMPLETE"], ["START", "FAIL"])
    assert len({e["run"]["runId"] for e in events}) == 1  # one run: its START and its end share the id


def test_the_validation_refuses_what_the_spec_refuses():
    event = Serde.to_dict(BUILT["fine_tune"]()[0])
    assert RUN_EVENT.is_valid(event)
    not_uuid = {**event, "run": {**event["run"], "runId": "run-00000000000000aa"}}
    facet = {k: v for k, v in event["job"]["facets"]["jobType"].items() if k != "_producer"}
    no_producer = {**event, "job": {**event["job"], "facets": {"jobType": facet}}}
    assert not RUN_EVENT.is_valid(not_uuid) and not RUN_EVENT.is_valid(no_producer)
    assert not RUN_EVENT.is_valid({k: v for k, v in event.items() if k != "eventTime"})


def test_the_lethe_facets_carry_the_roots_and_digests():
    version = Serde.to_dict(BUILT["dataset_version"]()[1])
    facet = version["outputs"][0]["facets"]["lethe"]
    assert version["outputs"][0]["name"] == f"dataset_version/{VERSION.id}"
    assert (facet["manifestRoot"], facet["holdoutRoot"]) == (VERSION.manifest_root, VERSION.holdout_root)
    assert (facet["trainingRecordCount"], facet["heldOutRecordCount"], facet["shardCount"]) == (90, 30, 4)
    assert version["inputs"][0]["name"] == f"dataset_version/{VERSION.parent_id}"
    tune = Serde.to_dict(BUILT["fine_tune"]()[1])
    run = tune["run"]["facets"]["lethe"]
    assert (run["configSha256"], run["baseModelSha256"]) == ("e" * 64, "d" * 64)
    assert tune["outputs"][0]["facets"]["lethe"]["sha256"] == ADAPTER.sha256
    assert {d["name"] for d in tune["inputs"]} == {f"dataset_version/{VERSION.id}", f"base_model/{'d' * 16}"}
    assert tune["eventTime"] == FINE_TUNE.ended_at.isoformat()


def test_a_failure_names_the_error_type_and_not_its_message():
    fail = Serde.to_dict(BUILT["failure"]()[1])
    assert "RuntimeError" in fail["run"]["facets"]["errorMessage"]["message"]
    assert not EMAIL.search(json.dumps(fail))


def test_the_facet_schema_refuses_fields_it_does_not_name():
    """The schema is the guard that no list of record ids slips into the facet."""
    facet = Serde.to_dict(BUILT["dataset_version"]()[1])["outputs"][0]["facets"]["lethe"]
    schema = validator(facet["_schemaURL"])
    assert schema.is_valid(facet)
    assert not schema.is_valid({**facet, "recordIds": ["ticket-1"]})
    assert not schema.is_valid({**facet, "manifestRoot": "not-a-root"})
    assert not schema.is_valid({k: v for k, v in facet.items() if k != "_producer"})


def test_run_ids_are_uuids_derived_from_lethe_ids():
    first = run_uuid(NS, "lethe.fine_tune", "run-a,run-b")
    assert first == run_uuid(NS, "lethe.fine_tune", "run-a,run-b")
    assert first != run_uuid("lethe://other", "lethe.fine_tune", "run-a,run-b")
    assert first != run_uuid(NS, "lethe.fine_tune", "run-a")


@pytest.mark.parametrize("env, files, expected", [
    ({}, [], False),
    ({"OPENLINEAGE_URL": "http://localhost:5000"}, [], True),
    ({"OPENLINEAGE_CONFIG": "/etc/ol.yml"}, [], True),
    ({"OPENLINEAGE__TRANSPORT__TYPE": "console"}, [], True),
    ({"OPENLINEAGE_URL": "http://localhost:5000", "OPENLINEAGE_DISABLED": "true"}, [], False),
    ({}, ["cwd/openlineage.yml"], True),
    ({}, ["home/.openlineage/openlineage.yml"], True),
    ({"OPENLINEAGE_NAMESPACE": "lethe://x"}, [], False),  # a namespace alone names no transport
])
def test_a_transport_is_configured_only_where_the_client_would_find_one(tmp_path, env, files, expected):
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("transport:\n  type: console\n")
    (tmp_path / "cwd").mkdir(exist_ok=True)
    (tmp_path / "home").mkdir(exist_ok=True)
    assert transport_configured(env, tmp_path / "cwd", tmp_path / "home") is expected


@pytest.fixture
def no_openlineage_env(monkeypatch, tmp_path):
    """No OPENLINEAGE_* variable, and no openlineage.yml where the client looks (cwd, ~/.openlineage)."""
    import os

    for key in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    return monkeypatch


def file_transport(monkeypatch, tmp_path: Path, target: Path) -> None:
    config = tmp_path / "openlineage.yml"
    config.write_text(f"transport:\n  type: file\n  log_file_path: {target}\n  append: true\n")
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))


def test_without_configuration_nothing_is_sent_or_printed(no_openlineage_env, capsys, caplog):
    emitter = LineageEmitter.from_environment(NS)
    assert not emitter.enabled
    # Not even the graph is read: `None` would fail the moment it were.
    assert emitter.dataset_version(None, VERSION.id) == 0
    assert emitter.failed("lethe.fine_tune", "run-1", RuntimeError("boom")) == 0
    assert capsys.readouterr() == ("", "")
    assert not [r for r in caplog.records if r.name.startswith("openlineage")]


def test_a_failing_transport_is_logged_and_never_raised(no_openlineage_env, tmp_path, caplog):
    file_transport(no_openlineage_env, tmp_path, tmp_path / "missing-folder" / "events.jsonl")
    emitter = LineageEmitter.from_environment(NS)
    assert emitter.enabled
    with caplog.at_level(logging.ERROR, logger="lethe.openlineage.emitter"):
        assert emitter.failed("lethe.fine_tune", "run-1", RuntimeError("boom")) == 0
    assert any("could not emit" in r.getMessage() and "failed lethe.fine_tune" in r.getMessage()
               for r in caplog.records)


def test_a_version_missing_from_the_graph_is_logged_not_raised(no_openlineage_env, tmp_path, graph, caplog):
    file_transport(no_openlineage_env, tmp_path, tmp_path / "events.jsonl")
    with caplog.at_level(logging.ERROR, logger="lethe.openlineage.emitter"):
        assert LineageEmitter.from_environment(NS).dataset_version(graph, "nope:0") == 0
    assert any("FactsError" in r.getMessage() and "'nope:0'" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "events.jsonl").exists()


def _written(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _identifiers(graph) -> list[str]:
    """Every record id and subject key in the graph: none may leave in an event."""
    rows = graph.read("MATCH (r:Record) RETURN r.id AS v UNION MATCH (s:Subject) RETURN s.key AS v")
    return [row["v"] for row in rows]


def test_the_trained_pipelines_events_through_a_file_transport(pipeline, no_openlineage_env, tmp_path):
    """The emitter on the trained pipeline's graph, configured as users do (OPENLINEAGE_CONFIG, file transport):
    every event written validates, and none holds a record id, subject key or email address."""
    graph, target = pipeline["graph"], tmp_path / "events.jsonl"
    file_transport(no_openlineage_env, tmp_path, target)
    version_id = graph.read("MATCH (d:DatasetVersion) RETURN d.id AS id")[0]["id"]
    served = graph.read("MATCH (:Adapter)-[:MERGED_INTO]->(a:Adapter) RETURN DISTINCT a.id AS id")[0]["id"]
    emitter = LineageEmitter.from_environment(NS)
    sent = (emitter.dataset_version(graph, version_id) + emitter.fine_tune(graph, served, version_id)
            + emitter.deployment(graph, "support-bot"))
    events = _written(target)
    assert sent == len(events) == 6
    for event in events:
        assert_valid(event)
    assert [e["job"]["name"] for e in events] == ["lethe.dataset_version"] * 2 + ["lethe.fine_tune"] * 2 + [
        "lethe.deployment"] * 2
    version = events[1]["outputs"][0]["facets"]["lethe"]
    stored = graph.read("MATCH (d:DatasetVersion {id: $id}) RETURN d.manifest_root AS m, d.holdout_root AS h",
                        id=version_id)[0]
    assert (version["manifestRoot"], version["holdoutRoot"]) == (stored["m"], stored["h"])
    assert version["trainingRecordCount"] + version["heldOutRecordCount"] == len(pipeline_records(graph))
    text = target.read_text()
    leaked = [v for v in _identifiers(graph) if v in text]
    assert not leaked and not EMAIL.search(text), leaked[:3]


def pipeline_records(graph) -> list[str]:
    return [r["id"] for r in graph.read("MATCH (r:Record) RETURN r.id AS id")]


def test_the_assets_emit_after_their_writes(scratch_pipeline, no_openlineage_env, tmp_path):
    """dataset_version and deployment materialized again in Dagster send their events (fine_tune's output is
    loaded from the run before, not trained again)."""
    import dagster as dg

    target = tmp_path / "events.jsonl"
    file_transport(no_openlineage_env, tmp_path, target)
    defs, instance = scratch_pipeline["defs"], scratch_pipeline["instance"]
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey("dataset_version"),
                                                                        dg.AssetKey("deployment")])
    assert result.success
    events = _written(target)
    for event in events:
        assert_valid(event)
    assert {(e["job"]["name"], e["eventType"]) for e in events} == {
        (job_name, state) for job_name in ("lethe.dataset_version", "lethe.deployment")
        for state in ("START", "COMPLETE")}
    # The resource was built from the settings before the variable was set: the default namespace.
    assert {e["job"]["namespace"] for e in events} == {"lethe://default"}


def test_lethe_lineage_emit_sends_what_the_graph_holds_and_says_what_to_set(pipeline, no_openlineage_env, tmp_path):
    from typer.testing import CliRunner

    from lethe.cli.main import app

    unset = CliRunner().invoke(app, ["lineage", "emit"], env=pipeline["env"])
    assert unset.exit_code == 2 and "OPENLINEAGE_URL" in unset.output, unset.output
    target = tmp_path / "events.jsonl"
    file_transport(no_openlineage_env, tmp_path, target)
    done = CliRunner().invoke(app, ["lineage", "emit"], env=pipeline["env"])
    assert done.exit_code == 0 and "sent 6 OpenLineage event(s)" in done.output, done.output
    events = _written(target)
    for event in events:
        assert_valid(event)
    assert sorted({e["job"]["name"] for e in events}) == ["lethe.dataset_version", "lethe.deployment",
                                                          "lethe.fine_tune"]
