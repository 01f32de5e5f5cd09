"""Errors of the composition root: configuration and the local Neo4j server."""


class ErasureError(Exception):
    """Base of the errors raised by `erasure`."""


class ConfigurationError(ErasureError):
    """A setting is missing or wrong; the message names it and what to set."""


class Neo4jServerError(ErasureError):
    """The local Neo4j server could not be built, started or stopped."""


class RequestNotFoundError(ErasureError):
    """No erasure request with that id."""


class RequestConflictError(ErasureError):
    """An idempotency key already names a different request; `fields` says in what it differs."""

    def __init__(self, message: str, fields: list[str] | None = None):
        super().__init__(message)
        self.fields = list(fields or [])


class ReviewPendingError(ErasureError):
    """The request waits for a person to decide on borderline near-duplicates."""
