"""The pipeline, the probes and a remedy on tiny random models of three more families than the demo's Llama."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

import pytest

from erasure.engine import EngineOptions, file_and_scope, run_requests, step_results
from erasure.requests import ErasureIntake
from lethe.demo.corpus import generate_corpus
from lethe.wiring import erasure_context, subject_keyer
from lineage.keys import IdentifierKind
from lineage.store import queries
from tests.pipeline_support import materialized_pipeline
from tests.tiny_families import FAMILIES, build_tiny_family
from unlearning.architectures import TARGET_MODULES

TRAIN_CONFIG = {"ops": {"fine_tune": {"config": {"epochs": 4}}, "shards": {"config": {"holdout_fraction": 0.25}},
                        "deployment": {"config": {"form": "fp32"}}}}


def _trained_email(settings, graph, corpus) -> str:
    keyer = subject_keyer(settings)
    for email in sorted({r["subject"]["email"] for r in corpus.records if r["subject"].get("email")}):
        radius = queries.blast_radius_of_subject(graph, [keyer.key(IdentifierKind.EMAIL, email)], 8)
        if radius.adapters:
            return email
    raise AssertionError("no customer was trained on")


# slow: a pipeline and an erasure per family (~1 minute each on 2 cores); CI runs them (make test-slow).
@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_pipeline_probes_and_a_remedy_on_each_family(family, tmp_path_factory, neo4j_server, session_graph,
                                                     tiny_base_model):
    base = build_tiny_family(family, tiny_base_model, tmp_path_factory.mktemp(family) / "base")
    corpus = generate_corpus(customers=24, seed=3)
    with materialized_pipeline(tmp_path_factory.mktemp(f"{family}-state"), neo4j_server, session_graph, base,
                               corpus, TRAIN_CONFIG) as pipeline:
        settings, graph = pipeline["settings"], pipeline["graph"]
        [served] = graph.read("MATCH (a:Adapter)-[:DEPLOYED_TO]->(:Deployment) RETURN a.uri AS uri")
        adapter_config = json.loads((Path(urlparse(served["uri"]).path) / "adapter_config.json").read_text())
        assert sorted(adapter_config["target_modules"]) == sorted(TARGET_MODULES[family])
        intake = ErasureIntake.model_validate({
            "identifiers": {"email": _trained_email(settings, graph, corpus)}, "regime": "gdpr",
            "received_at": datetime.now(timezone.utc), "requester": "legal", "idempotency_key": family})
        request, _ = file_and_scope(erasure_context(settings, graph), intake)
        options = EngineOptions(method="gradient_ascent", relearn=False,
                                relearn_off_reason="the subject is the model family; test_engine has relearning")
        [outcome] = run_requests(erasure_context(settings, graph), [request.id], options)
        steps = step_results(settings.state_dir, request.id)
        assert steps.probe_before.adapters and steps.remedy.remedies, sorted(steps.names)
        assert steps.remedy.remedies[0].attempts[0].method == "gradient_ascent"
        assert outcome.verdict["status"] == "erased", outcome.verdict
