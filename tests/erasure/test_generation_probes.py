"""Extraction by generation in every erasure: before and after the remedy, on each probed form, for the request's
person and for held-out people (the chance rate); a leak after an approximate remedy turns the verdict.

Real Neo4j, Dagster's trained pipeline, peft, Presidio, the MiniLM embedder and FAISS. The approximate method
here is built to fail (like tests/erasure/quantization_fragile.py): it "forgets" by training a fresh adapter on
the forget texts, so the adapter it leaves says the person's secrets; its subject is the verdict.
"""

from __future__ import annotations

import contextlib
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from attestation import KeyRegistry, verify_bundle
from erasure.engine import file_and_scope, run_requests, step_results
from erasure.remedy_runs import EngineOptions
from erasure.requests import ErasureIntake
from lethe.wiring import erasure_context
from unlearning.base_model import model_dir_sha256
from unlearning.methods.base import MethodConfig, MethodKind, RemedyInput, RemedyOutcome
from unlearning.methods.registry import MethodSpec, register_method, unregister_method
from unlearning.training import LoraTrainingConfig, train_lora_adapter

NAME = "rehearses"


class RehearseConfig(MethodConfig):
    epochs: int = 30


def _rehearse(config: RehearseConfig, remedy: RemedyInput, on_step=None) -> RemedyOutcome:
    """A fresh adapter trained on the forget texts only (the opposite of forgetting)."""
    started = time.perf_counter()
    out = Path(remedy.out_dir)
    trained = train_lora_adapter(remedy.base_model_dir, list(remedy.forget.values()),
                                 LoraTrainingConfig(epochs=config.epochs), out)
    manifest = {**dict(remedy.manifest or {}), "remedy_method": NAME}
    (out / "lethe_manifest.json").write_text(json.dumps(manifest, sort_keys=True), encoding="utf-8")
    return RemedyOutcome(method=NAME, kind=MethodKind.APPROXIMATE, config=config.model_dump(mode="json"),
                         adapter_dir=out, adapter_sha256=model_dir_sha256(out), steps=trained.steps,
                         losses=list(trained.losses), seconds=time.perf_counter() - started, details={})


@contextlib.contextmanager
def _registered():
    register_method(MethodSpec(NAME, MethodKind.APPROXIMATE, RehearseConfig, _rehearse))
    try:
        yield
    finally:
        unregister_method(NAME)


def _memorized_customer(pipeline, corpus) -> dict:
    """A customer with a repeated canary ticket in the training shards."""
    plan = pipeline["train"].output_for_node("dataset_version")
    trained = {rid for s in plan.shards for rid, _ in s.records}
    canaries = [c["record_ids"][0] for c in corpus.truth["canaries"] if c["repeated"] and c["record_ids"][0] in trained]
    return next(c for c in corpus.truth["customers"] if set(c["record_ids"]) & set(canaries))


# slow (a remedy that trains, then every form probed with generation: ~2 min on 2 idle cores); CI runs it.
@pytest.mark.slow
def test_an_approximate_remedy_whose_adapter_says_the_secret_is_not_erased(scratch_pipeline, shared_pipeline):
    settings, graph = scratch_pipeline["settings"], scratch_pipeline["graph"]
    customer = _memorized_customer(scratch_pipeline, shared_pipeline.corpus)
    intake = ErasureIntake.model_validate({
        "identifiers": {"email": customer["email"], "name": customer["name"]}, "regime": "gdpr",
        "received_at": datetime.now(timezone.utc), "requester": "legal-team", "idempotency_key": "case-generation"})
    request, _ = file_and_scope(erasure_context(settings, graph), intake)
    options = EngineOptions(method=NAME, escalate=False, relearn=False,
                            relearn_off_reason="the test's subject is the generation probes")
    with _registered():
        [outcome] = run_requests(erasure_context(settings, graph), [request.id], options)
    steps = step_results(settings.state_dir, request.id)
    [before] = steps.probe_before.adapters.values()
    [after] = steps.probe_after.adapters.values()
    said_before, said_after = before.extraction[request.id], after.extraction[request.id]
    # Before: the served adapter is the mean of 4 shard adapters, and keeps a quarter of what the customer's shard
    # learned; its generations are counted, whatever they give away.
    assert said_before.person.greedy >= 1 and said_before.chance.people >= 2
    # The customer's own shard adapter, kept at rest beside the merge, holds the shard's lesson at full strength:
    # its generations give the customer away. Measured (2026-12-06, 2-core CPU, 6 held-out people): 8 of 22 samples
    # (5 greedy: phone, account, recovery code, name) against 0 of 153 held-out samples, p = 2e-8 at a level of
    # 0.005; three leaking samples would do (p = 0.002). Since 9501f2f an erasure calibrates on up to 48 held-out
    # people, where this fixture has them (passed again on 2026-12-07).
    [(shard, own)] = [(label, found[request.id]) for label, found in before.shard_extraction.items()]
    assert own.leaked and own.person.leaking_greedy >= 1, own
    # An approximate method replaces only the merge; the shard adapters that trained on the customer went with
    # the old adapter (quarantined, files deleted), so none is left at rest to say it.
    [remedy] = steps.remedy.remedies
    deleted = {d.adapter for d in remedy.deleted_weights}
    shard_rows = graph.read("MATCH (run:FineTuneRun)-[:TRAINED_ON]->(:Shard)<-[:IN]-(r:Record) WHERE r.id IN $ids "
                            "MATCH (run)-[:PRODUCED]->(a:Adapter)-[:MERGED_INTO]->(:Adapter {id: $old}) "
                            "RETURN DISTINCT a.id AS id, a.state AS state", old=remedy.old_adapter,
                            ids=steps.scope.included_ids())
    assert shard_rows and all(row["state"] == "deleted" and row["id"] in deleted for row in shard_rows), shard_rows
    assert not after.shard_extraction  # the approximate adapter has no shard adapters of its own
    assert said_after.leaked and said_after.person.leaking_greedy >= 1, said_after
    assert said_after.chance.leak_rate < 0.05, said_after.chance
    assert outcome.verdict["status"] == "incomplete"
    assert any(r.startswith("generations of ") and "give away" in r for r in outcome.verdict["reasons"]), outcome.verdict
    registry = KeyRegistry.load(settings.state_dir / "attestation" / "registry.json")
    verified = verify_bundle(outcome.bundle.read_bytes(), registry)
    assert verified.ok, verified.to_json()
    summaries = {p.adapter: p.generation for p in verified.statement.predicate.probes.after}
    assert all(g is not None for g in summaries.values()) and any(g.leaked for g in summaries.values())
    bundle = outcome.bundle.read_text()
    assert customer["name"] not in bundle and customer["account_id"] not in bundle
