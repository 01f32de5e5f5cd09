"""Content hashing: the graph keeps hashes of records, never their text."""

from __future__ import annotations

import hashlib
import unicodedata
from lineage.errors import InvalidValueError


def content_sha256(text: str) -> str:
    """SHA-256 (hex) of a record's text in Unicode NFC, so equal texts hash equally."""
    return hashlib.sha256(unicodedata.normalize("NFC", text).encode("utf-8")).hexdigest()


def shard_index(record_id: str, shard_count: int) -> int:
    """The shard a record belongs to: deterministic in its id, independent of batch order."""
    if shard_count < 1:
        raise InvalidValueError(f"shard_count must be >= 1, got {shard_count}")
    digest = hashlib.sha256(record_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shard_count
