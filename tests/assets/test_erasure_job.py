"""The erasure job and its sensor: the definitions load them, the sensor picks open requests only, and a run
of an empty-scope request ends in a signed `incomplete` attestation."""

import json
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from erasure.engine import STEPS
from erasure.requests import FiledRequest, RequestState, request_dir, write_json_atomic
from lethe.settings import Settings

PEPPER = "9a" * 32
EMAIL = "nobody.at.all@example.com"


@pytest.fixture
def lethe(tmp_path, monkeypatch):
    """Definitions and a Dagster instance on a fresh state folder (no server needed to build them)."""
    from assets.definitions import build_definitions

    state = tmp_path / "state"
    monkeypatch.setenv("LETHE_STATE_DIR", str(state))
    monkeypatch.setenv("LETHE_PEPPER", PEPPER)
    monkeypatch.delenv("LETHE_PEPPER_FILE", raising=False)
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield {"defs": build_definitions(Settings()), "instance": instance, "state": state}


@pytest.fixture
def lethe_graph(lethe, neo4j_server, graph, monkeypatch):
    """The same, with the session's Neo4j (emptied) behind the neo4j resource."""
    from assets.definitions import build_definitions

    monkeypatch.setenv("NEO4J_URI", neo4j_server.resolved_neo4j_uri())
    monkeypatch.setenv("NEO4J_USER", neo4j_server.neo4j_user)
    monkeypatch.setenv("NEO4J_PASSWORD", neo4j_server.resolved_neo4j_password())
    settings = Settings()
    return {**lethe, "defs": build_definitions(settings), "settings": settings, "graph": graph}


def filed(state, n: int, status: RequestState, *, steps=(), scope_records=()) -> str:
    """Write a filed request's folder (request.json, and the named steps) as the engine would."""
    now = datetime.now(timezone.utc)
    request = FiledRequest(id=f"er-{n:024x}", subject_keys={"email": f"{n:064x}"}, regime="gdpr",
                           received_at=now - timedelta(hours=n), due_at=now + timedelta(days=30),
                           requester="legal-team", idempotency_hmac=f"{n:064x}", filed_at=now, status=status)
    folder = request_dir(state, request.id)
    write_json_atomic(folder / "request.json", request.model_dump(mode="json"))
    for step in steps:
        # The scope is written whole (the job reads it); the sensor reads only which steps are there.
        result = {"records": list(scope_records), "subject_keys_found": 1} if step == "scope" else {}
        write_json_atomic(folder / "steps" / f"{step}.json", {"step": step, "result": result})
    return request.id


def tick(lethe):
    sensor = lethe["defs"].resolve_sensor_def("erasure_request_sensor")
    return sensor(dg.build_sensor_context(instance=lethe["instance"]))


def run(lethe, request_id: str, **config):
    job = lethe["defs"].resolve_job_def("erasure_job")
    return job.execute_in_process(instance=lethe["instance"], raise_on_error=False, run_config={
        "ops": {"run_erasure_request": {"config": {"request_id": request_id, **config}}}})


def failure_message(result) -> str:
    return "\n".join(str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure)


def test_the_definitions_hold_the_erasure_job_and_its_sensor(lethe):
    defs = lethe["defs"]
    job = defs.resolve_job_def("erasure_job")
    assert [node.name for node in job.nodes] == ["run_erasure_request"]
    assert "one filed erasure request" in job.description
    sensor = defs.resolve_sensor_def("erasure_request_sensor")
    assert sensor.job_name == "erasure_job" and sensor.minimum_interval_seconds == 30
    assert defs.resolve_sensor_def("record_batch_sensor")  # the batch sensor is still there


