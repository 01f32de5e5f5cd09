"""Erasure requests on the session's trained pipeline (tests/conftest.py: `shared_pipeline`), for the tests that
need a real one: which customers it trained on, their intakes, the served adapters, and the coalesced run — two
customers' requests (the first filed twice) run together into one remedy, each attested — done once per session
and kept as the snapshot `coalesced` (the engine's tests and the console's end-to-end test read it).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from erasure.engine import file_and_scope, run_requests
from erasure.requests import ErasureIntake
from lethe.wiring import erasure_context


def trained_customers(pipeline, corpus) -> list[dict]:
    plan = pipeline["train"].output_for_node("dataset_version")
    trained = {rid for s in plan.shards for rid, _ in s.records}
    return [c for c in corpus.truth["customers"] if len(set(c["record_ids"]) & trained) >= 3]


def intake(customer: dict, key: str, received_at: datetime | None = None) -> ErasureIntake:
    return ErasureIntake.model_validate({
        "identifiers": {"email": customer["email"], "name": customer["name"]}, "regime": "gdpr",
        "received_at": received_at or datetime.now(timezone.utc), "requester": "legal-team",
        "idempotency_key": key})


def served_adapters(graph) -> list[dict]:
    return graph.read("MATCH (a:Adapter)-[:DEPLOYED_TO]->(:Deployment) RETURN a.id AS id, a.state AS state")


def run_coalesced(shared_pipeline) -> dict:
    """Two customers' requests (the first filed twice) run together on a copy of the trained pipeline; what the
    filing answered, the outcomes, and a snapshot of the state folder and graph after the run."""
    with shared_pipeline.at(shared_pipeline.trained, scratch=True) as pipeline:
        settings, graph = pipeline["settings"], pipeline["graph"]
        first, second = trained_customers(pipeline, shared_pipeline.corpus)[:2]
        now = datetime.now(timezone.utc)
        a, new = file_and_scope(erasure_context(settings, graph), intake(first, "case-1", now - timedelta(hours=2)))
        again, new_again = file_and_scope(erasure_context(settings, graph), intake(first, "case-1", now - timedelta(hours=2)))
        b, _ = file_and_scope(erasure_context(settings, graph), intake(second, "case-2", now - timedelta(hours=1)))
        old = served_adapters(graph)
        events: list[tuple[str, str]] = []
        outcomes = run_requests(erasure_context(settings, graph), [a.id, b.id],
                                on_event=lambda rid, what: events.append((rid, what)))
    return {"requests": (a, b), "filed": (new, new_again, again), "old": old, "outcomes": outcomes,
            "events": events, "snapshot": shared_pipeline.take("coalesced")}
