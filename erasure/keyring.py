"""Lethe's attestation keys and transparency log, kept under the state folder and created on first use.

    <state_dir>/attestation/
        keys/attestation.key   Ed25519 key that signs attestations (PKCS#8 PEM, mode 0600)
        keys/log.key           Ed25519 key that signs the log's checkpoints (mode 0600)
        registry.json          the public key registry auditors trust: both keys and their windows
        log/                   the RFC 6962 transparency log of every published envelope
        .lock                  serializes creation and rotation across processes

Every file appears whole (written aside, then linked or renamed into place) and registry.json comes
last, so its presence means the keyring is complete. A rotated-out attestation key's private half is
deleted: its public key stays in the registry with its window closed at the rotation, so what it
signed still verifies, and nobody can sign back-dated attestations with it later.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from attestation import (AttestationError, Bundle, ConsistencyEvidence, InputError, KeyEntry, KeyPurpose,
                         KeyRegistry, LogError, SigningKey, Statement, TransparencyLog, generate_signing_key,
                         load_private_key, make_consistency_evidence, publish, save_private_key,
                         verify_checkpoint, verify_checkpoint_consistency)
from attestation.encoding import format_utc, require_utc
from attestation.verifier import CLOCK_SKEW
from erasure.errors import ConfigurationError
from lineage.local_files import write_private_bytes

LOG_ORIGIN = "lethe.local/erasure-log"
# A registry entry needs an end; "no end" is the last second a timestamp can spell.
NO_END = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
_LOST_KEY = ("restore it from a backup. If it is lost, move the attestation folder away, run `lethe attest "
             "keygen`, and give auditors the new registry.json alongside the old one")


class KeyringError(ConfigurationError):
    """The keyring's files are missing, unreadable, inconsistent, or readable by others."""


@dataclasses.dataclass(frozen=True)
class KeyringPaths:
    """Where each part of a keyring lives under `<state_dir>/attestation`."""

    directory: Path

    @classmethod
    def under(cls, state_dir: Path) -> KeyringPaths:
        """The paths of the keyring of a state folder."""
        return cls(Path(state_dir) / "attestation")

    @property
    def keys(self) -> Path:
        return self.directory / "keys"

    @property
    def attestation_key(self) -> Path:
        return self.keys / "attestation.key"

    @property
    def pending_key(self) -> Path:
        """A rotation's new key before it takes the attestation key's place."""
        return self.keys / "attestation.next.key"

    @property
    def log_key(self) -> Path:
        return self.keys / "log.key"

    @property
    def registry(self) -> Path:
        return self.directory / "registry.json"

    @property
    def log(self) -> Path:
        return self.directory / "log"


