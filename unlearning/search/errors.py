"""Errors of the search side: the embedder, the vector index and its files."""

from __future__ import annotations

from unlearning.errors import UnlearningError

__all__ = ["EmbedderError", "IndexFileError", "SearchError"]


class SearchError(UnlearningError):
    """Base of the search errors; also bad vectors, ids or search arguments (the message names the value)."""


class EmbedderError(SearchError):
    """The embedder cannot be loaded, or a text given to it is unusable (the message names its position)."""


class IndexFileError(SearchError):
    """A saved vector index is missing, corrupted, or does not match what the caller expects."""
