"""Defense in depth: refuse statements holding text that looks like an email address or phone number.

Attestations name people only by keyed HMACs; the models already forbid free text in most places,
and this guard scans every string (keys too) of a statement before it is signed or trusted. Errors
name where the suspect text is, never the text itself, so the error does not leak it either.
"""

from __future__ import annotations

import re
from typing import Any

from attestation.errors import IdentifierLeakError

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
# Digits with the usual separators, not glued to an identifier-like token on either side, so hex
# digests, base64, ISO timestamps (2025-01-31T...) and ids like run-20250301-123456 do not match.
_PHONE = re.compile(r"(?<![A-Za-z0-9_/:.\-])\+?[\d(][\d\s().\-]{5,}\d(?![A-Za-z0-9_/\-])")
_DECIMAL = re.compile(r"^\d+\.\d+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MIN_PHONE_DIGITS, MAX_PHONE_DIGITS = 7, 15  # E.164 allows at most 15
MIN_BARE_PHONE_DIGITS = 10  # a bare run of digits counts only at a full national number's length


def _looks_like_phone(candidate: str) -> bool:
    digits = sum(c.isdigit() for c in candidate)
    if not MIN_PHONE_DIGITS <= digits <= MAX_PHONE_DIGITS:
        return False
    if _DECIMAL.match(candidate) or _DATE.match(candidate):
        return False
    if candidate.isdigit():
        return digits >= MIN_BARE_PHONE_DIGITS
    return True


def identifier_kind(text: str) -> str | None:
    """'email address' or 'phone number' if `text` contains one, else None."""
    if _EMAIL.search(text):
        return "email address"
    if any(_looks_like_phone(m.group(0).strip()) for m in _PHONE.finditer(text)):
        return "phone number"
    return None


def find_identifiers(value: Any, path: str = "$") -> list[tuple[str, str]]:
    """(JSON path, kind) of every string in a JSON value that looks like a raw identifier."""
    found: list[tuple[str, str]] = []
    if isinstance(value, str):
        kind = identifier_kind(value)
        if kind:
            found.append((path, kind))
    elif isinstance(value, dict):
        for key, item in value.items():
            kind = identifier_kind(key) if isinstance(key, str) else None
            if kind:
                found.append((f"{path} (a key)", kind))
            # A suspect key is redacted in the paths below it too.
            found.extend(find_identifiers(item, f"{path}.{'<redacted key>' if kind else key}"))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found.extend(find_identifiers(item, f"{path}[{i}]"))
    return found


def refuse_identifiers(value: Any, what: str = "statement") -> None:
    """IdentifierLeakError if any string in `value` looks like an email address or phone number."""
    found = find_identifiers(value)
    if found:
        where = ", ".join(f"{path} ({kind})" for path, kind in found[:10])
        raise IdentifierLeakError(
            f"the {what} holds what looks like a raw personal identifier at {where}. Attestations must name "
            "people only by subject key (HMAC) and records only by hash: replace the value, or hash it")
