"""The demo: a generated corpus of fictitious customers, ingested and shown as a blast radius."""

from __future__ import annotations

from erasure import wiring
from erasure.cli import render
from erasure.demo_corpus import generate_corpus, write_jsonl
from erasure.ingestion import DatasetOptions, ingest_file, read_batch
from erasure.neo4j_server import LocalNeo4j
from erasure.settings import Settings, demo_settings
from lineage.keys import IdentifierKind
from lineage.store import queries

console = render.console


def run_demo(settings: Settings, customers: int, seed: int) -> None:
    """Start Neo4j, generate and ingest the corpus as a sharded dataset version, show a blast radius."""
    settings = demo_settings(settings)
    if settings.uses_local_server:
        with console.status("starting the local Neo4j…"):
            status = LocalNeo4j(settings).start()
        console.print(f"[bold]1.[/] Neo4j is running at {status.uri}")
    corpus = generate_corpus(customers=customers, seed=seed)
    path = settings.state_dir / "demo" / "tickets.jsonl"
    write_jsonl(corpus.records, path)
    console.print(f"[bold]2.[/] generated {len(corpus.records)} support tickets of {customers} fictitious "
                  f"customers → {path}")
    keyer = wiring.subject_keyer(settings)
    batch = read_batch(path, keyer)
    with wiring.open_graph(settings) as graph:
        outcome = ingest_file(batch, graph, wiring.content_store(settings),
                              DatasetOptions("support-tickets", shards=4, holdout=0.05, seed=seed))
        plan = outcome.dataset
        console.print(f"[bold]3.[/] ingested {outcome.report.records} records into dataset version "
                      f"[bold]{plan.version.id}[/] ({len(plan.shards)} shards, {len(plan.holdout)} held out)")
        console.print(render.counts_table("Graph", queries.graph_counts(graph)))
        customer = corpus.truth["customers"][0]
        key = keyer.key(IdentifierKind.EMAIL, customer["email"])
        console.print(f"[bold]4.[/] blast radius of customer #0 (email → subject key {key[:12]}…):")
        render.blast_radius(queries.blast_radius_of_subject(graph, [key]))
        console.print(render.counts_table("Preflight", {"verdict": "OK" if queries.preflight(
            graph, plan.version.id).ok else "BLOCKED"}))
    console.print(
        "\nTry it yourself (the demo's pepper is in "
        f"{settings.demo_pepper_path}):\n"
        f"  LETHE_PEPPER_FILE={settings.demo_pepper_path} .venv/bin/lethe blast-radius --dataset {plan.version.id}\n"
        f"  LETHE_PEPPER_FILE={settings.demo_pepper_path} .venv/bin/lethe preflight {plan.version.id}"
    )
