"""Bundles and consistency files: what the log operator hands an auditor, round trips and strictness."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from attestation import (Bundle, Checkpoint, ConsistencyEvidence, InputError, LogError, TransparencyLog,
                         make_bundle, make_consistency_evidence, publish, sign_checkpoint, sign_statement,
                         verify_bundle)
from attestation.encoding import canonical_json
from attestation.merkle import EMPTY_ROOT
from tests.attestation.attestation_fixtures import ATTESTATION_KEY, LOG_KEY, NOW, ORIGIN, make_statement, registry

LATER = NOW + timedelta(days=1)


def test_publish_then_audit_later_with_a_consistency_file(tmp_path):
    log = TransparencyLog.open(tmp_path / "log", origin=ORIGIN)
    log.append(b"an earlier attestation")
    bundle = publish(make_statement(), signing_keys=[ATTESTATION_KEY], log=log, log_keys=[LOG_KEY],
                     now=NOW + timedelta(minutes=1))
    assert (bundle.inclusion.index, bundle.inclusion.tree_size) == (1, 2)
    bundle.save(tmp_path / "attestation.bundle.json")
    loaded = Bundle.load(tmp_path / "attestation.bundle.json")
    assert loaded == bundle and verify_bundle(loaded.to_json(), registry(), now=LATER).ok

    for i in range(5):
        log.append(f"later {i}".encode())
    log.sign_checkpoint([LOG_KEY], now=NOW + timedelta(hours=2))
    evidence = ConsistencyEvidence.from_json(make_consistency_evidence(log, bundle.inclusion.checkpoint).to_json())
    report = verify_bundle(loaded.to_json(), registry(), consistency=evidence, now=LATER)
    assert report.ok and report.steps[-1].detail == "size 2 -> 7"


def test_make_bundle_says_what_is_missing(tmp_path):
    log = TransparencyLog.open(tmp_path / "log", origin=ORIGIN)
    envelope = sign_statement(make_statement(), [ATTESTATION_KEY])
    with pytest.raises(LogError, match="append it"):
        make_bundle(envelope, log)
    log.append(envelope.to_json())
    with pytest.raises(LogError, match="no signed checkpoint"):
        make_bundle(envelope, log)
    early = sign_checkpoint(Checkpoint(ORIGIN, 0, EMPTY_ROOT, NOW), [LOG_KEY]).to_text()
    with pytest.raises(LogError, match="predates entry 0"):
        make_bundle(envelope, log, early)
    with pytest.raises(LogError, match="no signed checkpoint"):
        make_consistency_evidence(TransparencyLog.open(tmp_path / "empty", origin=ORIGIN), early)


def _bundle_json(tmp_path) -> dict:
    log = TransparencyLog.open(tmp_path / "log", origin=ORIGIN)
    bundle = publish(make_statement(), signing_keys=[ATTESTATION_KEY], log=log, log_keys=[LOG_KEY],
                     now=NOW + timedelta(minutes=1))
    return json.loads(bundle.to_json())


@pytest.mark.parametrize("change, message", [
    (lambda b: b.update(format="lethe-attestation-bundle/v0"), "format"),
    (lambda b: b.pop("log"), "exactly"),
    (lambda b: b["log"].update(index=-1), "non-negative"),
    (lambda b: b["log"].update(index=True), "non-negative"),
    (lambda b: b["log"].update(tree_size=1.0), "non-negative"),
    (lambda b: b["log"].update(inclusion_proof="AAAA"), "must be a list"),
    (lambda b: b["log"].update(extra=1), "exactly"),
])
def test_malformed_bundles_are_refused(tmp_path, change, message):
    value = _bundle_json(tmp_path)
    change(value)
    with pytest.raises(InputError, match=message):
        Bundle.from_json(canonical_json(value))


def test_bundle_files_may_end_with_one_newline_only(tmp_path):
    data = canonical_json(_bundle_json(tmp_path))
    assert Bundle.from_json(data) == Bundle.from_json(data + b"\n")
    for bad in (data + b"\n\n", data + b" ", b" " + data):
        with pytest.raises(InputError):
            Bundle.from_json(bad)


@pytest.mark.parametrize("value", [
    {"format": "lethe-consistency-proof/v2", "checkpoint": "x", "proof": []},
    {"format": "lethe-consistency-proof/v1", "checkpoint": "x", "proof": "AAAA"},
    {"format": "lethe-consistency-proof/v1", "checkpoint": "x"},
    {"format": "lethe-consistency-proof/v1", "checkpoint": "x", "proof": ["not base64!"]},
])
def test_malformed_consistency_files_are_refused(value):
    with pytest.raises(InputError):
        ConsistencyEvidence.from_json(canonical_json(value))
