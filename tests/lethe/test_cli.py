"""The `lethe` commands as a user runs them, against the session's real Neo4j."""

import json
import re
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lethe.cli.main import app
from tests.lineage.lineage_fixtures import jsonl, tickets

ROOT = Path(__file__).resolve().parents[2]


def run(env, *args):
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def test_ingest_then_blast_radius_and_preflight(env, tmp_path):
    path = tmp_path / "tickets.jsonl"
    path.write_bytes(jsonl(tickets(30)))
    result = run(env, "ingest", str(path), "--dataset", "tickets", "--shards", "3")
    assert result.exit_code == 0, result.output
    assert "records written" in result.output and "30" in result.output
    dataset = re.search(r"dataset version (tickets:[0-9a-f]{16})", result.output).group(1)

    radius = run(env, "blast-radius", "--subject-email", "ADA.lovelace@example.com", "--json")
    assert radius.exit_code == 0, radius.output
    data = json.loads(radius.output)
    assert data["records"] == 6 and data["datasets"][0]["id"] == dataset

    assert run(env, "blast-radius", "--record", "t-0001").exit_code == 0
    assert "Blast radius of the dataset" in run(env, "blast-radius", "--dataset", dataset).output
    ok = run(env, "preflight", dataset)
    assert ok.exit_code == 0 and "OK" in ok.output

    assert run(env, "tombstone", "t-0001").exit_code == 0
    blocked = run(env, "preflight", dataset, "--json")
    assert blocked.exit_code == 1 and json.loads(blocked.output)["tombstoned_records"] == 1
    log = (tmp_path / "state" / "logs" / "lethe.log").read_text()
    assert "ingested 30 records" in log and "lovelace" not in log.lower()


def test_a_malformed_file_is_refused_with_line_and_field_and_writes_nothing(env, tmp_path, graph):
    records = tickets(4)
    records[2]["text"] = ""
    path = tmp_path / "bad.jsonl"
    path.write_bytes(jsonl(records))
    result = run(env, "ingest", str(path))
    assert result.exit_code == 2
    assert "line 3: field 'text'" in result.output and "Traceback" not in result.output
    assert graph.read("MATCH (n) RETURN count(n) AS n")[0]["n"] == 0


@pytest.mark.parametrize("args", [["blast-radius"], ["blast-radius", "--record", "r", "--dataset", "d"]])
def test_blast_radius_needs_exactly_one_start(env, args):
    result = run(env, *args)
    assert result.exit_code == 2 and "exactly one start" in result.output


@pytest.mark.parametrize("args", [["ingest", "t.jsonl"], ["preflight", "d"], ["datasets"]])
def test_without_a_pepper_lethe_refuses_to_start(env, args):
    result = run({**env, "LETHE_PEPPER": ""}, *args)
    assert result.exit_code == 2 and "pepper" in result.output and "Traceback" not in result.output


def test_server_commands_run_without_a_pepper(env):
    assert run({**env, "LETHE_PEPPER": ""}, "neo4j", "status").exit_code == 0


def test_neo4j_down_gives_a_clear_message_within_seconds(env):
    started = time.monotonic()
    result = run({**env, "NEO4J_URI": "bolt://127.0.0.1:9"}, "preflight", "anything")
    assert result.exit_code == 3 and "cannot reach the Neo4j that NEO4J_URI names (bolt://127.0.0.1:9)" in result.output
    assert "lethe neo4j start` starts only Lethe's own server" in result.output  # not told to start the wrong one
    assert "Traceback" not in result.output and time.monotonic() - started < 20


def test_wrong_password_gives_a_clear_message(env):
    result = run({**env, "NEO4J_PASSWORD": "not-the-password"}, "neo4j", "status")
    assert result.exit_code == 3 and "wrong user or password" in result.output


def test_status_prints_the_server_version(env):
    result = run(env, "neo4j", "status")
    assert result.exit_code == 0 and "Neo4j/5.26" in result.output


def test_every_command_is_in_the_readme():
    # The README is the front door; the command reference is docs/operations.md.
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    readme = "\n".join(page.read_text() for page in pages)
    def name(command):
        return command.name or command.callback.__name__.replace("_", "-")

    names = [name(c) for c in app.registered_commands] + [
        f"{g.name} {name(c)}" for g in app.registered_groups for c in g.typer_instance.registered_commands]
    missing = [n for n in names if f"lethe {n}" not in readme]
    assert not missing, f"commands missing from README.md and docs/: {missing}"


