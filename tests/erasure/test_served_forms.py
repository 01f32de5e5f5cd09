"""Served forms: an erasure probes each form the deployments record (int8, 4-bit NF4), and a record that flags
only in a quantized form turns the verdict, or escalates an approximate remedy to retraining.

The case is built on purpose (tests/erasure/quantization_fragile.py): an approximate method that forgets at
full precision while its NF4 weights stay bit for bit those of the memorizing adapter. Real Neo4j, Dagster's
trained pipeline, peft, bitsandbytes (int8 and NF4 on the CPU) and Presidio.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from attestation import KeyRegistry, verify_bundle
from erasure.engine import file_and_scope, run_requests, step_results
from erasure.remedy_runs import EngineOptions
from erasure.requests import ErasureIntake
from lethe.wiring import erasure_context
from lineage.models import Deployment, Edge
from lineage.store.writers import LineageWriter
from tests.erasure.quantization_fragile import nf4_round_trip, registered
from unlearning.errors import ProbeInputError
from unlearning.forms import DEFAULT_FORMS, parse_form, parse_forms


@pytest.mark.parametrize(("name", "expected"), [
    ("int8", "int8"), ("NF4", "4bit-nf4"), ("4bit", "4bit-nf4"), ("4bit-fp4", "4bit-fp4"), ("bfloat16", "bf16"),
    ("fp32", "fp32"), ("int8+adapter", "int8+adapter"), ("nf4+adapter", "4bit-nf4+adapter")])
def test_form_names_are_read_as_deployments_write_them(name, expected):
    assert parse_form(name).name == expected


@pytest.mark.parametrize(("name", "message"), [
    ("int4", "unknown served form 'int4'"), ("4bit-xx", "unknown served form"), ("", "unknown served form"),
    ("bf16+adapter", "applies to int8 and 4-bit bases only"), (8, "a name such as int8")])
def test_a_bad_form_name_says_which_names_exist(name, message):
    with pytest.raises(ProbeInputError, match=message):
        parse_form(name)


def test_repeated_forms_count_once_and_the_default_is_bf16_int8_and_nf4():
    assert [f.name for f in parse_forms(["int8", "INT8", "nf4", "4bit-nf4"])] == ["int8", "4bit-nf4"]
    assert DEFAULT_FORMS == ("bf16", "int8", "4bit-nf4")


def _memorized_customer(pipeline, corpus) -> dict:
    """A customer with a repeated canary ticket in the training shards (the records the adapter memorized)."""
    plan = pipeline["train"].output_for_node("dataset_version")
    trained = {rid for s in plan.shards for rid, _ in s.records}
    canaries = [c["record_ids"][0] for c in corpus.truth["canaries"] if c["repeated"] and c["record_ids"][0] in trained]
    return next(c for c in corpus.truth["customers"] if set(c["record_ids"]) & set(canaries))


def _deploy_quantized(graph) -> None:
    """The served adapter's deployment serves NF4, and a second deployment of it serves int8."""
    served = graph.read("MATCH (a:Adapter)-[:DEPLOYED_TO]->(d:Deployment) RETURN a.id AS a, d.id AS d, "
                        "d.endpoint AS e")[0]
    writer = LineageWriter(graph)
    writer.nodes([Deployment(id=served["d"], endpoint=served["e"], form="4bit-nf4"),
                  Deployment(id="support-bot-int8", endpoint="https://int8.example.com/v1", form="int8")])
    writer.edges("DEPLOYED_TO", [Edge(source=served["a"], target="support-bot-int8")])


def _erase(pipeline, customer: dict, options: EngineOptions):
    settings, graph = pipeline["settings"], pipeline["graph"]
    intake = ErasureIntake.model_validate({
        "identifiers": {"email": customer["email"], "name": customer["name"]}, "regime": "gdpr",
        "received_at": datetime.now(timezone.utc), "requester": "legal-team", "idempotency_key": "case-forms"})
    request, _ = file_and_scope(erasure_context(settings, graph), intake)
    with registered():
        [outcome] = run_requests(erasure_context(settings, graph), [request.id], options)
    return request, outcome, step_results(settings.state_dir, request.id)


def _verified_predicate(pipeline, outcome):
    registry = KeyRegistry.load(pipeline["settings"].state_dir / "attestation" / "registry.json")
    report = verify_bundle(outcome.bundle.read_bytes(), registry)
    assert report.ok, report.to_json()
    return report.statement.predicate


