"""`retrain`, the exact remedy: retrain only the shards that held scope records, reuse the rest, re-merge.

A shard adapter is a function of (base model, training config, its texts). The shards the caller passes
are the dataset version's shards with the scope records already removed; a shard that held none of
them has the same texts as before, so its adapter is copied from the old run and reused byte for byte
(the training key proves the inputs match), and only the touched shards are trained again, with the
recorded config and seed. With one shard this is a full retrain.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from pydantic import Field

from unlearning.base_model import model_dir_sha256
from unlearning.errors import RemedyError
from unlearning.methods.base import MethodConfig, MethodKind, RemedyInput, RemedyOutcome, StepCallback
from unlearning.methods.registry import MethodSpec, register_method
from unlearning.runtime import atomic_directory
from unlearning.sharded import train_sharded_adapters
from unlearning.training import LoraTrainingConfig

__all__ = ["RetrainConfig", "SPEC", "run"]


class RetrainConfig(MethodConfig):
    """Exact retraining; the training config itself is the one recorded with the original run."""

    reuse_unaffected_shards: bool = Field(True, description="reuse the adapters of shards without scope records "
                                                            "(False retrains every shard: a full retrain)")


def run(config: RetrainConfig, remedy: RemedyInput, on_step: StepCallback | None = None) -> RemedyOutcome:
    """Retrain the touched shards into `remedy.out_dir` (a new run folder) and merge the served adapter."""
    if remedy.shards is None or remedy.training_config is None:
        raise RemedyError("retrain needs the dataset version's shards (scope removed) and the run's recorded "
                          "training config")
    if not remedy.shards:
        raise RemedyError("retrain has no shards to train: the scope covers every training record")
    if Path(remedy.out_dir).exists():
        raise RemedyError(f"{remedy.out_dir} already exists; a remedy never overwrites an adapter")
    # A config recorded before the engine was (2026-12-06) was trained by the loop: retrain it the same way.
    training = LoraTrainingConfig(**{"engine": "loop", **remedy.training_config})
    started = time.perf_counter()
    out_dir = Path(remedy.out_dir)
    shard_texts = {shard_id: list(records.values()) for shard_id, records in remedy.shards.items()}
    with atomic_directory(out_dir) as staging:
        if config.reuse_unaffected_shards and remedy.run_dir is not None:
            for shard_id in shard_texts:
                old = Path(remedy.run_dir) / "shards" / shard_id[:16]
                if old.is_dir():  # same shard id = same records; the training key is checked on reuse
                    shutil.copytree(old, staging / "shards" / shard_id[:16])
        done = 0

        def progress(_step: int, loss: float) -> None:
            nonlocal done
            done += 1
            if on_step is not None:
                on_step(done, 0, loss)

        trained = train_sharded_adapters(remedy.base_model_dir, shard_texts, training, staging,
                                         dict(remedy.manifest or {}), on_step=progress, turns=remedy.turns)
    served = out_dir / "served"
    retrained = [s for s in trained.shards if not s.reused]
    return RemedyOutcome(
        method="retrain", kind=MethodKind.EXACT, config=config.model_dump(mode="json"), adapter_dir=served,
        adapter_sha256=model_dir_sha256(served), steps=sum(s.steps for s in retrained),
        losses=[s.final_loss for s in retrained], seconds=time.perf_counter() - started,
        details={"shards_retrained": [s.shard_id for s in retrained],
                 "shards_reused": [s.shard_id for s in trained.shards if s.reused],
                 "shard_adapters": {s.shard_id: s.sha256 for s in trained.shards},
                 "run_dir": str(out_dir), "training_config_sha256": training.config_sha256(),
                 "seed": training.seed})


SPEC = register_method(MethodSpec(name="retrain", kind=MethodKind.EXACT, config_class=RetrainConfig, run=run))
