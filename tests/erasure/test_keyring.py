"""The keyring under the state folder: created once, owner-only keys, rotation, publishing that verifies."""

from __future__ import annotations

import json
import os
import stat
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from attestation import (CheckpointError, KeyPurpose, KeyRegistry, TransparencyLog, generate_signing_key,
                         save_private_key, sign_checkpoint, verify_bundle)
from attestation.checkpoint import Checkpoint
from attestation.encoding import format_utc
from erasure.errors import ConfigurationError, ErasureError
from erasure.keyring import NO_END, Keyring, KeyringError, KeyringPaths
from tests.attestation.attestation_fixtures import (KEYS_FROM, NOW, make_predicate, make_statement,
                                                    predicate_json)

LATER = NOW + timedelta(days=30)


def statement_at(moment, reference="req_0000000000ab"):
    """The fixtures' valid statement, dated `moment`, for another request reference."""
    value = predicate_json()
    value["attested_at"] = format_utc(moment)
    value["request"]["reference"] = reference
    return make_statement(make_predicate(value))


def test_created_once_then_reused(tmp_path):
    first = Keyring.open(tmp_path, now=KEYS_FROM)
    second = Keyring.open(tmp_path)
    assert first.created and not second.created
    assert [k.keyid for k in first.signing_keys] == [k.keyid for k in second.signing_keys]
    assert [k.keyid for k in first.log_keys] == [k.keyid for k in second.log_keys]
    assert first.signing_keys[0].keyid != first.log_keys[0].keyid
    assert second.registry_path == tmp_path / "attestation" / "registry.json"
    assert second.log.directory == tmp_path / "attestation" / "log" and second.log.size == 0


def test_layout_modes_and_registry(tmp_path):
    keyring = Keyring.open(tmp_path, now=KEYS_FROM + timedelta(microseconds=500))
    paths = KeyringPaths.under(tmp_path)
    for key in (paths.attestation_key, paths.log_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    registry = KeyRegistry.load(paths.registry)
    attestation = registry.entry(keyring.signing_keys[0].keyid)
    log = registry.entry(keyring.log_keys[0].keyid)
    assert (attestation.purpose, log.purpose) == (KeyPurpose.ATTESTATION, KeyPurpose.LOG)
    assert attestation.not_before == log.not_before == KEYS_FROM  # whole seconds
    assert attestation.not_after == log.not_after == NO_END
    assert json.loads((paths.log / "log.json").read_text())["origin"] == "lethe.local/erasure-log"
    assert not list(paths.directory.rglob(".*.tmp"))


def _open_and_report(state_dir: str) -> tuple[str, str]:
    keyring = Keyring.open(Path(state_dir))
    return keyring.signing_keys[0].keyid, keyring.log_keys[0].keyid


def test_processes_racing_to_create_share_one_keyring(tmp_path):
    with ProcessPoolExecutor(max_workers=4) as pool:
        results = set(pool.map(_open_and_report, [str(tmp_path)] * 8))
    assert len(results) == 1
    assert len(KeyRegistry.load(KeyringPaths.under(tmp_path).registry)) == 2


def test_opening_without_create_refuses_a_missing_keyring(tmp_path):
    with pytest.raises(KeyringError, match="lethe attest keygen"):
        Keyring.open(tmp_path, create=False)
    assert not (tmp_path / "attestation" / "registry.json").exists()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o602])
@pytest.mark.parametrize("key", ["attestation.key", "log.key"])
def test_a_key_open_to_others_is_refused_with_the_fix(tmp_path, key, mode):
    Keyring.open(tmp_path)
    path = tmp_path / "attestation" / "keys" / key
    os.chmod(path, mode)
    with pytest.raises(KeyringError) as caught:
        Keyring.open(tmp_path)
    message = str(caught.value)
    assert str(path) in message and f"chmod 600 {path}" in message and f"mode {mode:o}" in message


def test_an_owner_only_executable_mode_still_loads(tmp_path):
    Keyring.open(tmp_path)
    os.chmod(tmp_path / "attestation" / "keys" / "attestation.key", 0o700)
    assert Keyring.open(tmp_path).signing_keys


def test_a_corrupt_or_missing_key_names_the_file_and_the_remedy(tmp_path):
    Keyring.open(tmp_path)
    path = tmp_path / "attestation" / "keys" / "attestation.key"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(KeyringError, match="backup") as caught:
        Keyring.open(tmp_path)
    assert str(path) in str(caught.value) and isinstance(caught.value, (ConfigurationError, ErasureError))
    path.unlink()
    with pytest.raises(KeyringError, match="cannot read"):
        Keyring.open(tmp_path)


def test_keys_from_another_keyring_are_refused(tmp_path):
    Keyring.open(tmp_path / "a")
    Keyring.open(tmp_path / "b")
    os.replace(tmp_path / "b/attestation/keys/log.key", tmp_path / "a/attestation/keys/log.key")
    with pytest.raises(KeyringError, match="different keyrings"):
        Keyring.open(tmp_path / "a")


def test_a_corrupt_registry_or_a_missing_log_is_reported(tmp_path):
    Keyring.open(tmp_path)
    paths = KeyringPaths.under(tmp_path)
    registry = paths.registry.read_bytes()
    paths.registry.write_bytes(registry.replace(b'"keys"', b'"kays"'))
    with pytest.raises(KeyringError, match="registry.json"):
        Keyring.open(tmp_path)
    paths.registry.write_bytes(registry)
    (paths.log / "log.json").unlink()
    with pytest.raises(KeyringError, match="transparency log .* is missing"):
        Keyring.open(tmp_path)


