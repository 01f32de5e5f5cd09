"""The v2 predicate: an `erased` verdict is true both ways, and bundles issued as v1 still verify."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from pydantic import ValidationError

from attestation import (PREDICATE_TYPE_V1, STATEMENT_TYPE, StatementV1, TransparencyLog, make_bundle,
                         sign_statement, subject, verify_bundle)
from attestation.predicate import ErasurePredicate
from tests.attestation.attestation_fixtures import (ATTESTATION_KEY, LOG_KEY, NOW, ORIGIN, SCOPE, make_predicate,
                                                    predicate_json, predicate_json_v1, registry)


def _flag_first_record(value: dict, *, cause: str | None = None, listed: bool = True) -> dict:
    """The first scope record flags after the remedy; listed in the run's control (with `cause`) or not."""
    after = value["probes"]["after"][0]
    after["records"][0].update({"flagged": True, "p_value": 0.00001})
    after["records_flagged"] = 1
    if listed:
        value["false_alarm_control"]["flags_after"] = [
            {"adapter": after["adapter"], "record_hash": SCOPE[0], "p_value": 0.00004, "p_adjusted": 0.0002,
             "cause": cause}]
    return value


def test_an_exact_remedy_may_stand_erased_beside_a_chance_flag_it_reports():
    predicate = make_predicate(_flag_first_record(predicate_json()))
    assert predicate.verdict.status == "erased"
    assert predicate.false_alarm_control.flags_after[0].cause is None


@pytest.mark.parametrize("change, message", [
    (lambda v: _flag_first_record(v, cause="a near-duplicate of it is in the new training set"), "has a cause"),
    (lambda v: _flag_first_record(v, listed=False), "without being listed"),
    (lambda v: {**_flag_first_record(v), "method": {"name": "npo", "kind": "approximate", "config": {}}},
     "needs an exact remedy"),
    (lambda v: v["sweeps"]["after"]["hits"].append({"record_hash": SCOPE[0], "places": ["training"],
                                                    "kinds": ["account"], "disposition": "residue"}) or v,
     "sweep after the remedy found"),
])
def test_an_erased_verdict_with_residue_or_an_explained_flag_is_refused(change, message):
    with pytest.raises(ValidationError, match=message):
        make_predicate(change(predicate_json()))


def test_the_same_evidence_stands_as_incomplete():
    value = _flag_first_record(predicate_json(), cause="a near-duplicate of it is in the new training set")
    value["verdict"] = {"status": "incomplete", "reasons": ["record r-1 still flags: a near-duplicate of it"]}
    assert make_predicate(value).verdict.status == "incomplete"


@pytest.mark.parametrize("path, bad, message", [
    (("false_alarm_control", "flags_after"), [{"adapter": "adapter-2", "record_hash": SCOPE[0], "p_value": 0.003,
                                               "p_adjusted": 0.001, "cause": None}], "between its p-value"),
    (("training", "held_out"), 1, "must equal subject_records"),
    (("training", "never_trained"), True, "never_trained holds exactly"),
    (("identity", "identifiers"), [{"kind": "name", "hop": 1, "decision": "followed", "owned_records": 1,
                                    "people": 1, "value_found": True}], "at least one filed"),
])
def test_inconsistent_v2_sections_are_refused(path, bad, message):
    value = predicate_json()
    value[path[0]][path[1]] = bad
    with pytest.raises(ValidationError, match=message):
        make_predicate(value)


def test_a_bundle_issued_as_v1_still_verifies(tmp_path):
    predicate = ErasurePredicate.model_validate_json(json.dumps(predicate_json_v1()))
    statement = StatementV1.model_validate({"_type": STATEMENT_TYPE, "predicateType": PREDICATE_TYPE_V1,
                                            "subject": [subject("adapter:after:adapter-2", "0" * 64)],
                                            "predicate": predicate})
    envelope = sign_statement(statement, [ATTESTATION_KEY]).to_json()
    log = TransparencyLog.open(tmp_path / "log", origin=ORIGIN)
    log.append(envelope)
    note = log.sign_checkpoint([LOG_KEY], now=NOW + timedelta(minutes=1)).to_text()
    report = verify_bundle(make_bundle(envelope, log, note).to_json(), registry(),
                           now=NOW + timedelta(hours=1))
    assert report.ok, report.to_json()
    assert report.statement.predicateType == PREDICATE_TYPE_V1
    assert not hasattr(report.statement.predicate, "sweeps")
