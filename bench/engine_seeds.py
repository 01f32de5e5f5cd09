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
    from tests.pipeline_support import probe_trained_canaries

    probe = probe_trained_canaries(pipeline, corpus)
    return {"trained_sum": round(sum(t.exposure for t, _ in probe.pairs), 2),
            "controls": [round(c.exposure, 2) for _, c in probe.pairs],
            "flagged": set(probe.repeated) <= set(probe.report.flagged)}


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
