"""The on-disk log: idempotent appends, persistence, proofs, signed checkpoints, and its audit."""

from __future__ import annotations

from datetime import timedelta

import pytest

from attestation import (Checkpoint, CheckpointError, KeyPurpose, LogError, TransparencyLog, parse_checkpoint,
                         sign_checkpoint, verify_checkpoint, verify_checkpoint_consistency)
from attestation.merkle import EMPTY_ROOT, leaf_hash, root_hash, verify_consistency, verify_inclusion
from tests.attestation.attestation_fixtures import ATTESTATION_KEY, LOG_KEY, NOW, ORIGIN, OTHER_KEY, registry


@pytest.fixture
def log(tmp_path) -> TransparencyLog:
    return TransparencyLog.open(tmp_path / "log", origin=ORIGIN)


def test_append_is_idempotent_and_survives_reopening(log):
    assert [log.append(f"entry {i}".encode()) for i in range(5)] == [0, 1, 2, 3, 4]
    assert log.append(b"entry 2") == 2 and log.size == 5
    reopened = TransparencyLog.open(log.directory)
    assert reopened.size == 5 and reopened.root() == log.root() and reopened.entry(3) == b"entry 3"
    assert reopened.append(b"entry 4") == 4 and reopened.index_of(b"entry 0") == 0
    assert reopened.index_of(b"never appended") is None


def test_two_handles_see_each_others_appends(log):
    other = TransparencyLog.open(log.directory)
    assert log.append(b"a") == 0
    assert other.append(b"b") == 1
    assert log.append(b"b") == 1 and log.append(b"c") == 2
    assert other.append(b"c") == 2


def test_root_and_proofs_match_the_pure_functions(log):
    entries = [f"e{i}".encode() for i in range(13)]
    for entry in entries:
        log.append(entry)
    leaves = [leaf_hash(e) for e in entries]
    assert log.root() == root_hash(leaves) and log.root(0) == EMPTY_ROOT
    for size in range(1, 14):
        for index in range(size):
            verify_inclusion(leaves[index], index, size, log.inclusion_proof(index, size), log.root(size))
        for old in range(size + 1):
            verify_consistency(old, size, log.root(old), log.root(size), log.consistency_proof(old, size))


def test_bad_requests_say_what_is_wrong(log, tmp_path):
    log.append(b"only")
    with pytest.raises(LogError, match="outside"):
        log.inclusion_proof(0, 2)
    with pytest.raises(LogError, match="not in the log"):
        log.entry(5)
    with pytest.raises(LogError, match="1.."):
        log.append(b"")
    with pytest.raises(LogError, match="no log.json"):
        TransparencyLog.open(tmp_path / "nowhere")
    with pytest.raises(LogError, match="has origin"):
        TransparencyLog.open(log.directory, origin="another.log/x")
    with pytest.raises(CheckpointError, match="origin"):
        TransparencyLog.open(tmp_path / "bad", origin="Has Spaces")


def test_checkpoints_are_signed_stored_and_verified(log):
    log.append(b"a")
    first = log.sign_checkpoint([LOG_KEY], now=NOW)
    log.append(b"b")
    second = log.sign_checkpoint([LOG_KEY], now=NOW + timedelta(minutes=1))
    assert log.checkpoints() == [first.to_text(), second.to_text()] and log.latest_checkpoint() == second.to_text()
    checkpoint = verify_checkpoint(second.to_text(), registry())
    assert (checkpoint.origin, checkpoint.size, checkpoint.root) == (ORIGIN, 2, log.root())
    old, new = verify_checkpoint_consistency(second.to_text(), first.to_text(), log.consistency_proof(1),
                                             registry())
    assert (old.size, new.size) == (1, 2)
    assert log.audit(registry()) == checkpoint
    with pytest.raises(LogError, match="before the latest"):
        log.sign_checkpoint([LOG_KEY], now=NOW)


def test_checkpoint_text_layout():
    signed = sign_checkpoint(Checkpoint(ORIGIN, 3, bytes(32), NOW), [LOG_KEY])
    lines = signed.to_text().split("\n")
    assert lines[:5] == [ORIGIN, "3", "A" * 43 + "=", "2025-03-01T12:00:00Z", ""]
    assert lines[5].startswith("\u2014 " + LOG_KEY.keyid + " ") and lines[6] == ""
    assert parse_checkpoint(signed.to_text()) == signed


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("\n3\n", "\n03\n"), "leading zeros"),
    (lambda t: t.replace("\n3\n", "\n4\n"), "does not verify"),
    (lambda t: t.replace("12:00:00Z", "12:00:00.000000Z"), "canonical"),
    (lambda t: t.replace("\n\n", "\n"), "4 body lines"),
    (lambda t: t.rstrip("\n"), "ending in a newline"),
    (lambda t: t + "extra\n", "signature line"),
    (lambda t: t.replace("\u2014", "-"), "signature line"),
])
def test_malformed_or_altered_checkpoints_are_refused(edit, message):
    text = sign_checkpoint(Checkpoint(ORIGIN, 3, bytes(32), NOW), [LOG_KEY]).to_text()
    with pytest.raises(CheckpointError, match=message):
        verify_checkpoint(edit(text), registry())


def test_checkpoints_need_a_trusted_log_key_valid_at_their_time():
    checkpoint = Checkpoint(ORIGIN, 3, bytes(32), NOW)
    for key in (OTHER_KEY, ATTESTATION_KEY):  # unknown; an attestation key, not a log key
        with pytest.raises(CheckpointError):
            verify_checkpoint(sign_checkpoint(checkpoint, [key]).to_text(), registry())
    keys = registry()
    keys.revoke(LOG_KEY.keyid, NOW - timedelta(days=1))
    with pytest.raises(CheckpointError, match="revoked"):
        verify_checkpoint(sign_checkpoint(checkpoint, [LOG_KEY]).to_text(), keys)
    assert keys.public_key(LOG_KEY.keyid, KeyPurpose.LOG) == LOG_KEY.public_key  # still registered


def test_audit_catches_rewritten_entries_torn_tails_and_unsigned_entries(log):
    for i in range(4):
        log.append(f"entry {i}".encode())
    log.sign_checkpoint([LOG_KEY], now=NOW)
    entries = log.directory / "entries.bin"
    original = entries.read_bytes()

    entries.write_bytes(original.replace(b"entry 2", b"entry X"))
    with pytest.raises(LogError, match="altered after signing"):
        TransparencyLog.open(log.directory).audit(registry())

    entries.write_bytes(original + b"\x00\x00\x00")
    with pytest.raises(LogError, match=f"truncate -s {len(original)}"):
        TransparencyLog.open(log.directory)

    entries.write_bytes(original)
    reopened = TransparencyLog.open(log.directory)
    reopened.append(b"unsigned")
    with pytest.raises(LogError, match="not covered"):
        reopened.audit(registry())
    assert reopened.audit(registry(), require_full_coverage=False).size == 4


def test_audit_catches_a_duplicated_record(log):
    log.append(b"same")
    entries = log.directory / "entries.bin"
    entries.write_bytes(entries.read_bytes() * 2)
    with pytest.raises(LogError, match="repeats entry 0"):
        TransparencyLog.open(log.directory)
