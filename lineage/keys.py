"""Subject keys: keyed HMACs of normalized identifiers, so raw identifiers never reach storage."""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from enum import StrEnum

import phonenumbers

from lineage.errors import InvalidValueError, PepperError
from lineage.limits import MAX_IDENTIFIER_CHARS, control_character

MIN_PEPPER_BYTES = 32
# Numbers written without a country code are read as this region's. Changing it changes keys.
DEFAULT_PHONE_REGION = "US"


class IdentifierKind(StrEnum):
    """The identifier kinds a subject can be named by."""

    EMAIL = "email"
    PHONE = "phone"
    ACCOUNT = "account"
    NAME = "name"


_SPACES = re.compile(r"\s+")


def normalize_identifier(kind: IdentifierKind, value: str) -> str:
    """Canonical form of an identifier, so that trivially different spellings share one key."""
    _check_raw(kind, value)
    text = unicodedata.normalize("NFKC", value).strip()
    if kind is IdentifierKind.EMAIL:
        normalized = text.lower()
        if normalized.count("@") != 1 or normalized.startswith("@") or normalized.endswith("@"):
            raise InvalidValueError("not an email address (expected exactly one '@' between two parts)")
    elif kind is IdentifierKind.PHONE:
        normalized = _normalize_phone(text)
    elif kind is IdentifierKind.ACCOUNT:
        normalized = _SPACES.sub("", text).upper()
        if normalized and not any(ch.isalnum() for ch in normalized):
            raise InvalidValueError("an account id needs at least one letter or digit")
    else:
        normalized = _SPACES.sub(" ", text).casefold()
    if not normalized:
        raise InvalidValueError("empty identifier")
    return normalized


def _check_raw(kind: IdentifierKind, value: str) -> None:
    """Refuse what no identifier holds: more than the kind's length limit, or control characters (NUL, escapes).
    The message names the problem, never the value."""
    limit = MAX_IDENTIFIER_CHARS[kind.value]
    if len(value) > limit:
        raise InvalidValueError(f"longer than {limit} characters (got {len(value)}); no {kind.value} is that long")
    bad = control_character(value, allowed="\t")
    if bad is not None:
        raise InvalidValueError(f"holds a control character (U+{ord(bad):04X}); remove it")


def _normalize_phone(text: str) -> str:
    """E.164 (e.g. +12025550142), so '(202) 555-0142' and '+1 202 555 0142' share a key."""
    digits = re.sub(r"\D", "", text)
    if len(digits) < 5:
        raise InvalidValueError("a phone number needs at least 5 digits")
    try:
        number = phonenumbers.parse(text, DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException:
        return ("+" if text.lstrip().startswith("+") else "") + digits
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class SubjectKeyer:
    """Turns identifiers into subject keys: HMAC-SHA256 under a secret pepper."""

    def __init__(self, pepper: bytes):
        if len(pepper) < MIN_PEPPER_BYTES:
            raise PepperError(
                f"the pepper has {len(pepper)} bytes; at least {MIN_PEPPER_BYTES} random bytes are "
                "needed (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )
        self._pepper = pepper

    def key(self, kind: IdentifierKind | str, value: str) -> str:
        """The subject key of one identifier (hex), or ValueError naming what is wrong with it."""
        kind = IdentifierKind(kind)
        message = f"{kind.value}:{normalize_identifier(kind, value)}".encode()
        return hmac.new(self._pepper, message, hashlib.sha256).hexdigest()

    def tag(self, purpose: str, value: str) -> str:
        """HMAC-SHA256 (hex) of `value` for another purpose than a subject key (e.g. idempotency keys)."""
        if not purpose or ":" in purpose:
            raise InvalidValueError(f"purpose must be a non-empty name without ':', got {purpose!r}")
        return hmac.new(self._pepper, f"tag:{purpose}:{value}".encode(), hashlib.sha256).hexdigest()

    def keys(self, identifiers: dict[str, str]) -> dict[str, str]:
        """Keys of several identifiers by kind; empty values are skipped."""
        return {kind: self.key(kind, value) for kind, value in identifiers.items() if value}

    def __repr__(self) -> str:  # never print the pepper
        return "SubjectKeyer(pepper=<hidden>)"
