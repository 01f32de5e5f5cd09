"""What Lethe agrees to read: sizes and nesting, so hostile or broken input fails fast with a clear error.

Every reader of outside input goes through these: record batch lines, request files, identifiers. The
figures are in the README's "Limits and file modes"; change them together.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from attestation.encoding import JsonLimitExceeded, loads_within
from lineage.errors import LineageError

MAX_JSON_DEPTH = 64                    # objects and arrays inside each other
MAX_DOCUMENT_BYTES = 16 * 2**20        # a request file, an attestation bundle, a key registry
MAX_RECORD_LINE_BYTES = 4 * 2**20      # one record of a batch file (its text and its subject)
MAX_IDENTIFIER_CHARS = {"email": 320, "phone": 64, "account": 128, "name": 300}


class InputLimitError(LineageError, ValueError):
    """Input beyond one of Lethe's limits; the message names the input, the limit and what to do."""


def _mib(size: int) -> str:
    return f"{size / 2**20:g} MiB"


def control_character(value: str, allowed: str = "") -> str | None:
    """The first control character (NUL, a line break, an escape…) in `value` that is not in `allowed`."""
    return next((ch for ch in value if unicodedata.category(ch) == "Cc" and ch not in allowed), None)


def loads_json_bounded(text: str | bytes, what: str, *, max_depth: int = MAX_JSON_DEPTH, **options) -> Any:
    """json.loads with Lethe's limits: nesting deeper than `max_depth` or a number too long for Python is an
    InputLimitError naming `what`; malformed JSON stays a json.JSONDecodeError for the caller to word."""
    try:
        return loads_within(text, max_depth, **options)
    except JsonLimitExceeded as exc:
        raise InputLimitError(exc.describe(what, max_depth, "Lethe")) from None


def read_bounded(handle: IO[bytes], what: str, max_bytes: int = MAX_DOCUMENT_BYTES) -> bytes:
    """At most `max_bytes` from an open binary file; more is an InputLimitError (nothing more is read)."""
    data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InputLimitError(f"{what} is larger than {_mib(max_bytes)}; Lethe reads no such documents")
    return data


def read_file_bounded(path: Path, what: str | None = None, max_bytes: int = MAX_DOCUMENT_BYTES) -> bytes:
    """A whole file of at most `max_bytes`; a missing one is a FileNotFoundError naming it (no errno)."""
    what = what or str(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no such file" + ("" if not path.exists() else " (it is a folder)"))
    with path.open("rb") as handle:
        return read_bounded(handle, what, max_bytes)


def iter_lines_bounded(path: Path, max_line_bytes: int = MAX_RECORD_LINE_BYTES) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes without the line end) of every non-blank line, reading one bounded line at a time:
    a line longer than `max_line_bytes` is an InputLimitError as soon as it is met."""
    with path.open("rb") as handle:
        for number, raw in enumerate(iter(lambda: handle.readline(max_line_bytes + 1), b""), start=1):
            if len(raw) > max_line_bytes and not (len(raw) == max_line_bytes + 1 and raw.endswith(b"\n")):
                raise InputLimitError(f"{path}: line {number} is longer than {_mib(max_line_bytes)}; a record "
                                      "(its text and subject) must fit in one line of at most that size")
            raw = raw.rstrip(b"\n").rstrip(b"\r")
            if raw.strip():
                yield number, raw
