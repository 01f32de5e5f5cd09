"""Property: changing any one byte of the envelope, the bundle, a proof, a checkpoint or the log fails verification."""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attestation import (AttestationError, ConsistencyEvidence, InclusionEvidence, TransparencyLog,
                         verify_attestation, verify_bundle, verify_checkpoint)
from tests.attestation.attestation_fixtures import NOW, World, build_world, registry

LATER = NOW + timedelta(days=1)
KEYS = registry()
POSITIONS = st.integers(min_value=0, max_value=2**32)
MASKS = st.integers(min_value=1, max_value=255)
EXAMPLES = settings(max_examples=120, deadline=None)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return build_world(tmp_path_factory.mktemp("tamper") / "log")


def _flip(data: bytes, position: int, mask: int) -> bytes:
    position %= len(data)
    return data[:position] + bytes([data[position] ^ mask]) + data[position + 1:]


def _verify(world: World, envelope: bytes | None = None, inclusion: InclusionEvidence | None = None,
            consistency: ConsistencyEvidence | None = None):
    consistency = consistency or ConsistencyEvidence(world.later_checkpoint, world.consistency_proof)
    return verify_attestation(envelope or world.envelope, KEYS, inclusion=inclusion or world.bundle.inclusion,
                              consistency=consistency, now=LATER)


def test_the_untouched_world_verifies(world):
    assert _verify(world).ok
    assert verify_bundle(world.bundle.to_json(), KEYS, now=LATER).ok
    assert TransparencyLog.open(world.directory).audit(KEYS).size == 8


@EXAMPLES
@given(position=POSITIONS, mask=MASKS)
def test_any_changed_envelope_byte_fails(world, position, mask):
    assert not _verify(world, envelope=_flip(world.envelope, position, mask)).ok


@EXAMPLES
@given(position=POSITIONS, mask=MASKS)
def test_any_changed_bundle_byte_fails(world, position, mask):
    assert not verify_bundle(_flip(world.bundle.to_json(), position, mask), KEYS, now=LATER).ok


def _split(data: bytes) -> tuple[bytes, ...]:
    return tuple(data[i:i + 32] for i in range(0, len(data), 32))


@EXAMPLES
@given(position=POSITIONS, mask=MASKS)
def test_any_changed_inclusion_proof_byte_fails(world, position, mask):
    inclusion = world.bundle.inclusion
    proof = _split(_flip(b"".join(inclusion.proof), position, mask))
    changed = InclusionEvidence(inclusion.index, inclusion.tree_size, proof, inclusion.checkpoint)
    assert not _verify(world, inclusion=changed).ok


@EXAMPLES
@given(position=POSITIONS, mask=MASKS)
def test_any_changed_consistency_proof_byte_fails(world, position, mask):
    proof = _split(_flip(b"".join(world.consistency_proof), position, mask))
    assert not _verify(world, consistency=ConsistencyEvidence(world.later_checkpoint, proof)).ok


def _changed_checkpoint(text: str, position: int, mask: int) -> str | None:
    """The flipped note as text, or None after checking that undecodable bytes are refused."""
    flipped = _flip(text.encode("utf-8"), position, mask)
    try:
        return flipped.decode("utf-8")
    except UnicodeDecodeError:
        with pytest.raises(AttestationError):
            verify_checkpoint(flipped, KEYS)
        return None


@EXAMPLES
@given(position=POSITIONS, mask=MASKS)
def test_any_changed_inclusion_checkpoint_byte_fails(world, position, mask):
    inclusion = world.bundle.inclusion
    note = _changed_checkpoint(inclusion.checkpoint, position, mask)
    if note is not None:
        changed = InclusionEvidence(inclusion.index, inclusion.tree_size, inclusion.proof, note)
        assert not _verify(world, inclusion=changed).ok


@EXAMPLES
@given(position=POSITIONS, mask=MASKS)
def test_any_changed_later_checkpoint_byte_fails(world, position, mask):
    note = _changed_checkpoint(world.later_checkpoint, position, mask)
    if note is not None:
        assert not _verify(world, consistency=ConsistencyEvidence(note, world.consistency_proof)).ok


@settings(max_examples=150, deadline=None)
@given(file=st.sampled_from(["entries.bin", "checkpoints.jsonl", "log.json"]), position=POSITIONS, mask=MASKS)
def test_any_changed_byte_of_the_log_on_disk_fails_its_audit(world, file, position, mask):
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "log"
        shutil.copytree(world.directory, copy)
        (copy / file).write_bytes(_flip((copy / file).read_bytes(), position, mask))
        with pytest.raises(AttestationError):
            TransparencyLog.open(copy).audit(KEYS)
