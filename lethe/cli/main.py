"""`lethe`: the command line of the lineage and erasure engine."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lethe import wiring
from lethe.cli import render
from lethe.cli.demo import CUSTOMERS, run_demo
from lethe.cli.api import api_app
from lethe.cli.attest import attest_app
from lethe.cli.erase import erase_app
from lethe.cli.erase import report as erase_report
from lethe.cli.errors import EXIT_BLOCKED, fail, friendly_errors
from lethe.cli.method_settings import parse_method_settings
from lethe.cli.adapters import adapters_app
from lethe.cli.lineage import lineage_app
from lethe.cli.pipeline import pipeline_app
from lethe.ingestion import DatasetOptions, ingest_file, read_batch
from lethe.neo4j_server import LocalNeo4j
from lethe.settings import Settings
from lineage.local_files import restrict_umask
from lineage.keys import IdentifierKind
from lineage.store import queries
from lineage.store.writers import LineageWriter

app = typer.Typer(help="Lethe: which models learned from a person, and proof that they no longer do.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
neo4j_app = typer.Typer(help="Run the local Neo4j 5.26 server (not needed when NEO4J_URI is set).",
                        no_args_is_help=True)
app.add_typer(neo4j_app, name="neo4j")
app.add_typer(erase_app, name="erase")
app.add_typer(attest_app, name="attest")
app.add_typer(api_app, name="api")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(adapters_app, name="adapters")
app.add_typer(lineage_app, name="lineage")
app.command("report")(erase_report)
console = render.console


# Commands that run without a pepper: server management, and the demo (which makes its own).
NO_PEPPER_NEEDED = {"neo4j", "demo", "demo-data", "attest", "api"}  # api serve checks its own


@app.callback()
@friendly_errors
def _require_pepper(ctx: typer.Context) -> None:
    """Lethe refuses to start without a pepper: subject keys are HMACs under it. Everything a command
    writes is its owner's alone (umask 077), whatever the shell's umask."""
    restrict_umask()
    # click hands the group callback no subcommand arguments, so `--help` is looked for in the process's
    # own: help never needs a pepper.
    asks_for_help = "--help" in sys.argv[1:]
    if ctx.invoked_subcommand not in NO_PEPPER_NEEDED and not ctx.resilient_parsing and not asks_for_help:
        Settings().load_pepper()



@neo4j_app.command("start")
@friendly_errors
def neo4j_start() -> None:
    """Start the local Neo4j (idempotent); waits until Bolt answers and prints the URI."""
    server = LocalNeo4j(wiring.cli_settings())
    with console.status("starting Neo4j (the first start builds the launcher with Maven)…"):
        status = server.start()
    warmed = f"; page cache warmed for the impact queries in {status.warm_up_s:.1f} s" \
        if status.warm_up_s is not None else ""
    console.print(f"Neo4j is running at [bold]{status.uri}[/] (pid {status.pid}{warmed})")


@neo4j_app.command("stop")
@friendly_errors
def neo4j_stop() -> None:
    """Stop the local Neo4j that Lethe started (never any other process)."""
    stopped = LocalNeo4j(wiring.cli_settings()).stop()
    console.print("Neo4j stopped." if stopped else "No Neo4j started by Lethe is running here.")


@neo4j_app.command("status")
@friendly_errors
def neo4j_status() -> None:
    """Say whether Neo4j answers, where, and which version it is."""
    settings = wiring.cli_settings()
    if settings.uses_local_server:
        status = LocalNeo4j(settings).status()
        if not status.running:
            fail(f"the local Neo4j is not running (expected at {status.uri}); start it with "
                 "`lethe neo4j start`", code=3)
    with wiring.open_graph(settings, apply_schema=False) as graph:
        version = graph.server_version()
    console.print(f"{version} at {settings.resolved_neo4j_uri()} (database {settings.neo4j_database})")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True)


@app.command()
@friendly_errors
def ingest(
    path: Path = typer.Argument(..., help="JSONL file: one record per line with id, subject, text, source, created_at"),
    dataset: str | None = typer.Option(None, help="also make a dataset version of these records, with this name"),
    shards: int = typer.Option(4, min=1, max=4096, help="shards of the dataset version"),
    holdout: float = typer.Option(0.05, min=0.0, max=0.5, help="share of records held out for calibration"),
    seed: int = typer.Option(0, help="seed of the holdout sample"),
    parent: str | None = typer.Option(None, help="dataset version this one derives from"),
    skip_erased: bool = typer.Option(False, help="drop records that match erased ones instead of refusing the file"),
    bulk: bool = typer.Option(False, help="first load into an empty graph of Lethe's own Neo4j through the "
                                          "offline importer (stops and restarts the server)"),
) -> None:
    """Ingest records: hashes and subject keys go to the graph, text to the content store."""
    settings = wiring.cli_settings()
    batch = read_batch(path, wiring.subject_keyer(settings))
    options = DatasetOptions(dataset, shards, holdout, seed, parent) if dataset else None
    if bulk:
        from lethe.bulk_ingest import bulk_ingest_file

        with console.status("bulk import") as status:
            outcome, imported = bulk_ingest_file(settings, batch, wiring.content_store(settings), options,
                                                 on_stage=lambda stage: status.update(f"bulk import: {stage}"))
        stages = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in imported.seconds.items())
        console.print(f"bulk import in {imported.total_seconds:.1f} s ({stages})")
    else:
        with wiring.open_graph(settings) as graph, _progress() as progress:
            task = progress.add_task(f"ingesting {path.name}", total=len(batch.records))
            outcome = ingest_file(batch, graph, wiring.content_store(settings), options, skip_erased,
                                  on_batch=lambda n: progress.advance(task, n))
    report = outcome.report
    console.print(render.counts_table(f"Ingested {path}", {
        "records written": report.records, "already present": report.already_present,
        "exact repeats dropped": report.repeats_dropped, "erased records skipped": report.erased_skipped,
        "subject keys": report.subject_keys, "nodes created": report.graph.nodes_created,
        "relationships created": report.graph.relationships_created,
    }))
    if outcome.dataset:
        plan = outcome.dataset
        console.print(f"dataset version [bold]{plan.version.id}[/]: {len(plan.shards)} shards, "
                      f"{len(plan.holdout)} held out, manifest root {plan.version.manifest_root[:16]}…")


@app.command("blast-radius")
@friendly_errors
def blast_radius(
    subject_email: str | None = typer.Option(None, help="the subject's email address"),
    subject_phone: str | None = typer.Option(None, help="the subject's phone number"),
    subject_id: str | None = typer.Option(None, help="the subject's account id"),
    subject_name: str | None = typer.Option(None, help="the subject's full name"),
    subject_key: str | None = typer.Option(None, help="a subject key (HMAC) from a report"),
    record: list[str] = typer.Option([], help="a record id (repeatable)"),
    dataset: str | None = typer.Option(None, help="a dataset version id"),
    depth: int = typer.Option(8, min=1, max=queries.MAX_DEPTH, help="how many MERGED_INTO hops to follow"),
    as_json: bool = typer.Option(False, "--json", help="print the whole subgraph as JSON"),
) -> None:
    """Which datasets, runs, adapters and deployments learned from a subject, records or a dataset."""
    settings = wiring.cli_settings()
    identifiers = {IdentifierKind.EMAIL: subject_email, IdentifierKind.PHONE: subject_phone,
                   IdentifierKind.ACCOUNT: subject_id, IdentifierKind.NAME: subject_name}
    given = {k: v for k, v in identifiers.items() if v}
    starts = sum([bool(given or subject_key), bool(record), bool(dataset)])
    if starts != 1:
        fail("name exactly one start: --subject-email/--subject-phone/--subject-id/--subject-name/"
             "--subject-key, --record, or --dataset")
    with wiring.open_graph(settings) as graph:
        if given or subject_key:
            keys = [subject_key] if subject_key else []
            if given:
                keys += wiring.subject_keyer(settings).keys(given).values()
            result = queries.blast_radius_of_subject(graph, keys, depth)
        elif record:
            result = queries.blast_radius_of_records(graph, record, depth)
        else:
            result = queries.blast_radius_of_dataset(graph, dataset, depth)
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        render.blast_radius(result)


@app.command()
@friendly_errors
def preflight(
    dataset: str = typer.Argument(..., help="dataset version id"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Is a dataset version safe to fine-tune on? Exit code 1 when it holds erased or requested data."""
    with wiring.open_graph(wiring.cli_settings()) as graph:
        result = queries.preflight(graph, dataset)
    if as_json:
        print(json.dumps(result.model_dump()))
    else:
        render.preflight(result)
    if not result.ok:
        raise typer.Exit(EXIT_BLOCKED)