@pytest.mark.parametrize("args, message", [
    (["--method", "forget_harder"], "unknown remedy method 'forget_harder'; choose one of"),
    (["--method", "npo", "--set", "beta=-1"], "bad config for method 'npo': beta"),
    (["--set", "oops"], "--set takes KEY=VALUE"),
])
def test_remedy_refuses_bad_methods_and_settings_before_any_work(env, tmp_path, args, message):
    result = run(env, "remedy", "--adapter", str(tmp_path), "--record", "t-1", *args)
    assert result.exit_code == 2 and message in " ".join(result.output.split())


@pytest.mark.parametrize("document, message", [
    ({"identifiers": {"email": "ada@example.com"}, "requester": "legal", "idempotency_key": "k1"}, "regime"),
    ({"identifiers": {"email": "ada@example.com"}, "regime": "lgpd", "requester": "legal",
      "idempotency_key": "k1"}, "regime"),
    ({"identifiers": {"email": "ada@example.com"}, "regime": "gdpr", "requester": "legal", "idempotency_key": "k1",
      "received_at": "2026-01-01T09:00:00"}, "timezone"),
    ({"identifiers": {}, "regime": "gdpr", "requester": "legal", "idempotency_key": "k1"}, "at least one identifier"),
    ({"identifiers": {"email": "not-an-email"}, "regime": "gdpr", "requester": "legal", "idempotency_key": "k1"},
     "identifiers.email"),
])
def test_erase_file_refuses_a_bad_request_naming_the_field_never_the_value(env, tmp_path, document, message):
    path = tmp_path / "request.json"
    path.write_text(json.dumps(document))
    result = run(env, "erase", "file", str(path))
    assert result.exit_code == 2 and message in result.output, result.output
    assert "ada@example.com" not in result.output and "not-an-email" not in result.output
    assert not (tmp_path / "state" / "requests").exists()  # nothing filed


def test_erase_status_of_an_unknown_request_says_how_to_list_them(env):
    result = run(env, "erase", "status", "er-000000000000000000000000")
    assert result.exit_code == 4 and "lethe erase list" in result.output, result.output


def test_help_needs_no_pepper(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("LETHE_PEPPER")}
    lethe = Path(sys.executable).with_name("lethe")
    for command in (["erase", "file"], ["blast-radius"], ["ingest"], ["pipeline", "run"]):
        done = subprocess.run([str(lethe), *command, "--help"], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0 and "Usage" in done.stdout, (command, done.stderr)
    refused = subprocess.run([str(lethe), "datasets"], env={**env, "LETHE_STATE_DIR": str(tmp_path)}, cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "no pepper" in refused.stderr


def test_pipeline_run_says_what_is_missing_before_any_run(env, tmp_path):
    empty = run(env, "pipeline", "run")
    assert empty.exit_code == 2 and "no batch file" in empty.output and "LETHE_BATCHES_DIR" in empty.output
    batches = tmp_path / "state" / "batches"
    batches.mkdir(parents=True)
    (batches / "tickets.jsonl").write_bytes(jsonl(tickets(4)))
    no_model = run(env, "pipeline", "run")
    assert no_model.exit_code == 2 and "LETHE_BASE_MODEL" in no_model.output
    bad_form = run(env, "pipeline", "run", "--form", "int3")
    assert bad_form.exit_code == 2 and "unknown served form 'int3'" in bad_form.output, bad_form.output
    assert not (tmp_path / "state" / "dagster").exists()  # nothing ran


# slow (two Dagster runs through the CLI, and a third only to register): the demo runs the same code by default.
@pytest.mark.slow
def test_pipeline_run_ingests_new_batches_once_and_trains(env, tmp_path, tiny_base_model, graph):
    batches = tmp_path / "state" / "batches"
    batches.mkdir(parents=True)
    (batches / "tickets-1.jsonl").write_bytes(jsonl(tickets(24)))
    env = {**env, "LETHE_BASE_MODEL": str(tiny_base_model)}
    first = run(env, "pipeline", "run", "--epochs", "1", "--holdout-fraction", "0.1", "--form", "nf4")
    assert first.exit_code == 0 and "ingested 1 new batch file(s) of 1" in first.output, first.output
    served = graph.read("MATCH (r:Record)-[:IN]->(:Shard)-[:PART_OF]->(:DatasetVersion), "
                        "(a:Adapter)-[:DEPLOYED_TO]->(d:Deployment) RETURN count(DISTINCT r) AS records, "
                        "count(DISTINCT a) AS adapters, collect(DISTINCT d.form) AS forms")[0]
    assert served["adapters"] == 1 and 0 < served["records"] <= 24 and served["forms"] == ["4bit-nf4"], served
    again = run(env, "pipeline", "run", "--epochs", "1", "--holdout-fraction", "0.1")
    assert again.exit_code == 0 and "ingested 0 new batch file(s) of 1" in again.output, again.output
    assert "nothing new to train on" in again.output
