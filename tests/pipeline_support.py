"""The Dagster pipeline materialized once for a test module: two batch partitions, then training and deployment."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg
import pytest

from lethe.demo.corpus import write_jsonl
from lethe.settings import Settings
from lineage.local_files import private_dir

PEPPER = "cd" * 32


@contextlib.contextmanager
def materialized_pipeline(state, neo4j_server, session_graph, base_model, corpus, train_config: dict) -> Iterator[dict]:
    """Materialize every asset into a fresh graph and `state` folder; yields settings, run results and env."""
    from assets.definitions import build_definitions

    session_graph.clear_all()
    batches = state / "batches"
    half = len(corpus.records) // 2
    write_jsonl(corpus.records[:half], batches / "batch-1.jsonl")
    write_jsonl(corpus.records[half:], batches / "batch-2.jsonl")
    env = {"LETHE_STATE_DIR": str(state), "NEO4J_URI": neo4j_server.resolved_neo4j_uri(),
           "NEO4J_PASSWORD": neo4j_server.resolved_neo4j_password(), "LETHE_PEPPER": PEPPER,
           "LETHE_BASE_MODEL": str(base_model)}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = Settings()
        defs = build_definitions(settings)
        private_dir(state / "dagster")  # as lethe.pipeline_runner makes DAGSTER_HOME
        with dg.instance_for_test(temp_dir=str(state / "dagster")) as instance:
            instance.add_dynamic_partitions("record_batches", ["batch-1.jsonl", "batch-2.jsonl"])
            ingest = defs.resolve_job_def("ingest_batch")
            for key in ("batch-1.jsonl", "batch-2.jsonl"):
                assert ingest.execute_in_process(partition_key=key, instance=instance).success
            train = defs.resolve_job_def("train_adapters").execute_in_process(instance=instance, run_config=train_config)
            assert train.success
            yield {"settings": settings, "defs": defs, "instance": instance, "train": train, "state": state,
                   "graph": session_graph, "env": env}
