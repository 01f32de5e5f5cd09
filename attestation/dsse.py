"""DSSE v1 envelopes (github.com/secure-systems-lab/dsse) signed with Ed25519.

An envelope is the canonical JSON {"payload": base64, "payloadType": ..., "signatures": [{"keyid",
"sig"}]}; each signature covers PAE(payloadType, payload), never the JSON, so the payload cannot be
reinterpreted under another type. Parsing is strict: exactly these fields, canonical base64, at
least one signature, key ids as this project writes them (hex SHA-256 of the raw public key).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from cryptography.exceptions import InvalidSignature

from attestation.encoding import b64decode_strict, b64encode, canonical_json, loads_canonical
from attestation.errors import InputError, KeyRegistryError, SignatureError
from attestation.keys import KeyPurpose, KeyRegistry, SigningKey

PAYLOAD_TYPE_IN_TOTO = "application/vnd.in-toto+json"
_KEYID = re.compile(r"^[0-9a-f]{64}$")
_ED25519_SIGNATURE_BYTES = 64


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


@dataclass(frozen=True)
class DsseSignature:
    """One signature of an envelope and the id of the key that made it."""

    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope: payload bytes, their type, and signatures over their PAE."""

    payload: bytes
    payload_type: str
    signatures: tuple[DsseSignature, ...]

    def pae(self) -> bytes:
        """The bytes every signature covers."""
        return pae(self.payload_type, self.payload)

    def to_json(self) -> bytes:
        """The envelope's canonical JSON bytes (what is logged and what auditors receive)."""
        return canonical_json({
            "payload": b64encode(self.payload),
            "payloadType": self.payload_type,
            "signatures": [{"keyid": s.keyid, "sig": b64encode(s.sig)} for s in self.signatures],
        })

    @classmethod
    def from_json(cls, data: bytes) -> Envelope:
        """Parse envelope bytes strictly; InputError says which part is malformed."""
        raw = loads_canonical(data, "DSSE envelope")
        _exact_fields(raw, {"payload", "payloadType", "signatures"}, "DSSE envelope")
        if not isinstance(raw["payloadType"], str) or not raw["payloadType"]:
            raise InputError("DSSE envelope: payloadType must be a non-empty string")
        signatures = raw["signatures"]
        if not isinstance(signatures, list) or not signatures:
            raise InputError("DSSE envelope: signatures must be a non-empty list (an unsigned envelope "
                             "proves nothing)")
        parsed, seen = [], set()
        for i, item in enumerate(signatures):
            where = f"DSSE envelope signatures[{i}]"
            _exact_fields(item, {"keyid", "sig"}, where)
            if not isinstance(item["keyid"], str) or not _KEYID.match(item["keyid"]):
                raise InputError(f"{where}.keyid must be 64 lowercase hex characters, got {item['keyid']!r}")
            if item["keyid"] in seen:
                raise InputError(f"{where}: key {item['keyid']} signs twice; one signature per key")
            seen.add(item["keyid"])
            sig = b64decode_strict(item["sig"], f"{where}.sig")
            if len(sig) != _ED25519_SIGNATURE_BYTES:
                raise InputError(f"{where}.sig has {len(sig)} bytes; an Ed25519 signature has 64")
            parsed.append(DsseSignature(item["keyid"], sig))
        payload = b64decode_strict(raw["payload"], "DSSE envelope payload")
        return cls(payload, raw["payloadType"], tuple(parsed))


def _exact_fields(raw: object, fields: set[str], where: str) -> None:
    if not isinstance(raw, dict):
        raise InputError(f"{where} must be a JSON object")
    missing, extra = fields - raw.keys(), raw.keys() - fields
    if missing or extra:
        raise InputError(f"{where}: missing fields {sorted(missing)}, unknown fields {sorted(extra)}")


def sign_envelope(payload: bytes, payload_type: str, keys: Sequence[SigningKey]) -> Envelope:
    """An envelope of `payload` signed by each key (at least one, each once)."""
    if not keys:
        raise SignatureError("sign_envelope needs at least one signing key")
    if len({k.keyid for k in keys}) != len(keys):
        raise SignatureError("sign_envelope was given the same key twice")
    message = pae(payload_type, payload)
    return Envelope(payload, payload_type, tuple(DsseSignature(k.keyid, k.sign(message)) for k in keys))


def verify_envelope(envelope: Envelope, registry: KeyRegistry, *,
                    purpose: KeyPurpose = KeyPurpose.ATTESTATION, threshold: int = 1,
                    at: datetime | None = None) -> tuple[str, ...]:
    """Key ids of the trusted keys whose signatures verify; SignatureError below `threshold`.

    With `at`, each key must also be valid at that time; without it only its registration and
    purpose are checked here, and the caller checks the window at the signed time.
    """
    if threshold < 1:
        raise SignatureError(f"threshold must be at least 1, got {threshold}")
    message, verified, problems = envelope.pae(), [], []
    for signature in envelope.signatures:
        try:
            public_key = (registry.public_key(signature.keyid, purpose) if at is None
                          else registry.resolve(signature.keyid, at=at, purpose=purpose))
            public_key.verify(signature.sig, message)
        except KeyRegistryError as exc:
            problems.append(str(exc))
            continue
        except InvalidSignature:
            problems.append(f"the signature by key {signature.keyid} does not verify: the payload, its type "
                            "or the signature was changed")
            continue
        verified.append(signature.keyid)
    if len(verified) < threshold:
        detail = "; ".join(problems) or "no signatures"
        raise SignatureError(f"{len(verified)} valid signature(s) from trusted keys, {threshold} required: "
                             f"{detail}")
    return tuple(verified)