class Keyring:
    """The attestation key, the log key, the registry that trusts them, and the log they serve."""

    def __init__(self, paths: KeyringPaths, attestation_key: SigningKey, log_key: SigningKey,
                 registry: KeyRegistry, log: TransparencyLog, *, created: bool = False):
        self.paths, self.log, self.created = paths, log, created
        self._attestation_key, self._log_key, self._registry = attestation_key, log_key, registry

    @classmethod
    def open(cls, state_dir: Path, *, create: bool = True, now: datetime | None = None) -> Keyring:
        """Load the keyring of `state_dir`; create it first (keys trusted from `now`) if it is missing."""
        paths = KeyringPaths.under(state_dir)
        if not create and not paths.registry.exists():
            raise KeyringError(f"no attestation keyring in {paths.directory} (no registry.json): create one "
                               "with `lethe attest keygen`")
        try:
            paths.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise KeyringError(f"cannot create the keyring folder {paths.directory}: {exc.strerror}; set "
                               "LETHE_STATE_DIR to a folder you can write") from exc
        must_write = not paths.registry.exists() or paths.pending_key.exists()
        created = False
        with _locked(paths, exclusive=must_write):
            if not paths.registry.exists():  # checked again: another process may have created it meanwhile
                _create(paths, _second(now or datetime.now(timezone.utc)))
                created = True
            elif must_write:
                _finish_rotation(paths, _load_registry(paths))
            return cls._load(paths, created)

    @classmethod
    def _load(cls, paths: KeyringPaths, created: bool) -> Keyring:
        if paths.pending_key.exists():
            raise KeyringError(f"a key rotation was interrupted ({paths.pending_key} exists): open the "
                               "keyring again (or run `lethe attest rotate`) to finish it")
        registry = _load_registry(paths)
        attestation_key = _read_key(paths.attestation_key, "attestation signing key")
        log_key = _read_key(paths.log_key, "log signing key")
        for key, purpose, path in ((attestation_key, KeyPurpose.ATTESTATION, paths.attestation_key),
                                   (log_key, KeyPurpose.LOG, paths.log_key)):
            if key.keyid not in registry or registry.entry(key.keyid).purpose is not purpose:
                raise KeyringError(f"{paths.registry} does not trust {path} (key id {key.keyid}) for "
                                   f"{purpose.value} signatures: the files come from different keyrings; "
                                   "restore the attestation folder from one backup")
        if not (paths.log / "log.json").exists():
            raise KeyringError(f"the transparency log {paths.log} is missing although {paths.registry} "
                               "exists: restore it from a backup (a new, empty log would lack the "
                               "attestations already published)")
        log = TransparencyLog.open(paths.log)
        return cls(paths, attestation_key, log_key, registry, log, created=created)

    @property
    def signing_keys(self) -> list[SigningKey]:
        """The keys that sign attestations (the current attestation key)."""
        return [self._attestation_key]

    @property
    def log_keys(self) -> list[SigningKey]:
        """The keys that sign the log's checkpoints."""
        return [self._log_key]

    @property
    def registry(self) -> KeyRegistry:
        """The public registry trusting this keyring's keys, as last read or written."""
        return self._registry

    @property
    def registry_path(self) -> Path:
        """The registry file to give auditors (`lethe attest verify --keys`)."""
        return self.paths.registry

    def publish(self, statement: Statement, now: datetime) -> Bundle:
        """Sign `statement`, log it, sign a checkpoint at `now`, and return the bundle.

        Refuses, before anything is logged, a statement that would not verify: one dated outside the
        signing key's window in the registry on disk, or after `now`.
        """
        attested_at, now = statement.predicate.attested_at, require_utc(now, "publication time")
        if attested_at > now + CLOCK_SKEW:
            raise KeyringError(f"the statement is dated {format_utc(attested_at)}, after the publication "
                               f"time {format_utc(now)}: its checkpoint would predate it; check the clock")
        with _locked(self.paths, exclusive=False):
            registry = _load_registry(self.paths)  # another process may have rotated since this one opened
            try:
                for key in self.signing_keys:
                    registry.resolve(key.keyid, at=attested_at, purpose=KeyPurpose.ATTESTATION)
                for key in self.log_keys:
                    registry.resolve(key.keyid, at=now, purpose=KeyPurpose.LOG)
            except AttestationError as exc:
                raise KeyringError(f"refusing to publish a statement that would not verify under "
                                   f"{self.paths.registry}: {exc}") from exc
            self._registry = registry
            return publish(statement, signing_keys=self.signing_keys, log=self.log, log_keys=self.log_keys,
                           now=now)

    def rotate_signing_key(self, now: datetime) -> SigningKey:
        """Replace the attestation key: the old key's window closes at `now` and the new one's opens there."""
        moment = _second(now)
        with _locked(self.paths, exclusive=True):
            _finish_rotation(self.paths, _load_registry(self.paths))
            registry = _load_registry(self.paths)
            current = _read_key(self.paths.attestation_key, "attestation signing key")
            old = registry.entry(current.keyid)
            if moment <= old.not_before:
                raise KeyringError(f"cannot rotate at {format_utc(moment)}: key {current.keyid} is trusted "
                                   f"only from {format_utc(old.not_before)}; rotate at a later time")
            new = generate_signing_key()
            _save_key(new, self.paths.pending_key)
            rotated = KeyRegistry([dataclasses.replace(e, not_after=min(e.not_after, moment))
                                   if e.keyid == current.keyid else e for e in _entries(registry)])
            rotated.trust(new.public_key, KeyPurpose.ATTESTATION, moment, NO_END)
            write_private_bytes(self.paths.registry, rotated.to_json() + b"\n")
            os.replace(self.paths.pending_key, self.paths.attestation_key)
        self._attestation_key, self._registry = new, rotated
        return new

    def latest_checkpoint(self) -> str:
        """The newest checkpoint note, after auditing the log on disk against the registry."""
        latest = self._audited_log().latest_checkpoint()
        if latest is None:
            raise LogError(f"the log {self.paths.log} has no signed checkpoint yet: one is signed when the "
                           "first attestation is published")
        return latest

    def consistency_evidence(self, older_checkpoint: str) -> ConsistencyEvidence:
        """Proof that the log's latest checkpoint extends `older_checkpoint`, checked before returning it."""
        verify_checkpoint(older_checkpoint, self._registry)
        evidence = make_consistency_evidence(self._audited_log(), older_checkpoint)
        verify_checkpoint_consistency(older_checkpoint, evidence.checkpoint, evidence.proof, self._registry)
        return evidence

    def _audited_log(self) -> TransparencyLog:
        # Entries appended after the last checkpoint (a crash before signing) are allowed; altered ones not.
        self.log.audit(self._registry, require_full_coverage=False)
        return self.log


