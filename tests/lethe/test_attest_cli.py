"""`lethe attest` as an auditor and an operator run it: verify offline, keys, checkpoints, consistency."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey
from typer.testing import CliRunner

from attestation import Bundle, DigestMismatch, InclusionEvidence, InputError
from attestation.encoding import b64decode_strict
from lethe.cli.attest import attest_app
from erasure.keyring import Keyring
from tests.attestation.attestation_fixtures import KEYS_FROM, NOW, SUBJECT_DIGESTS, make_statement
from tests.erasure.test_keyring import statement_at

POSITIONS = st.integers(min_value=0, max_value=2**32)
MASKS = st.integers(min_value=1, max_value=255)
EXAMPLES = settings(max_examples=60, deadline=None)
ADAPTER_BEFORE = "adapter:before:adapter-1"


@dataclass(frozen=True)
class World:
    """A state folder whose keyring published two attestations, and the files an auditor receives."""

    state: Path
    registry: Path
    first: Path
    second: Path
    consistency: Path


def run(state: Path, *args: str):
    return CliRunner().invoke(attest_app, [str(a) for a in args], env={"LETHE_STATE_DIR": str(state)},
                              catch_exceptions=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("attest-cli")
    state, first, second = root / "state", root / "first.bundle.json", root / "second.bundle.json"
    keyring = Keyring.open(state, now=KEYS_FROM)
    keyring.publish(make_statement(), NOW + timedelta(minutes=1)).save(first)
    keyring.publish(statement_at(NOW + timedelta(hours=1)), NOW + timedelta(hours=2)).save(second)
    result = run(state, "consistency", first, "--out", root / "consistency.json")
    assert result.exit_code == 0, result.output
    return World(state, keyring.registry_path, first, second, root / "consistency.json")


def _flip(data: bytes, position: int, mask: int) -> bytes:
    position %= len(data)
    return data[:position] + bytes([data[position] ^ mask]) + data[position + 1:]


def test_keygen_creates_once_and_prints_ids_and_registry(tmp_path):
    first = run(tmp_path, "keygen")
    assert first.exit_code == 0, first.output
    keyring = Keyring.open(tmp_path)
    for text in (keyring.signing_keys[0].keyid, keyring.log_keys[0].keyid, str(keyring.registry_path)):
        assert text in first.output
    assert "created" in first.output
    second = run(tmp_path, "keygen")
    assert second.exit_code == 0 and "already exists" in second.output
    assert keyring.signing_keys[0].keyid in second.output


def test_verify_passes_with_the_local_registry_and_with_keys(world):
    table = run(world.state, "verify", world.first)
    assert table.exit_code == 0, table.output
    assert "verified" in table.output and "signing_key_window" in table.output
    result = run(world.state / "elsewhere", "verify", world.second, "--keys", world.registry, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] and report["exit_code"] == 0
    statuses = {step["name"]: step["status"] for step in report["steps"]}
    assert statuses["signature"] == statuses["inclusion"] == statuses["checkpoint"] == "pass"
    assert statuses["consistency"] == "skipped"


def test_verify_with_consistency_evidence(world):
    result = run(world.state, "verify", world.first, "--consistency", world.consistency, "--json")
    assert result.exit_code == 0, result.output
    steps = {step["name"]: step for step in json.loads(result.output)["steps"]}
    assert steps["consistency"]["status"] == "pass" and "size 1 -> 2" in steps["consistency"]["detail"]


def test_checkpoint_printed_or_written_then_used_for_consistency(world, tmp_path):
    printed = run(world.state, "checkpoint")
    assert printed.exit_code == 0 and printed.output == Keyring.open(world.state).latest_checkpoint()
    note = tmp_path / "checkpoint.txt"
    assert run(world.state, "checkpoint", "--out", note).exit_code == 0
    assert note.read_text(encoding="utf-8") == printed.output
    result = run(world.state, "consistency", note, "--out", tmp_path / "c.json")
    assert result.exit_code == 0 and "log size 2 -> 2" in result.output


def test_verify_a_bare_envelope(world, tmp_path):
    envelope = tmp_path / "envelope.json"
    envelope.write_bytes(Bundle.load(world.first).envelope)
    result = run(world.state, "verify", envelope, "--json")
    assert result.exit_code == 0, result.output
    statuses = {step["name"]: step["status"] for step in json.loads(result.output)["steps"]}
    assert statuses["inclusion"] == "skipped" and statuses["signature"] == "pass" and "bundle" not in statuses


def test_subjects_are_checked_against_files_and_digests(world, tmp_path):
    right, wrong = tmp_path / "adapter-before.bin", tmp_path / "other.bin"
    right.write_bytes(b"adapter before")  # the fixture's digest is SHA-256 of these bytes
    wrong.write_bytes(b"adapter after")
    assert run(world.state, "verify", world.first, "--subject", f"{ADAPTER_BEFORE}={right}").exit_code == 0
    mismatch = run(world.state, "verify", world.first, "--subject", f"{ADAPTER_BEFORE}={wrong}", "--json")
    assert mismatch.exit_code == DigestMismatch.exit_code == 13
    assert json.loads(mismatch.output)["error"]["type"] == "DigestMismatch"
    good = SUBJECT_DIGESTS[ADAPTER_BEFORE]
    assert run(world.state, "verify", world.first, "--digest", f"{ADAPTER_BEFORE}={good}").exit_code == 0
    bad = run(world.state, "verify", world.first, "--digest", f"{ADAPTER_BEFORE}={'0' * 64}")
    assert bad.exit_code == 13 and "NOT VERIFIED" in bad.output
    unknown = run(world.state, "verify", world.first, "--digest", f"adapter:nope={good}")
    assert unknown.exit_code == 13


@pytest.mark.parametrize("args, message", [
    (["--digest", "name=xyz"], "64 hex"),
    (["--digest", "no-equals-sign"], "NAME=VALUE"),
    (["--subject", "a=x", "--subject", "a=y"], "twice"),
])
def test_bad_options_are_refused_with_exit_2(world, args, message):
    result = run(world.state, "verify", world.first, *args)
    assert result.exit_code == InputError.exit_code == 2 and message in result.output


def test_verify_without_any_registry_says_to_pass_keys(world, tmp_path):
    result = run(tmp_path / "empty-state", "verify", world.first)
    assert result.exit_code == 2 and "--keys" in result.output
    missing = run(world.state, "verify", tmp_path / "no-such-bundle.json")
    assert missing.exit_code == 2 and "cannot read" in missing.output


@pytest.mark.parametrize("command", [["rotate"], ["checkpoint"], ["consistency", "x", "--out", "y"]])
def test_operator_commands_need_an_existing_keyring(tmp_path, command):
    result = run(tmp_path, *command)
    assert result.exit_code == 2 and "lethe attest keygen" in result.output
    assert not (tmp_path / "attestation").exists()


def test_a_key_open_to_others_is_refused(tmp_path):
    assert run(tmp_path, "keygen").exit_code == 0
    key = tmp_path / "attestation" / "keys" / "attestation.key"
    key.chmod(0o644)
    result = run(tmp_path, "keygen")
    assert result.exit_code == 2 and "chmod 600" in result.output


def test_rotate_keeps_the_old_bundle_verifying(tmp_path):
    keyring = Keyring.open(tmp_path, now=KEYS_FROM)
    bundle = tmp_path / "old.bundle.json"
    keyring.publish(make_statement(), NOW + timedelta(minutes=1)).save(bundle)
    result = run(tmp_path, "rotate")
    assert result.exit_code == 0, result.output
    new_id = Keyring.open(tmp_path).signing_keys[0].keyid
    assert keyring.signing_keys[0].keyid in result.output and new_id in result.output
    assert new_id != keyring.signing_keys[0].keyid
    assert run(tmp_path, "verify", bundle).exit_code == 0


def test_securesystemslib_verifies_the_envelope_with_the_registry_key(world):
    entries = json.loads(world.registry.read_bytes())["keys"]
    signer = next(e for e in entries if e["purpose"] == "attestation")
    log_key = next(e for e in entries if e["purpose"] == "log")

    def public_key(entry: dict) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(b64decode_strict(entry["public_key"], "public key"))

    ssl_key = SSlibKey.from_crypto(public_key(signer), keyid=signer["keyid"])
    def envelope() -> dict:  # from_dict rewrites the dict it is given, so each call gets a fresh one
        return json.loads(world.first.read_bytes())["envelope"]

    assert list(SslibEnvelope.from_dict(envelope()).verify([ssl_key], 1)) == [signer["keyid"]]
    other = SSlibKey.from_crypto(public_key(log_key), keyid=signer["keyid"])  # trusted, but did not sign
    with pytest.raises(VerificationError):
        SslibEnvelope.from_dict(envelope()).verify([other], 1)


# Tampering: any one changed byte makes the auditor's or the operator's command fail.

@EXAMPLES
@given(position=POSITIONS, mask=MASKS)
def test_any_changed_bundle_byte_fails_verify(world, position, mask):
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "bundle.json"
        path.write_bytes(_flip(world.first.read_bytes(), position, mask))
        assert run(world.state, "verify", path, "--keys", world.registry).exit_code != 0


@EXAMPLES
@given(position=POSITIONS, mask=st.integers(min_value=1, max_value=127))
def test_any_changed_checkpoint_byte_in_a_bundle_fails_verify(world, position, mask):
    bundle = Bundle.load(world.first)
    try:
        note = _flip(bundle.inclusion.checkpoint.encode("utf-8"), position, mask).decode("utf-8")
    except UnicodeDecodeError:
        assume(False)  # a note is text; undecodable bytes cannot even be put in a bundle
    old = bundle.inclusion
    changed = Bundle(bundle.envelope, InclusionEvidence(old.index, old.tree_size, old.proof, note))
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "bundle.json"
        changed.save(path)
        assert run(world.state, "verify", path).exit_code != 0


@EXAMPLES
@given(position=POSITIONS, mask=MASKS)
def test_any_changed_consistency_file_byte_fails_verify(world, position, mask):
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "consistency.json"
        path.write_bytes(_flip(world.consistency.read_bytes(), position, mask))
        assert run(world.state, "verify", world.first, "--consistency", path).exit_code != 0


@EXAMPLES
@given(file=st.sampled_from(["entries.bin", "checkpoints.jsonl", "log.json"]), position=POSITIONS, mask=MASKS)
def test_any_changed_log_byte_makes_the_operator_commands_refuse(world, file, position, mask):
    with tempfile.TemporaryDirectory() as scratch:
        state = Path(scratch) / "state"
        shutil.copytree(world.state, state)
        target = state / "attestation" / "log" / file
        target.write_bytes(_flip(target.read_bytes(), position, mask))
        assert run(state, "checkpoint").exit_code != 0
        assert run(state, "consistency", world.first, "--out", Path(scratch) / "c.json").exit_code != 0
        assert not (Path(scratch) / "c.json").exists()


@EXAMPLES
@given(position=POSITIONS, mask=st.integers(min_value=1, max_value=127))
def test_any_changed_byte_of_an_older_checkpoint_makes_consistency_refuse(world, position, mask):
    note = Bundle.load(world.first).inclusion.checkpoint.encode("utf-8")
    with tempfile.TemporaryDirectory() as scratch:
        old = Path(scratch) / "old.txt"
        old.write_bytes(_flip(note, position, mask))
        assert run(world.state, "consistency", old, "--out", Path(scratch) / "c.json").exit_code != 0
