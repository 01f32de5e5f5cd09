"""The lineage package's errors: one small hierarchy, each message says what to fix."""


class LineageError(Exception):
    """Base of every error raised by `lineage`."""


class InvalidRecordError(LineageError):
    """A record in an ingest batch is malformed; names the line and the field."""

    def __init__(self, line: int, field: str, problem: str):
        self.line, self.field, self.problem = line, field, problem
        super().__init__(f"line {line}: field '{field}': {problem}")


class BatchRejectedError(LineageError):
    """An ingest batch had invalid records; nothing of it was written."""

    def __init__(self, source: str, errors: list[InvalidRecordError], shown: int = 20):
        self.source, self.errors = source, errors
        lines = "\n".join(f"  - {e}" for e in errors[:shown])
        more = f"\n  … and {len(errors) - shown} more" if len(errors) > shown else ""
        super().__init__(
            f"{source}: {len(errors)} invalid record(s); the batch was not written "
            f"(batches are all-or-nothing). Fix these and ingest again:\n{lines}{more}"
        )


def lines_shown(lines: list[tuple[int, str]], most: int = 10) -> str:
    """The first `most` (line, record id) pairs of a batch, for an error message."""
    return ", ".join(f"line {line} (id {rid!r})" for line, rid in lines[:most])


class ContentConflictError(LineageError):
    """A record id already in the graph arrives with different content."""

    def __init__(self, conflicts: list[tuple[int, str]]):
        self.conflicts = conflicts
        shown = lines_shown(conflicts)
        super().__init__(
            f"{len(conflicts)} record id(s) already exist with different content: {shown}. "
            "Record ids are immutable: give changed records a new id. Nothing was written."
        )


class PepperError(LineageError):
    """The secret pepper for subject keys is missing or too weak."""


class GraphUnavailableError(LineageError):
    """Neo4j cannot be reached or refused the credentials."""


class NotFoundError(LineageError):
    """A node named by the caller is not in the graph."""


class ErasedContentError(LineageError):
    """A batch brings back records that were erased; they are refused forever."""

    def __init__(self, lines: list[tuple[int, str]]):
        self.lines = lines
        shown = lines_shown(lines)
        super().__init__(
            f"{len(lines)} record(s) match erased records (same id or same content hash): {shown}. "
            "They may come from a stale snapshot or backup. Remove them, or pass --skip-erased to "
            "drop them and ingest the rest. Nothing was written."
        )


class InvalidValueError(LineageError, ValueError):
    """A value given to `lineage` is out of its range or malformed; the message names it and what to give."""