def test_published_bundle_verifies(tmp_path):
    keyring = Keyring.open(tmp_path, now=KEYS_FROM)
    bundle = keyring.publish(make_statement(), NOW + timedelta(minutes=1))
    report = verify_bundle(bundle.to_json(), KeyRegistry.load(keyring.registry_path), now=LATER)
    assert report.ok, report.to_json()
    assert report.signers == (keyring.signing_keys[0].keyid,)
    assert keyring.log.size == 1 and keyring.latest_checkpoint() == bundle.inclusion.checkpoint


def test_publish_refuses_a_statement_the_registry_would_not_accept(tmp_path):
    keyring = Keyring.open(tmp_path, now=NOW + timedelta(days=1))
    with pytest.raises(KeyringError, match="predates the key's window"):
        keyring.publish(make_statement(), NOW + timedelta(days=2))
    with pytest.raises(KeyringError, match="after the publication time"):
        keyring.publish(statement_at(NOW + timedelta(days=3)), NOW + timedelta(days=2))
    assert keyring.log.size == 0


def test_rotation_keeps_old_bundles_verifying_and_only_the_new_key_signs(tmp_path):
    keyring = Keyring.open(tmp_path, now=KEYS_FROM)
    old_key = keyring.signing_keys[0]
    old_bundle = keyring.publish(make_statement(), NOW + timedelta(minutes=1))
    rotated_at = NOW + timedelta(days=1)
    new_key = keyring.rotate_signing_key(rotated_at)

    reopened = Keyring.open(tmp_path)
    assert new_key.keyid != old_key.keyid and reopened.signing_keys[0].keyid == new_key.keyid
    registry = KeyRegistry.load(reopened.registry_path)
    assert registry.entry(old_key.keyid).not_after == rotated_at
    assert registry.entry(new_key.keyid).not_before == rotated_at
    assert registry.entry(new_key.keyid).not_after == NO_END and len(registry) == 3
    assert verify_bundle(old_bundle.to_json(), registry, now=LATER).ok
    assert not list((tmp_path / "attestation" / "keys").glob("*next*"))

    with pytest.raises(KeyringError, match="predates"):  # the new key cannot sign into the old key's time
        reopened.publish(statement_at(NOW + timedelta(hours=1), "req_0000000000cd"), NOW + timedelta(days=2))
    new_bundle = reopened.publish(statement_at(NOW + timedelta(days=2)), NOW + timedelta(days=2))
    report = verify_bundle(new_bundle.to_json(), registry, now=LATER)
    assert report.ok and report.signers == (new_key.keyid,)


def test_a_stale_keyring_object_cannot_publish_after_another_rotated(tmp_path):
    stale = Keyring.open(tmp_path, now=KEYS_FROM)
    Keyring.open(tmp_path).rotate_signing_key(NOW)
    with pytest.raises(KeyringError, match="expired"):
        stale.publish(statement_at(NOW + timedelta(hours=1)), NOW + timedelta(hours=1))


def test_rotation_cannot_go_back_before_the_key_was_trusted(tmp_path):
    keyring = Keyring.open(tmp_path, now=NOW)
    with pytest.raises(KeyringError, match="rotate at a later time"):
        keyring.rotate_signing_key(NOW)


def test_a_rotation_interrupted_before_the_registry_was_written_is_dropped(tmp_path):
    keyring = Keyring.open(tmp_path, now=KEYS_FROM)
    paths = keyring.paths
    save_private_key(generate_signing_key(), paths.pending_key)
    reopened = Keyring.open(tmp_path)
    assert reopened.signing_keys[0].keyid == keyring.signing_keys[0].keyid
    assert not paths.pending_key.exists()


def test_a_rotation_interrupted_after_the_registry_was_written_is_finished(tmp_path):
    keyring = Keyring.open(tmp_path, now=KEYS_FROM)
    paths, pending = keyring.paths, generate_signing_key()
    save_private_key(pending, paths.pending_key)
    registry = KeyRegistry.load(paths.registry)
    registry.trust(pending.public_key, KeyPurpose.ATTESTATION, NOW, NO_END)
    registry.save(paths.registry)
    assert Keyring.open(tmp_path, create=False).signing_keys[0].keyid == pending.keyid
    assert not paths.pending_key.exists()


def test_consistency_evidence_and_foreign_checkpoints(tmp_path):
    keyring = Keyring.open(tmp_path, now=KEYS_FROM)
    first = keyring.publish(make_statement(), NOW + timedelta(minutes=1))
    keyring.publish(statement_at(NOW + timedelta(minutes=2)), NOW + timedelta(minutes=3))
    evidence = keyring.consistency_evidence(first.inclusion.checkpoint)
    assert evidence.checkpoint == keyring.latest_checkpoint() and evidence.proof

    other_log = TransparencyLog.open(tmp_path / "other", origin="lethe.local/erasure-log")
    other_log.append(b"x")
    foreign = sign_checkpoint(Checkpoint(other_log.origin, 1, other_log.root(), NOW),
                              [generate_signing_key()]).to_text()
    with pytest.raises(CheckpointError):
        keyring.consistency_evidence(foreign)


def test_an_unwritable_state_folder_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(KeyringError, match="LETHE_STATE_DIR"):
        Keyring.open(blocker)