def _create(paths: KeyringPaths, now: datetime) -> None:
    paths.keys.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Keys left by a creation that stopped before the registry was written have signed nothing: reuse them.
    keys = {}
    for purpose, path in ((KeyPurpose.ATTESTATION, paths.attestation_key), (KeyPurpose.LOG, paths.log_key)):
        keys[purpose] = _read_key(path, f"{purpose.value} signing key") if path.exists() else _new_key(path)
    TransparencyLog.open(paths.log, origin=LOG_ORIGIN)
    registry = KeyRegistry()
    for purpose, key in keys.items():
        registry.trust(key.public_key, purpose, now, NO_END)
    write_private_bytes(paths.registry, registry.to_json() + b"\n")


def _finish_rotation(paths: KeyringPaths, registry: KeyRegistry) -> None:
    """Complete a rotation that stopped after writing its new key: install it, or drop it if never trusted."""
    if not paths.pending_key.exists():
        return
    pending = _read_key(paths.pending_key, "pending attestation key")
    if pending.keyid in registry:
        os.replace(paths.pending_key, paths.attestation_key)
    else:
        paths.pending_key.unlink()


def _entries(registry: KeyRegistry) -> list[KeyEntry]:
    return [registry.entry(item["keyid"]) for item in json.loads(registry.to_json())["keys"]]


def _new_key(path: Path) -> SigningKey:
    key = generate_signing_key()
    _save_key(key, path)
    return key


def _save_key(key: SigningKey, path: Path) -> None:
    """Write a private key aside (0600, O_EXCL), then link it into place, so it never appears half-written."""
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    scratch.unlink(missing_ok=True)  # left by a crashed process that had this pid
    try:
        save_private_key(key, scratch)
        os.link(scratch, path)
    except (AttestationError, OSError) as exc:
        raise KeyringError(f"cannot write the private key {path}: {exc}; check that {path.parent} is "
                           "writable and that no other key file is in the way") from exc
    finally:
        scratch.unlink(missing_ok=True)


def _read_key(path: Path, what: str) -> SigningKey:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise KeyringError(f"cannot read the {what} {path}: {exc.strerror}; {_LOST_KEY}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyringError(f"the {what} {path} is open to group or others (mode {mode & 0o777:o}); a private "
                           f"key must be its owner's alone: run `chmod 600 {path}`, and if someone else may "
                           "have read it, treat it as compromised")
    try:
        return load_private_key(path)
    except InputError as exc:
        raise KeyringError(f"the {what} {path} is unreadable or corrupt ({exc}); {_LOST_KEY}") from exc


def _load_registry(paths: KeyringPaths) -> KeyRegistry:
    try:
        return KeyRegistry.load(paths.registry)
    except InputError as exc:
        raise KeyringError(f"{exc}; restore {paths.registry} from a backup, or from the copy given to "
                           "auditors") from exc


def _second(moment: datetime) -> datetime:
    # Checkpoints carry whole seconds; a window opening mid-second could miss a statement of that second.
    return require_utc(moment, "keyring time").replace(microsecond=0)


@contextmanager
def _locked(paths: KeyringPaths, *, exclusive: bool) -> Iterator[None]:
    with open(paths.directory / ".lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
