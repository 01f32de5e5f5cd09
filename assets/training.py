"""Training assets: one LoRA adapter per shard, merged into the served adapter, then deployed."""

from datetime import datetime, timezone

import dagster as dg

from assets.datasets import dataset_version
from assets.resources import ModelStoreResource, Neo4jResource, OpenLineageResource, SourceStoreResource
from lineage.dataset import DatasetPlan
from lineage.models import Deployment, Edge
from lineage.store import queries
from lineage.store.writers import LineageWriter
from lineage.training_runs import TrainingRun, adapter_for, shard_run, write_training_lineage


class FineTuneConfig(dg.Config):
    """LoRA hyper-parameters; unset ones take LoraTrainingConfig's defaults. The full config is hashed."""

    r: int | None = None
    alpha: float | None = None
    learning_rate: float | None = None
    epochs: int | None = None
    batch_size: int | None = None
    max_length: int | None = None
    seed: int | None = None
    target_modules: list[str] | None = None  # the linear layers that get LoRA (default "auto": the architecture's)
    engine: str | None = None  # "trainer" (transformers' Trainer, the default) or "loop"
    loss_on: str | None = None  # chat records: "all" tokens (the default) or the "assistant" turns only


def _refuse_erased(graph, plan: DatasetPlan) -> None:
    # Defence in depth: the blocking checks should already have stopped the run.
    counts = queries.erased_in_dataset(graph, plan.version.id)
    if counts["tombstoned_records"] or counts["erased_content_matches"]:
        raise dg.Failure(f"refusing to fine-tune on {plan.version.id}: erased data is in it ({counts})")


@dg.asset(group_name="training", kinds={"pytorch", "neo4j"})
def fine_tune(context: dg.AssetExecutionContext, config: FineTuneConfig, dataset_version: DatasetPlan,
              neo4j: Neo4jResource, models: ModelStoreResource, source: SourceStoreResource,
              openlineage: OpenLineageResource) -> dg.Output[dict]:
    """LoRA per shard (peft) on LETHE_BASE_MODEL, merged exactly into the served adapter."""
    from unlearning.errors import UnlearningError
    from unlearning.sharded import train_sharded_adapters
    from unlearning.training import LoraTrainingConfig

    plan = dataset_version
    _refuse_erased(neo4j.graph, plan)
    content = source.content()
    texts = content.get_many([rid for s in plan.shards for rid, _ in s.records])
    missing = [rid for s in plan.shards for rid, _ in s.records if rid not in texts]
    if missing:
        raise dg.Failure(f"{len(missing)} training record(s) have no text in the content store "
                         f"(e.g. {missing[:3]}); they may have been erased — rebuild the dataset version")
    shard_texts = {s.id: [texts[rid] for rid, _ in s.records] for s in plan.shards}
    turns = {texts[rid]: t for rid, t in content.turns(list(texts)).items()}  # chat records: their messages
    try:
        lora = LoraTrainingConfig(**{k: v for k, v in config.model_dump().items() if v is not None})
    except ValueError as exc:
        raise dg.Failure(f"bad fine_tune config: {exc}") from exc
    started = datetime.now(timezone.utc)
    run_dir = models.adapters_dir() / f"{plan.version.id.replace(':', '-')}-{lora.config_sha256()[:12]}"
    try:
        trained = train_sharded_adapters(models.base_model_dir(), shard_texts, lora, run_dir,
                                         manifest={"dataset_version": plan.version.id,
                                                   "manifest_root": plan.version.manifest_root},
                                         turns=turns)
    except UnlearningError as exc:
        openlineage.emitter.failed("lethe.fine_tune", context.run.run_id, exc)
        raise dg.Failure(f"fine_tune failed: {exc}") from exc
    ended = datetime.now(timezone.utc)

    served = adapter_for(trained.served_sha256, trained.served_path)
    shard_adapters = [adapter_for(shard.sha256, shard.path) for shard in trained.shards]
    runs = [TrainingRun(shard_run(shard.shard_id, base_model=models.base_model_dir(),
                                  base_model_sha256=trained.base_model_sha256, config_sha256=lora.config_sha256(),
                                  seed=lora.seed, started_at=started, ended_at=ended), shard.shard_id, adapter)
            for shard, adapter in zip(trained.shards, shard_adapters)]
    with neo4j.graph.transaction() as tx:
        write_training_lineage(LineageWriter(neo4j.graph, tx=tx), runs, served, shard_adapters)
    openlineage.emitter.fine_tune(neo4j.graph, served.id, plan.version.id)
    return dg.Output(
        {"id": served.id, "sha256": served.sha256, "path": str(trained.served_path),
         "dataset_version": plan.version.id},
        metadata={"served_adapter": served.id, "sha256": served.sha256, "shards": len(trained.shards),
                  "config_sha256": lora.config_sha256(), "base_model_sha256": trained.base_model_sha256,
                  "train_seconds": round(sum(s.seconds for s in trained.shards), 2),
                  **{f"final_loss_shard_{i}": round(s.final_loss, 4) for i, s in enumerate(trained.shards)}},
    )


class DeploymentConfig(dg.Config):
    """Where the served adapter is deployed."""

    deployment_id: str = "support-bot"
    endpoint: str = "https://support-bot.example.com/v1"
    # The form it serves: fp32, bf16, int8, 4bit-nf4 or 4bit-fp4 (merged), "+adapter" for an adapter on a
    # quantized base. Left out, erasures probe bf16, int8 and 4bit-nf4 besides the adapter as trained.
    form: str | None = None


@dg.asset(group_name="training", kinds={"neo4j"})
def deployment(context: dg.AssetExecutionContext, config: DeploymentConfig, fine_tune: dict,
               neo4j: Neo4jResource, openlineage: OpenLineageResource) -> dg.MaterializeResult:
    """The served adapter DEPLOYED_TO an endpoint; the adapter it replaces there is superseded."""
    graph = neo4j.graph
    with graph.transaction() as tx:
        previous = [r["id"] for r in tx.run(
            "MATCH (a:Adapter)-[:DEPLOYED_TO]->(:Deployment {id: $d}) WHERE a.id <> $a RETURN a.id AS id",
            d=config.deployment_id, a=fine_tune["id"])]
        writer = LineageWriter(graph, tx=tx)
        from unlearning.forms import parse_form  # torch: imported when the asset runs

        form = parse_form(config.form).name if config.form is not None else None
        writer.nodes([Deployment(id=config.deployment_id, endpoint=config.endpoint, form=form)])
        writer.edges("DEPLOYED_TO", [Edge(source=fine_tune["id"], target=config.deployment_id)])
        if previous:
            tx.run("MATCH (a:Adapter)-[r:DEPLOYED_TO]->(:Deployment {id: $d}) WHERE a.id IN $ids "
                   "SET a.state = 'superseded' DELETE r", d=config.deployment_id, ids=previous)
    openlineage.emitter.deployment(graph, config.deployment_id)
    return dg.MaterializeResult(metadata={"deployment": config.deployment_id, "adapter": fine_tune["id"],
                                          "superseded": ", ".join(previous) or "-"})
