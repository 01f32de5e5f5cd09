"""Statement and predicate models: nothing missing, nothing extra, no naive times, honest verdicts, no identifiers."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from attestation import (Envelope, IdentifierLeakError, Request, StatementError, build_statement,
                         parse_statement, sign_statement, statement_payload, subject)
from attestation.encoding import canonical_json
from attestation.identifier_guard import identifier_kind
from lineage.keys import SubjectKeyer
from tests.attestation.attestation_fixtures import (ATTESTATION_KEY, SCOPE, make_predicate, make_statement,
                                                    predicate_json)

# Dicts whose keys are data (score names, config keys), not schema fields.
DATA_DICTS = {"config", "scores", "metrics", "steps_seconds", "thresholds", "holdout"}


def _field_paths(value, path=()):
    """Every schema field's path in a JSON value (the first element stands for each list)."""
    if isinstance(value, dict) and (not path or path[-1] not in DATA_DICTS):
        for key, item in value.items():
            yield path + (key,)
            yield from _field_paths(item, path + (key,))
    elif isinstance(value, list) and value:
        yield from _field_paths(value[0], path + (0,))


def _parent(value, path):
    for key in path[:-1]:
        value = value[key]
    return value


ALL_FIELDS = [p for p in _field_paths(predicate_json()) if p[-1] != 0]


@pytest.mark.parametrize("path", ALL_FIELDS, ids=lambda p: ".".join(map(str, p)))
def test_every_field_is_required(path):
    value = predicate_json()
    del _parent(value, path)[path[-1]]
    with pytest.raises(ValidationError):
        make_predicate(value)


def _model_paths(value, path=()):
    """Every JSON object in a value that is a model (not a data dict), list items included."""
    if isinstance(value, dict):
        if not path or path[-1] not in DATA_DICTS:
            yield path
        if not path or path[-1] != "config":
            for key, item in value.items():
                yield from _model_paths(item, path + (key,))
    elif isinstance(value, list) and value:
        yield from _model_paths(value[0], path + (0,))


MODELS = list(_model_paths(predicate_json()))


@pytest.mark.parametrize("path", MODELS, ids=lambda p: ".".join(map(str, p)) or "(predicate)")
def test_extra_fields_are_refused(path):
    value = predicate_json()
    _parent(value, path + ("unexpected",))["unexpected"] = 1
    with pytest.raises(ValidationError, match="Extra inputs"):
        make_predicate(value)


TIMESTAMPS = [p for p in ALL_FIELDS if isinstance(_parent(predicate_json(), p)[p[-1]], str)
              and _parent(predicate_json(), p)[p[-1]].endswith(":00Z")]


@pytest.mark.parametrize("path", TIMESTAMPS, ids=lambda p: ".".join(map(str, p)))
def test_naive_timestamps_are_refused(path):
    value = predicate_json()
    _parent(value, path)[path[-1]] = _parent(value, path)[path[-1]].rstrip("Z")
    with pytest.raises(ValidationError, match="timezone"):
        make_predicate(value)


def test_naive_datetimes_are_refused_from_python_too():
    with pytest.raises(ValidationError):
        Request(reference="req_12345678", subject_key="a" * 64, regime="gdpr", received_at=datetime(2025, 1, 1),
                due_at=datetime(2025, 2, 1), extended_due_at=None, extension_reason=None)


def test_strings_are_not_coerced_to_numbers():
    value = predicate_json()
    value["scope"]["record_count"] = "3"
    with pytest.raises(ValidationError):
        make_predicate(value)


def _set(value, path, new):
    _parent(value, path)[path[-1]] = new
    return value


