"""FAISS search over record embeddings: near-duplicates and paraphrases; generated samples vs scope records.

Importing the package imports neither torch nor faiss nor sentence-transformers: each loads on first use.
"""

from __future__ import annotations

from unlearning.search.embedder import MINILM_DIM, MINILM_NAME, Embedder, MiniLMEmbedder
from unlearning.search.errors import EmbedderError, IndexFileError, SearchError
from unlearning.search.faiss_backend import gpu_count
from unlearning.search.near_duplicates import (
                                               DEFAULT_K,
                                               PARAPHRASE_THRESHOLD,
                                               BestSample,
                                               NearDuplicate,
                                               embed_and_index,
                                               find_near_duplicates,
                                               max_cosine_per_record,
)
from unlearning.search.vector_index import EXACT_BELOW, SearchHits, VectorIndex

__all__ = ["DEFAULT_K", "EXACT_BELOW", "MINILM_DIM", "MINILM_NAME", "PARAPHRASE_THRESHOLD", "BestSample",
           "Embedder", "EmbedderError", "IndexFileError", "MiniLMEmbedder", "NearDuplicate", "SearchError",
           "SearchHits", "VectorIndex", "embed_and_index", "find_near_duplicates", "gpu_count",
           "max_cosine_per_record"]
