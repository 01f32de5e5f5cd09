"""One erasure request end to end on the demo: wall time in total and per engine step.

Builds the demo (tiny base model, generated corpus, Dagster ingest and LoRA training of K shard
adapters, deployment) in .lethe-bench/erasure, then files a GDPR request for the first customer
whose repeated canary was trained on and runs it: scope (owned, fresh mention scan, FAISS
near-duplicates), blast radius, probe before, exact shard retrain, probe after, erase, attest, report.
Prints the wall time of filing (with the scope) and of the run, each step's seconds as persisted in
the request's run folder, the extraction test's share (generation_seconds: generating, scanning and
searching in every probe, before and after, every form), and the verdict. The pipeline's own time is
reported apart (not erasure).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from datetime import datetime, timezone

from bench._graph import ROOT, StatusLine, bench_settings, progress, say_plain

STATE = ROOT / ".lethe-bench" / "erasure"


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print progress to stderr and the figures as one JSON line on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    from lethe import wiring
    from lethe.cli.demo import memorized_customer, prepare_demo
    from lethe.demo.models import build_demo_base_model
    from erasure.engine import file_and_scope, run_requests, step_results
    from lethe.neo4j_server import LocalNeo4j
    from erasure.requests import ErasureIntake
    from lineage.store import queries

    if STATE.exists():
        shutil.rmtree(STATE)
    base = bench_settings()
    # Its own state folder and port, so it never touches a developer's demo or the test server.
    model = build_demo_base_model(ROOT / ".lethe-bench" / "models" / "base-tiny")  # cached, shared with bench.unlearning
    settings = base.model_copy(update={"state_dir": STATE, "local_bolt_port": base.local_bolt_port + 1,
                                       "base_model": model})
    started = time.perf_counter()
    # The pipeline's default 5% holdout: one request's latency, not the demo's 30% calibration set.
    settings, corpus = prepare_demo(settings, args.customers, args.seed, say=say_plain,
                                    status=StatusLine, holdout_fraction=0.05)
    pipeline_seconds = time.perf_counter() - started
    with wiring.open_graph(settings) as graph:
        dataset = queries.dataset_versions(graph)[0]["id"]
        plan = queries.dataset_plan(graph, dataset)
        customer = memorized_customer(corpus, {rid for s in plan.shards for rid, _ in s.records})
        intake = ErasureIntake.model_validate({
            "identifiers": {"email": customer["email"], "name": customer["name"]}, "regime": "gdpr",
            "received_at": datetime.now(timezone.utc), "requester": "bench", "idempotency_key": "bench-1"})
        progress("filing the request and resolving its scope …")
        t0 = time.perf_counter()
        request, _ = file_and_scope(wiring.erasure_context(settings, graph), intake)
        filing = time.perf_counter() - t0
        progress("running it …")
        t0 = time.perf_counter()
        outcome = run_requests(wiring.erasure_context(settings, graph), [request.id])[0]
        running = time.perf_counter() - t0
    if settings.uses_local_server and not os.environ.get("LETHE_BENCH_KEEP_NEO4J"):
        LocalNeo4j(settings).stop()
    steps = step_results(settings.state_dir, request.id)
    scope = steps.scope
    figures = {
        "benchmark": "erasure", "customers": args.customers, "records": len(corpus.records),
        "shards": len(plan.shards), "scope_records": sum(r.decision == "included" for r in scope.records),
        "near_duplicate_candidates": scope.candidates, "pipeline_seconds": round(pipeline_seconds, 1),
        "end_to_end_seconds": round(filing + running, 1), "file_and_scope_seconds": round(filing, 1),
        "run_seconds": round(running, 1),
        "steps_seconds": {name: round(steps.file(name).seconds, 2) for name in steps.names},
        "remedy_stage_seconds": _remedy_stages(settings.state_dir),
        "generation_seconds": round(_generation_seconds(steps), 2),
        "generation_share_of_run": round(_generation_seconds(steps) / running, 3),
        "verdict": outcome.verdict["status"],
    }
    print(json.dumps(figures))
    return figures


def _generation_seconds(steps) -> float:
    """Seconds the extraction test (generation, scans, FAISS search) took in every probe of the request."""
    reports = [*steps.probe_before.adapters.values(), *steps.probe_after.adapters.values()]
    return steps.probe_before.shared_generation_seconds + sum(
        variant.generation_seconds for report in reports for variant in report.variants().values())


def _remedy_stages(state_dir) -> dict[str, float]:
    """The remedy's own stages (prepare, methods with the probe after, utility, lineage and deletion)."""
    records = sorted((state_dir / "remedies").glob("*/record.json"))
    if len(records) != 1:
        return {}
    document = json.loads(records[0].read_text(encoding="utf-8"))
    stages = dict(document.get("stage_seconds", {}))
    if document.get("after"):
        stages["of_methods_probe_after"] = round(document["after"]["seconds"], 2)
    stages["of_methods_training"] = round(sum(a["seconds"] for a in document.get("attempts", [])), 2)
    return stages


if __name__ == "__main__":
    main()