@pytest.mark.parametrize("change, message", [
    (lambda v: _set(v, ("verdict", "reasons"), ["a scope record still flags"]), "carries no reasons"),
    (lambda v: _set(v, ("verdict",), {"status": "incomplete", "reasons": []}), "must say why"),
    (lambda v: _set(v, ("verdict",), {"status": "incomplete", "reasons": ["  "]}), "pattern"),
    (lambda v: _set(v, ("verdict", "status"), "deleted"), "erased"),
    (lambda v: _set(v, ("probes", "after"), v["probes"]["before"]), "without being listed"),
    (lambda v: _set(v, ("manifests", 0, "non_inclusion"), v["manifests"][0]["non_inclusion"][:2]), "short"),
    (lambda v: _set(v, ("request", "due_at"), "2020-01-01T00:00:00Z"), "before received_at"),
    (lambda v: _set(v, ("request", "extended_due_at"), "2025-06-01T00:00:00Z"), "give both or neither"),
    (lambda v: _set(v, ("blast_radius", "counts", "shards"), 3), "counts.shards"),
    (lambda v: _set(v, ("probes", "before", 0, "records_flagged"), 1), "records_flagged"),
    (lambda v: _set(v, ("probes", "before", 0, "auc", "value"), 0.5), "confidence interval"),
    (lambda v: _set(v, ("method", "kind"), "fuzzy"), "exact"),
    (lambda v: _set(v, ("probes", "before", 0, "auc", "method"), "bootstrap_people"), "only with it"),
    (lambda v: _set(v, ("probes", "before", 0, "auc", "n_scope_people"), 2), "only with it"),
    (lambda v: _set(v, ("probes", "before", 0, "auc"), {**v["probes"]["before"][0]["auc"], "method": "bootstrap_people",
                                                       "n_scope_people": 4, "n_holdout_people": 50}),
     "more people than records"),
    (lambda v: _set(v, ("request", "reference"), "short"), "pattern"),
])
def test_inconsistent_predicates_are_refused(change, message):
    with pytest.raises(ValidationError, match=message):
        make_predicate(change(predicate_json()))


def test_an_auc_interval_over_people_carries_their_counts():
    value = predicate_json()
    for probe in value["probes"]["before"] + value["probes"]["after"]:
        probe["auc"] |= {"method": "bootstrap_people", "n_scope_people": 1, "n_holdout_people": 60}
    auc = make_predicate(value).probes.after[0].auc
    assert (auc.method, auc.n_scope_people, auc.n_holdout_people) == ("bootstrap_people", 1, 60)


def test_an_incomplete_verdict_may_carry_partial_evidence():
    value = predicate_json()
    value["verdict"] = {"status": "incomplete", "reasons": ["one shard is still retraining"]}
    value["manifests"][0]["non_inclusion"] = value["manifests"][0]["non_inclusion"][:1]
    assert build_statement([subject("a", "0" * 64)], make_predicate(value)).predicate.verdict.status == "incomplete"


def test_payload_is_canonical_and_reproducible_across_time_zones():
    value = predicate_json()
    value["attested_at"] = "2025-03-01T14:00:00+02:00"  # the same instant as the default
    first, second = statement_payload(make_statement()), statement_payload(make_statement(make_predicate(value)))
    assert first == second == canonical_json(json.loads(first))
    assert b'"attested_at":"2025-03-01T12:00:00Z"' in first
    assert parse_statement(first) == make_statement()


@pytest.mark.parametrize("field, value, message", [
    ("_type", "https://in-toto.io/Statement/v0.1", "_type"),
    ("predicateType", "https://slsa.dev/provenance/v1", "predicateType"),
])
def test_parse_refuses_other_statement_and_predicate_types(field, value, message):
    raw = json.loads(statement_payload(make_statement()))
    raw[field] = value
    with pytest.raises(StatementError, match=message):
        parse_statement(canonical_json(raw))


def test_parse_refuses_non_canonical_and_non_json_payloads():
    with pytest.raises(StatementError, match="canonical"):
        parse_statement(json.dumps(json.loads(statement_payload(make_statement())), indent=1).encode())
    with pytest.raises(StatementError, match="not valid JSON"):
        parse_statement(b"\x00garbage")


