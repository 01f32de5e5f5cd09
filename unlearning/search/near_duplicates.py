"""Near-duplicates and paraphrases of records, and the search of generated samples against scope records."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import NamedTuple

import numpy as np

from unlearning.search.embedder import Embedder, check_texts
from unlearning.search.errors import SearchError
from unlearning.search.faiss_backend import GPU_MAX_K
from unlearning.search.vector_index import VectorIndex, check_ids, check_vectors

__all__ = ["DEFAULT_K", "PARAPHRASE_THRESHOLD", "BestSample", "NearDuplicate", "embed_and_index",
           "find_near_duplicates", "max_cosine_per_record"]

# all-MiniLM-L6-v2 cosine from which a record is reported as a near-duplicate or paraphrase candidate.
# Measured on the demo corpus (generate_corpus(customers=60), seeds 1, 2, 3, 7, 11): the planted paraphrase
# (the same facts reworded inside another customer's ticket) scores 0.812-0.834 against its original
# (0.822 at seed 11); 0.75 leaves room for paraphrases reworded further. It is the original's best match
# among other customers' records at every seed, but by as little as 0.004: other customers' tickets on
# the same topic (charged twice) reach 0.808. Cosine cannot tell a paraphrase of a subject's ticket from
# another customer's ticket written from the same template: such pairs have a median of 0.88-0.93 and reach
# 0.997; at seed 11, 640 of 22,995 cross-customer pairs pass 0.75 (619 same-template, 21 not; pairs from
# different templates: p99 0.63, max 0.89). So matches are candidates, ranked by cosine: the caller
# confirms them (shared identifiers, Presidio mentions) before adding them to a scope.
PARAPHRASE_THRESHOLD = 0.75
DEFAULT_K = 10
SAMPLE_BLOCK = 8192  # samples scored at a time: bounds the (records x samples) matrix


class NearDuplicate(NamedTuple):
    """A record similar to a query record: both ids and their cosine."""

    query_id: str
    match_id: str
    cosine: float


class BestSample(NamedTuple):
    """The generated sample closest to a scope record: its cosine and its position among the samples."""

    cosine: float
    sample: int


def find_near_duplicates(index: VectorIndex, query_ids: Sequence[str], query_vectors, *,
                         threshold: float = PARAPHRASE_THRESHOLD, k: int = DEFAULT_K,
                         exclude: Collection[str] = ()) -> list[NearDuplicate]:
    """Records of `index` within cosine >= `threshold` of each query (its k best), best first.

    A query never matches its own id, ids in `exclude` (say, records already in scope) are skipped, and
    a pair found from both sides is reported once, with the higher cosine.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not -1.0 <= threshold <= 1.0:
        raise SearchError(f"threshold must be a cosine in [-1, 1], got {threshold!r}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= GPU_MAX_K:
        raise SearchError(f"k must be an integer in [1, {GPU_MAX_K}], got {k!r}")
    query_vectors = check_vectors(query_vectors, name="query vectors", dim=index.dim)
    query_ids = check_ids(query_ids, len(query_vectors))
    if isinstance(exclude, (str, bytes)):
        raise SearchError(f"exclude must be a collection of ids, not one {type(exclude).__name__}")
    excluded = set(exclude)
    # One more than k: the query's own record, when indexed, comes back first and is dropped.
    hits = index.search(query_vectors, min(k + 1, GPU_MAX_K))
    best: dict[frozenset[str], NearDuplicate] = {}
    for query_id, ids, scores in zip(query_ids, hits.ids, hits.scores):
        kept = [(match, float(score)) for match, score in zip(ids, scores) if match != query_id][:k]
        for match_id, cosine in kept:
            if cosine < threshold or match_id in excluded:
                continue
            pair = frozenset((query_id, match_id))
            if pair not in best or cosine > best[pair].cosine:
                best[pair] = NearDuplicate(query_id, match_id, cosine)
    return sorted(best.values(), key=lambda m: (-m.cosine, m.query_id, m.match_id))


def max_cosine_per_record(scope_ids: Sequence[str], scope_vectors, sample_vectors) -> dict[str, BestSample]:
    """For each scope record, the generated sample with the highest cosine (exact; first one on ties)."""
    scope = check_vectors(scope_vectors, name="scope vectors")
    scope_ids = check_ids(scope_ids, len(scope))
    samples = check_vectors(sample_vectors, name="sample vectors", dim=scope.shape[1], dim_of="the scope")
    if len(samples) == 0 and len(scope) > 0:
        raise SearchError("no sample vectors: the maximum cosine over zero samples is undefined")
    best_cos = np.full(len(scope), -np.inf, dtype=np.float32)
    best_row = np.zeros(len(scope), dtype=np.int64)
    for start in range(0, len(samples), SAMPLE_BLOCK):
        block = scope @ samples[start:start + SAMPLE_BLOCK].T
        rows, cosines = block.argmax(axis=1), block.max(axis=1)
        better = cosines > best_cos  # strict: an earlier sample keeps a tie
        best_cos[better], best_row[better] = cosines[better], rows[better] + start
    return {rid: BestSample(float(c), int(r)) for rid, c, r in zip(scope_ids, best_cos, best_row)}


def embed_and_index(embedder: Embedder, ids: Sequence[str], texts: Sequence[str], **build) -> VectorIndex:
    """Embed `texts` and index them under `ids` (keyword arguments go to `VectorIndex.build`)."""
    texts = check_texts(texts)
    if isinstance(ids, (str, bytes)) or len(ids) != len(texts):
        raise SearchError(f"got {len(ids)} ids for {len(texts)} texts; give exactly one id per text")
    return VectorIndex.build(ids, embedder.encode(texts), embedder_name=embedder.name, **build)