@app.command()
@friendly_errors
def datasets() -> None:
    """List dataset versions."""
    with wiring.open_graph(wiring.cli_settings()) as graph:
        rows = queries.dataset_versions(graph)
    table = render.Table(title="Dataset versions", title_justify="left")
    for column in ("id", "name", "created", "shards", "manifest root"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["id"], row["name"], str(row["created_at"])[:19], str(row["shards"]),
                      (row["manifest_root"] or "")[:16] + "…")
    console.print(table)


@app.command()
@friendly_errors
def tombstone(record_ids: list[str] = typer.Argument(..., help="ids of records to erase")) -> None:
    """Erase records from the lineage: keep their hashes (refused forever), drop their content."""
    settings = wiring.cli_settings()
    with wiring.open_graph(settings) as graph:
        erased = LineageWriter(graph).tombstone(record_ids, datetime.now(timezone.utc))
    wiring.content_store(settings).delete_many([r["id"] for r in erased])
    console.print(f"{len(erased)} record(s) tombstoned; {len(record_ids) - len(erased)} were already "
                  "erased or unknown.")


@app.command()
@friendly_errors
def probe(
    adapter: Path = typer.Option(..., exists=True, file_okay=False, help="the adapter directory to probe"),
    record: list[str] = typer.Option(..., help="a record id to probe (repeatable)"),
    dataset: str | None = typer.Option(None, help="dataset version whose holdout calibrates the scores "
                                                  "(default: the one in the adapter's manifest)"),
    alpha: float = typer.Option(0.01, min=1e-6, max=0.5, help="false-flag rate per record"),
    exposure: bool = typer.Option(True, help="test the secrets Presidio finds in the records for exposure"),
    generate: bool = typer.Option(True, help="generate from the records' prefixes and identity prompts and scan for "
                                              "the owners' identifiers and secrets, against held-out people"),
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the scoring pass: for large jobs "
                                                                  "on a GPU (compiling takes minutes)"),
    form: list[str] = typer.Option([], help="also probe the adapter as served in this form (repeatable): bf16, "
                                            "int8, 4bit-nf4, 4bit-fp4 (merged), or int8+adapter, 4bit-nf4+adapter"),
    out: Path | None = typer.Option(None, help="also write the report as JSON here"),
) -> None:
    """Did an adapter memorize these records? Scores vs its holdout, exposure, generations; a table and JSON."""
    from erasure.probing import ProbeRequest, probe_records
    from unlearning.probes import ProbeConfig

    settings = wiring.cli_settings()
    request = ProbeRequest(adapter=adapter, record_ids=tuple(record), dataset=dataset, exposure=exposure,
                           generate=generate, forms=tuple(form))
    with wiring.open_graph(settings) as graph, console.status("probing (loading the models the first time)…"):
        report = probe_records(wiring.erasure_context(settings, graph), request,
                               ProbeConfig(alpha=alpha, compile_model=compile_model))
    render.probe_report(report)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report.model_dump_json(indent=1) + "\n", encoding="utf-8")
        console.print(f"report written to {out}")
    if any(r.flagged for r in report.variants().values()) or \
            any(x.leaked for reports in report.extraction_variants().values() for x in reports.values()):
        raise typer.Exit(EXIT_BLOCKED)


