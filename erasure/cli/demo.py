"""The demo: fictitious customers' tickets through the Dagster pipeline into adapters, then a blast radius."""

from __future__ import annotations

from erasure import wiring
from erasure.cli import render
from erasure.demo_corpus import generate_corpus, write_jsonl
from erasure.demo_models import build_demo_base_model
from erasure.neo4j_server import LocalNeo4j
from erasure.pipeline_runner import INGEST_ASSETS, TRAIN_ASSETS, materialize, register_batches
from erasure.remediation import path_of as remediation_path
from erasure.settings import Settings, demo_settings
from lineage.keys import IdentifierKind
from lineage.store import queries

console = render.console
BATCHES = 2


def run_demo(settings: Settings, customers: int, seed: int) -> None:
    """Neo4j, base model, corpus → Dagster (ingest, PII scan, shards, dataset, LoRA, deploy) → blast radius."""
    settings = demo_settings(settings)
    if settings.uses_local_server:
        with console.status("starting the local Neo4j…"):
            status = LocalNeo4j(settings).start()
        console.print(f"[bold]1.[/] Neo4j is running at {status.uri}")
    if settings.base_model is None:
        with console.status("building the tiny base model (cached after the first run)…"):
            base = build_demo_base_model(settings.model_store_dir / "base-tiny")
        settings = settings.model_copy(update={"base_model": base})
    console.print(f"[bold]2.[/] base model: {settings.base_model}")

    corpus = generate_corpus(customers=customers, seed=seed)
    size = -(-len(corpus.records) // BATCHES)
    names = []
    for i in range(BATCHES):
        name = f"tickets-{i + 1}.jsonl"
        write_jsonl(corpus.records[i * size:(i + 1) * size], settings.record_batches_dir / name)
        names.append(name)
    console.print(f"[bold]3.[/] {len(corpus.records)} support tickets of {customers} fictitious customers "
                  f"in {BATCHES} batches under {settings.record_batches_dir}")

    register_batches(settings, names)
    for name in names:
        with console.status(f"Dagster: raw_records + pii_scan [{name}]…"):
            materialize(settings, INGEST_ASSETS, partition=name)
    with console.status("Dagster: shards → dataset_version → fine_tune (LoRA per shard) → deployment…"):
        materialize(settings, TRAIN_ASSETS)
    console.print(f"[bold]4.[/] Dagster materialized every asset (instance: {settings.dagster_home})")

    keyer = wiring.subject_keyer(settings)
    with wiring.open_graph(settings) as graph:
        console.print(render.counts_table("Graph", queries.graph_counts(graph)))
        key = keyer.key(IdentifierKind.EMAIL, corpus.truth["customers"][0]["email"])
        console.print(f"[bold]5.[/] blast radius of customer #0 (email → subject key {key[:12]}…):")
        render.blast_radius(queries.blast_radius_of_subject(graph, [key]))
        _probe_and_remedy(settings, graph, corpus)
        versions = queries.dataset_versions(graph)
    pepper = settings.pepper_file or "$LETHE_PEPPER"
    console.print(
        "\nExplore:\n"
        f"  LETHE_PEPPER_FILE={pepper} .venv/bin/lethe preflight {versions[0]['id']}\n"
        f"  LETHE_PEPPER_FILE={pepper} .venv/bin/lethe blast-radius --dataset {versions[0]['id']}\n"
        f"  DAGSTER_HOME={settings.dagster_home} LETHE_PEPPER_FILE={pepper} "
        f"LETHE_BASE_MODEL={settings.base_model} .venv/bin/dagster dev -m assets.definitions"
    )


def _memorized_customer(corpus, trained: set[str]) -> tuple[int, list[str]]:
    """The first customer with a repeated canary ticket that was trained on, and their trained records."""
    repeated = {rid for c in corpus.truth["canaries"] if c["repeated"] for rid in c["record_ids"]}
    for customer in corpus.truth["customers"]:
        mine = [rid for rid in customer["record_ids"] if rid in trained]
        if repeated & set(mine):
            return customer["index"], mine
    raise RuntimeError("the demo corpus has no trained repeated canary; use more customers")


def _probe_and_remedy(settings: Settings, graph, corpus) -> None:
    """Probe the served adapter for one customer's records, retrain without them, probe again."""
    from erasure.probing import ProbeRequest, probe_records
    from erasure.remediation import remedy_adapter
    from unlearning.probes import ProbeConfig

    served = graph.read("MATCH (a:Adapter {state: 'active'})-[:DEPLOYED_TO]->(:Deployment) RETURN a.uri AS uri")
    adapter = remediation_path(served[0]["uri"])
    dataset = graph.read("MATCH (d:DatasetVersion) RETURN d.id AS id ORDER BY d.created_at DESC LIMIT 1")[0]["id"]
    plan = queries.dataset_plan(graph, dataset)
    index, records = _memorized_customer(corpus, {rid for s in plan.shards for rid, _ in s.records})
    with console.status(f"probing the served adapter for customer #{index}'s {len(records)} records…"):
        report = probe_records(settings, graph, ProbeRequest(adapter, tuple(records), regurgitation=False),
                               ProbeConfig(exposure_candidates=255, max_secrets_per_record=1, samples_per_prompt=2))
    console.print(f"[bold]6.[/] probes of customer #{index}'s records on the served adapter:")
    render.probe_report(report)
    with console.status("remedy: retraining only the shard that held them, then probing again…"):
        record = remedy_adapter(settings, graph, adapter, records, "retrain")
    console.print("[bold]7.[/] exact remedy (retrain the affected shard, reuse the others):")
    render.remedy_record(record)
