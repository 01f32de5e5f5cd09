"""The offline verifier: a valid bundle passes every step; each kind of failure has its own exit code."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

import attestation.errors as errors_module
from attestation import (EXIT_CODES, PAYLOAD_TYPE_IN_TOTO, STEPS, AttestationError, Bundle, Checkpoint,
                         ConsistencyEvidence, InclusionEvidence, KeyEntry, KeyPurpose, TransparencyLog,
                         build_statement, dir_sha256, make_bundle, sign_checkpoint, sign_envelope,
                         sign_statement, statement_payload, subject_of_path, verify_attestation,
                         verify_bundle)
from attestation.encoding import canonical_json
from tests.attestation.attestation_fixtures import (ADAPTER_AFTER_SHA, ATTESTATION_KEY, LOG_KEY, NOW, ORIGIN,
                                                    OTHER_KEY, World, build_world, make_predicate,
                                                    make_statement, registry)

LATER = NOW + timedelta(days=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return build_world(tmp_path_factory.mktemp("world") / "log")


def _consistency(world: World) -> ConsistencyEvidence:
    return ConsistencyEvidence(world.later_checkpoint, world.consistency_proof)


def test_a_valid_bundle_passes_every_step(world):
    report = verify_bundle(world.bundle.to_json(), registry(), consistency=_consistency(world),
                           subject_digests={"adapter:after:adapter-2": ADAPTER_AFTER_SHA}, now=LATER)
    assert report.ok and report.exit_code == 0, report.to_json()
    assert tuple(s.name for s in report.steps) == STEPS and {s.status for s in report.steps} == {"pass"}
    assert report.signers == (ATTESTATION_KEY.keyid,) and report.checkpoint.size == 5
    assert report.statement.predicate.verdict.status == "erased"


def test_unrequested_checks_are_skipped_not_passed(world):
    report = verify_attestation(world.envelope, registry(), now=LATER)
    assert report.ok
    skipped = {s.name for s in report.steps if s.status == "skipped"}
    assert skipped == {"subjects", "checkpoint", "inclusion", "consistency"}


def test_subject_files_and_directories_are_digested(tmp_path):
    adapter = tmp_path / "adapter"
    for name, data in {"a-c": b"x", "a/b": b"yy", "adapter_config.json": b"{}", "sub/dir/w.bin": bytes(range(256)),
                       "empty": b""}.items():
        (adapter / name).parent.mkdir(parents=True, exist_ok=True)
        (adapter / name).write_bytes(data)
    # Known answer from unlearning.base_model.model_dir_sha256 on the same tree.
    assert dir_sha256(adapter) == "9c5db743b65d831edc564acf1b1b5bcf48c63ac8866e4398c851b6caddd89968"
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(b'{"root": "..."}')
    statement = make_statement()
    subjects = [subject_of_path("adapter:after", adapter), subject_of_path("manifest:after", manifest)]
    envelope = sign_statement(build_statement(subjects, statement.predicate), [ATTESTATION_KEY]).to_json()
    files = {"adapter:after": adapter, "manifest:after": manifest}
    assert verify_attestation(envelope, registry(), subject_files=files, now=LATER).ok

    (adapter / "sub/dir/w.bin").write_bytes(b"retrained weights")
    report = verify_attestation(envelope, registry(), subject_files=files, now=LATER)
    assert report.exit_code == 13 and "adapter:after" in str(report.error)
    report = verify_attestation(envelope, registry(), subject_files={"adapter:old": adapter}, now=LATER)
    assert report.exit_code == 13 and "no subject named" in str(report.error)
    report = verify_attestation(envelope, registry(), subject_files={"adapter:after": tmp_path / "gone"}, now=LATER)
    assert report.exit_code == 2
    report = verify_attestation(envelope, registry(), subject_files={"manifest:after": manifest},
                                subject_digests={"manifest:after": "0" * 64}, now=LATER)
    assert report.exit_code == 2 and "give each one way" in str(report.error)


def _statement_json() -> dict:
    return json.loads(statement_payload(make_statement()))


def _signed(raw: dict, *, key=ATTESTATION_KEY, payload_type: str = PAYLOAD_TYPE_IN_TOTO) -> bytes:
    return sign_envelope(canonical_json(raw), payload_type, [key]).to_json()


def _edit(change) -> bytes:
    raw = _statement_json()
    change(raw)
    return _signed(raw)


def _expired_registry():
    keys = registry()
    keys.revoke(ATTESTATION_KEY.keyid, NOW - timedelta(days=1))
    return keys


FAILURES = {
    "not json": (lambda w: b"{not json", registry, "envelope", 2),
    "unsigned": (lambda w: canonical_json({"payload": "", "payloadType": "x", "signatures": []}), registry,
                 "envelope", 2),
    "untrusted key": (lambda w: _signed(_statement_json(), key=OTHER_KEY), registry, "signature", 10),
    "log key signs": (lambda w: _signed(_statement_json(), key=LOG_KEY), registry, "signature", 10),
    "revoked before signing": (lambda w: w.envelope, _expired_registry, "signing_key_window", 10),
    "dated in the future": (lambda w: _edit(lambda r: r["predicate"].update(attested_at="2025-03-09T00:00:00Z")),
                            registry, "signing_key_window", 10),
    "signed after expiry": (lambda w: _edit(lambda r: r["predicate"].update(attested_at="2024-12-31T00:00:00Z")),
                            registry, "signing_key_window", 10),
    "payload type": (lambda w: _signed(_statement_json(), payload_type="application/json"), registry,
                     "payload_type", 11),
    "statement type": (lambda w: _edit(lambda r: r.update(_type="https://in-toto.io/Statement/v0.1")), registry,
                       "statement_type", 12),
    "predicate type": (lambda w: _edit(lambda r: r.update(predicateType="https://slsa.dev/provenance/v1")),
                       registry, "predicate", 12),
    "predicate schema": (lambda w: _edit(lambda r: r["predicate"].pop("utility")), registry, "predicate", 12),
    "verdict policy": (lambda w: _edit(lambda r: r["predicate"]["verdict"].update(reasons=["x"])), registry,
                       "predicate", 12),
    "raw identifier": (lambda w: _edit(lambda r: r["predicate"]["request"].update(regime="bob@example.com")),
                       registry, "predicate", 12),
    "forged evidence": (lambda w: _edit(lambda r: r["predicate"]["manifests"][0]["non_inclusion"][0]["left"]
                                        .update(index=7)), registry, "evidence", 16),
}


@pytest.mark.parametrize("case", FAILURES, ids=list(FAILURES))
def test_each_failure_has_its_exit_code_and_stops_there(world, case):
    make_envelope, make_registry, step, code = FAILURES[case]
    report = verify_attestation(make_envelope(world), make_registry(), now=NOW + timedelta(days=1))
    assert (report.exit_code, report.error.exit_code) == (code, code), report.to_json()
    failed = [s for s in report.steps if s.status == "fail"]
    assert [s.name for s in failed] == [step]
    later = report.steps[[s.name for s in report.steps].index(step) + 1:]
    assert all(s.status == "skipped" for s in later)


def _bundle_with(world: World, **changes) -> bytes:
    inclusion = world.bundle.inclusion
    fields = {"index": inclusion.index, "tree_size": inclusion.tree_size, "proof": inclusion.proof,
              "checkpoint": inclusion.checkpoint, **changes}
    envelope = fields.pop("envelope", world.envelope)
    return Bundle(envelope, InclusionEvidence(**fields)).to_json()


def _foreign_checkpoint(world: World, key=LOG_KEY, origin=ORIGIN) -> str:
    real = Checkpoint(origin, 5, bytes(32), NOW + timedelta(minutes=1))
    return sign_checkpoint(real, [key]).to_text()


LOG_FAILURES = {
    "wrong index": (lambda w: _bundle_with(w, index=3), None, "inclusion", 14),
    "wrong tree size": (lambda w: _bundle_with(w, tree_size=6), None, "inclusion", 14),
    "short proof": (lambda w: _bundle_with(w, proof=w.bundle.inclusion.proof[:-1]), None, "inclusion", 14),
    "another envelope": (lambda w: _bundle_with(w, envelope=sign_statement(make_statement(), [ATTESTATION_KEY,
                                                                                             OTHER_KEY]).to_json()),
                         None, "inclusion", 14),
    "checkpoint by another key": (lambda w: _bundle_with(w, checkpoint=_foreign_checkpoint(w, key=OTHER_KEY)), None,
                                  "checkpoint", 15),
    "checkpoint root forged": (lambda w: _bundle_with(w, checkpoint=_foreign_checkpoint(w)), None, "inclusion", 14),
    "inconsistent later checkpoint": (lambda w: w.bundle.to_json(),
                                      lambda w: ConsistencyEvidence(w.later_checkpoint, w.consistency_proof[1:]),
                                      "consistency", 15),
    "forked later checkpoint": (lambda w: w.bundle.to_json(),
                                lambda w: ConsistencyEvidence(_foreign_checkpoint(w), ()), "consistency", 15),
    "other log's checkpoint": (lambda w: w.bundle.to_json(),
                               lambda w: ConsistencyEvidence(_foreign_checkpoint(w, origin="other.log/x"), ()),
                               "consistency", 15),
    "bundle not canonical": (lambda w: json.dumps(json.loads(w.bundle.to_json()), indent=1).encode(), None,
                             "bundle", 2),
}


@pytest.mark.parametrize("case", LOG_FAILURES, ids=list(LOG_FAILURES))
def test_log_failures_have_their_exit_codes(world, case):
    make_bundle_bytes, make_consistency, step, code = LOG_FAILURES[case]
    consistency = make_consistency(world) if make_consistency else None
    report = verify_bundle(make_bundle_bytes(world), registry(), consistency=consistency, now=LATER)
    assert report.exit_code == code, report.to_json()
    assert [s.name for s in report.steps if s.status == "fail"] == [step]
    assert tuple(s.name for s in report.steps) == STEPS


def test_consistency_without_inclusion_is_refused(world):
    report = verify_attestation(world.envelope, registry(), consistency=_consistency(world), now=LATER)
    assert report.exit_code == 2 and report.steps[-1].name == "consistency"


def test_report_json_is_ready_for_scripts(world):
    report = verify_bundle(world.bundle.to_json(), _expired_registry(), now=LATER)
    summary = json.loads(json.dumps(report.to_json()))
    assert summary["ok"] is False and summary["exit_code"] == 10
    assert summary["error"]["type"] == "KeyRegistryError" and "revoked" in summary["error"]["message"]


def test_exit_code_table_covers_every_error_class():
    classes = [c for c in vars(errors_module).values() if isinstance(c, type) and issubclass(c, AttestationError)]
    documented = {code for code, _ in EXIT_CODES}
    assert {c.exit_code for c in classes} <= documented
    assert len(documented) == len(EXIT_CODES)  # one line per code
    for cls in classes:
        assert cls.__name__ in errors_module.__doc__


def test_attested_at_after_the_checkpoint_is_refused(world, tmp_path):
    log = TransparencyLog.open(tmp_path / "log", origin=ORIGIN)
    envelope = world.envelope
    log.append(envelope)
    log.sign_checkpoint([LOG_KEY], now=NOW - timedelta(hours=1))  # before the statement's date
    report = verify_bundle(make_bundle(envelope, log).to_json(), registry(), now=LATER)
    assert report.exit_code == 14 and "dated after the checkpoint" in str(report.error)


def test_keys_valid_now_do_not_rescue_a_signature_made_outside_their_window():
    keys = registry()
    keys.add(KeyEntry(OTHER_KEY.keyid, OTHER_KEY.public_key, KeyPurpose.ATTESTATION, NOW + timedelta(days=1),
                      datetime(2026, 1, 1, tzinfo=timezone.utc)))
    envelope = sign_statement(make_statement(make_predicate()), [OTHER_KEY]).to_json()
    report = verify_attestation(envelope, keys, now=NOW + timedelta(days=2))
    assert report.exit_code == 10 and "predates" in str(report.error)