def test_the_sensor_requests_one_run_per_open_request_and_none_for_the_others(lethe):
    state = lethe["state"]
    wanted = filed(state, 1, RequestState.OPEN)
    scoped = filed(state, 2, RequestState.OPEN, steps=["scope", "blast_radius"])
    filed(state, 3, RequestState.AWAITING_REVIEW, steps=["scope"])
    filed(state, 4, RequestState.CLOSED, steps=STEPS)
    filed(state, 5, RequestState.INCOMPLETE, steps=STEPS)
    filed(state, 6, RequestState.IN_PROGRESS, steps=["scope"])
    filed(state, 7, RequestState.REJECTED)
    filed(state, 8, RequestState.OPEN, steps=STEPS)  # every step done: nothing left to run
    result = tick(lethe)
    assert [r.run_key for r in result.run_requests] == [scoped, wanted]  # oldest received first
    job = lethe["defs"].resolve_job_def("erasure_job")
    for request in result.run_requests:
        config = request.run_config["ops"]["run_erasure_request"]["config"]
        assert config == {"request_id": request.run_key, "method": "retrain", "escalate": True}
        assert request.tags["lethe/request"] == request.run_key
        assert dg.validate_run_config(job, request.run_config)


@pytest.mark.parametrize("make_folder", [False, True])
def test_the_sensor_skips_when_no_request_is_open(lethe, make_folder):
    if make_folder:
        filed(lethe["state"], 1, RequestState.AWAITING_REVIEW, steps=["scope"])
    result = tick(lethe)
    assert result.run_requests == [] and result.skip_reason.skip_message == "no open erasure request"


def test_the_job_runs_an_empty_scope_request_to_an_incomplete_attestation(lethe_graph):
    from erasure.engine import file_and_scope
    from lethe.wiring import erasure_context
    from erasure.requests import ErasureIntake

    settings, state = lethe_graph["settings"], lethe_graph["state"]
    intake = ErasureIntake.model_validate({
        "identifiers": {"email": EMAIL}, "regime": "gdpr", "received_at": datetime.now(timezone.utc),
        "requester": "legal-team", "idempotency_key": "case-empty-scope"})
    request, new = file_and_scope(erasure_context(settings, lethe_graph["graph"]), intake)
    assert new and request.status is RequestState.OPEN
    assert [r.run_key for r in tick(lethe_graph).run_requests] == [request.id]

    result = run(lethe_graph, request.id)
    assert result.success, failure_message(result)
    attest = json.loads((request_dir(state, request.id) / "steps" / "attest.json").read_text())
    assert attest["result"]["verdict"]["status"] == "incomplete"
    summary = result.output_for_node("run_erasure_request")
    assert summary["status"] == "incomplete" and summary["verdict"] == "incomplete"
    assert summary["bundle"].endswith("attestation.bundle.json")
    assert summary["report"].endswith("report.html")
    metadata = next(e for e in result.all_events if e.is_successful_output).event_specific_data.metadata
    assert metadata["status"].value == "incomplete" and metadata["verdict"].value == "incomplete"
    assert metadata["bundle"].value == summary["bundle"] and metadata["report"].value == summary["report"]
    logs = [e.message or "" for e in lethe_graph["instance"].all_logs(result.run_id)]
    assert any("signing and logging the attestation" in m for m in logs)
    assert not any(EMAIL in m or "nobody" in m for m in logs)  # ids and step names only
    assert not tick(lethe_graph).run_requests  # closed as incomplete: the sensor leaves it alone

    again = run(lethe_graph, request.id)  # a rerun resumes: every step is done, nothing runs twice
    assert again.success and again.output_for_node("run_erasure_request")["steps_run"] == []


@pytest.mark.parametrize("status, request_id, message", [
    (None, "er-" + "f" * 24, "`lethe erase list` shows the filed ones"),
    (RequestState.AWAITING_REVIEW, None, "waits for a review of its scope"),
])
def test_the_job_fails_loudly_naming_the_request(lethe_graph, status, request_id, message):
    borderline = {"id": "t-1", "content_sha256": "0" * 64, "reasons": ["near_duplicate"],
                  "decision": "excluded_borderline"}
    if status is not None:
        request_id = filed(lethe_graph["state"], 1, status, steps=["scope"], scope_records=[borderline])
    result = run(lethe_graph, request_id)
    text = failure_message(result)
    assert not result.success and request_id in text and message in text
