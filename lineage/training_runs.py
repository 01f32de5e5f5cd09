"""The lineage of a training: runs TRAINED_ON shards, PRODUCED shard adapters, MERGED_INTO the served one.

One writer for the pipeline's fine-tune and for a remedy's retrain or unlearning, so the ids of runs and
adapters follow one formula wherever an adapter comes from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lineage.models import Adapter, Edge, FineTuneRun
from lineage.store.writers import LineageWriter

__all__ = ["CODE_VERSION", "TrainingRun", "adapter_for", "shard_run", "shard_run_id", "write_training_lineage"]

CODE_VERSION = "lethe-0.1.0"  # recorded on every run and in every attestation


@dataclass(frozen=True)
class TrainingRun:
    """One run and what it made: the shard it trained on (None for a whole-adapter remedy) and its adapter."""

    run: FineTuneRun
    shard_id: str | None
    adapter: Adapter


def adapter_for(sha256: str, path: Path) -> Adapter:
    """The graph node of adapter weights: its id is the first 16 hex digits of their digest."""
    return Adapter(id=f"adapter-{sha256[:16]}", sha256=sha256, uri=Path(path).resolve().as_uri())


def shard_run_id(shard_id: str, config_sha256: str, base_model_sha256: str) -> str:
    """The id of the run that trains one shard: the same shard, config and base model give the same id."""
    return "run-" + hashlib.sha256(f"{shard_id}:{config_sha256}:{base_model_sha256}".encode()).hexdigest()[:16]


def shard_run(shard_id: str, *, base_model: Path | str, base_model_sha256: str, config_sha256: str, seed: int,
              started_at: datetime, ended_at: datetime) -> FineTuneRun:
    """The FineTuneRun node of one shard's training."""
    return FineTuneRun(id=shard_run_id(shard_id, config_sha256, base_model_sha256), base_model=str(base_model),
                       base_model_sha256=base_model_sha256, config_sha256=config_sha256, seed=seed,
                       code_version=CODE_VERSION, started_at=started_at, ended_at=ended_at)


def write_training_lineage(writer: LineageWriter, runs: Sequence[TrainingRun], served: Adapter,
                           shard_adapters: Sequence[Adapter] = ()) -> None:
    """Write the runs, the adapters and their edges (in the writer's transaction, when it has one)."""
    writer.nodes([r.run for r in runs])
    writer.nodes([*shard_adapters, served])
    writer.edges("TRAINED_ON", [Edge(source=r.run.id, target=r.shard_id) for r in runs if r.shard_id])
    writer.edges("PRODUCED", [Edge(source=r.run.id, target=r.adapter.id) for r in runs])
    writer.edges("MERGED_INTO", [Edge(source=a.id, target=served.id) for a in shard_adapters])
