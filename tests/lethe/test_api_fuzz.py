"""The API against its own OpenAPI document: generated requests (valid and not) never get a 5xx, every answer
matches the documented schema, and each operation refuses the roles it does not admit. Plus hand-written
malformed bodies, which must be refused naming the field and never echoing what was sent."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from lethe.api import Role, TokenStore, create_app
from erasure.keyring import Keyring
from lethe.settings import Settings
from lineage.content_store import ContentStore
from tests.conftest import TEST_PEPPER
from tests.lethe.test_api import EMAIL, app_settings, auth, intake, make_tokens
from tests.lineage.lineage_fixtures import build_lineage

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
EXAMPLES_PER_OPERATION = 25  # 13 operations, a few seconds each: the whole file stays well under a minute


@pytest.fixture
def fuzz_app(tmp_path, neo4j_server, graph, keyer):
    """The app over a small lineage graph and a log of three entries (real data to reach), with tokens."""
    content = ContentStore(tmp_path / "content.sqlite")
    build_lineage(graph, keyer, content, n=10)
    content.close()
    keyring = Keyring.open(tmp_path / "state")
    for index in range(3):
        keyring.log.append(f"envelope-{index}".encode())
    keyring.log.sign_checkpoint(keyring.log_keys, now=datetime(2026, 1, 10, tzinfo=timezone.utc))
    tokens = make_tokens(tmp_path / "tokens.json")
    app = create_app(app_settings(tmp_path, neo4j_server), TokenStore.load(tmp_path / "tokens.json"))
    yield app, tokens
    app.state.services.close()


# The document needs no server: an app over no state serves it (the graph opens on first use). Each test
# then calls its cases against the app of its own fixture. (schemathesis.pytest.from_fixture needs a
# pytest internal that pytest 9 no longer has.)
_DOCUMENT_ONLY = Settings(state_dir=Path("/nonexistent/lethe-api"), pepper=SecretStr(TEST_PEPPER.hex()))
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_DOCUMENT_ONLY, TokenStore({})))


CANARY = "Canary Q. Xylophone-Identifier"


def _plant_canary(body) -> str | None:
    """Put a recognizable name where the generated body has a name identifier; it must never come back."""
    for part in ("identifiers", "subject"):
        identifiers = body.get(part) if isinstance(body, dict) else None
        if isinstance(identifiers, dict) and isinstance(identifiers.get("name"), str):
            identifiers["name"] = CANARY
            return CANARY
    return None


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_generated_requests_get_no_5xx_and_documented_answers(case, fuzz_app):
    app, tokens = fuzz_app
    role = case.operation.definition.raw.get("x-lethe-role")
    if role is None:  # /healthz
        case.call_and_validate(checks=CHECKS, app=app)
        return
    canary = _plant_canary(case.body)
    response = case.call_and_validate(headers=auth(tokens[Role(role)]), checks=CHECKS, app=app)
    if canary:
        assert canary not in response.text, "an identifier was echoed"
    if response.status_code == 422:
        assert all(set(error) == {"loc", "msg"} for error in response.json()["errors"])  # never the input
    if response.status_code in (401, 405, 413):
        # without the token, a method the path does not have, or a body over 1 MiB (refused unread, for anyone)
        return
    for other in set(Role) - {Role(role)}:
        refused = case.call(headers=auth(tokens[other]), app=app)
        assert refused.status_code == 403 and role in refused.json()["detail"]


# --- hand-written malformed bodies --------------------------------------------------------------------------

@pytest.fixture
def client(fuzz_app):
    app, tokens = fuzz_app
    with TestClient(app) as test_client:
        test_client.headers.update(auth(tokens[Role.LEGAL]))
        yield test_client


def _without(body: dict, field: str) -> dict:
    return {k: v for k, v in body.items() if k != field}


@pytest.mark.parametrize("content, field", [
    (b'{"identifiers": {"email": "ada.lovelace@example.com"}, "regime": ', "body"),  # cut off: not JSON
    (json.dumps(_without(intake(), "regime")).encode(), "body.regime"),
    (json.dumps(intake(received_at="2026-01-05T09:00:00")).encode(), "body.received_at"),  # no timezone
    (json.dumps(intake(received_at="2999-01-01T00:00:00Z")).encode(), "body.received_at"),  # in the future
    (json.dumps(intake(received_at="0001-01-01T00:00:00+05:00")).encode(), "body.received_at"),  # < year 1
    (json.dumps({**intake(), "subject_name": "Ada Lovelace"}).encode(), "body.subject_name"),  # unknown field
    (json.dumps(intake(identifiers={"email": "ada.lovelace@example.com", "ssn": "078-05-1120"})).encode(),
     "body.identifiers.ssn"),
    (json.dumps(intake(identifiers={})).encode(), "body.identifiers"),
    (json.dumps(intake(regime="hipaa")).encode(), "body.regime"),
    (json.dumps(intake(requester="   ")).encode(), "body.requester"),
    (json.dumps(intake(review="maybe")).encode(), "body.review"),
    (json.dumps([intake()]).encode(), "body"),
])
def test_a_malformed_filing_is_refused_naming_the_field_never_the_values(client, content, field):
    response = client.post("/v1/requests", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    answer = response.json()
    assert any(".".join(map(str, e["loc"])).startswith(field) for e in answer["errors"]), answer
    assert field in answer["detail"]
    assert all(set(error) == {"loc", "msg"} for error in answer["errors"])  # no "input", no "ctx"
    for raw in ("lovelace", "078-05-1120", "hipaa", "maybe"):
        assert raw not in response.text.lower()


@pytest.mark.parametrize("path, content, field", [
    ("/v1/blast-radius", b"[", "body"),
    ("/v1/blast-radius", json.dumps({"subject": {"email": EMAIL}, "dataset": "d"}).encode(), "body"),
    ("/v1/blast-radius", json.dumps({"subject": {"email": EMAIL, "shoe_size": "44"}}).encode(),
     "body.subject.shoe_size"),
    ("/v1/blast-radius", json.dumps({"records": ["t-0000"], "depth": "deep"}).encode(), "body.depth"),
])
def test_a_malformed_blast_radius_query_is_refused_naming_the_field(fuzz_app, path, content, field):
    app, tokens = fuzz_app
    with TestClient(app) as engineer:
        response = engineer.post(path, content=content, headers={**auth(tokens[Role.ENGINEER]),
                                                                 "content-type": "application/json"})
    assert response.status_code == 422, response.text
    locations = [".".join(map(str, e["loc"])) for e in response.json()["errors"]]
    assert any(loc.startswith(field) for loc in locations), response.text
    assert field in response.json()["detail"] and "lovelace" not in response.text.lower()


def test_an_identifier_sent_as_a_field_name_is_not_echoed(client):
    response = client.post("/v1/requests", json={**intake(), "ada.lovelace@example.com": "x"})
    assert response.status_code == 422 and "lovelace" not in response.text.lower()
    assert "body.<field>" in response.json()["detail"]
