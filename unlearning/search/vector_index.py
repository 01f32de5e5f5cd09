"""An index of record embeddings: ids over a FAISS inner-product index, saved beside its dataset version.

Vectors are L2-normalized, so inner product is cosine. Below `exact_below` vectors the index is
exact (flat); above it, IVF (or HNSW on request) with its search setting calibrated at build time
to a recall@10 target against exact search. Save it next to the dataset version it was built from,
e.g. `<dataset version dir>/vector-index/`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

import unlearning.search.faiss_backend as fb
from unlearning.search.errors import IndexFileError, SearchError

__all__ = ["EXACT_BELOW", "INDEX_FORMAT", "TARGET_RECALL", "SearchHits", "VectorIndex", "check_ids",
           "check_vectors"]

EXACT_BELOW = 50_000  # one flat query over 50k x 384 takes ~10 ms on one CPU core (3.6 ms measured at 20k)
# Calibrated above the 0.95 recall@10 goal: the estimate comes from 500 held-out queries, not all of them.
TARGET_RECALL = 0.97
CALIBRATION_K = 10
CALIBRATION_QUERIES = 500
NORM_TOLERANCE = 1e-3  # float32 rows from an embedder are unit-length to ~1e-6
INDEX_FORMAT = 1
INDEX_FILE, IDS_FILE, META_FILE = "index.faiss", "ids.json", "meta.json"


class SearchHits(NamedTuple):
    """Per query, the ids found (best first) and their cosines; scores past a row's last id are -inf."""

    ids: list[list[str]]
    scores: np.ndarray


