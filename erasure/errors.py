"""Errors of the composition root: configuration and the local Neo4j server."""


class ErasureError(Exception):
    """Base of the errors raised by `erasure`."""


class ConfigurationError(ErasureError):
    """A setting is missing or wrong; the message names it and what to set."""


class Neo4jServerError(ErasureError):
    """The local Neo4j server could not be built, started or stopped."""
