"""Adapters trained outside Lethe's pipeline (a team's own Trainer, TRL, another machine), put in the lineage.

The run is recorded as having TRAINED_ON every shard of the dataset version it was given, and PRODUCED the
adapter; the adapter can be DEPLOYED_TO an endpoint. Blast radius and preflight then reach it like any
other. Its run's `code_version` says where it was trained (`external:<trainer>`). A `lethe_manifest.json`
written into the adapter folder (part of its digest, as for Lethe's own adapters) names the dataset
version and the recipe in Lethe's terms (LoRA's shape from adapter_config.json, the optimizer's from the
trainer's arguments), so an erasure can remedy it: an approximate method on the adapter, or the exact
remedy, a full retrain of every shard of the version without the records through Lethe's Trainer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lethe.errors import InvalidArgumentError
from lineage.errors import NotFoundError
from lineage.models import Deployment, Edge, FineTuneRun
from lineage.store import GraphStore
from lineage.store.writers import LineageWriter
from lineage.training_runs import adapter_for

__all__ = ["ExternalTraining", "RegisteredAdapter", "register_adapter"]

@dataclass(frozen=True)
class ExternalTraining:
    """What is known of a training done elsewhere."""

    adapter_dir: Path
    dataset_version: str
    base_model: Path
    trainer: str = "external"  # e.g. "transformers.Trainer 4.57.1"
    config: dict[str, Any] = field(default_factory=dict)  # hyper-parameters worth recording (hashed)
    seed: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    deployment: str | None = None
    endpoint: str | None = None
    form: str | None = None


@dataclass(frozen=True)
class RegisteredAdapter:
    run_id: str
    adapter_id: str
    adapter_sha256: str
    shards: int


def _training_config(adapter_config: dict, training: ExternalTraining):
    """Lethe's LoraTrainingConfig of this training, so a remedy can retrain the same way: LoRA's shape from
    adapter_config.json, the optimizer's from the trainer's arguments where given, Lethe's defaults else."""
    from unlearning.training import LoraTrainingConfig

    args = training.config
    per_device, accumulation = args.get("per_device_train_batch_size"), args.get("gradient_accumulation_steps") or 1
    targets = adapter_config.get("target_modules") or ["auto"]
    values = {"r": adapter_config.get("r"), "alpha": adapter_config.get("lora_alpha"),
              "dropout": adapter_config.get("lora_dropout"),
              "target_modules": sorted(targets) if isinstance(targets, list) else [targets],
              "learning_rate": args.get("learning_rate"),
              "epochs": int(args["num_train_epochs"]) if args.get("num_train_epochs") else None,
              "batch_size": per_device * accumulation if per_device else None,
              "seed": training.seed, "engine": "trainer",
              # TRL's SFTConfig(assistant_only_loss=True) put the loss on the assistant turns: probed the same way.
              "loss_on": args.get("loss_on") or ("assistant" if args.get("assistant_only_loss") else None)}
    return LoraTrainingConfig(**{k: v for k, v in values.items() if v is not None})


def _write_manifest(training: ExternalTraining, adapter_config: dict, base_sha: str) -> None:
    """lethe_manifest.json in the adapter folder (before its digest is taken): the dataset version and the
    recipe a remedy needs. One already there for the same version is kept (registering again changes nothing)."""
    from unlearning.sharded import MANIFEST

    path = Path(training.adapter_dir) / MANIFEST
    if path.is_file():
        manifest = json.loads(path.read_text())
        if manifest.get("dataset_version") != training.dataset_version:
            raise InvalidArgumentError(f"{path} says this adapter was trained on {manifest.get('dataset_version')!r}, "
                                       f"not {training.dataset_version!r}")
        return
    config = _training_config(adapter_config, training)
    manifest = {"dataset_version": training.dataset_version, "origin": f"external:{training.trainer}",
                "base_model_sha256": base_sha, "training_config": config.model_dump(mode="json"),
                "config_sha256": config.config_sha256(), "trainer_arguments": training.config}
    path.write_text(json.dumps(manifest, sort_keys=True, indent=1, default=str))


def _shards_of(graph: GraphStore, version: str) -> list[str]:
    rows = graph.read("MATCH (sh:Shard)-[:PART_OF]->(:DatasetVersion {id: $v}) RETURN sh.id AS id ORDER BY id",
                      v=version)
    if not rows:
        raise NotFoundError(f"dataset version {version!r} is not in the graph; `lethe datasets` lists them")
    return [r["id"] for r in rows]


def _run(training: ExternalTraining, adapter_config: dict, adapter_sha: str, base_sha: str) -> FineTuneRun:
    recorded = {"adapter_config": adapter_config, "training": training.config, "trainer": training.trainer}
    config_sha = hashlib.sha256(json.dumps(recorded, sort_keys=True, default=str).encode()).hexdigest()
    run_id = "run-" + hashlib.sha256(f"{training.dataset_version}:{adapter_sha}:{base_sha}".encode()).hexdigest()[:16]
    now = datetime.now(timezone.utc)
    return FineTuneRun(id=run_id, base_model=str(Path(training.base_model).resolve()), base_model_sha256=base_sha,
                       config_sha256=config_sha, seed=training.seed, code_version=f"external:{training.trainer}",
                       started_at=training.started_at or now, ended_at=training.ended_at or now)


def register_adapter(graph: GraphStore, training: ExternalTraining) -> RegisteredAdapter:
    """Record the run, the adapter and (when given) its deployment, in one transaction; idempotent."""
    from unlearning.adapters import read_adapter_config  # torch: imported when used
    from unlearning.base_model import model_dir_sha256

    if not Path(training.base_model).is_dir():
        raise InvalidArgumentError(f"{training.base_model}: the base model must be a local model directory "
                                   "(Lethe records its digest, and a remedy retrains on it)")
    shards = _shards_of(graph, training.dataset_version)
    adapter_config = read_adapter_config(training.adapter_dir)  # a plain LoRA folder, as remedies need
    base_sha = model_dir_sha256(training.base_model)
    _write_manifest(training, adapter_config, base_sha)
    adapter_sha = model_dir_sha256(training.adapter_dir)
    run = _run(training, adapter_config, adapter_sha, base_sha)
    adapter = adapter_for(adapter_sha, training.adapter_dir)
    with graph.transaction() as tx:
        writer = LineageWriter(graph, tx=tx)
        writer.nodes([run])
        writer.nodes([adapter])
        writer.edges("TRAINED_ON", [Edge(source=run.id, target=shard) for shard in shards])
        writer.edges("PRODUCED", [Edge(source=run.id, target=adapter.id)])
        if training.deployment:
            writer.nodes([Deployment(id=training.deployment, endpoint=training.endpoint or training.deployment,
                                     form=training.form)])
            writer.edges("DEPLOYED_TO", [Edge(source=adapter.id, target=training.deployment)])
    return RegisteredAdapter(run.id, adapter.id, adapter_sha, len(shards))
