"""Errors of the erasure domain: configuration it finds missing, unknown or conflicting requests, pending reviews."""


class ErasureError(Exception):
    """Base of the errors raised by `erasure`."""


class ConfigurationError(ErasureError):
    """A setting is missing or wrong; the message names it and what to set."""


class InvalidRequestError(ErasureError, ValueError):
    """A request, a review or an extension asks for something that cannot be; the message says what to give."""


class RequestNotFoundError(ErasureError):
    """No erasure request with that id."""


class RequestConflictError(ErasureError):
    """An idempotency key already names a different request; `fields` says in what it differs."""

    def __init__(self, message: str, fields: list[str] | None = None):
        super().__init__(message)
        self.fields = list(fields or [])


class ReviewPendingError(ErasureError):
    """The request waits for a person to decide on borderline near-duplicates."""
