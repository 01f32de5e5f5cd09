"""Attestation bundles: one file holding an envelope and the proof that the log holds it.

    {"format": "lethe-attestation-bundle/v1",
     "envelope": {...the DSSE envelope...},
     "log": {"index": 7, "tree_size": 9, "inclusion_proof": [base64 hashes], "checkpoint": "<note>"}}

The file is canonical JSON (plus one final newline), so it has exactly one spelling; the envelope's
canonical JSON is the log entry whose inclusion the proof shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Sequence

from attestation.checkpoint import parse_checkpoint
from attestation.dsse import Envelope
from attestation.encoding import b64decode_strict, b64encode, canonical_json, loads_canonical, read_input_file
from attestation.errors import InputError, LogError
from attestation.keys import SigningKey
from attestation.statement import Statement, sign_statement
from attestation.transparency_log import TransparencyLog

BUNDLE_FORMAT = "lethe-attestation-bundle/v1"
CONSISTENCY_FORMAT = "lethe-consistency-proof/v1"


@dataclass(frozen=True)
class InclusionEvidence:
    """Where the log holds an entry: index, tree size, audit path, and the checkpoint of that size."""

    index: int
    tree_size: int
    proof: tuple[bytes, ...]
    checkpoint: str


@dataclass(frozen=True)
class Bundle:
    """An envelope's bytes with its inclusion evidence."""

    envelope: bytes
    inclusion: InclusionEvidence

    def to_json(self) -> bytes:
        """The bundle file's bytes."""
        value = {
            "format": BUNDLE_FORMAT,
            "envelope": loads_canonical(self.envelope, "DSSE envelope"),
            "log": {"index": self.inclusion.index, "tree_size": self.inclusion.tree_size,
                    "inclusion_proof": [b64encode(h) for h in self.inclusion.proof],
                    "checkpoint": self.inclusion.checkpoint},
        }
        return canonical_json(value) + b"\n"

    def save(self, path: Path) -> None:
        """Write the bundle file."""
        Path(path).write_bytes(self.to_json())

    @classmethod
    def from_json(cls, data: bytes) -> Bundle:
        """Parse a bundle file strictly; InputError names the malformed part."""
        body = data[:-1] if data.endswith(b"\n") else data
        raw = loads_canonical(body, "attestation bundle")
        _exact(raw, {"format", "envelope", "log"}, "attestation bundle")
        if raw["format"] != BUNDLE_FORMAT:
            raise InputError(f"attestation bundle format is {raw['format']!r}, expected {BUNDLE_FORMAT!r}")
        log = raw["log"]
        _exact(log, {"index", "tree_size", "inclusion_proof", "checkpoint"}, "attestation bundle log")
        for name in ("index", "tree_size"):
            if type(log[name]) is not int or log[name] < 0:
                raise InputError(f"attestation bundle log.{name} must be a non-negative integer")
        if not isinstance(log["inclusion_proof"], list) or not isinstance(log["checkpoint"], str):
            raise InputError("attestation bundle log.inclusion_proof must be a list and checkpoint a string")
        proof = tuple(b64decode_strict(h, f"inclusion_proof[{i}]")
                      for i, h in enumerate(log["inclusion_proof"]))
        envelope = canonical_json(raw["envelope"])
        return cls(envelope, InclusionEvidence(log["index"], log["tree_size"], proof, log["checkpoint"]))

    @classmethod
    def load(cls, path: Path) -> Bundle:
        """Read a bundle file."""
        return cls.from_json(read_input_file(path, "attestation bundle"))


def _exact(raw: object, fields: set[str], where: str) -> None:
    if not isinstance(raw, dict) or set(raw) != fields:
        found = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise InputError(f"{where} must be an object with exactly {sorted(fields)}, got {found}")


def make_bundle(envelope: Envelope | bytes, log: TransparencyLog, checkpoint: str | None = None) -> Bundle:
    """A bundle for an envelope already in `log`, proven under `checkpoint` (default: the latest)."""
    entry = envelope.to_json() if isinstance(envelope, Envelope) else envelope
    index = log.index_of(entry)
    if index is None:
        raise LogError("the envelope is not in the log; append it (and sign a checkpoint) first")
    note = checkpoint if checkpoint is not None else log.latest_checkpoint()
    if note is None:
        raise LogError("the log has no signed checkpoint yet; sign one after appending")
    size = parse_checkpoint(note).checkpoint.size
    if index >= size:
        raise LogError(f"checkpoint of size {size} predates entry {index}; sign a newer checkpoint")
    return Bundle(entry, InclusionEvidence(index, size, tuple(log.inclusion_proof(index, size)), note))


def publish(statement: Statement, *, signing_keys: Sequence[SigningKey], log: TransparencyLog,
            log_keys: Sequence[SigningKey], now: datetime) -> Bundle:
    """Sign a statement, append the envelope to the log, sign a checkpoint, and return the bundle."""
    envelope = sign_statement(statement, signing_keys).to_json()
    log.append(envelope)
    checkpoint = log.sign_checkpoint(log_keys, now=now)
    return make_bundle(envelope, log, checkpoint.to_text())


@dataclass(frozen=True)
class ConsistencyEvidence:
    """Another checkpoint of the same log, and the consistency proof from or to the bundle's checkpoint."""

    checkpoint: str
    proof: tuple[bytes, ...]

    def to_json(self) -> bytes:
        """The consistency file's bytes (canonical JSON and a newline)."""
        return canonical_json({"format": CONSISTENCY_FORMAT, "checkpoint": self.checkpoint,
                               "proof": [b64encode(h) for h in self.proof]}) + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> ConsistencyEvidence:
        """Parse a consistency file strictly."""
        raw = loads_canonical(data[:-1] if data.endswith(b"\n") else data, "consistency proof file")
        _exact(raw, {"format", "checkpoint", "proof"}, "consistency proof file")
        if raw["format"] != CONSISTENCY_FORMAT or not isinstance(raw["checkpoint"], str):
            raise InputError(f"consistency proof file must have format {CONSISTENCY_FORMAT!r} and a "
                             "checkpoint string")
        if not isinstance(raw["proof"], list):
            raise InputError("consistency proof file: proof must be a list of base64 hashes")
        proof = tuple(b64decode_strict(h, f"proof[{i}]") for i, h in enumerate(raw["proof"]))
        return cls(raw["checkpoint"], proof)


def make_consistency_evidence(log: TransparencyLog, older_checkpoint: str) -> ConsistencyEvidence:
    """The log's latest checkpoint and the proof that it extends `older_checkpoint` (for auditors)."""
    latest = log.latest_checkpoint()
    if latest is None:
        raise LogError("the log has no signed checkpoint yet")
    old_size = parse_checkpoint(older_checkpoint).checkpoint.size
    new_size = parse_checkpoint(latest).checkpoint.size
    if old_size > new_size:
        raise LogError(f"the older checkpoint has size {old_size}, more than the latest ({new_size})")
    return ConsistencyEvidence(latest, tuple(log.consistency_proof(old_size, new_size)))
