"""An append-only RFC 6962 transparency log on disk, with signed checkpoints and proofs.

A log is a directory: `log.json` names its origin; `entries.bin` holds the entries, each an 8-byte
big-endian length and the entry's bytes; `checkpoints.jsonl` holds one signed checkpoint note per
line (a JSON string). Appends take an exclusive lock, write one buffer with O_APPEND and fsync,
so a crash leaves at most one torn record at the end, which `open` then reports instead of guessing.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator, Sequence

from attestation.checkpoint import (Checkpoint, SignedCheckpoint, parse_checkpoint, sign_checkpoint,
                                    validate_origin, verify_checkpoint)
from attestation.encoding import canonical_json, loads_canonical, require_utc
from attestation.errors import AttestationError, InputError, LogError, ProofError
from attestation.keys import KeyRegistry, SigningKey
from attestation.merkle import consistency_path, inclusion_path, leaf_hash, root_hash

LOG_FORMAT = "lethe-transparency-log/v1"
MAX_ENTRY_BYTES = 16 * 1024 * 1024
_LENGTH_BYTES = 8


class TransparencyLog:
    """An append-only Merkle log of byte strings (here: DSSE envelopes) in one directory."""

    def __init__(self, directory: Path, origin: str):
        self.directory, self.origin = Path(directory), origin
        self._leaves: list[bytes] = []
        self._offsets: list[int] = []
        self._index: dict[bytes, int] = {}
        self._read_bytes = 0

    @classmethod
    def open(cls, directory: Path, *, origin: str | None = None) -> TransparencyLog:
        """Open the log in `directory`; with `origin`, create it there if it does not exist yet."""
        directory = Path(directory)
        meta_path = directory / "log.json"
        if not meta_path.exists():
            if origin is None:
                raise LogError(f"{directory} holds no transparency log (no log.json); create one by opening "
                               "it with an origin")
            validate_origin(origin)
            directory.mkdir(parents=True, exist_ok=True)
            _write_new(meta_path, canonical_json({"format": LOG_FORMAT, "origin": origin}) + b"\n")
        raw = meta_path.read_bytes()
        try:
            # Canonical, so that no byte of the log's files can change without notice.
            meta = loads_canonical(raw[:-1] if raw.endswith(b"\n") else b"", f"log metadata {meta_path}")
        except InputError as exc:
            raise LogError(str(exc)) from exc
        if not isinstance(meta, dict) or set(meta) != {"format", "origin"} or meta["format"] != LOG_FORMAT:
            raise LogError(f"{meta_path} is not a {LOG_FORMAT} log description")
        if origin is not None and meta["origin"] != origin:
            raise LogError(f"the log in {directory} has origin {meta['origin']!r}, not {origin!r}")
        log = cls(directory, meta["origin"])
        with log._locked(exclusive=False):
            log._refresh()
        return log

    @property
    def _entries_path(self) -> Path:
        return self.directory / "entries.bin"

    @property
    def _checkpoints_path(self) -> Path:
        return self.directory / "checkpoints.jsonl"

    @contextmanager
    def _locked(self, *, exclusive: bool) -> Iterator[None]:
        # One lock file serializes writers across processes; readers take it shared.
        with open(self.directory / ".lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _refresh(self) -> None:
        """Read records appended since the last read (by this or another process)."""
        try:
            with open(self._entries_path, "rb") as handle:
                handle.seek(self._read_bytes)
                data = handle.read()
        except FileNotFoundError:
            return
        pos = 0
        while pos < len(data):
            start = self._read_bytes + pos
            if pos + _LENGTH_BYTES > len(data):
                raise _torn(self._entries_path, start)
            length = int.from_bytes(data[pos:pos + _LENGTH_BYTES], "big")
            if not 0 < length <= MAX_ENTRY_BYTES or pos + _LENGTH_BYTES + length > len(data):
                raise _torn(self._entries_path, start)
            entry_hash = leaf_hash(data[pos + _LENGTH_BYTES:pos + _LENGTH_BYTES + length])
            if entry_hash in self._index:
                raise LogError(f"{self._entries_path}: the record at byte {start} repeats entry "
                               f"{self._index[entry_hash]}; appends are idempotent, so the file was altered")
            self._index[entry_hash] = len(self._leaves)
            self._leaves.append(entry_hash)
            self._offsets.append(start)
            pos += _LENGTH_BYTES + length
        self._read_bytes += pos

    @property
    def size(self) -> int:
        """The number of entries."""
        return len(self._leaves)

    def root(self, size: int | None = None) -> bytes:
        """The Merkle root of the first `size` entries (default: all)."""
        return root_hash(self._leaves[:self._size(size)])

    def _size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ProofError(f"tree size {size} is outside 0..{self.size} (the log's current size)")
        return size

    def append(self, entry: bytes) -> int:
        """Append `entry` and return its index; an entry already in the log returns its index."""
        if not 0 < len(entry) <= MAX_ENTRY_BYTES:
            raise LogError(f"a log entry must have 1..{MAX_ENTRY_BYTES} bytes, got {len(entry)}")
        with self._locked(exclusive=True):
            self._refresh()
            existing = self._index.get(leaf_hash(entry))
            if existing is not None:
                return existing
            fd = os.open(self._entries_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, len(entry).to_bytes(_LENGTH_BYTES, "big") + entry)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._refresh()
            return self._index[leaf_hash(entry)]

    def index_of(self, entry: bytes) -> int | None:
        """The index of `entry`, or None if it is not in the log."""
        return self._index.get(leaf_hash(entry))

    def entry(self, index: int) -> bytes:
        """The bytes of entry `index`."""
        if not 0 <= index < self.size:
            raise LogError(f"entry {index} is not in the log (size {self.size})")
        with open(self._entries_path, "rb") as handle:
            handle.seek(self._offsets[index])
            length = int.from_bytes(handle.read(_LENGTH_BYTES), "big")
            return handle.read(length)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The audit path of entry `index` in the tree of the first `size` entries."""
        return inclusion_path(self._leaves[:self._size(size)], index)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Proof that the log at `old_size` is a prefix of the log at `new_size` (default: now)."""
        return consistency_path(self._leaves[:self._size(new_size)], self._size(old_size))

    def sign_checkpoint(self, keys: Sequence[SigningKey], *, now: datetime) -> SignedCheckpoint:
        """Sign the current size and root with the log keys and store the checkpoint."""
        with self._locked(exclusive=True):
            self._refresh()
            moment = require_utc(now, "checkpoint time").replace(microsecond=0)
            previous = self._read_checkpoints()
            if previous and moment < parse_checkpoint(previous[-1]).checkpoint.timestamp:
                raise LogError(f"checkpoint time {moment.isoformat()} is before the latest checkpoint's; "
                               "check the clock")
            signed = sign_checkpoint(Checkpoint(self.origin, self.size, self.root(), moment), tuple(keys))
            fd = os.open(self._checkpoints_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, canonical_json(signed.to_text()) + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            return signed

    def checkpoints(self) -> list[str]:
        """Every stored checkpoint note, oldest first."""
        with self._locked(exclusive=False):
            return self._read_checkpoints()

    def latest_checkpoint(self) -> str | None:
        """The newest checkpoint note, or None before the first is signed."""
        notes = self.checkpoints()
        return notes[-1] if notes else None

    def _read_checkpoints(self) -> list[str]:
        try:
            data = self._checkpoints_path.read_bytes()
        except FileNotFoundError:
            return []
        if data and not data.endswith(b"\n"):
            raise LogError(f"{self._checkpoints_path} ends with an incomplete line: a checkpoint write was "
                           "torn")
        notes = []
        for number, line in enumerate(data.splitlines(), start=1):
            try:
                note = loads_canonical(line, f"{self._checkpoints_path} line {number}")
            except InputError as exc:
                raise LogError(str(exc)) from exc
            if not isinstance(note, str):
                raise LogError(f"{self._checkpoints_path} line {number} is not a checkpoint note string")
            notes.append(note)
        return notes

    def audit(self, registry: KeyRegistry, *, require_full_coverage: bool = True) -> Checkpoint | None:
        """Check every stored checkpoint against the entries; the latest, or LogError at the first fault."""
        with self._locked(exclusive=False):
            self._refresh()
            notes = self._read_checkpoints()
        latest: Checkpoint | None = None
        for number, note in enumerate(notes, start=1):
            try:
                checkpoint = verify_checkpoint(note, registry)
            except AttestationError as exc:
                raise LogError(f"checkpoint {number} of {self._checkpoints_path}: {exc}") from exc
            if checkpoint.origin != self.origin or checkpoint.size > self.size:
                raise LogError(f"checkpoint {number} names origin {checkpoint.origin!r} and size "
                               f"{checkpoint.size}; the log is {self.origin!r} with {self.size} entries")
            if checkpoint.root != self.root(checkpoint.size):
                raise LogError(f"checkpoint {number} signs root {checkpoint.root.hex()} for size "
                               f"{checkpoint.size}, but the entries give {self.root(checkpoint.size).hex()}: "
                               "the entries were altered after signing")
            if latest and (checkpoint.size < latest.size or checkpoint.timestamp < latest.timestamp):
                raise LogError(f"checkpoint {number} goes back in size or time from checkpoint {number - 1}")
            latest = checkpoint
        if require_full_coverage and (latest.size if latest else 0) != self.size:
            uncovered = self.size - (latest.size if latest else 0)
            raise LogError(f"{uncovered} entries are not covered by a signed checkpoint; sign one with the "
                           "log key")
        return latest


def _torn(path: Path, offset: int) -> LogError:
    return LogError(f"{path} has an incomplete or corrupt record at byte {offset}. If the last append "
                    f"crashed (it never returned an index), truncate the file to {offset} bytes "
                    f"(`truncate -s {offset} {path}`); otherwise restore the log from a backup")


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
