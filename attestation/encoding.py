"""Byte-exact encodings: canonical JSON, strict JSON parsing, strict base64, UTC timestamps.

Signatures and Merkle leaves cover exact bytes, so every encoding here has one canonical form and
parsing refuses anything else: two spellings of one value would let a changed file still verify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from attestation.errors import InputError

MAX_JSON_DEPTH = 64  # attestation files nest a dozen levels at most


def canonical_json(value: Any) -> bytes:
    """UTF-8 JSON with sorted keys and no whitespace; NaN and infinities refused."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
    except ValueError as exc:
        raise InputError(f"cannot encode as canonical JSON: {exc}") from exc


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # Two readers could pick different copies of a duplicated key: refuse the ambiguity.
            raise InputError(f"duplicate JSON key {key!r}")
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise InputError(f"JSON constant {name} is not allowed")


class JsonLimitExceeded(ValueError):
    """Parsed JSON beyond a limit: `kind` is "depth" (nesting) or "digits" (a number too long for Python)."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind

    def describe(self, what: str, max_depth: int, reader: str) -> str:
        """The error for people: `what` broke which limit, and that no `reader` input does ("attestation")."""
        if self.kind == "digits":
            return (f"{what} holds a number longer than {sys.get_int_max_str_digits()} digits; no {reader} field "
                    "takes one")
        return f"{what} nests objects or arrays deeper than {max_depth} levels; no {reader} file does"


def read_input_file(path: Path, what: str) -> bytes:
    """A file's bytes; an unreadable one is an InputError naming `what` and why."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from exc


def loads_within(text: str | bytes, max_depth: int, **options) -> Any:
    """json.loads, refusing nesting deeper than `max_depth` or a number longer than Python converts with
    JsonLimitExceeded; malformed JSON stays a json.JSONDecodeError for the caller to word."""
    try:
        value = json.loads(text, **options)
    except RecursionError:
        raise JsonLimitExceeded("depth") from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # e.g. an integer longer than sys.get_int_max_str_digits()
        if "digits" not in str(exc):
            raise
        raise JsonLimitExceeded("digits") from None
    if json_depth(value) > max_depth:
        raise JsonLimitExceeded("depth")
    return value


def loads_strict(data: bytes | str, what: str) -> Any:
    """Parse JSON that must be valid UTF-8, without duplicate keys or NaN; InputError names `what`."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return loads_within(text, MAX_JSON_DEPTH, object_pairs_hook=_refuse_duplicates,
                            parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} is not valid UTF-8 (byte {exc.start}): the file is damaged") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} "
                         f"column {exc.colno}") from exc
    except InputError as exc:
        raise InputError(f"{what}: {exc}") from exc
    except JsonLimitExceeded as exc:
        raise InputError(exc.describe(what, MAX_JSON_DEPTH, "attestation")) from None


def json_depth(value: Any) -> int:
    """How deeply objects and arrays nest in a parsed JSON value (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def loads_canonical(data: bytes, what: str) -> Any:
    """Parse JSON that must also be byte-for-byte in canonical form (see `canonical_json`)."""
    value = loads_strict(data, what)
    if canonical_json(value) != data:
        raise InputError(f"{what} is not canonical JSON (sorted keys, no whitespace, UTF-8): it was altered "
                         "after signing or re-formatted by another tool; use the file exactly as issued")
    return value


def b64encode(data: bytes) -> str:
    """Standard, padded base64 (RFC 4648 §4)."""
    return base64.b64encode(data).decode("ascii")


def b64decode_strict(text: Any, what: str) -> bytes:
    """Decode standard padded base64 that must be in its one canonical spelling."""
    if not isinstance(text, str):
        raise InputError(f"{what} must be a base64 string, got {type(text).__name__}")
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise InputError(f"{what} is not valid standard base64: {exc}") from exc
    # Non-zero padding bits decode to the same bytes: only the re-encoded spelling is accepted.
    if b64encode(data) != text:
        raise InputError(f"{what} is not canonical base64 (unused bits set or wrong padding)")
    return data


def sha256_hex(data: bytes) -> str:
    """Lowercase hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


_UTC_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z$")


def format_utc(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, microseconds only when non-zero; naive datetimes refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InputError(f"timestamp {moment.isoformat()} has no time zone: give an aware UTC datetime")
    moment = moment.astimezone(timezone.utc)
    pattern = "%Y-%m-%dT%H:%M:%S.%fZ" if moment.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return moment.strftime(pattern)


def parse_utc(text: Any, what: str) -> datetime:
    """Parse a timestamp written by `format_utc`, and only in that exact spelling."""
    if not isinstance(text, str) or not _UTC_TEXT.match(text):
        raise InputError(f"{what} must be an RFC 3339 UTC timestamp like 2025-01-31T12:00:00Z, got {text!r}")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"{what} is not a valid date and time: {text!r}") from exc
    if format_utc(moment) != text:
        raise InputError(f"{what} is not in canonical form (write microseconds only when non-zero): {text!r}")
    return moment


def require_utc(moment: datetime, what: str) -> datetime:
    """The same instant in UTC; a naive datetime is refused rather than guessed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InputError(f"{what} has no time zone ({moment.isoformat()}): give an aware UTC datetime")
    return moment.astimezone(timezone.utc)
