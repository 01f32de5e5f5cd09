"""`lethe pipeline run`: the batches folder ingested and trained on, in a real Dagster instance."""

from __future__ import annotations

from pathlib import Path

import typer

from lethe import wiring
from lethe.cli import render
from lethe.cli.errors import fail, friendly_errors

pipeline_app = typer.Typer(help="Lethe's Dagster pipeline: ingest your batch files, then fine-tune on them.",
                           no_args_is_help=True)
console = render.console


def _run_config(project, shards: int | None, holdout_fraction: float | None, epochs: int | None,
                form: str | None) -> dict | None:
    """The project file's run config with the command's options on top (a bad form fails here, first)."""
    run_config = project.run_config() or {"ops": {}}
    ops = run_config["ops"]
    overrides = (("shards", "shard_count", shards), ("shards", "holdout_fraction", holdout_fraction),
                 ("fine_tune", "epochs", epochs), ("deployment", "form", form))
    for op, key, value in overrides:
        if value is not None:
            ops.setdefault(op, {"config": {}})["config"][key] = value
    if "form" in ops.get("deployment", {}).get("config", {}):
        from unlearning.forms import parse_form  # torch: imported only when a form is asked for

        config = ops["deployment"]["config"]
        config["form"] = parse_form(config["form"]).name
    return run_config if ops else None


def _import_files(paths: list[Path], project, settings) -> None:
    """Each file mapped, rendered, validated and written into the batches folder (see lethe.importing)."""
    from lethe.importing import chat_renderer, import_batch

    render = None
    if project.records.messages is not None:
        if settings.base_model is None:
            fail("chat records are rendered with the base model's chat template: set LETHE_BASE_MODEL")
        render = chat_renderer(settings.base_model)
    keyer = wiring.subject_keyer(settings)
    for path in paths:
        imported = import_batch(path, project.records, settings.record_batches_dir, keyer, render)
        state = "imported" if imported.new else "already imported"
        console.print(f"{path}: {imported.records} records, {state} as {imported.name}")


def _summary(settings) -> None:
    """The latest dataset version, the adapters trained on it and what they serve, and what to do next."""
    with wiring.open_graph(settings) as graph:
        rows = graph.read(
            "MATCH (v:DatasetVersion) WITH v ORDER BY v.created_at DESC LIMIT 1 "
            "OPTIONAL MATCH (v)<-[:PART_OF]-(:Shard)<-[:TRAINED_ON]-(:FineTuneRun)-[:PRODUCED]->(s:Adapter) "
            "OPTIONAL MATCH (s)-[:MERGED_INTO]->(a:Adapter)-[:DEPLOYED_TO]->(d:Deployment) "
            "RETURN v.id AS version, count(DISTINCT s) AS shard_adapters, "
            "collect(DISTINCT a.id + ' -> ' + d.id + coalesce(' (' + d.form + ')', '')) AS served")
    if rows and rows[0]["version"]:
        row = rows[0]
        console.print(f"dataset version {row['version']}: {row['shard_adapters']} shard adapter(s); served: "
                      + (", ".join(row["served"]) or "-"))
        console.print(f"next: lethe blast-radius --subject-email E; lethe preflight {row['version']}; "
                      "lethe erase file --email E …; lethe erase run")


@pipeline_app.command("run")
@friendly_errors
def run(paths: list[Path] = typer.Argument(None, help="your record files (.jsonl, .parquet, .csv), mapped by the "
                                                      "project file and copied into the batches folder first"),
        config: Path | None = typer.Option(None, "--config", help="the project file (default: ./lethe.toml when "
                                                                  "it exists): column mapping, dataset, training"),
        shards: int | None = typer.Option(None, min=1, max=4096, help="shards (K adapters) of the dataset version"),
        holdout_fraction: float | None = typer.Option(
            None, min=0.0, max=0.5, help="share of records held out of training, to calibrate the probes against "
                                         "(default 0.05)"),
        epochs: int | None = typer.Option(None, min=1, max=1000, help="training epochs per shard (default: the "
                                                                      "training config's)"),
        form: str | None = typer.Option(None, help="the form the deployment serves: fp32, bf16, int8, 4bit-nf4, "
                                                   "4bit-fp4 (merged), int8+adapter, 4bit-nf4+adapter; erasures "
                                                   "probe it (default: not said, so bf16, int8 and 4bit-nf4)"),
        train: bool = typer.Option(False, "--train", help="train even when no batch file is new")) -> None:
    """Import your files (if given), ingest every batch file not ingested yet (records, PII scan; one
    Dagster run per file), then train: shards, a dataset version, a LoRA adapter per shard, merged and
    deployed. The same runs as Dagster's UI. Running it again with nothing new trains nothing (--train)."""
    from lethe.pipeline_runner import batch_files, run_pipeline
    from lethe.project import load_project

    project = load_project(config)
    run_config = _run_config(project, shards, holdout_fraction, epochs, form)  # fails before anything is read
    settings = wiring.cli_settings()
    if paths:
        _import_files(paths, project, settings)
    names = batch_files(settings)
    if not names:
        fail(f"no batch file (*.jsonl or *.parquet) in {settings.record_batches_dir}: give your files as "
             "arguments, or put them there (or set LETHE_BATCHES_DIR), then run again")
    if settings.base_model is None:
        fail("LETHE_BASE_MODEL is not set: name the Hugging Face causal LM directory to fine-tune")
    with wiring.open_graph(settings) as graph:  # Neo4j must answer before any run starts (exit 3 if not)
        deployed = graph.read("MATCH (d:Deployment) RETURN count(d) AS n")[0]["n"] > 0
    new, trained = run_pipeline(settings, names, run_config, console.status,
                                train_unchanged=train or not deployed)
    console.print(f"ingested {len(new)} new batch file(s) of {len(names)} in {settings.record_batches_dir}; "
                  + ("trained and deployed" if trained else "nothing new to train on (--train trains anyway)")
                  + f" (Dagster instance: {settings.dagster_home}, log: {settings.state_dir / 'logs' / 'dagster.log'})")
    _summary(settings)
