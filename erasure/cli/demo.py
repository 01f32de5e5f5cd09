"""The demo: fictitious customers' tickets through the Dagster pipeline into adapters, then a blast radius."""

from __future__ import annotations

import math

from erasure import wiring
from erasure.cli import render
from erasure.demo_corpus import generate_corpus, write_jsonl
from erasure.demo_models import build_demo_base_model
from erasure.neo4j_server import LocalNeo4j
from erasure.pipeline_runner import INGEST_ASSETS, TRAIN_ASSETS, materialize, register_batches
from erasure.settings import Settings, demo_settings
from lineage.keys import IdentifierKind
from lineage.store import queries

console = render.console
BATCHES = 2


def prepare_demo(settings: Settings, customers: int, seed: int, say=console.print, status=console.status):
    """Neo4j, the tiny base model, a corpus in batches, and Dagster's ingest and training; (settings, corpus)."""
    settings = demo_settings(settings)
    if settings.uses_local_server:
        with status("starting the local Neo4j…"):
            started = LocalNeo4j(settings).start()
        say(f"[bold]1.[/] Neo4j is running at {started.uri}")
    if settings.base_model is None:
        with status("building the tiny base model (cached after the first run)…"):
            base = build_demo_base_model(settings.model_store_dir / "base-tiny")
        settings = settings.model_copy(update={"base_model": base})
    say(f"[bold]2.[/] base model: {settings.base_model}")

    corpus = generate_corpus(customers=customers, seed=seed)
    size = -(-len(corpus.records) // BATCHES)
    names = []
    for i in range(BATCHES):
        name = f"tickets-{i + 1}.jsonl"
        write_jsonl(corpus.records[i * size:(i + 1) * size], settings.record_batches_dir / name)
        names.append(name)
    say(f"[bold]3.[/] {len(corpus.records)} support tickets of {customers} fictitious customers "
        f"in {BATCHES} batches under {settings.record_batches_dir}")

    register_batches(settings, names)
    for name in names:
        with status(f"Dagster: raw_records + pii_scan [{name}]…"):
            materialize(settings, INGEST_ASSETS, partition=name)
    with status("Dagster: shards → dataset_version → fine_tune (LoRA per shard) → deployment…"):
        materialize(settings, TRAIN_ASSETS)
    say(f"[bold]4.[/] Dagster materialized every asset (instance: {settings.dagster_home})")
    return settings, corpus


def run_demo(settings: Settings, customers: int, seed: int) -> None:
    """Neo4j, base model, corpus → Dagster (ingest, PII scan, shards, dataset, LoRA, deploy) → blast radius."""
    settings, corpus = prepare_demo(settings, customers, seed)
    keyer = wiring.subject_keyer(settings)
    with wiring.open_graph(settings) as graph:
        console.print(render.counts_table("Graph", queries.graph_counts(graph)))
        key = keyer.key(IdentifierKind.EMAIL, corpus.truth["customers"][0]["email"])
        console.print(f"[bold]5.[/] blast radius of customer #0 (email → subject key {key[:12]}…):")
        render.blast_radius(queries.blast_radius_of_subject(graph, [key]))
        _erase_one_customer(settings, graph, corpus)
        versions = queries.dataset_versions(graph)
    pepper = settings.pepper_file or "$LETHE_PEPPER"
    console.print(
        "\nExplore:\n"
        f"  LETHE_PEPPER_FILE={pepper} .venv/bin/lethe preflight {versions[0]['id']}\n"
        f"  LETHE_PEPPER_FILE={pepper} .venv/bin/lethe blast-radius --dataset {versions[0]['id']}\n"
        f"  DAGSTER_HOME={settings.dagster_home} LETHE_PEPPER_FILE={pepper} "
        f"LETHE_BASE_MODEL={settings.base_model} .venv/bin/dagster dev -m assets.definitions"
    )


def memorized_customer(corpus, trained: set[str]) -> dict:
    """The first customer with a repeated canary ticket that was trained on (fictitious, from the corpus)."""
    repeated = {rid for c in corpus.truth["canaries"] if c["repeated"] for rid in c["record_ids"]}
    for customer in corpus.truth["customers"]:
        if repeated & (set(customer["record_ids"]) & trained):
            return customer
    raise RuntimeError("the demo corpus has no trained repeated canary; use more customers")


def _erase_one_customer(settings: Settings, graph, corpus) -> None:
    """File an erasure request for one customer and run it: scope, blast radius, probes, retrain, attest, report."""
    from datetime import datetime, timezone

    from attestation import KeyRegistry, verify_bundle
    from erasure.engine import file_and_scope, run_requests, step_results
    from erasure.keyring import Keyring
    from erasure.requests import ErasureIntake

    dataset = graph.read("MATCH (d:DatasetVersion) RETURN d.id AS id ORDER BY d.created_at DESC LIMIT 1")[0]["id"]
    plan = queries.dataset_plan(graph, dataset)
    customer = memorized_customer(corpus, {rid for s in plan.shards for rid, _ in s.records})
    intake = ErasureIntake.model_validate({
        "identifiers": {"email": customer["email"], "name": customer["name"]}, "regime": "gdpr",
        "received_at": datetime.now(timezone.utc), "requester": "legal-team", "idempotency_key":
        f"demo-{customer['index']}"})
    request, _ = file_and_scope(settings, graph, intake)
    scope = step_results(settings.state_dir, request.id)["scope"]["result"]
    included = [r for r in scope["records"] if r["decision"] == "included"]
    owned = sum("owned" in r["reasons"] for r in included)
    left_out = sum(r["decision"] == "excluded_borderline" for r in scope["records"])
    console.print(f"[bold]6.[/] legal filed request {request.id} (GDPR, due {request.due_at:%Y-%m-%d}) for "
                  f"fictitious customer #{customer['index']}; scope: {len(included)} records ({owned} their own, "
                  f"{len(included) - owned} of others that mention them or copy theirs); {left_out} look-alike "
                  "tickets of other customers left out (same template, nothing of theirs in common)")
    with console.status("engine: blast radius → probe → retrain the affected shard → probe → erase → attest…") as s:
        outcome = run_requests(settings, graph, [request.id],
                               on_event=lambda rid, what: s.update(f"{rid}: {what}…"))[0]
    steps = step_results(settings.state_dir, request.id)
    served = steps["blast_radius"]["result"]["served_adapters"]
    console.print(f"[bold]7.[/] blast radius: {len(served)} served adapter(s), "
                  f"{len(steps['blast_radius']['result']['shards'])} shard(s), "
                  f"{len(steps['blast_radius']['result']['deployments'])} deployment(s)")
    for adapter_id, report in steps["probe_before"]["result"]["adapters"].items():
        console.print(f"    before: {len(report['flagged'])} of {len(report['records'])} scope records flagged on "
                      f"{adapter_id}; {_evidence(report)}")
    for remedy in steps["remedy"]["result"]["remedies"]:
        retain = remedy["utility"].get("retain", {}).get("relative_change")
        console.print(f"[bold]8.[/] remedy {remedy['method']} ({remedy['kind']}): {remedy['old_adapter']} → "
                      f"{remedy['new_adapter']}, retained-record NLL {retain:+.2%}" if retain is not None else "")
    for adapter_id, report in steps["probe_after"]["result"]["adapters"].items():
        console.print(f"    after: {len(report['flagged'])} of {len(report['records'])} flagged on {adapter_id}; "
                      f"{_evidence(report)}")
    keyring = Keyring.open(settings.state_dir)
    verification = verify_bundle(outcome.bundle.read_bytes(), KeyRegistry.load(keyring.registry_path))
    console.print(f"[bold]9.[/] verdict [bold]{outcome.verdict['status']}[/]; attestation {outcome.bundle} "
                  f"verifies offline: {'yes' if verification.ok else 'NO: ' + str(verification.error)}")
    console.print(f"    lethe attest verify {outcome.bundle} --keys {keyring.registry_path}")
    console.print(f"[bold]10.[/] report: {outcome.report}")


def _evidence(report: dict) -> str:
    """AUC of the scope records vs the holdout, and the highest exposure of a trained secret (bits)."""
    auc = report["auc"]["ratio"]
    exposures = [e for r in report["records"] for e in r.get("exposures", []) if not e["control"]]
    line = f"AUC vs holdout {auc['value']:.2f} [{auc['ci_low']:.2f}, {auc['ci_high']:.2f}]"
    if exposures:
        top = max(exposures, key=lambda e: e["exposure"])
        line += (f", top secret exposure {top['exposure']:.1f} bits (max {math.log2(top['candidates'] + 1):.0f}: "
                 "the true value ranked first)")
    return line