@app.command()
@friendly_errors
def remedy(
    adapter: Path = typer.Option(..., exists=True, file_okay=False, help="the served adapter to remedy"),
    record: list[str] = typer.Option(..., help="a record id to remove (repeatable)"),
    method: str = typer.Option("retrain", help="retrain (exact), gradient_ascent, grad_diff or npo"),
    set_: list[str] = typer.Option([], "--set", help="a method setting, KEY=VALUE (repeatable), e.g. steps=20"),
    escalate: bool = typer.Option(True, help="retrain when an approximate method leaves records flagged"),
    out: Path | None = typer.Option(None, help="also write the remedy record as JSON here"),
) -> None:
    """Remove records from an adapter (exact retrain, or an approximate method), probing before and after."""
    from erasure.remediation import RemedyOptions, remedy_adapter
    from unlearning.methods.registry import parse_config

    settings = wiring.cli_settings()
    parse_config(method, parse_method_settings(set_))  # an unknown method or a bad setting fails before any work
    with wiring.open_graph(settings) as graph, _progress() as progress:
        task = progress.add_task(f"{method}: training steps", total=None)
        options = RemedyOptions(method, parse_method_settings(set_), escalate,
                                on_step=lambda step, total, loss: progress.update(task, completed=step))
        result = remedy_adapter(wiring.erasure_context(settings, graph), adapter, record, options)
    render.remedy_record(result)
    if out is not None and not result.noop_reason:
        out.parent.mkdir(parents=True, exist_ok=True)
        document = {k: v for k, v in vars(result).items() if k not in ("before", "after")}
        document["before"] = result.before.model_dump(mode="json")
        document["after"] = result.after.model_dump(mode="json")
        out.write_text(json.dumps(document, indent=1, default=str) + "\n", encoding="utf-8")
    if result.still_flagged:
        raise typer.Exit(EXIT_BLOCKED)


@app.command("demo-data")
@friendly_errors
def demo_data(
    out: Path = typer.Argument(..., help="where to write the JSONL corpus"),
    customers: int = typer.Option(200, min=2, help="fictitious customers"),
    seed: int = typer.Option(7, help="seed; the same seed gives the same corpus"),
) -> None:
    """Generate a synthetic support-ticket corpus of fictitious customers."""
    from lethe.demo.corpus import generate_corpus, write_jsonl

    corpus = generate_corpus(customers=customers, seed=seed)
    write_jsonl(corpus.records, out)
    console.print(f"wrote {len(corpus.records)} records of {customers} customers to {out}")


@app.command()
@friendly_errors
def demo(
    customers: int = typer.Option(CUSTOMERS, min=2, help="fictitious customers in the generated corpus"),
    seed: int = typer.Option(7),
) -> None:
    """Run the demo end to end on a generated corpus (makes its own pepper under .lethe/)."""
    run_demo(wiring.cli_settings(), customers, seed)


if __name__ == "__main__":
    app()
