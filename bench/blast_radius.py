"""Blast-radius latency: subject → records → shards → datasets, runs, adapters, deployments.

Builds the ingest benchmark's graph (`bench.lineage_ingest.build_graph`; with --reuse, keeps a
graph that is already complete), then times `blast_radius_of_subject` end to end (driver round trip
and result parsing included) for 1000 subject keys drawn with a fixed seed from the ingested
subjects, after 50 warm-up queries on other subjects. Also timed once each, after one warm-up call
on another version: the blast radius of the first dataset version (every later version and run
depends on it) and the preflight of the last one (all records).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

from bench._graph import STARTED, bench_graph, emit, progress
from bench.lineage_ingest import build_graph, last_deployment_edge, make_corpus
from lineage.store import GraphStore
from lineage.store.queries import (blast_radius_of_dataset, blast_radius_of_subject, dataset_versions,
                                   preflight)


def graph_is_complete(store: GraphStore, records: int) -> bool:
    """True when the bench graph for exactly `records` records was written to the end."""
    served, deployment = last_deployment_edge()
    rows = store.read(
        "RETURN EXISTS { (:Adapter {id: $a})-[:DEPLOYED_TO]->(:Deployment {id: $d}) } AS done, "
        "EXISTS { (:Record {id: $last}) } AS last, EXISTS { (:Record {id: $beyond}) } AS beyond",
        a=served, d=deployment, last=f"bench-{records - 1:08d}", beyond=f"bench-{records:08d}")
    return rows[0]["done"] and rows[0]["last"] and not rows[0]["beyond"]


def percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return sorted_ms[min(len(sorted_ms) - 1, max(0, round(q / 100 * len(sorted_ms) + 0.5) - 1))]


def measure(store: GraphStore, subject_keys: list[str], queries: int, warmup: int, seed: int) -> dict:
    """Latency figures of subject blast radius, plus one dataset blast radius and one preflight."""
    keys = random.Random(seed).sample(subject_keys, warmup + queries)
    for key in keys[:warmup]:
        blast_radius_of_subject(store, [key])
    latencies, records, adapters, found = [], [], [], 0
    for key in keys[warmup:]:
        t0 = time.perf_counter()
        answer = blast_radius_of_subject(store, [key])
        latencies.append((time.perf_counter() - t0) * 1000)
        records.append(answer.records)
        adapters.append(len(answer.adapters))
        found += answer.subject_keys_found
    ms = sorted(latencies)
    versions = sorted(dataset_versions(store), key=lambda d: d["name"])
    blast_radius_of_dataset(store, versions[-1]["id"])  # warm-up (query planning) on other versions
    preflight(store, versions[0]["id"])
    t0 = time.perf_counter()
    dataset = blast_radius_of_dataset(store, versions[0]["id"])
    dataset_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    check = preflight(store, versions[-1]["id"])
    preflight_ms = (time.perf_counter() - t0) * 1000
    progress(f"{queries} subjects: p50 {percentile(ms, 50):.1f} ms, p95 {percentile(ms, 95):.1f} ms; "
             f"dataset {dataset_ms:.0f} ms ({len(dataset.adapters)} adapters); "
             f"preflight {preflight_ms:.0f} ms ({check.records} records)")
    return {
        "queries": queries, "warmup": warmup, "subjects_found": found,
        "p50_ms": round(percentile(ms, 50), 2), "p95_ms": round(percentile(ms, 95), 2),
        "p99_ms": round(percentile(ms, 99), 2), "mean_ms": round(statistics.fmean(ms), 2),
        "mean_records": round(statistics.fmean(records), 2),
        "mean_adapters": round(statistics.fmean(adapters), 1),
        "dataset_blast_radius_ms": round(dataset_ms, 1), "dataset_adapters": len(dataset.adapters),
        "preflight_ms": round(preflight_ms, 1), "preflight_records": check.records,
    }


def main() -> None:
    """Build (or reuse) the graph, measure, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reuse", action="store_true", help="keep a complete graph already in the database")
    args = parser.parse_args()
    corpus = make_corpus(args.records)
    with bench_graph(empty=not args.reuse) as store:
        reused = args.reuse and graph_is_complete(store, args.records)
        if not reused:
            if args.reuse:
                progress("no complete bench graph to reuse: clearing and building it")
                store.clear_all()
            build_graph(store, corpus)
        figures = measure(store, corpus.subject_keys, args.queries, args.warmup, args.seed)
        figures.update(records=args.records, reused_graph=reused, neo4j=store.server_version(),
                       cores=os.cpu_count(), server_warm_up_s=STARTED.get("warm_up_s"))
    emit(figures)


if __name__ == "__main__":
    main()
