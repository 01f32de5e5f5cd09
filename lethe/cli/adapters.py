"""`lethe adapters register`: an adapter trained outside Lethe's pipeline, put in the lineage."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from lethe import wiring
from lethe.cli import render
from lethe.cli.errors import friendly_errors

adapters_app = typer.Typer(help="Adapters trained elsewhere: record them, so blast radius and erasures reach them.",
                           no_args_is_help=True)


class LossOnChoice(str, Enum):
    all = "all"
    assistant = "assistant"


@adapters_app.command("register")
@friendly_errors
def register(adapter_dir: Path = typer.Argument(..., help="the LoRA adapter folder (adapter_config.json, adapter_model.safetensors)"),
             dataset: str = typer.Option(..., "--dataset", help="the dataset version it was trained on "
                                                                "(`lethe datasets`)"),
             base: Path = typer.Option(..., "--base", help="the base model directory it was trained on"),
             trainer: str = typer.Option("external", help="what trained it, e.g. 'trl.SFTTrainer 0.24'"),
             seed: int = typer.Option(0, min=0, help="the training seed"),
             deployment: str | None = typer.Option(None, help="a deployment id that serves it"),
             endpoint: str | None = typer.Option(None, help="the deployment's endpoint"),
             form: str | None = typer.Option(None, help="the form the deployment serves (fp32, bf16, int8, "
                                                        "4bit-nf4, …)"),
             loss_on: LossOnChoice = typer.Option(LossOnChoice.all, "--loss-on",
                                                  help="chat records: the loss was on all tokens, or on the "
                                                       "assistant turns only (TRL's assistant_only_loss)")) -> None:
    """Record the run (TRAINED_ON every shard of the dataset version), the adapter, and its deployment."""
    from lethe.external_adapters import ExternalTraining, register_adapter

    if form is not None:
        from unlearning.forms import parse_form  # torch: imported only when a form is given

        form = parse_form(form).name
    training = ExternalTraining(adapter_dir=adapter_dir, dataset_version=dataset, base_model=base, trainer=trainer,
                                seed=seed, deployment=deployment, endpoint=endpoint, form=form,
                                config={"loss_on": loss_on.value})
    with wiring.open_graph(wiring.cli_settings()) as graph:
        done = register_adapter(graph, training)
    render.console.print(f"{done.adapter_id} (sha256 {done.adapter_sha256[:16]}…) recorded as produced by "
                         f"{done.run_id}, trained on {dataset} ({done.shards} shards)"
                         + (f", deployed to {deployment}" if deployment else ""))
    render.console.print(f"{adapter_dir}/lethe_manifest.json names the dataset version and the recipe a remedy "
                         "retrains with (it is part of the adapter's digest: keep it with the weights)")
    render.console.print(f"next: lethe blast-radius --dataset {dataset}")
