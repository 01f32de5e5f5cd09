"""The HTTP API as its three kinds of callers use it, against the session's real Neo4j."""

from __future__ import annotations

import json
import logging
import os
import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from attestation.checkpoint import parse_checkpoint
from attestation.encoding import b64decode_strict
from attestation.merkle import leaf_hash, verify_consistency, verify_inclusion
from lethe.api import Role, TokenStore, create_app, create_token
from lethe.api.guard import GuardedRoute
from lethe.cli.api import api_app
from erasure.errors import ConfigurationError
from erasure.requests import request_dir
from erasure.run_folder import save_step
from lineage.content_store import ContentStore
from lineage.errors import PepperError
from lineage.impact import Preflight
from tests.conftest import TEST_PEPPER
from tests.lineage.lineage_fixtures import build_lineage

EMAIL, PHONE, NAME = "Ada.Lovelace@example.com", "+1 202 555 0142", "Ada Lovelace"
# Any of these in an answer, a file or the graph is a leak (compared case-insensitively).
RAW = ("ada.lovelace@example.com", "2025550142", "202 555 0142", "lovelace")
ROLES = tuple(Role)


def app_settings(tmp_path: Path, neo4j_server):
    """Settings of an API over a fresh state folder, on the session's Neo4j, keyed with the test pepper."""
    return neo4j_server.model_copy(update={
        "state_dir": tmp_path / "state", "pepper": SecretStr(TEST_PEPPER.hex()),
        "neo4j_uri": neo4j_server.resolved_neo4j_uri(),
        "neo4j_password": SecretStr(neo4j_server.resolved_neo4j_password())})


def make_tokens(path: Path) -> dict[Role, str]:
    return {role: create_token(path, role, f"test-{role.value}") for role in ROLES}


def auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def intake(key: str = "case-1", email: str = EMAIL, **changes) -> dict:
    body = {"identifiers": {"email": email, "phone": PHONE, "name": NAME}, "regime": "gdpr",
            "received_at": "2026-01-05T09:00:00+01:00", "requester": "privacy-ops", "idempotency_key": key}
    return {**body, **changes}


def assert_no_identifier(text: str, where: str) -> None:
    lowered = text.lower()
    assert not [raw for raw in RAW if raw in lowered], f"raw identifier in {where}"


@pytest.fixture
def world(tmp_path, neo4j_server, graph, keyer):
    """An API over a graph with Ada's tickets in a dataset version, and tokens of each role."""
    settings = app_settings(tmp_path, neo4j_server)
    content = ContentStore(tmp_path / "content.sqlite")
    plan, _ = build_lineage(graph, keyer, content, n=20)
    content.close()
    tokens = make_tokens(settings.state_dir / "api-tokens.json")
    app = create_app(settings)
    with TestClient(app) as client:
        yield {"client": client, "tokens": tokens, "settings": settings, "dataset": plan.version.id,
               "graph": graph}


def file(world, body: dict | None = None):
    legal = auth(world["tokens"][Role.LEGAL])
    return world["client"].post("/v1/requests", json=body or intake(), headers=legal)


# --- every route × every caller -----------------------------------------------------------------------------

def route_table(request_id: str, dataset: str) -> list[tuple[str, str, dict | None, Role, int]]:
    """(method, path, body, the one role admitted, that role's status in a world with one filed request)."""
    blast = {"subject": {"email": EMAIL}, "depth": 4}
    return [
        ("POST", "/v1/requests", intake(), Role.LEGAL, 200),  # filed already: the same request
        ("GET", f"/v1/requests/{request_id}", None, Role.LEGAL, 200),
        ("POST", f"/v1/requests/{request_id}/extension", {"reason": "complex request"}, Role.LEGAL, 200),
        ("GET", "/v1/register", None, Role.AUDITOR, 200),
        ("GET", f"/v1/requests/{request_id}/attestation", None, Role.AUDITOR, 404),  # not attested yet
        ("GET", f"/v1/requests/{request_id}/report", None, Role.AUDITOR, 404),
        ("GET", f"/v1/requests/{request_id}/report.json", None, Role.AUDITOR, 404),
        ("GET", "/v1/keys", None, Role.AUDITOR, 404),  # no keyring before the first attestation
        ("GET", "/v1/log/checkpoint", None, Role.AUDITOR, 404),
        ("GET", "/v1/log/consistency?old_size=0", None, Role.AUDITOR, 404),
        ("GET", "/v1/log/entries/0/inclusion?tree_size=1", None, Role.AUDITOR, 404),
        ("POST", "/v1/blast-radius", blast, Role.ENGINEER, 200),
        ("GET", f"/v1/preflight/{dataset}", None, Role.ENGINEER, 200),
    ]