def test_a_record_that_flags_only_at_4bit_turns_the_verdict(scratch_pipeline, shared_pipeline):
    customer = _memorized_customer(scratch_pipeline, shared_pipeline.corpus)
    _deploy_quantized(scratch_pipeline["graph"])
    options = EngineOptions(method="below_4bit_step", escalate=False, relearn=False,
                            relearn_off_reason="the test's subject is the served forms")  # test_engine has it
    request, outcome, steps = _erase(scratch_pipeline, customer, options)
    [before] = steps.probe_before.adapters.values()
    assert set(before.forms) == {"int8", "4bit-nf4"}  # what the deployments serve; fp32 is the adapter itself
    assert {name: r.form for name, r in before.forms.items()} == {"int8": "int8", "4bit-nf4": "4bit-nf4"}
    assert before.flagged and before.forms["4bit-nf4"].flagged  # memorized in every form before
    # The shard-reference test (own shard vs the 3 others) sees the memorized records above the holdout's range.
    # Measured (2026-12-06, this 2-core CPU): 9 records at 1.03-1.21 nats vs a holdout maximum of 0.45, AUC 1.0
    # over 9 records where the base-ratio AUC, over the customer's 2 distinct texts, was 0.56 [0.03, 1.0].
    reference = before.shard_reference
    assert reference.shards == 4 and reference.auc.value >= 0.9, reference.auc
    canaries = set(customer["record_ids"]) & set(before.flagged)
    assert canaries and all(reference.records[r].above_holdout for r in canaries)

    [remedy] = steps.remedy.remedies
    assert [a.method for a in remedy.attempts] == ["below_4bit_step"] and not remedy.escalated
    assert remedy.attempts[0].details["nf4_weights_unchanged"]  # NF4 gives back the old weights, bit for bit
    [after] = steps.probe_after.adapters.values()
    flags = {r.adapter: r.record_id for r in steps.statistics.flagged_after()}
    assert set(flags) == {f"{remedy.new_adapter}@4bit-nf4"}, flags  # as trained and int8 pass; NF4 does not
    assert after.forms["4bit-nf4"].form == "4bit-nf4"

    assert outcome.verdict["status"] == "incomplete", outcome.verdict
    assert any("@4bit-nf4" in reason and "approximate" in reason for reason in outcome.verdict["reasons"])
    predicate = _verified_predicate(scratch_pipeline, outcome)
    keys = {p.adapter for p in predicate.probes.after}
    assert keys == {remedy.new_adapter, f"{remedy.new_adapter}@int8", f"{remedy.new_adapter}@4bit-nf4"}
    assert after.relearned is None and remedy.relearning == {"off": "the test's subject is the served forms"}
    assert [p.records_flagged > 0 for p in predicate.probes.after if p.adapter.endswith("@4bit-nf4")] == [True]


def test_nf4_round_trip_is_what_the_served_nf4_model_holds(scratch_pipeline):
    """The method's check (nf4_round_trip) reads NF4 as the served form does: the 4-bit model's weights."""
    import torch

    from unlearning.base_model import load_base_model
    from unlearning.forms import load_served_model

    settings = scratch_pipeline["settings"]
    served = scratch_pipeline["train"].output_for_node("fine_tune")["path"]
    model, _ = load_served_model(settings.base_model, served, parse_form("4bit-nf4"),
                                 torch.device("cpu"), torch.float32)
    layer = model.served.model.layers[0].self_attn.q_proj
    import bitsandbytes.functional as bnb

    held = bnb.dequantize_4bit(layer.weight.data, layer.weight.quant_state)
    base, _ = load_base_model(settings.base_model)
    assert held.shape == base.model.layers[0].self_attn.q_proj.weight.shape
    merged_again, _ = load_served_model(settings.base_model, served, parse_form("fp32"),
                                        torch.device("cpu"), torch.float32)
    assert torch.equal(nf4_round_trip(merged_again.served.model.layers[0].self_attn.q_proj.weight), held)


# slow (~60 s): a retrain after the approximate attempt; test_engine covers the retrain by default.
@pytest.mark.slow
def test_an_approximate_remedy_that_flags_at_4bit_escalates_to_retrain(scratch_pipeline, shared_pipeline):
    customer = _memorized_customer(scratch_pipeline, shared_pipeline.corpus)
    _deploy_quantized(scratch_pipeline["graph"])
    _, outcome, steps = _erase(scratch_pipeline, customer, EngineOptions(method="below_4bit_step"))
    [remedy] = steps.remedy.remedies
    assert [a.method for a in remedy.attempts] == ["below_4bit_step", "retrain"] and remedy.escalated
    assert "4bit-nf4" in remedy.escalation_reason, remedy.escalation_reason
    assert outcome.verdict == {"status": "erased", "reasons": []}, outcome.verdict
    predicate = _verified_predicate(scratch_pipeline, outcome)
    assert predicate.method.kind == "exact"
    assert {p.adapter.partition("@")[2] for p in predicate.probes.after} == {"", "int8", "4bit-nf4", "relearned"}


def test_lethe_probe_reports_each_form_it_is_asked_for(pipeline, shared_pipeline, tmp_path):
    import json

    from typer.testing import CliRunner

    from lethe.cli.main import app

    customer = _memorized_customer(pipeline, shared_pipeline.corpus)
    served = pipeline["train"].output_for_node("fine_tune")["path"]
    out = tmp_path / "probe.json"
    args = ["probe", "--adapter", served, "--no-exposure", "--no-generate", "--out", str(out)]
    args += [a for rid in customer["record_ids"] for a in ("--record", rid)]
    result = CliRunner().invoke(app, [*args, "--form", "int8"], env=pipeline["env"])
    assert result.exit_code == 1, result.output  # 1: memorized (in some form)
    report = json.loads(out.read_text())
    assert report["form"] is None and list(report["forms"]) == ["int8"] and report["forms"]["int8"]["form"] == "int8"
    assert report["forms"]["int8"]["flagged"] and "Served forms" in result.output

    bad = CliRunner().invoke(app, [*args, "--form", "int4"], env=pipeline["env"])
    assert bad.exit_code == 2 and "unknown served form 'int4'" in bad.output, bad.output