def test_subject_names_must_be_unique():
    with pytest.raises(StatementError, match="unique"):
        build_statement([subject("a", "0" * 64), subject("a", "1" * 64)], make_predicate())


RAW_IDENTIFIERS = ["alice@example.com", "Mail: Bob.Smith+x@mail.example.co.uk", "+1 202 555 0142",
                   "(202) 555-0142", "call 202-555-0142 now", "2025550142", "+442071838750"]


@pytest.mark.parametrize("identifier", RAW_IDENTIFIERS)
@pytest.mark.parametrize("place", ["regime", "config", "config key", "reason", "blast id", "subject name",
                                   "utility metric", "step name"])
def test_identifiers_anywhere_are_refused_without_being_echoed(identifier, place):
    value, name = predicate_json(), "adapter:after"
    if place == "regime":
        value["request"]["regime"] = identifier
    elif place == "config":
        value["method"]["config"]["note"] = [identifier]
    elif place == "config key":
        value["method"]["config"][identifier] = 1
    elif place == "reason":
        value["verdict"] = {"status": "incomplete", "reasons": [f"left: {identifier}"]}
    elif place == "blast id":
        value["blast_radius"]["ids"]["deployments"] = [identifier]
    elif place == "utility metric":
        value["utility"]["after"][0]["metrics"][identifier] = 1.0
    elif place == "step name":
        value["timings"]["steps_seconds"][identifier] = 1.0
    else:
        name = identifier
    with pytest.raises(IdentifierLeakError) as caught:
        build_statement([subject(name, "0" * 64)], make_predicate(value))
    assert identifier not in str(caught.value)


@pytest.mark.parametrize("text", [
    "2025-03-01T12:00:00Z", "2025-03-01", "0.1.0+g905aec2", "3.14159265358", "gdpr-art17", "tickets:v2",
    "a3f1c29b0d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789abcd", "run-1234567", "12345", "v1.2.3",
    "cGF5bG9hZA==", "s3://bucket/adapters/1234567/weights.safetensors", "ft-20250301-123456",
    "550e8400-e29b-41d4-a716-446655440000", "2025-03-01T12:00:00.123456Z", "0.000123456789",
])
def test_ordinary_values_are_not_taken_for_identifiers(text):
    assert identifier_kind(text) is None


def test_no_raw_identifier_of_the_subject_reaches_the_envelope():
    pepper = bytes(range(32))
    email, phone = "Alice.Liddell@Example.com", "+1 (202) 555-0142"
    value = predicate_json()
    value["request"]["subject_key"] = SubjectKeyer(pepper).key("email", email)
    envelope = sign_statement(make_statement(make_predicate(value)), [ATTESTATION_KEY]).to_json()
    payload = Envelope.from_json(envelope).payload
    forms = [email, email.lower(), "alice", "liddell", "example.com", "2025550142", "555-0142",
             hashlib.sha256(email.lower().encode()).hexdigest(),  # an unkeyed hash is reversible by dictionary
             hashlib.sha256(b"email:" + email.lower().encode()).hexdigest(), phone]
    for text in (envelope, payload):
        assert not [f for f in forms if f.lower().encode() in text.lower()]
    assert all(h.encode() in payload for h in SCOPE)  # records appear only as hashes


def test_aware_non_utc_deadlines_are_normalized():
    request = Request(reference="req_12345678", subject_key="a" * 64, regime="ccpa",
                      received_at=datetime(2025, 1, 1, 9, tzinfo=timezone(timedelta(hours=9))),
                      due_at=datetime(2025, 2, 15, tzinfo=timezone.utc), extended_due_at=None, extension_reason=None)
    assert request.received_at == datetime(2025, 1, 1, 0, tzinfo=timezone.utc)
    assert request.received_at.utcoffset() == timedelta(0)