def test_the_table_covers_every_api_route(world):
    routes = {(method.upper(), path) for path, operations in world["client"].app.openapi()["paths"].items()
              for method in operations if path != "/healthz"}
    request_id = "er-" + "0" * 24
    table = {(m, p.split("?")[0]) for m, p, *_ in route_table(request_id, "d")}
    templated = {(m, p.replace(request_id, "{request_id}").replace("/preflight/d", "/preflight/{dataset}")
                  .replace("/entries/0/", "/entries/{index}/")) for m, p in table}
    assert routes == templated


@pytest.mark.parametrize("caller", [*ROLES, "no token", "bogus token"])
def test_every_route_admits_only_its_role(world, caller):
    request_id = file(world).json()["id"]
    token = {"no token": None, "bogus token": "not-a-token"}.get(caller) or world["tokens"].get(caller)
    wrong = []
    for method, path, body, role, allowed_status in route_table(request_id, world["dataset"]):
        response = world["client"].request(method, path, json=body, headers=auth(token))
        if caller == role:
            expected = allowed_status
        elif caller in ROLES:
            expected = 403
            assert f"role {role.value!r}" in response.json()["detail"], path
        else:
            expected = 401
            assert response.headers["www-authenticate"].startswith("Bearer"), path
        if response.status_code != expected:
            wrong.append(f"{method} {path}: {response.status_code}, not {expected}: {response.text[:150]}")
        assert_no_identifier(response.text, f"{method} {path}")
    assert not wrong, "\n".join(wrong)


def test_auth_is_checked_before_the_body_is_read(world):
    # Malformed JSON from an unauthenticated caller is a 401, not a 422 that describes the schema.
    as_json = {"content-type": "application/json"}
    response = world["client"].post("/v1/requests", content=b"{not json", headers=as_json)
    assert response.status_code == 401
    engineer = auth(world["tokens"][Role.ENGINEER])
    response = world["client"].post("/v1/requests", content=b"{not json", headers=engineer)
    assert response.status_code == 403 and "legal" in response.json()["detail"]


def test_health_needs_no_token(world):
    assert world["client"].get("/healthz").json() == {"status": "ok"}


# --- legal --------------------------------------------------------------------------------------------------

def test_filing_is_idempotent_and_a_conflicting_reuse_is_refused(world, caplog):
    caplog.set_level(logging.DEBUG)
    first, again = file(world), file(world)
    assert first.status_code == 201 and again.status_code == 200
    assert first.json() == again.json()
    summary = first.json()
    assert summary["id"].startswith("er-") and summary["status"] == "open" and summary["regime"] == "gdpr"
    assert summary["received_at"].startswith("2026-01-05T08:00:00")  # in UTC
    assert summary["due_at"].startswith("2026-02-05")  # GDPR: one month
    assert summary["deadline"] == summary["due_at"]

    conflict = file(world, intake(email="someone.else@example.com"))
    assert conflict.status_code == 409 and "idempotency key" in conflict.json()["detail"]
    other = file(world, intake(key="case-2", review=True))
    assert other.status_code == 201 and other.json()["id"] != summary["id"]
    assert other.json()["review"] is True and summary["review"] is False

    # No raw identifier in the answers, the run folders, the graph or the logs.
    for response in (first, again, conflict, other):
        assert_no_identifier(response.text, "an answer")
    for path in (world["settings"].state_dir / "requests").rglob("*"):
        if path.is_file():
            assert_no_identifier(path.read_text(encoding="utf-8"), str(path))
    nodes = world["graph"].read("MATCH (q:ErasureRequest) RETURN properties(q) AS p")
    assert len(nodes) == 2
    assert_no_identifier(json.dumps([n["p"] for n in nodes], default=str), "the ErasureRequest nodes")
    assert_no_identifier("\n".join(r.getMessage() for r in caplog.records), "the logs")


