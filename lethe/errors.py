"""Errors of the application shell: the local Neo4j server it runs."""

from erasure.errors import ErasureError

__all__ = ["InvalidArgumentError", "Neo4jServerError"]


class Neo4jServerError(ErasureError):
    """The local Neo4j server could not be built, started or stopped."""


class InvalidArgumentError(ErasureError, ValueError):
    """An argument of a command (a demo size, a token name) is out of range; the message says what to give."""
