"""`lethe lineage emit`: send OpenLineage events again for everything the graph holds (docs/openlineage.md)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from lethe import wiring
from lethe.cli import render
from lethe.cli.errors import fail, friendly_errors

lineage_app = typer.Typer(help="Lethe's lineage for other tools: OpenLineage events (Marquez, DataHub, …).",
                          no_args_is_help=True)

_VERSIONS = "MATCH (v:DatasetVersion) RETURN v.id AS id ORDER BY v.created_at, v.id"
# Each served adapter (the end of its MERGED_INTO chain, or one trained whole) with the version it trained on.
_FINE_TUNES = ("MATCH (v:DatasetVersion)<-[:PART_OF]-(:Shard)<-[:TRAINED_ON]-(:FineTuneRun)-[:PRODUCED]->(a:Adapter) "
               "OPTIONAL MATCH (a)-[:MERGED_INTO]->(m:Adapter) "
               "RETURN DISTINCT v.id AS version, coalesce(m.id, a.id) AS adapter ORDER BY version, adapter")
_DEPLOYMENTS = "MATCH (d:Deployment) RETURN d.id AS id ORDER BY id"


@lineage_app.command("emit")
@friendly_errors
def emit() -> None:
    """Send START/COMPLETE events of every dataset version, fine-tune and deployment in the graph, through the
    transport OPENLINEAGE_* names: for a consumer that joined late or missed events. Run ids are derived
    from Lethe's ids, so events sent again replace, not duplicate, what a consumer has."""
    from lethe.openlineage import LineageEmitter, transport_configured

    if not transport_configured(os.environ, Path.cwd(), Path.home()):
        fail("no OpenLineage transport is configured: set OPENLINEAGE_URL (e.g. http://localhost:5000 for "
             "Marquez) or OPENLINEAGE_CONFIG (docs/openlineage.md)")
    settings = wiring.cli_settings()
    emitter = LineageEmitter.from_environment(settings.openlineage_namespace)
    sent = 0
    try:
        with wiring.open_graph(settings) as graph:
            sent += sum(emitter.dataset_version(graph, r["id"]) for r in graph.read(_VERSIONS))
            sent += sum(emitter.fine_tune(graph, r["adapter"], r["version"]) for r in graph.read(_FINE_TUNES))
            sent += sum(emitter.deployment(graph, r["id"]) for r in graph.read(_DEPLOYMENTS))
    finally:
        emitter.close()
    render.console.print(f"sent {sent} OpenLineage event(s) to namespace {settings.openlineage_namespace}")
