"""`lethe pipeline run`: the batches folder ingested and trained on, in a real Dagster instance."""

from __future__ import annotations

import typer

from lethe import wiring
from lethe.cli import render
from lethe.cli.errors import fail, friendly_errors

pipeline_app = typer.Typer(help="Lethe's Dagster pipeline: ingest your batch files, then fine-tune on them.",
                           no_args_is_help=True)
console = render.console


def _run_config(holdout_fraction: float | None, epochs: int | None, form: str | None) -> dict | None:
    ops = {}
    if holdout_fraction is not None:
        ops["shards"] = {"config": {"holdout_fraction": holdout_fraction}}
    if epochs is not None:
        ops["fine_tune"] = {"config": {"epochs": epochs}}
    if form is not None:
        from unlearning.forms import parse_form  # a bad name fails here, before any run

        ops["deployment"] = {"config": {"form": parse_form(form).name}}
    return {"ops": ops} if ops else None


@pipeline_app.command("run")
@friendly_errors
def run(holdout_fraction: float | None = typer.Option(
            None, min=0.0, max=0.5, help="share of records held out of training, to calibrate the probes against "
                                         "(default 0.05)"),
        epochs: int | None = typer.Option(None, min=1, max=1000, help="training epochs per shard (default: the "
                                                                      "training config's)"),
        form: str | None = typer.Option(None, help="the form the deployment serves: fp32, bf16, int8, 4bit-nf4, "
                                                   "4bit-fp4 (merged), int8+adapter, 4bit-nf4+adapter; erasures "
                                                   "probe it (default: not said, so bf16, int8 and 4bit-nf4)"),
        train: bool = typer.Option(False, "--train", help="train even when no batch file is new")) -> None:
    """Ingest every batch file not ingested yet (records, PII scan; one Dagster run per file), then train:
    shards, a dataset version, a LoRA adapter per shard, merged and deployed. The same runs as Dagster's UI.
    With nothing new to ingest and a model deployed already, it trains only when asked (--train)."""
    from lethe.pipeline_runner import batch_files, run_pipeline

    run_config = _run_config(holdout_fraction, epochs, form)  # a bad argument fails before anything is read
    settings = wiring.cli_settings()
    names = batch_files(settings)
    if not names:
        fail(f"no batch file (*.jsonl or *.parquet) in {settings.record_batches_dir}: put your records there "
             "(or set LETHE_BATCHES_DIR), then run again")
    if settings.base_model is None:
        fail("LETHE_BASE_MODEL is not set: name the Hugging Face causal LM directory to fine-tune")
    with wiring.open_graph(settings) as graph:  # Neo4j must answer before any run starts (exit 3 if not)
        deployed = graph.read("MATCH (d:Deployment) RETURN count(d) AS n")[0]["n"] > 0
    new, trained = run_pipeline(settings, names, run_config, console.status,
                                train_unchanged=train or not deployed)
    console.print(f"ingested {len(new)} new batch file(s) of {len(names)} in {settings.record_batches_dir}; "
                  + ("trained and deployed" if trained else "nothing new to train on (--train trains anyway)")
                  + f" (Dagster instance: {settings.dagster_home}, log: {settings.state_dir / 'logs' / 'dagster.log'})")
    console.print("next: lethe datasets; lethe blast-radius --subject-email E; lethe erase file …")
