"""Ed25519 signing keys and the key registry that says which key was trusted for what, and when.

A key id is the lowercase hex SHA-256 of the 32 raw public-key bytes. It depends on the key alone
(not on an encoding such as PEM or a scheme name), so anyone can recompute it from the public key,
and a registry entry whose id does not match its key is refused.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from attestation.encoding import (b64decode_strict, b64encode, canonical_json, format_utc, loads_strict,
                                  parse_utc, read_input_file, require_utc, sha256_hex)
from attestation.errors import InputError, KeyRegistryError

REGISTRY_FORMAT = "lethe-key-registry/v1"
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


class KeyPurpose(StrEnum):
    """What a key may sign; one key never serves both, so a signature cannot be replayed across them."""

    ATTESTATION = "attestation"
    LOG = "log"


def key_id(public_key: Ed25519PublicKey) -> str:
    """Hex SHA-256 of the raw 32-byte public key."""
    return sha256_hex(public_key.public_bytes(*_RAW))


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key with its key id."""

    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The matching public key."""
        return self.private_key.public_key()

    @property
    def keyid(self) -> str:
        """Hex SHA-256 of the raw public key."""
        return key_id(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of `message`."""
        return self.private_key.sign(message)


def generate_signing_key() -> SigningKey:
    """A fresh random Ed25519 key."""
    return SigningKey(Ed25519PrivateKey.generate())


def save_private_key(key: SigningKey, path: Path) -> None:
    """Write the key as unencrypted PKCS#8 PEM, readable by the owner only; never overwrite."""
    pem = key.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    try:
        # O_EXCL + mode 0600 at creation: the key is never briefly readable by others.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise InputError(f"{path} exists; refusing to overwrite a private key (move it away first)") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())


