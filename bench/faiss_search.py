"""FAISS search: recall@10 of the approximate vector index against exact search, and query latency.

Vectors are synthetic, shaped like sentence embeddings rather than uniform noise: a Gaussian mixture
on the unit sphere with a direction every vector shares (unrelated texts are not orthogonal), topics,
clusters of about --cluster-size records around topic-tilted centres, each spread along a few
directions of its own plus isotropic noise. Queries are fresh draws from the same mixture (new texts,
not indexed rows). Exact: VectorIndex with kind "flat" (IndexFlatIP, the ground truth). Approximate:
the kind VectorIndex.build picks at this size ("auto": IVF from EXACT_BELOW vectors on), its search
setting calibrated during the build. Measured: build seconds (the approximate one includes training
and calibration); recall@10 = |approximate top-10 ∩ exact top-10| / 10, averaged over the queries;
single-query latency p50/p95/p99 through VectorIndex.search, one query per call as a request would
make it, and its CPU milliseconds per query; batch throughput with all queries in one call; and the
approximate/exact p95 ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

TOPICS = 64
SUBSPACE = 16  # directions along which a cluster spreads: embeddings vary in few directions locally
SHARED, SPREAD, NOISE = 0.5, 1.0, 0.9
CHUNK = 4096
RECALL_TARGET = 0.95


def progress(message: str) -> None:
    """One line of progress on stderr (stdout carries only the figures)."""
    print(message, file=sys.stderr, flush=True)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class ClusteredMixture:
    """A Gaussian mixture of unit vectors shaped like sentence embeddings (see the module docstring)."""

    def __init__(self, dim: int, clusters: int, seed: int):
        self.rng = np.random.default_rng(seed)
        shared = _unit(self.rng.standard_normal(dim))
        topics = _unit(self.rng.standard_normal((TOPICS, dim)))
        own = _unit(self.rng.standard_normal((clusters, dim)))
        self.centres = _unit(SHARED * shared + topics[self.rng.integers(0, TOPICS, clusters)] + 0.35 * own)
        self.bases = (self.rng.standard_normal((clusters, SUBSPACE, dim)) / np.sqrt(dim)).astype(np.float32)

    def draw(self, count: int) -> np.ndarray:
        """`count` unit vectors, each from a uniformly chosen cluster."""
        out = np.empty((count, self.centres.shape[1]), dtype=np.float32)
        for start in range(0, count, CHUNK):
            m = min(CHUNK, count - start)
            c = self.rng.integers(0, len(self.centres), m)
            z = self.rng.standard_normal((m, SUBSPACE)).astype(np.float32) / np.sqrt(SUBSPACE)
            x = self.centres[c] + SPREAD * np.einsum("mr,mrd->md", z, self.bases[c])
            x += NOISE * self.rng.standard_normal(x.shape).astype(np.float32) / np.sqrt(x.shape[1])
            out[start:start + m] = _unit(x)
        return out


def single_query_ms(index, queries: np.ndarray, k: int) -> tuple[list[float], float]:
    """Wall milliseconds of one `index.search` call per query row, and the mean CPU milliseconds per query."""
    times = []
    cpu = time.process_time()
    for row in range(len(queries)):
        started = time.perf_counter()
        index.search(queries[row:row + 1], k)
        times.append((time.perf_counter() - started) * 1e3)
    return times, (time.process_time() - cpu) * 1e3 / len(queries)


def latency_figures(prefix: str, times: list[float]) -> dict[str, float]:
    """p50/p95/p99 of `times` under `prefix`_pNN_ms."""
    p50, p95, p99 = np.percentile(times, [50, 95, 99])
    return {f"{prefix}_p50_ms": round(float(p50), 3), f"{prefix}_p95_ms": round(float(p95), 3),
            f"{prefix}_p99_ms": round(float(p99), 3)}


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print progress to stderr and the figures as one JSON line on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--cluster-size", type=int, default=100, help="mean records per mixture cluster")
    parser.add_argument("--kind", default="auto", choices=("auto", "ivf", "hnsw"),
                        help="the approximate index (auto: what VectorIndex.build picks at this size)")
    parser.add_argument("--threads", type=int, default=0,
                        help="FAISS OpenMP threads (0: its default, one per core); on a shared machine 1 "
                             "avoids threads spinning against other work in single-query timings")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if min(args.vectors, args.dim, args.queries, args.k, args.cluster_size) < 1 or args.threads < 0:
        parser.error("--vectors, --dim, --queries, --k and --cluster-size must be >= 1, --threads >= 0")

    from unlearning.search import VectorIndex
    from unlearning.search.faiss_backend import faiss_module, gpu_count

    faiss = faiss_module()
    if args.threads > 0:
        faiss.omp_set_num_threads(args.threads)
    clusters = max(1, args.vectors // args.cluster_size)
    progress(f"drawing {args.vectors} + {args.queries} vectors (dim {args.dim}, {clusters} clusters) ...")
    mixture = ClusteredMixture(args.dim, clusters, args.seed)
    vectors, queries = mixture.draw(args.vectors), mixture.draw(args.queries)
    ids = [f"r{i}" for i in range(args.vectors)]

    started = time.perf_counter()
    exact = VectorIndex.build(ids, vectors, kind="flat")
    exact_build_s = time.perf_counter() - started
    progress(f"exact index built in {exact_build_s:.2f}s; building the approximate one ({args.kind}) ...")
    started = time.perf_counter()
    approx = VectorIndex.build(ids, vectors, kind=args.kind, seed=args.seed)
    approx_build_s = time.perf_counter() - started
    progress(f"{approx!r} built in {approx_build_s:.2f}s")
    if approx.kind == "flat":
        progress(f"note: at {args.vectors} vectors 'auto' is exact; pass --kind ivf|hnsw or more --vectors")

    batch = {}
    for name, index in (("exact", exact), ("approx", approx)):
        index.search(queries[:10], args.k)  # first-call costs (GPU kernels, page faults) are not latency
        started = time.perf_counter()
        hits = index.search(queries, args.k)
        batch[name] = (hits, time.perf_counter() - started)
    truth, found = batch["exact"][0].ids, batch["approx"][0].ids
    recall = float(np.mean([len(set(t) & set(f)) / len(t) for t, f in zip(truth, found)]))
    progress(f"recall@{args.k} = {recall:.4f}; timing {args.queries} single queries on each index ...")
    exact_times, exact_cpu_ms = single_query_ms(exact, queries, args.k)
    approx_times, approx_cpu_ms = single_query_ms(approx, queries, args.k)
    scores = batch["exact"][0].scores
    sample = vectors[:2000]
    figures = {
        "vectors": args.vectors, "dim": args.dim, "queries": args.queries, "k": args.k,
        "data": "synthetic clustered gaussian mixture, unit-normalized (not model embeddings)",
        "clusters": clusters, "mean_top1_cosine": round(float(scores[:, 0].mean()), 3),
        "mean_random_pair_cosine": round(float((sample[:1000] @ sample[1000:].T).mean()), 3),
        "kind": approx.kind, "params": approx.params, "device": "gpu" if approx.on_gpu else "cpu",
        "faiss_gpus": gpu_count(), "faiss_version": faiss.__version__, "threads": faiss.omp_get_max_threads(),
        "exact_build_s": round(exact_build_s, 2), "approx_build_s": round(approx_build_s, 2),
        f"recall_at_{args.k}": round(recall, 4), "recall_target": RECALL_TARGET,
        **latency_figures("exact", exact_times), **latency_figures("approx", approx_times),
        "p95_ratio_approx_vs_exact": round(float(np.percentile(approx_times, 95)
                                                 / np.percentile(exact_times, 95)), 4),
        # CPU time per query (all threads): a busy neighbour on the machine distorts it less than wall time.
        "exact_cpu_ms_per_query": round(exact_cpu_ms, 3), "approx_cpu_ms_per_query": round(approx_cpu_ms, 3),
        "exact_batch_qps": round(args.queries / batch["exact"][1], 1),
        "approx_batch_qps": round(args.queries / batch["approx"][1], 1),
    }
    print(json.dumps(figures, sort_keys=True), flush=True)
    return figures


if __name__ == "__main__":
    main()
