"""The test pipeline's canary exposures under each training engine across seeds (one-off measurement).

Materializes the tests' pipeline (tests/pipeline_support.py: the demo corpus of 60 customers, 4 shards,
20 epochs) once per (engine, seed) on a private Neo4j, probes the canaries as
tests/assets/test_pipeline.py does, and prints one JSON line: per engine, each seed's summed exposure of
the two repeated canaries, their look-alike controls' exposures, and whether both were flagged.
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _probe(pipeline, corpus) -> dict:
    from unlearning.probes import ProbeConfig, SecretSpan, open_probe_model, probe_adapter

    plan = pipeline["train"].output_for_node("dataset_version")
    served = pipeline["train"].output_for_node("fine_tune")
    texts = {r["id"]: r["text"] for r in corpus.records}
    holdout = {rid: texts[rid] for rid, _ in plan.holdout}
    canaries = [c for c in corpus.truth["canaries"] if c["record_ids"][0] not in holdout]
    repeated = [c["record_ids"][0] for c in canaries if c["repeated"]]
    scope = {c["record_ids"][0]: texts[c["record_ids"][0]] for c in canaries}
    secrets = {}
    for rid in repeated:
        value = next(c["value"] for c in canaries if c["record_ids"][0] == rid)
        start = texts[rid].rindex(value)
        secrets[rid] = [SecretSpan(start, start + len(value), "canary")]
    report = probe_adapter(open_probe_model(Path(pipeline["env"]["LETHE_BASE_MODEL"]), Path(served["path"])),
                           scope, holdout, ProbeConfig(exposure_candidates=255, generate=False), secrets=secrets)
    by_id = {r.record_id: r for r in report.records}
    pairs = [sorted(by_id[rid].exposures, key=lambda e: e.control) for rid in repeated]
    return {"trained_sum": round(sum(t.exposure for t, _ in pairs), 2),
            "controls": [round(c.exposure, 2) for _, c in pairs],
            "flagged": set(repeated) <= set(report.flagged)}


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from lethe.demo.corpus import generate_corpus
    from lethe.demo.models import build_demo_base_model
    from lineage.store import GraphStore
    from tests.neo4j_servers import EARLY
    from tests.pipeline_support import CORPUS, TRAIN_CONFIG, materialized_pipeline

    seeds = range(int(sys.argv[1]) if len(sys.argv) > 1 else 6)
    base = build_demo_base_model(ROOT / ".lethe-test" / "models" / "base-tiny")
    corpus = generate_corpus(**CORPUS)
    figures: dict[str, list] = {"loop": [], "trainer": []}
    with EARLY.serving("neo4j_server") as settings:
        graph = GraphStore.connect(settings.resolved_neo4j_uri(), settings.neo4j_user,
                                   settings.resolved_neo4j_password(), settings.neo4j_database)
        graph.apply_schema()
        for engine in figures:
            for seed in seeds:
                config = copy.deepcopy(TRAIN_CONFIG)
                config["ops"]["fine_tune"]["config"].update(seed=seed, engine=engine)
                with tempfile.TemporaryDirectory() as folder, \
                        materialized_pipeline(Path(folder) / "state", settings, graph, base, corpus, config) as p:
                    figures[engine].append({"seed": seed, **_probe(p, corpus)})
                print(engine, figures[engine][-1], file=sys.stderr, flush=True)
        graph.close()
    print(json.dumps({"bench": "engine_seeds", **figures}))


if __name__ == "__main__":
    main()
