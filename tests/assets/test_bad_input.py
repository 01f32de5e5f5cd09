"""Bad input to the pipeline: a clear failure naming what to fix, and no partial lineage."""

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lethe.demo.corpus import generate_corpus, write_jsonl
from lethe.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PEPPER = "ef" * 32


@pytest.fixture
def lethe(tmp_path, neo4j_server, graph, monkeypatch):
    """Definitions and a Dagster instance on an empty graph and a fresh state folder."""
    from assets.definitions import build_definitions

    monkeypatch.setenv("LETHE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("NEO4J_URI", neo4j_server.resolved_neo4j_uri())
    monkeypatch.setenv("NEO4J_PASSWORD", neo4j_server.resolved_neo4j_password())
    monkeypatch.setenv("LETHE_PEPPER", PEPPER)
    monkeypatch.setenv("LETHE_BASE_MODEL", str(tmp_path / "no-such-model"))
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield {"defs": build_definitions(Settings()), "instance": instance, "batches": tmp_path / "batches",
               "graph": graph, "state": tmp_path}


def ingest(lethe, name: str):
    lethe["instance"].add_dynamic_partitions("record_batches", [name])
    return lethe["defs"].resolve_job_def("ingest_batch").execute_in_process(
        partition_key=name, instance=lethe["instance"], raise_on_error=False)


def failure_message(result) -> str:
    return "\n".join(str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure)


def node_count(graph) -> int:
    return graph.read("MATCH (n) RETURN count(n) AS n")[0]["n"]


def test_an_empty_batch_fails_clearly_and_writes_nothing(lethe):
    lethe["batches"].mkdir()
    (lethe["batches"] / "empty.jsonl").write_text("\n\n")
    result = ingest(lethe, "empty.jsonl")
    assert not result.success and "the batch is empty" in failure_message(result)
    assert node_count(lethe["graph"]) == 0


def test_an_unknown_parquet_column_is_named_and_nothing_written(lethe):
    lethe["batches"].mkdir()
    table = pa.table({"id": ["t-1"], "text": ["hello there"], "source": ["helpdesk"], "colour": ["red"]})
    pq.write_table(table, lethe["batches"] / "odd.parquet")
    result = ingest(lethe, "odd.parquet")
    assert not result.success and "unknown column(s) ['colour']" in failure_message(result)
    assert node_count(lethe["graph"]) == 0


def test_a_parquet_batch_is_ingested_like_jsonl(lethe):
    lethe["batches"].mkdir()
    records = generate_corpus(customers=3, seed=5).records
    pq.write_table(pa.Table.from_pylist(records), lethe["batches"] / "ok.parquet")
    assert ingest(lethe, "ok.parquet").success
    assert lethe["graph"].read("MATCH (r:Record) RETURN count(r) AS n")[0]["n"] == len(records)


def test_a_corrupt_line_is_quarantined_without_its_content_and_the_rest_proceeds(lethe):
    records = generate_corpus(customers=3, seed=5).records
    write_jsonl(records, lethe["batches"] / "mixed.jsonl")
    path = lethe["batches"] / "mixed.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines.insert(1, b'{"id": "t-bad", "text": "", "source": "helpdesk", "subject": {"email": "zed@example.com"}}')
    lines.insert(2, b"\xff\xfe not utf-8")
    path.write_bytes(b"\n".join(lines))
    result = ingest(lethe, "mixed.jsonl")
    assert result.success
    assert lethe["graph"].read("MATCH (r:Record) RETURN count(r) AS n")[0]["n"] == len(records)
    quarantine = (lethe["state"] / "quarantine" / "mixed.jsonl.quarantine.jsonl").read_text()
    reasons = [json.loads(line) for line in quarantine.splitlines()]
    assert [(r["line"], r["field"]) for r in reasons] == [(2, "text"), (3, "line")]
    assert "zed@example.com" not in quarantine and "t-bad" not in quarantine


def test_a_missing_base_model_fails_fine_tune_and_writes_no_run(lethe):
    write_jsonl(generate_corpus(customers=4, seed=5).records, lethe["batches"] / "b.jsonl")
    assert ingest(lethe, "b.jsonl").success
    result = lethe["defs"].resolve_job_def("train_adapters").execute_in_process(
        instance=lethe["instance"], raise_on_error=False)
    message = failure_message(result)
    assert not result.success and "no-such-model" in message and "LETHE_BASE_MODEL" in message
    assert lethe["graph"].read("MATCH (n) WHERE n:FineTuneRun OR n:Adapter RETURN count(n) AS n")[0]["n"] == 0


def test_the_sensor_turns_new_batch_files_into_partitions_and_runs(lethe):
    from assets.definitions import ingest_job
    from assets.sensors import make_batch_sensor

    write_jsonl(generate_corpus(customers=2, seed=5).records, lethe["batches"] / "new.jsonl")
    sensor = make_batch_sensor(ingest_job, str(lethe["batches"]))
    context = dg.build_sensor_context(instance=lethe["instance"])
    result = sensor(context)
    assert [r.partition_key for r in result.run_requests] == ["new.jsonl"]
    assert result.dynamic_partitions_requests[0].partition_keys == ["new.jsonl"]


# slow (26 s): the `dagster` CLI loading the definitions; the default run builds and runs them in process.
@pytest.mark.slow
def test_dagster_definitions_validate(tmp_path):
    env = {"PATH": str(Path(sys.executable).parent), "DAGSTER_HOME": str(tmp_path), "LETHE_STATE_DIR": str(tmp_path),
           "HOME": str(tmp_path)}
    proc = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-m",
                           "assets.definitions"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
