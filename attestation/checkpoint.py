"""Signed checkpoints: a short text note naming a log's size and root at a time, signed by log keys.

    lethe.dev/erasure-log            <- origin: which log
    42                               <- tree size
    3q2+7w...=                       <- root hash, standard base64
    2025-01-31T12:00:00Z             <- when the log operator signed it (UTC)
                                     <- blank line: the signed body ends above it
    — 9f86d08188... 1Xcq...==        <- "— " key id, base64 Ed25519 signature of the body

The layout follows the C2SP tlog-checkpoint / signed-note shape, with the key id as this package
defines it. Parsing accepts only the exact bytes `to_text` writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from cryptography.exceptions import InvalidSignature

from attestation.encoding import b64decode_strict, b64encode, format_utc, parse_utc, require_utc
from attestation.errors import CheckpointError, InputError, KeyRegistryError
from attestation.keys import KeyPurpose, KeyRegistry, SigningKey
from attestation.merkle import HASH_SIZE

# Lowercase, no spaces: an origin can never start a DSSE PAE ("DSSEv1 ..."), a second guard
# beside keys having one purpose each.
_ORIGIN = re.compile(r"^[a-z0-9][a-z0-9._/-]{0,199}$")
_SIZE = re.compile(r"^(0|[1-9][0-9]{0,18})$")
_SIGNATURE_LINE = re.compile(r"^\u2014 ([0-9a-f]{64}) (\S+)$")
_DASH = "\u2014"


def validate_origin(origin: str) -> str:
    """The origin if it is a valid log name; CheckpointError otherwise."""
    if not isinstance(origin, str) or not _ORIGIN.match(origin):
        raise CheckpointError(f"log origin {origin!r} must be lowercase letters, digits and ._/- "
                              "(like lethe.example/erasure-log)")
    return origin


@dataclass(frozen=True)
class Checkpoint:
    """A log's origin, size and root hash at a UTC time."""

    origin: str
    size: int
    root: bytes
    timestamp: datetime

    def __post_init__(self) -> None:
        validate_origin(self.origin)
        if not 0 <= self.size < 2**63:
            raise CheckpointError(f"tree size {self.size} is out of range")
        if len(self.root) != HASH_SIZE:
            raise CheckpointError(f"root hash has {len(self.root)} bytes, expected {HASH_SIZE}")
        require_utc(self.timestamp, "checkpoint timestamp")

    def body(self) -> bytes:
        """The signed bytes: origin, size, base64 root and timestamp, one per line."""
        return (f"{self.origin}\n{self.size}\n{b64encode(self.root)}\n{format_utc(self.timestamp)}\n"
                .encode())


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint with its (key id, signature) pairs."""

    checkpoint: Checkpoint
    signatures: tuple[tuple[str, bytes], ...]

    def to_text(self) -> str:
        """The note as written to files and bundles."""
        lines = "".join(f"{_DASH} {keyid} {b64encode(sig)}\n" for keyid, sig in self.signatures)
        return self.checkpoint.body().decode("utf-8") + "\n" + lines


def sign_checkpoint(checkpoint: Checkpoint, keys: Sequence[SigningKey]) -> SignedCheckpoint:
    """Sign a checkpoint's body with each log key."""
    if not keys:
        raise CheckpointError("a checkpoint needs at least one log key to sign it")
    body = checkpoint.body()
    return SignedCheckpoint(checkpoint, tuple((k.keyid, k.sign(body)) for k in keys))


def parse_checkpoint(text: str | bytes) -> SignedCheckpoint:
    """Parse a note strictly; CheckpointError names the line that is malformed."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CheckpointError(f"checkpoint is not valid UTF-8 (byte {exc.start})") from exc
    if not isinstance(text, str) or not text.endswith("\n"):
        raise CheckpointError("checkpoint must be text ending in a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 6 or lines[4] != "":
        raise CheckpointError("checkpoint must have 4 body lines (origin, size, root, timestamp), a blank "
                              "line, then at least one signature line")
    origin, size, root, stamp = lines[:4]
    if not _SIZE.match(size):
        raise CheckpointError(f"checkpoint tree size {size!r} is not a decimal without leading zeros")
    try:
        checkpoint = Checkpoint(origin, int(size), b64decode_strict(root, "checkpoint root hash"),
                                parse_utc(stamp, "checkpoint timestamp"))
    except InputError as exc:
        raise CheckpointError(str(exc)) from exc
    signatures, seen = [], set()
    for line in lines[5:]:
        match = _SIGNATURE_LINE.match(line)
        if not match or match.group(1) in seen:
            raise CheckpointError(f"checkpoint signature line {line!r} is not '{_DASH} <key id> <base64>' "
                                  "with a key id not used before")
        seen.add(match.group(1))
        try:
            signatures.append((match.group(1), b64decode_strict(match.group(2), "checkpoint signature")))
        except InputError as exc:
            raise CheckpointError(str(exc)) from exc
    signed = SignedCheckpoint(checkpoint, tuple(signatures))
    if signed.to_text() != text:
        raise CheckpointError("checkpoint is not in its canonical form (it was re-formatted or altered)")
    return signed


def verify_checkpoint(text: str | bytes, registry: KeyRegistry, *, threshold: int = 1) -> Checkpoint:
    """The checkpoint if at least `threshold` log keys valid at its timestamp signed it."""
    signed = parse_checkpoint(text)
    body, verified, problems = signed.checkpoint.body(), [], []
    for keyid, sig in signed.signatures:
        try:
            registry.resolve(keyid, at=signed.checkpoint.timestamp, purpose=KeyPurpose.LOG).verify(sig, body)
        except KeyRegistryError as exc:
            problems.append(str(exc))
            continue
        except InvalidSignature:
            problems.append(f"the signature by log key {keyid} does not verify: the checkpoint was changed")
            continue
        verified.append(keyid)
    if len(verified) < max(threshold, 1):
        raise CheckpointError(f"checkpoint of {signed.checkpoint.origin} at size {signed.checkpoint.size}: "
                              f"{len(verified)} valid log signature(s), {max(threshold, 1)} required: "
                              + ("; ".join(problems) or "no signatures"))
    return signed.checkpoint