def test_the_request_targets_the_subject_keys_it_knows(world):
    request_id = file(world).json()["id"]
    targets = world["graph"].read(
        "MATCH (:ErasureRequest {id: $id})-[:TARGETS]->(s:Subject) RETURN s.key AS key", id=request_id)
    assert len(targets) == 3  # email, phone and name each keyed to a subject of the tickets


def test_status_lists_the_steps_done_and_the_verdict(world):
    request_id = file(world).json()["id"]
    headers = auth(world["tokens"][Role.LEGAL])
    status = world["client"].get(f"/v1/requests/{request_id}", headers=headers).json()
    assert status["steps_done"] == ["identity", "scope"] and status["verdict"] is None  # resolved at filing
    verdict = {"status": "incomplete", "reasons": ["record t-0007 still holds the subject's email (content_store)"]}
    save_step(world["settings"].state_dir, request_id, "attest", datetime.now(timezone.utc),
              {"bundle": "attestation.bundle.json", "envelope_sha256": "0" * 64, "log_index": 0, "verdict": verdict,
               "registry": "registry.json"})
    status = world["client"].get(f"/v1/requests/{request_id}", headers=headers).json()
    assert status["steps_done"] == ["attest", "identity", "scope"] and status["verdict"] == verdict


def test_an_unknown_request_is_404_and_a_malformed_id_never_reaches_the_disk(world):
    headers = auth(world["tokens"][Role.LEGAL])
    missing = world["client"].get("/v1/requests/er-" + "0" * 24, headers=headers)
    assert missing.status_code == 404 and "no erasure request" in missing.json()["detail"]
    for bad in ("er-XYZ", "..", "er-" + "0" * 23 + "%2F", "er-0000000000000000000000000"):
        response = world["client"].get(f"/v1/requests/{bad}", headers=headers)
        assert response.status_code in (404, 422), bad
        if response.status_code == 422:
            assert response.json()["errors"][0]["loc"] == ["path", "request_id"]


def test_a_deadline_is_extended_once(world):
    request_id = file(world).json()["id"]
    headers = auth(world["tokens"][Role.LEGAL])
    url = f"/v1/requests/{request_id}/extension"
    extended = world["client"].post(url, json={"reason": "complex request"}, headers=headers)
    assert extended.status_code == 200
    assert extended.json()["deadline"].startswith("2026-04-05") and extended.json()["extended_due_at"]
    again = world["client"].post(url, json={"reason": "still complex"}, headers=headers)
    assert again.status_code == 400 and "already extended" in again.json()["detail"]
    blank = world["client"].post(url, json={"reason": "  "}, headers=headers)
    assert blank.status_code == 422 and blank.json()["errors"][0]["loc"] == ["body", "reason"]