def load_private_key(path: Path) -> SigningKey:
    """Read a PEM private key written by `save_private_key`; refuse one others can read."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read private key {path}: {exc.strerror}") from exc
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(f"private key {path} is accessible by group or others (mode {mode & 0o777:o}); "
                         f"run `chmod 600 {path}`")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InputError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"{path} holds a {type(key).__name__}; Lethe signs with Ed25519 keys only")
    return SigningKey(key)


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    """SubjectPublicKeyInfo PEM text of a public key."""
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def parse_public_key(text: str, what: str) -> Ed25519PublicKey:
    """A public key from PEM text or base64 of the 32 raw bytes."""
    if text.lstrip().startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        except (ValueError, UnicodeEncodeError, UnsupportedAlgorithm) as exc:
            raise InputError(f"{what}: not a PEM public key: {exc}") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise InputError(f"{what}: a {type(key).__name__}; only Ed25519 keys are accepted")
        return key
    raw = b64decode_strict(text, what)
    if len(raw) != 32:
        raise InputError(f"{what}: a raw Ed25519 public key has 32 bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


@dataclass(frozen=True)
class KeyEntry:
    """One trusted key: valid for `purpose` from `not_before` (inclusive) until `not_after` or revocation."""

    keyid: str
    public_key: Ed25519PublicKey
    purpose: KeyPurpose
    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None = None

    def to_json(self) -> dict:
        """The registry-file form of this entry."""
        entry = {"keyid": self.keyid, "public_key": b64encode(self.public_key.public_bytes(*_RAW)),
                 "purpose": self.purpose.value, "not_before": format_utc(self.not_before),
                 "not_after": format_utc(self.not_after)}
        if self.revoked_at is not None:
            entry["revoked_at"] = format_utc(self.revoked_at)
        return entry


_ENTRY_FIELDS = {"keyid", "public_key", "purpose", "not_before", "not_after"}


def _entry_from_json(raw: object, where: str) -> KeyEntry:
    if not isinstance(raw, dict):
        raise InputError(f"{where} must be a JSON object")
    missing, extra = _ENTRY_FIELDS - raw.keys(), raw.keys() - _ENTRY_FIELDS - {"revoked_at"}
    if missing or extra:
        raise InputError(f"{where}: missing fields {sorted(missing)}, unknown fields {sorted(extra)}")
    if not isinstance(raw["public_key"], str) or not isinstance(raw["keyid"], str):
        raise InputError(f"{where}: keyid and public_key must be strings")
    public_key = parse_public_key(raw["public_key"], f"{where}.public_key")
    if key_id(public_key) != raw["keyid"]:
        raise InputError(f"{where}: keyid {raw['keyid']!r} is not the SHA-256 of its public key "
                         f"({key_id(public_key)}); fix the entry")
    try:
        purpose = KeyPurpose(raw["purpose"])
    except ValueError as exc:
        raise InputError(f"{where}: purpose must be one of {[p.value for p in KeyPurpose]}, "
                         f"got {raw['purpose']!r}") from exc
    revoked = raw.get("revoked_at")
    return KeyEntry(raw["keyid"], public_key, purpose, parse_utc(raw["not_before"], f"{where}.not_before"),
                    parse_utc(raw["not_after"], f"{where}.not_after"),
                    None if revoked is None else parse_utc(revoked, f"{where}.revoked_at"))


class KeyRegistry:
    """The keys an auditor trusts, each for one purpose and a validity window."""

    def __init__(self, entries: list[KeyEntry] | tuple[KeyEntry, ...] = ()):
        self._entries: dict[str, KeyEntry] = {}
        for entry in entries:
            self.add(entry)

    def add(self, entry: KeyEntry) -> None:
        """Register a key; a duplicate key id or an empty window is refused."""
        if entry.keyid in self._entries:
            raise InputError(f"key {entry.keyid} is registered twice; keep one entry per key")
        if key_id(entry.public_key) != entry.keyid:
            raise InputError(f"keyid {entry.keyid} is not the SHA-256 of its public key")
        not_before = require_utc(entry.not_before, f"key {entry.keyid} not_before")
        if require_utc(entry.not_after, f"key {entry.keyid} not_after") <= not_before:
            raise InputError(f"key {entry.keyid}: not_after {format_utc(entry.not_after)} must be later than "
                             f"not_before {format_utc(entry.not_before)}")
        if entry.revoked_at is not None:
            require_utc(entry.revoked_at, f"key {entry.keyid} revoked_at")
        self._entries[entry.keyid] = entry

    def trust(self, key: Ed25519PublicKey, purpose: KeyPurpose, not_before: datetime,
              not_after: datetime) -> KeyEntry:
        """Register a public key for `purpose` during [not_before, not_after)."""
        entry = KeyEntry(key_id(key), key, KeyPurpose(purpose), not_before, not_after)
        self.add(entry)
        return entry

    def revoke(self, keyid: str, at: datetime) -> None:
        """Mark a key revoked from `at` on: signatures dated at or after it are refused."""
        entry = self.entry(keyid)
        self._entries[keyid] = KeyEntry(entry.keyid, entry.public_key, entry.purpose, entry.not_before,
                                        entry.not_after, require_utc(at, "revocation time"))

    def entry(self, keyid: str) -> KeyEntry:
        """The entry of a key id; KeyRegistryError if it is not registered."""
        try:
            return self._entries[keyid]
        except KeyError:
            raise KeyRegistryError(
                f"key id {keyid!r} is not in the key registry: the signer is not trusted. If the key is "
                "genuine, add its public key to the registry (from the signer's published key)") from None

    def public_key(self, keyid: str, purpose: KeyPurpose) -> Ed25519PublicKey:
        """The public key of a registered key id of this purpose, whatever its window."""
        entry = self.entry(keyid)
        if entry.purpose is not KeyPurpose(purpose):
            raise KeyRegistryError(f"key {keyid} is registered for {entry.purpose.value!r} signatures, "
                                   f"not {KeyPurpose(purpose).value!r}; keys are never shared between uses")
        return entry.public_key

    def resolve(self, keyid: str, *, at: datetime, purpose: KeyPurpose) -> Ed25519PublicKey:
        """The public key of `keyid` if it was valid for `purpose` at `at`; else KeyRegistryError."""
        public_key = self.public_key(keyid, purpose)
        entry, at = self._entries[keyid], require_utc(at, "signing time")
        if at < entry.not_before:
            raise KeyRegistryError(f"key {keyid} is valid from {format_utc(entry.not_before)}, but signed at "
                                   f"{format_utc(at)}: the signature predates the key's window")
        if at >= entry.not_after:
            raise KeyRegistryError(f"key {keyid} expired at {format_utc(entry.not_after)}, but signed at "
                                   f"{format_utc(at)}: re-sign with a current key")
        if entry.revoked_at is not None and at >= entry.revoked_at:
            raise KeyRegistryError(f"key {keyid} was revoked at {format_utc(entry.revoked_at)}; a signature "
                                   f"dated {format_utc(at)} cannot be trusted")
        return public_key

    def __contains__(self, keyid: object) -> bool:
        return keyid in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def to_json(self) -> bytes:
        """The registry file's bytes (canonical JSON)."""
        entries = [self._entries[k].to_json() for k in sorted(self._entries)]
        return canonical_json({"format": REGISTRY_FORMAT, "keys": entries})

    def save(self, path: Path) -> None:
        """Write the registry file."""
        Path(path).write_bytes(self.to_json() + b"\n")

    @classmethod
    def from_json(cls, data: bytes, what: str = "key registry") -> KeyRegistry:
        """Parse a registry file's bytes."""
        raw = loads_strict(data, what)
        if not isinstance(raw, dict) or set(raw) != {"format", "keys"} or raw["format"] != REGISTRY_FORMAT:
            raise InputError(f"{what} must be an object with \"format\": \"{REGISTRY_FORMAT}\" and a "
                             "\"keys\" list, nothing else")
        if not isinstance(raw["keys"], list):
            raise InputError(f"{what}: keys must be a list")
        return cls([_entry_from_json(item, f"{what} keys[{i}]") for i, item in enumerate(raw["keys"])])

    @classmethod
    def load(cls, path: Path) -> KeyRegistry:
        """Read a registry file."""
        return cls.from_json(read_input_file(path, "key registry"), f"key registry {path}")
