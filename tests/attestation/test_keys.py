"""Key ids, private key files, and the registry's validity windows, purposes and revocations."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives import serialization

from attestation import (InputError, KeyPurpose, KeyRegistry, KeyRegistryError, generate_signing_key, key_id,
                         load_private_key, public_key_pem, save_private_key)
from tests.attestation.attestation_fixtures import ATTESTATION_KEY, KEYS_FROM, KEYS_UNTIL, LOG_KEY, registry

UTC = timezone.utc


def test_key_id_is_sha256_of_raw_public_key():
    raw = ATTESTATION_KEY.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert key_id(ATTESTATION_KEY.public_key) == hashlib.sha256(raw).hexdigest() == ATTESTATION_KEY.keyid


def test_private_key_file_is_owner_only_and_round_trips(tmp_path):
    key = generate_signing_key()
    path = tmp_path / "attest.pem"
    save_private_key(key, path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert load_private_key(path).keyid == key.keyid
    with pytest.raises(InputError, match="refusing to overwrite"):
        save_private_key(generate_signing_key(), path)
    os.chmod(path, 0o644)
    with pytest.raises(InputError, match="chmod 600"):
        load_private_key(path)


def test_loading_a_missing_or_foreign_key_file_says_what_is_wrong(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        load_private_key(tmp_path / "absent.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    os.chmod(junk, 0o600)
    with pytest.raises(InputError, match="not an unencrypted PEM"):
        load_private_key(junk)


@pytest.mark.parametrize("at, message", [
    (KEYS_FROM - timedelta(seconds=1), "predates the key's window"),
    (KEYS_UNTIL, "expired"),
    (KEYS_UNTIL + timedelta(days=30), "expired"),
])
def test_resolve_refuses_outside_the_window(at, message):
    with pytest.raises(KeyRegistryError, match=message):
        registry().resolve(ATTESTATION_KEY.keyid, at=at, purpose=KeyPurpose.ATTESTATION)


def test_resolve_inside_the_window_and_at_its_start():
    keys = registry()
    for at in (KEYS_FROM, KEYS_UNTIL - timedelta(microseconds=1)):
        assert keys.resolve(ATTESTATION_KEY.keyid, at=at, purpose=KeyPurpose.ATTESTATION) is not None


def test_revocation_applies_from_its_time_on():
    keys = registry()
    revoked_at = datetime(2025, 6, 1, tzinfo=UTC)
    keys.revoke(ATTESTATION_KEY.keyid, revoked_at)
    keys.resolve(ATTESTATION_KEY.keyid, at=revoked_at - timedelta(seconds=1), purpose=KeyPurpose.ATTESTATION)
    with pytest.raises(KeyRegistryError, match="revoked"):
        keys.resolve(ATTESTATION_KEY.keyid, at=revoked_at, purpose=KeyPurpose.ATTESTATION)


def test_unknown_key_wrong_purpose_and_naive_time_are_refused():
    keys = registry()
    with pytest.raises(KeyRegistryError, match="not in the key registry"):
        keys.resolve("0" * 64, at=KEYS_FROM, purpose=KeyPurpose.ATTESTATION)
    with pytest.raises(KeyRegistryError, match="registered for 'log'"):
        keys.resolve(LOG_KEY.keyid, at=KEYS_FROM, purpose=KeyPurpose.ATTESTATION)
    with pytest.raises(InputError, match="no time zone"):
        keys.resolve(ATTESTATION_KEY.keyid, at=datetime(2025, 3, 1), purpose=KeyPurpose.ATTESTATION)


def test_registry_file_round_trip_keeps_windows_and_revocations(tmp_path):
    keys = registry()
    keys.revoke(LOG_KEY.keyid, datetime(2025, 7, 1, 8, 30, tzinfo=UTC))
    keys.save(tmp_path / "keys.json")
    loaded = KeyRegistry.load(tmp_path / "keys.json")
    assert loaded.to_json() == keys.to_json() and len(loaded) == 2
    with pytest.raises(KeyRegistryError, match="revoked"):
        loaded.resolve(LOG_KEY.keyid, at=datetime(2025, 8, 1, tzinfo=UTC), purpose=KeyPurpose.LOG)


def test_registry_accepts_pem_public_keys():
    entry = json.loads(registry().to_json())["keys"][0]
    entry["public_key"] = public_key_pem(ATTESTATION_KEY.public_key if entry["keyid"] == ATTESTATION_KEY.keyid
                                         else LOG_KEY.public_key)
    loaded = KeyRegistry.from_json(json.dumps({"format": "lethe-key-registry/v1", "keys": [entry]}).encode())
    assert entry["keyid"] in loaded


def _registry_with(entry_changes: dict) -> bytes:
    value = json.loads(registry().to_json())
    value["keys"][0].update(entry_changes)
    return json.dumps(value).encode()


@pytest.mark.parametrize("changes, message", [
    ({"keyid": "ab" * 32}, "not the SHA-256 of its public key"),
    ({"purpose": "everything"}, "purpose must be one of"),
    ({"not_after": "2024-01-01T00:00:00Z"}, "must be later than"),
    ({"not_before": "2025-01-01 00:00:00"}, "RFC 3339"),
    ({"not_before": "2025-01-01T00:00:00+01:00"}, "RFC 3339"),
    ({"public_key": "AAAA"}, "32 bytes"),
    ({"extra": 1}, "unknown fields"),
])
def test_malformed_registry_entries_are_refused(changes, message):
    with pytest.raises(InputError, match=message):
        KeyRegistry.from_json(_registry_with(changes))


def test_duplicate_and_unreadable_registries_are_refused(tmp_path):
    value = json.loads(registry().to_json())
    value["keys"].append(value["keys"][0])
    with pytest.raises(InputError, match="registered twice"):
        KeyRegistry.from_json(json.dumps(value).encode())
    with pytest.raises(InputError, match="cannot read key registry"):
        KeyRegistry.load(tmp_path / "absent.json")
    with pytest.raises(InputError, match="format"):
        KeyRegistry.from_json(b'{"keys": []}')