def test_an_identifier_that_cannot_be_keyed_is_named_not_echoed(world):
    response = file(world, intake(email="ada-at-example.com"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "identifiers", "email"]
    assert "email" in response.json()["detail"] and "ada-at-example" not in response.text
    assert not (world["settings"].state_dir / "requests").exists()


# --- auditor ------------------------------------------------------------------------------------------------

def test_the_register_lists_the_filed_requests(world):
    request_id = file(world).json()["id"]
    rows = world["client"].get("/v1/register", headers=auth(world["tokens"][Role.AUDITOR])).json()
    assert [row["id"] for row in rows] == [request_id]
    assert rows[0]["attested"] is False and rows[0]["verdict"] is None and rows[0]["report"] is None


def test_attestation_and_reports_are_served_byte_for_byte_once_written(world):
    request_id = file(world).json()["id"]
    headers = auth(world["tokens"][Role.AUDITOR])
    folder = request_dir(world["settings"].state_dir, request_id)
    missing = world["client"].get(f"/v1/requests/{request_id}/attestation", headers=headers)
    assert "not been attested yet" in missing.json()["detail"]
    bundle = b'{"format": "bundle", "envelope": {}}\n'
    (folder / "attestation.bundle.json").write_bytes(bundle)
    (folder / "report.html").write_text("<html><body>erased</body></html>")
    (folder / "report.json").write_text('{"verdict": "erased"}')
    served = world["client"].get(f"/v1/requests/{request_id}/attestation", headers=headers)
    assert served.status_code == 200 and served.content == bundle
    assert served.headers["content-type"] == "application/json"
    html = world["client"].get(f"/v1/requests/{request_id}/report", headers=headers)
    assert html.headers["content-type"].startswith("text/html") and "erased" in html.text
    assert world["client"].get(f"/v1/requests/{request_id}/report.json", headers=headers).json() == {
        "verdict": "erased"}
    rows = world["client"].get("/v1/register", headers=headers).json()
    assert rows[0]["report"] == f"/v1/requests/{request_id}/report"  # the API's address, not a server path


def test_keys_checkpoint_and_proofs_come_from_the_keyring(world):
    from erasure.keyring import Keyring

    headers, client = auth(world["tokens"][Role.AUDITOR]), world["client"]
    keyring = Keyring.open(world["settings"].state_dir)
    entries = [f"envelope-{i}".encode() for i in range(5)]
    for entry in entries[:3]:
        keyring.log.append(entry)
    keyring.log.sign_checkpoint(keyring.log_keys, now=datetime(2026, 1, 10, tzinfo=timezone.utc))
    old = parse_checkpoint(client.get("/v1/log/checkpoint", headers=headers).json()["checkpoint"]).checkpoint
    for entry in entries[3:]:
        keyring.log.append(entry)
    keyring.log.sign_checkpoint(keyring.log_keys, now=datetime(2026, 1, 11, tzinfo=timezone.utc))

    registry = client.get("/v1/keys", headers=headers)
    assert registry.status_code == 200 and registry.content == keyring.registry_path.read_bytes()

    answer = client.get("/v1/log/consistency", params={"old_size": old.size}, headers=headers).json()
    new = parse_checkpoint(answer["checkpoint"]).checkpoint
    assert (answer["old_size"], answer["tree_size"], new.size) == (3, 5, 5)
    verify_consistency(3, 5, old.root, new.root, [b64decode_strict(h, "hash") for h in answer["proof"]])

    for index in range(5):
        proof = client.get(f"/v1/log/entries/{index}/inclusion", headers=headers).json()
        assert proof["tree_size"] == 5
        path = [b64decode_strict(h, "hash") for h in proof["proof"]]
        verify_inclusion(leaf_hash(entries[index]), index, 5, path, new.root)

    beyond = client.get("/v1/log/consistency", params={"old_size": 9}, headers=headers)
    assert beyond.status_code == 400 and "9" in beyond.json()["detail"]
    outside = client.get("/v1/log/entries/7/inclusion", params={"tree_size": 5}, headers=headers)
    assert outside.status_code == 400 and "7" in outside.json()["detail"]


# --- engineer -----------------------------------------------------------------------------------------------

def test_blast_radius_from_a_subject_records_or_a_dataset(world, keyer):
    headers, client = auth(world["tokens"][Role.ENGINEER]), world["client"]
    by_email = client.post("/v1/blast-radius", json={"subject": {"email": EMAIL}}, headers=headers).json()
    assert by_email["start"] == "subject" and by_email["records"] == 4
    assert by_email["deployments"] == [{"id": "support-bot", "endpoint": "https://bot.example.com/v1"}]
    by_key = client.post("/v1/blast-radius", json={"subject_key": keyer.key("email", EMAIL)}, headers=headers)
    assert by_key.json()["records"] == 4
    by_record = client.post("/v1/blast-radius", json={"records": ["t-0000"], "depth": 2}, headers=headers)
    by_record = by_record.json()
    assert by_record["start"] == "record" and by_record["records"] == 1 and by_record["depth_limit"] == 2
    by_dataset = client.post("/v1/blast-radius", json={"dataset": world["dataset"]}, headers=headers).json()
    assert by_dataset["start"] == "dataset" and by_dataset["datasets"][0]["id"] == world["dataset"]
    unknown = client.post("/v1/blast-radius", json={"dataset": "nope:0"}, headers=headers)
    assert unknown.status_code == 404 and "nope:0" not in unknown.text  # an id is never echoed back
    for body in (by_email, by_key.json(), by_record, by_dataset):
        assert_no_identifier(json.dumps(body), "a blast radius")


@pytest.mark.parametrize("body, field", [
    ({}, "body"),
    ({"records": ["t-0000"], "dataset": "d"}, "body"),
    ({"subject": {"email": "no-at-sign"}}, "body.subject.email"),
    ({"subject": {}}, "body.subject"),
    ({"records": []}, "body.records"),
    ({"dataset": "d", "depth": 33}, "body.depth"),
    ({"subject_key": "ABC"}, "body.subject_key"),
])
def test_blast_radius_needs_exactly_one_valid_start(world, body, field):
    engineer = auth(world["tokens"][Role.ENGINEER])
    response = world["client"].post("/v1/blast-radius", json=body, headers=engineer)
    assert response.status_code == 422 and f"{field}:" in response.json()["detail"]
    if field == "body":
        assert "exactly one start" in response.json()["detail"]
    assert "no-at-sign" not in response.text


def test_preflight_says_whether_a_dataset_is_safe(world):
    headers, client = auth(world["tokens"][Role.ENGINEER]), world["client"]
    ok = client.get(f"/v1/preflight/{world['dataset']}", headers=headers).json()
    assert ok["ok"] is True and ok["blocking_reasons"] == [] and ok["records"] > 0
    file(world)  # an open request on Ada blocks the version
    blocked = client.get(f"/v1/preflight/{world['dataset']}", headers=headers).json()
    assert blocked["ok"] is False and blocked["records_under_open_requests"] > 0
    assert "open erasure request" in blocked["blocking_reasons"][0]
    missing = client.get("/v1/preflight/nope:0", headers=headers)
    assert missing.status_code == 404 and "lethe datasets" in missing.json()["detail"]


def test_preflight_answers_every_count_and_its_verdict():
    counts = dict.fromkeys(Preflight.model_fields, 0) | {"dataset": "d:1", "tombstoned_records": 2}
    answered = Preflight(**counts).model_dump()
    assert set(answered) == set(Preflight.model_fields) | {"ok", "blocking_reasons"}
    assert answered["ok"] is False and "2 tombstoned" in answered["blocking_reasons"][0]


def test_an_unreachable_graph_is_503_with_what_to_do_and_no_server_details(tmp_path, neo4j_server, caplog):
    settings = app_settings(tmp_path, neo4j_server).model_copy(update={"neo4j_uri": "bolt://127.0.0.1:9"})
    tokens = make_tokens(tmp_path / "tokens.json")
    with TestClient(create_app(settings, TokenStore.load(tmp_path / "tokens.json"))) as client:
        response = client.post("/v1/blast-radius", json={"dataset": "d"}, headers=auth(tokens[Role.ENGINEER]))
    assert response.status_code == 503 and "unavailable" in response.json()["detail"]
    assert "127.0.0.1:9" not in response.text and "bolt" not in response.text  # the URI goes to the log only
    assert any("127.0.0.1:9" in r.getMessage() for r in caplog.records)


# --- tokens, the app's preconditions, the OpenAPI document and the CLI --------------------------------------

def test_tokens_are_stored_as_digests_in_an_owner_only_file(tmp_path):
    path = tmp_path / "tokens.json"
    token = create_token(path, "auditor", "ext-audit")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    assert token not in text
    (digest, entry), = json.loads(text).items()
    assert len(digest) == 64 and entry["created_at"]
    assert (entry["role"], entry["name"]) == ("auditor", "ext-audit")
    store = TokenStore.load(path)
    assert store.authenticate(token).role is Role.AUDITOR and store.authenticate(token + "x") is None


def test_a_token_removed_from_the_file_is_refused_at_once(world):
    path = world["settings"].state_dir / "api-tokens.json"
    headers = auth(world["tokens"][Role.AUDITOR])
    assert world["client"].get("/v1/register", headers=headers).status_code == 200
    entries = {d: e for d, e in json.loads(path.read_text()).items() if e["role"] != "auditor"}
    path.write_text(json.dumps(entries))
    response = world["client"].get("/v1/register", headers=headers)
    assert response.status_code == 401 and 'error="invalid_token"' in response.headers["www-authenticate"]


@pytest.mark.parametrize("problem, message", [
    ("missing", "lethe api token create"), ("readable", "chmod 600"), ("garbage", "not valid JSON"),
    ("bad role", "role"),
])
def test_a_bad_token_file_is_refused(tmp_path, problem, message):
    path = tmp_path / "tokens.json"
    if problem != "missing":
        create_token(path, "legal", "x")
    if problem == "readable":
        path.chmod(0o644)
    elif problem == "garbage":
        path.write_text("{")
    elif problem == "bad role":
        path.write_text(json.dumps({"0" * 64: {"role": "admin", "name": "x"}}))
    with pytest.raises(ConfigurationError, match=message):
        TokenStore.load(path)


def test_the_app_refuses_to_start_without_a_pepper(tmp_path, neo4j_server):
    settings = app_settings(tmp_path, neo4j_server).model_copy(update={"pepper": None})
    with pytest.raises(PepperError):
        create_app(settings, TokenStore({}))


def test_the_openapi_document_declares_role_and_bearer_on_every_operation(tmp_path, neo4j_server):
    app = create_app(app_settings(tmp_path, neo4j_server), TokenStore({}))
    document = app.openapi()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path == "/healthz":
                assert "security" not in operation
                continue
            assert operation["x-lethe-role"] in {r.value for r in Role}, (method, path)
            assert operation["security"] == [{"HTTPBearer": []}], (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
    assert "HTTPValidationError" not in document["components"]["schemas"]  # FastAPI's, which echoes input


def test_a_route_without_a_role_cannot_be_built():
    from fastapi import APIRouter

    router = APIRouter(route_class=GuardedRoute)
    with pytest.raises(ValueError, match="declares no role"):
        router.get("/v1/open")(lambda: None)


def test_cli_creates_and_lists_tokens_and_serves_on_localhost(tmp_path, monkeypatch):
    env = {"LETHE_STATE_DIR": str(tmp_path), "LETHE_PEPPER": TEST_PEPPER.hex()}
    created = CliRunner().invoke(api_app, ["token", "create", "--role", "engineer", "--name", "ci"], env=env)
    assert created.exit_code == 0, created.output
    token = next(line for line in created.output.splitlines() if len(line) == 43)
    assert TokenStore.load(tmp_path / "api-tokens.json").authenticate(token).name == "ci"
    listed = CliRunner().invoke(api_app, ["token", "list", "--json"], env=env)
    assert json.loads(listed.output)[0]["role"] == "engineer" and token not in listed.output
    bad = CliRunner().invoke(api_app, ["token", "create", "--role", "admin", "--name", "x"], env=env)
    assert bad.exit_code == 2

    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.update(app=app, **kwargs))
    result = CliRunner().invoke(api_app, ["serve", "--port", "8765"], env=env)
    assert result.exit_code == 0, result.output
    assert (served["host"], served["port"]) == ("127.0.0.1", 8765)
    assert served["app"].title == "Lethe erasure API"