def check_vectors(vectors, *, name: str = "vectors", dim: int | None = None,
                  dim_of: str = "the index") -> np.ndarray:
    """`vectors` as a C-contiguous float32 (rows, dim) array of finite unit rows, or a SearchError."""
    array = np.asarray(vectors)
    if array.dtype.kind != "f":
        raise SearchError(f"{name} must be floating point, got dtype {array.dtype}")
    if array.ndim != 2:
        raise SearchError(f"{name} must be a 2-D array (rows x dim), got shape {array.shape}; "
                          "one vector is vector.reshape(1, -1)")
    if array.shape[1] < 1:
        raise SearchError(f"{name} have dimension 0")
    if dim is not None and array.shape[1] != dim:
        raise SearchError(f"{name} have dimension {array.shape[1]} but {dim_of} has dimension {dim}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        raise SearchError(f"{name} row {int(np.argmin(finite))} holds NaN or infinity")
    norms = np.linalg.norm(array, axis=1)
    off = np.abs(norms - 1.0) > NORM_TOLERANCE
    if off.any():
        row = int(np.argmax(off))
        raise SearchError(f"{name} row {row} has L2 norm {norms[row]:.6g}, not 1: cosine search needs "
                          "L2-normalized rows (an Embedder gives them)")
    return array


def check_ids(ids: Sequence[str], rows: int) -> tuple[str, ...]:
    """`ids` as a tuple of distinct non-empty strings, one per vector row, or a SearchError."""
    if isinstance(ids, (str, bytes)):
        raise SearchError(f"ids must be a sequence of strings, not one {type(ids).__name__}")
    ids = tuple(ids)
    if len(ids) != rows:
        raise SearchError(f"got {len(ids)} ids for {rows} vectors; give exactly one id per row")
    seen: set[str] = set()
    for position, value in enumerate(ids):
        if not isinstance(value, str) or not value:
            raise SearchError(f"id {position} is {value!r}: ids must be non-empty strings")
        if value in seen:
            raise SearchError(f"duplicate id {value!r} (position {position}): each record is indexed once")
        seen.add(value)
    return ids


def vectors_sha256(ids: Sequence[str], vectors: np.ndarray) -> str:
    """SHA-256 of the ids and the float32 little-endian vectors: the identity of what was indexed."""
    digest = hashlib.sha256(f"lethe-vector-index\n{len(ids)} {vectors.shape[1]}\n".encode())
    digest.update(json.dumps(list(ids), ensure_ascii=False).encode())
    digest.update(np.ascontiguousarray(vectors, dtype="<f4").data)  # the buffer itself: no copy of 300 MB
    return digest.hexdigest()


class VectorIndex:
    """Record ids and their embeddings in a FAISS inner-product index (GPU when FAISS has one)."""

    def __init__(self, ids: tuple[str, ...], index, *, kind: str, dim: int, embedder_name: str | None,
                 content_sha256: str, params: dict):
        self._ids, self._index, self.kind, self.dim = ids, index, kind, dim
        self.embedder_name, self.content_sha256, self.params = embedder_name, content_sha256, dict(params)

    @classmethod
    def build(cls, ids: Sequence[str], vectors, *, kind: str = "auto", exact_below: int = EXACT_BELOW,
              embedder_name: str | None = None, target_recall: float = TARGET_RECALL,
              seed: int = 0) -> VectorIndex:
        """Index `vectors` under `ids`: flat below `exact_below` rows (kind "auto"), IVF from there on."""
        vectors = check_vectors(vectors)
        ids = check_ids(ids, len(vectors))
        if kind not in ("auto", *fb.KINDS):
            raise SearchError(f"unknown index kind {kind!r}; expected auto, {', '.join(fb.KINDS)}")
        if not 0.0 < target_recall <= 1.0:
            raise SearchError(f"target_recall must be in (0, 1], got {target_recall!r}")
        if kind == "auto":
            kind = "flat" if len(vectors) < exact_below else "ivf"
        if kind != "flat" and len(vectors) == 0:
            raise SearchError(f"an {kind} index needs at least one vector; an empty index is kind='flat'")
        dim, digest = vectors.shape[1], vectors_sha256(ids, vectors)
        index = fb.to_device(fb.new_index(kind, dim, len(vectors)), kind)
        if kind == "flat":
            index.add(vectors)
            params: dict = {}
        else:
            ids, params = _fill_calibrated(index, kind, ids, vectors, target_recall=target_recall, seed=seed)
        return cls(ids, index, kind=kind, dim=dim, embedder_name=embedder_name, content_sha256=digest,
                   params=params)

    @property
    def ids(self) -> tuple[str, ...]:
        """The ids in index row order: as given for flat; IVF and HNSW put their calibration rows last."""
        return self._ids

    @property
    def on_gpu(self) -> bool:
        """Whether searches run on the GPU."""
        return fb.is_gpu_index(self._index)

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return (f"VectorIndex(kind={self.kind!r}, count={len(self)}, dim={self.dim}, "
                f"embedder={self.embedder_name!r}, params={self.params})")

    def search(self, queries, k: int) -> SearchHits:
        """The k best ids per query row (fewer when the index holds fewer), with their cosines."""
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= fb.GPU_MAX_K:
            raise SearchError(f"k must be an integer in [1, {fb.GPU_MAX_K}], got {k!r}")
        queries = check_vectors(queries, name="queries", dim=self.dim)
        width = min(k, len(self))
        if width == 0 or len(queries) == 0:
            return SearchHits([[] for _ in range(len(queries))], np.zeros((len(queries), width), np.float32))
        scores, rows = self._index.search(queries, width)
        # An approximate search can come back short (-1 rows): those slots hold -inf, with no id.
        scores = np.where(rows >= 0, scores, -np.inf).astype(np.float32)
        ids = [[self._ids[r] for r in row if r >= 0] for row in rows]
        return SearchHits(ids, scores)

    def save(self, directory: Path) -> Path:
        """Write index, ids and meta (with SHA-256s) to `directory`, replacing it whole or not at all."""
        from unlearning.runtime import atomic_directory  # imports torch: only when saving

        faiss = fb.faiss_module()
        directory = Path(directory)
        with atomic_directory(directory) as staging:
            faiss.write_index(fb.to_cpu(self._index), str(staging / INDEX_FILE))
            (staging / IDS_FILE).write_text(json.dumps(list(self._ids), ensure_ascii=False), encoding="utf-8")
            meta = {"format": INDEX_FORMAT, "kind": self.kind, "dim": self.dim, "count": len(self),
                    "metric": "inner_product", "embedder": self.embedder_name,
                    "content_sha256": self.content_sha256, "params": self.params,
                    "faiss_version": faiss.__version__,
                    "files": {name: _file_sha256(staging / name) for name in (INDEX_FILE, IDS_FILE)}}
            meta_text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
            (staging / META_FILE).write_text(meta_text, encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: Path, *, embedder_name: str | None = None) -> VectorIndex:
        """Read an index written by `save`, checking its files' digests, shape and (if given) its embedder."""
        directory = Path(directory)
        meta = _read_meta(directory)
        if embedder_name is not None and meta.get("embedder") != embedder_name:
            raise IndexFileError(f"the index in {directory} was built with embedder "
                                 f"{meta.get('embedder')!r}, not {embedder_name!r}: rebuild it with the "
                                 "embedder you query with")
        for name in (INDEX_FILE, IDS_FILE):
            if _file_sha256(directory / name) != meta["files"].get(name):
                raise IndexFileError(f"{directory / name} does not match the SHA-256 recorded in {META_FILE} "
                                     "(corrupted or replaced): rebuild the index")
        faiss = fb.faiss_module()
        try:
            index = faiss.read_index(str(directory / INDEX_FILE))
            ids = json.loads((directory / IDS_FILE).read_text(encoding="utf-8"))
            kind = fb.index_kind(index)
        except (RuntimeError, ValueError, SearchError) as exc:
            raise IndexFileError(f"cannot read the index in {directory}: {exc}") from exc
        found = {"kind": kind, "dim": index.d, "count": index.ntotal}
        expected = {key: meta.get(key) for key in found}
        id_count = len(ids) if isinstance(ids, list) else None
        if found != expected or id_count != index.ntotal:
            raise IndexFileError(f"the index in {directory} holds {found} with {id_count} ids, but "
                                 f"{META_FILE} says {expected}: rebuild the index")
        try:
            ids = check_ids(ids, index.ntotal)
        except SearchError as exc:
            raise IndexFileError(f"{directory / IDS_FILE}: {exc}") from exc
        params = meta.get("params") or {}
        setting = fb.search_setting(kind)
        device_index = fb.to_device(index, kind)
        if setting is not None:
            if not isinstance(params.get(setting), int):
                raise IndexFileError(f"{directory / META_FILE} lacks the {setting} of its {kind} index: "
                                     "rebuild the index")
            fb.set_search_setting(device_index, kind, params[setting])
        return cls(ids, device_index, kind=kind, dim=index.d, embedder_name=meta.get("embedder"),
                   content_sha256=meta["content_sha256"], params=params)


def _fill_calibrated(index, kind: str, ids: tuple[str, ...], vectors: np.ndarray, *, target_recall: float,
                     seed: int) -> tuple[tuple[str, ...], dict]:
    """Train and fill an IVF or HNSW index, tune its search setting; return ids in row order and params."""
    if kind == "ivf":
        index.train(vectors)
        params: dict = {"nlist": int(index.nlist)}
    else:
        params = {"m": fb.HNSW_M, "ef_construction": fb.HNSW_EF_CONSTRUCTION}
    # Calibration queries must be new to the index: a random sample is held back, the rest is indexed,
    # the search setting is tuned on the sample, then the sample is added last (so its rows come last).
    held = min(CALIBRATION_QUERIES, len(vectors) // 10)
    shuffled = np.random.default_rng(seed).permutation(len(vectors))
    order = np.concatenate([np.sort(shuffled[held:]), np.sort(shuffled[:held])])
    ordered, cut = vectors[order], len(vectors) - held
    index.add(ordered[:cut])
    setting = fb.search_setting(kind)
    if held:
        value, recall = fb.calibrate(index, kind, ordered[:cut], ordered[cut:], target_recall=target_recall,
                                     k=CALIBRATION_K)
        params.update({setting: value, "calibrated_recall_at_10": round(recall, 4),
                       "calibration_queries": held, "target_recall": target_recall})
    else:  # too few rows to hold any back: search (nearly) everything
        value = params[setting] = fb.exhaustive_setting(index, kind)
    fb.set_search_setting(index, kind, value)
    index.add(ordered[cut:])
    return tuple(ids[i] for i in order), params


def _file_sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_meta(directory: Path) -> dict:
    path = directory / META_FILE
    if not path.is_file():
        raise IndexFileError(f"{directory} is not a saved vector index (no {META_FILE}; it needs "
                             f"{INDEX_FILE}, {IDS_FILE} and {META_FILE})")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexFileError(f"cannot read {path}: {exc}") from exc
    required = ("format", "kind", "dim", "count", "content_sha256", "files")
    if not isinstance(meta, dict) or any(key not in meta for key in required) \
            or not isinstance(meta["files"], dict):
        raise IndexFileError(f"{path} is not the meta of a vector index (needs {', '.join(required)})")
    if meta["format"] != INDEX_FORMAT:
        raise IndexFileError(f"{path} has format {meta['format']!r}; this version reads format "
                             f"{INDEX_FORMAT}: rebuild the index")
    return meta
