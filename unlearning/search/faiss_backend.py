"""FAISS behind one door: the lazy import, GPU placement, index construction and search-time settings.

The same calls run on CPU and GPU: an index is built as a CPU structure, moved to the GPU when faiss
sees one (the `gpu` extra, faiss-gpu-cu12), trained and filled there, and copied back to the CPU only
to be written to disk. HNSW has no GPU implementation in FAISS, so it always stays on the CPU.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from unlearning.search.errors import SearchError

__all__ = ["GPU_MAX_K", "KINDS", "calibrate", "exact_knn", "exhaustive_setting", "faiss_module", "gpu_count",
           "index_kind", "is_gpu_index", "new_index", "search_setting", "set_search_setting", "to_cpu",
           "to_device"]

KINDS = ("flat", "ivf", "hnsw")
INSTALL_HINT = "install one FAISS build through the project's extras: `uv sync --extra cpu` or `--extra gpu`"
GPU_MAX_K = 2048  # FAISS's GPU k-selection limit; applied on the CPU too, so both devices behave alike
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80  # 200k x 384 builds in ~1 min on 2 cores; higher buys little recall here
IVF_POINTS_PER_LIST = 4  # nlist ~ 4 sqrt(n): lists of ~sqrt(n)/4 vectors
# k-means on at most 64 points per centroid: 4x faster than faiss's 256, same recall once calibrated.
IVF_TRAIN_POINTS_PER_CENTROID = 64
IVF_MIN_POINTS_PER_CENTROID = 39  # below this faiss warns that k-means is under-trained
# Candidate settings tried in order until the calibration recall is reached (GPU IVF allows nprobe <= 2048).
NPROBE_STEPS = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 2048)
EF_SEARCH_STEPS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)


@functools.lru_cache(maxsize=1)
def faiss_module():
    """The faiss module, imported on first use; a SearchError naming the extras when it is missing."""
    try:
        import faiss
    except ImportError as exc:
        raise SearchError(f"FAISS is not installed ({exc}); {INSTALL_HINT}") from exc
    return faiss


@functools.lru_cache(maxsize=1)
def gpu_count() -> int:
    """GPUs that FAISS can use: 0 with the faiss-cpu build or without CUDA."""
    faiss = faiss_module()
    if not hasattr(faiss, "StandardGpuResources"):  # the faiss-cpu build has no GPU symbols at all
        return 0
    return int(faiss.get_num_gpus())


@functools.lru_cache(maxsize=1)
def _gpu_resources():
    # One set of GPU resources (streams, scratch memory) per process, shared by every index.
    return faiss_module().StandardGpuResources()


def to_device(index, kind: str):
    """`index` on GPU 0 when FAISS has a GPU and the kind runs there (flat, ivf); else `index` itself."""
    if kind == "hnsw" or gpu_count() == 0:
        return index
    return faiss_module().index_cpu_to_gpu(_gpu_resources(), 0, index)


def is_gpu_index(index) -> bool:
    """Whether `index` lives on a GPU."""
    faiss = faiss_module()
    return hasattr(faiss, "GpuIndex") and isinstance(index, faiss.GpuIndex)


def to_cpu(index):
    """A CPU copy of a GPU index (for writing); a CPU index as it is."""
    return faiss_module().index_gpu_to_cpu(index) if is_gpu_index(index) else index


def ivf_lists(n: int) -> int:
    """nlist for n vectors: ~4 sqrt(n), but never fewer than 39 training points per list."""
    return max(1, min(round(IVF_POINTS_PER_LIST * math.sqrt(n)), n // IVF_MIN_POINTS_PER_CENTROID))


def new_index(kind: str, dim: int, n: int):
    """An empty inner-product index of `kind` for `n` vectors of `dim` (IVF still untrained)."""
    faiss = faiss_module()
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        return index
    if kind == "ivf":
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, ivf_lists(n), faiss.METRIC_INNER_PRODUCT)
        index.cp.max_points_per_centroid = IVF_TRAIN_POINTS_PER_CENTROID
        return index
    raise SearchError(f"unknown index kind {kind!r}; expected one of {', '.join(KINDS)}")


def index_kind(index) -> str:
    """The kind of a faiss index read from disk, or a SearchError for any other type or metric."""
    faiss = faiss_module()
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise SearchError(f"the index uses metric {index.metric_type}, not inner product")
    for kind, cls in (("flat", faiss.IndexFlat), ("ivf", faiss.IndexIVFFlat), ("hnsw", faiss.IndexHNSWFlat)):
        if isinstance(index, cls):
            return kind
    raise SearchError(f"unsupported faiss index type {type(index).__name__}")


def search_setting(kind: str) -> str | None:
    """The name of the search-time knob of `kind` (None for exact search)."""
    return {"ivf": "nprobe", "hnsw": "ef_search"}.get(kind)


def set_search_setting(index, kind: str, value: int) -> None:
    """Set nprobe (IVF, CPU or GPU) or efSearch (HNSW) on `index`."""
    if kind == "ivf":
        index.nprobe = int(value)
    elif kind == "hnsw":
        index.hnsw.efSearch = int(value)


def exact_knn(queries: np.ndarray, vectors: np.ndarray, k: int) -> np.ndarray:
    """Row numbers of the exact top-k inner products (brute force, no index built)."""
    faiss = faiss_module()
    _, rows = faiss.knn(queries, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    return rows


def calibrate(index, kind: str, indexed: np.ndarray, queries: np.ndarray, *, target_recall: float,
              k: int) -> tuple[int, float]:
    """The smallest nprobe/efSearch whose recall@k for `queries` reaches `target_recall` against exact search.

    `index` must hold exactly the rows of `indexed`, and `queries` must not be among them: a row that is
    in the index is found through its own graph links or list, so calibrating on indexed rows overrates
    recall (an HNSW graph measured 0.976 that way gave 0.896 on new queries). Returns the setting and its
    recall, or the largest setting and its recall when none reaches the target.
    """
    width = min(k, len(indexed))
    truth = exact_knn(queries, indexed, width)
    steps = NPROBE_STEPS if kind == "ivf" else EF_SEARCH_STEPS
    if kind == "ivf":
        steps = tuple(s for s in steps if s < index.nlist) + (min(index.nlist, NPROBE_STEPS[-1]),)
    for value in steps:
        set_search_setting(index, kind, value)
        _, found = index.search(queries, width)
        overlap = [len(set(t) & set(f)) for t, f in zip(truth.tolist(), found.tolist())]
        recall = float(np.mean(overlap)) / width
        if recall >= target_recall:
            break
    return value, recall


def exhaustive_setting(index, kind: str) -> int:
    """The setting that makes `kind` search (close to) everything: for indexes too small to calibrate."""
    return min(index.nlist, NPROBE_STEPS[-1]) if kind == "ivf" else EF_SEARCH_STEPS[-1]
