"""Extraction by generation in every erasure: before and after the remedy, on each probed form, for the request's
person and for held-out people (the chance rate); a leak after an approximate remedy turns the verdict.

Real Neo4j, Dagster's trained pipeline, peft, Presidio, the MiniLM embedder and FAISS. The approximate method
here is built to leave the adapter as it was (its weights scaled by 0.999): its subject is the verdict, not
forgetting.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from attestation import KeyRegistry, verify_bundle
from erasure.engine import file_and_scope, run_requests, step_results
from erasure.remedy_runs import EngineOptions
from erasure.requests import ErasureIntake
from lethe.wiring import erasure_context
from unlearning.base_model import model_dir_sha256
from unlearning.methods.base import MethodConfig, MethodKind, RemedyInput, RemedyOutcome
from unlearning.methods.registry import MethodSpec, register_method, unregister_method

NAME = "keeps_what_it_knew"
WEIGHTS = "adapter_model.safetensors"


class KeepsConfig(MethodConfig):
    scale: float = 0.999


def _keep(config: KeepsConfig, remedy: RemedyInput, on_step=None) -> RemedyOutcome:
    """A copy of the served adapter with its weights scaled by `scale`: changed, and still memorizing."""
    started = time.perf_counter()
    out = Path(remedy.out_dir)
    shutil.copytree(remedy.adapter_dir, out)
    tensors = {k: v * config.scale for k, v in load_file(out / WEIGHTS).items()}
    save_file({k: v.contiguous().to(torch.float32) for k, v in tensors.items()}, out / WEIGHTS)
    manifest = {**dict(remedy.manifest or {}), "remedy_method": NAME}
    (out / "lethe_manifest.json").write_text(json.dumps(manifest, sort_keys=True), encoding="utf-8")
    return RemedyOutcome(method=NAME, kind=MethodKind.APPROXIMATE, config=config.model_dump(mode="json"),
                         adapter_dir=out, adapter_sha256=model_dir_sha256(out), steps=1, losses=[0.0],
                         seconds=time.perf_counter() - started, details={})


@contextlib.contextmanager
def _registered():
    register_method(MethodSpec(NAME, MethodKind.APPROXIMATE, KeepsConfig, _keep))
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


def test_an_approximate_remedy_whose_adapter_still_says_the_secret_is_not_erased(scratch_pipeline, shared_pipeline):
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
    print("before", said_before.model_dump_json(), "after", said_after.model_dump_json(), sep="\n")
    assert said_before.leaked and said_before.person.leaking_greedy >= 1, said_before
    assert said_after.leaked, said_after
    assert said_before.chance.counts.people >= 2 and said_before.chance.rate < 0.05
    assert outcome.verdict["status"] == "incomplete"
    assert any(r.startswith("generations of ") and "give away" in r for r in outcome.verdict["reasons"]), outcome.verdict
    registry = KeyRegistry.load(settings.state_dir / "attestation" / "registry.json")
    verified = verify_bundle(outcome.bundle.read_bytes(), registry)
    assert verified.ok, verified.to_json()
    summaries = {p.adapter: p.generation for p in verified.statement.predicate.probes.after}
    assert all(g is not None for g in summaries.values()) and any(g.leaked for g in summaries.values())
    bundle = outcome.bundle.read_text()
    assert customer["name"] not in bundle and customer["account_id"] not in bundle
