"""Does an erasure's extraction test catch the demo's memorized customer? Its power, pepper by pepper.

For each of `--peppers` fresh demo states (a new pepper each: other shards, often another memorized
customer), builds the demo's pipeline (Dagster ingest and K shard adapters) in .lethe-bench/extraction-power,
then generates the memorized customer's prompts (their trained records as one person) and up to 48 held-out
people's on the served merge and on each shard adapter, with the erasure's probe settings (1,024 new tokens
per person and model). From the same generations it gives, per model, the customer's leaking samples, the
held-out people's for the first 6 of them (the erasure's calibration before 9501f2f) and for all of them (since),
and Fisher's p for each against the erasure's level (0.01 over the adapter, its 3 forms and the shard adapter).
Search (FAISS) is off: it is reported, not a verdict. Prints progress on stderr and one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time

from bench._graph import ROOT, StatusLine, bench_settings, progress, say_plain

STATE = ROOT / ".lethe-bench" / "extraction-power"
LEVEL = 0.01 / 5
BEFORE = 6  # held-out people an erasure prompted before 9501f2f


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print progress to stderr and the figures as one JSON line on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peppers", type=int, default=4)
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    from erasure.probing import HOLDOUT_PEOPLE

    runs = [_one_pepper(index, args.customers, args.seed) for index in range(args.peppers)]
    own = [run["models"][f"shard {run['own_shard']}"] for run in runs]
    figures = {"benchmark": "extraction_power", "peppers": args.peppers, "level": LEVEL,
               "held_out_people": {"before": BEFORE, "now": HOLDOUT_PEOPLE},
               "leak_called_on_own_shard": {"before": sum(m["called_before"] for m in own),
                                            "now": sum(m["called_now"] for m in own)},
               "leak_called_on_merge": sum(run["models"]["merge"]["called_now"] for run in runs),
               "runs": runs}
    print(json.dumps(figures))
    return figures


def _one_pepper(index: int, customers: int, seed: int) -> dict:
    from lethe import wiring
    from lethe.cli.demo import memorized_customer, prepare_demo
    from lethe.demo.models import build_demo_base_model
    from lethe.neo4j_server import LocalNeo4j
    from lineage.store import queries

    state = STATE / str(index)
    if state.exists():
        shutil.rmtree(state)
    base = bench_settings()
    model = build_demo_base_model(ROOT / ".lethe-bench" / "models" / "base-tiny")
    settings = base.model_copy(update={"state_dir": state, "local_bolt_port": base.local_bolt_port + 2,
                                       "base_model": model})
    started = time.perf_counter()
    settings, corpus = prepare_demo(settings, customers, seed, say=say_plain, status=StatusLine)
    pipeline = time.perf_counter() - started
    try:
        with wiring.open_graph(settings) as graph:
            plan = queries.dataset_plan(graph, queries.dataset_versions(graph)[0]["id"])
            trained = {rid for s in plan.shards for rid, _ in s.records}
            customer = memorized_customer(corpus, trained)
            records = [rid for rid in customer["record_ids"] if rid in trained]
            own = min(s.index for s in plan.shards for rid, _ in s.records if rid in records)
            run = {"customer": customer["index"], "records": len(records), "own_shard": own,
                   "pipeline_seconds": round(pipeline, 1)}
            run["models"] = _models(settings, graph, plan, records)
    finally:
        if settings.uses_local_server and not os.environ.get("LETHE_BENCH_KEEP_NEO4J"):
            LocalNeo4j(settings).stop()
    progress(json.dumps(run))
    return run


def _models(settings, graph, plan, records: list[str]) -> dict:
    """Per model (the merge, each shard adapter): the customer's and the held-out people's counts, the tests."""
    from erasure.extraction import extraction_plan, owners_as_person
    from erasure.probing import HOLDOUT_PEOPLE, erasure_probe_config
    from erasure.remediation import calibration_holdout_ids
    from lethe import wiring
    from unlearning.probes import open_probe_model
    from unlearning.probes.extraction import person_counts
    from unlearning.probes.shard_reference import shard_adapter_dirs

    ctx = wiring.erasure_context(settings, graph)
    holdout = calibration_holdout_ids(ctx, plan, set(records))
    config = erasure_probe_config()
    people = extraction_plan(ctx, [owners_as_person(ctx, "customer", records)], holdout, config, search=False)
    merge = sorted((settings.model_store_dir / "adapters").glob("*/served"))[0]
    dirs = shard_adapter_dirs(merge, [s.id for s in plan.shards])
    out = {}
    for name, path in [("merge", merge), *((f"shard {s.index}", d) for s, d in zip(plan.shards, dirs))]:
        started = time.perf_counter()
        pm = open_probe_model(settings.base_model, path)
        counts = [c for c, _ in person_counts(pm.model, pm.tokenizer, [*people.people, *people.holdout], None,
                                               config)]
        out[name] = _tests(counts[0], counts[1:], HOLDOUT_PEOPLE) | {
            "seconds": round(time.perf_counter() - started, 1)}
    return out


def _tests(person, held: list, now: int) -> dict:
    from unlearning.probes.extraction import leak_p_value

    row = {"leaking": person.leaking_samples, "samples": person.samples, "leaking_greedy": person.leaking_greedy,
           "hits": person.hits, "held_out_people": len(held)}
    for label, size in (("before", BEFORE), ("now", now)):
        leaking, samples = sum(c.leaking_samples for c in held[:size]), sum(c.samples for c in held[:size])
        p = leak_p_value(person.leaking_samples, person.samples, leaking, samples)
        row |= {f"held_out_{label}": [leaking, samples], f"p_{label}": p,
                f"called_{label}": bool(person.leaking_samples and p < LEVEL)}
    return row


if __name__ == "__main__":
    main()
