"""SISA-style training: one LoRA adapter per shard, merged exactly into one served adapter.

A shard's adapter is keyed by what it was trained from (base model, config, its records' text
hashes); an adapter already on disk under the same key is reused byte for byte, so retraining
after an erasure touches only the shards whose records changed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from unlearning.adapters import merge_shard_adapters
from unlearning.base_model import check_model_dir, model_dir_sha256
from unlearning.runtime import atomic_directory
from unlearning.token_spans import Spans, TurnSpans, loss_spans
from unlearning.training import LoraTrainingConfig, train_lora_adapter

SHARD_MARKER = "lethe_shard.json"
MANIFEST = "lethe_manifest.json"


@dataclass(frozen=True)
class ShardTraining:
    """The adapter of one shard and how it was obtained."""

    shard_id: str
    path: Path
    sha256: str
    training_key: str
    reused: bool
    steps: int
    final_loss: float
    seconds: float


@dataclass(frozen=True)
class ShardedTraining:
    """Every shard adapter and the served adapter merged from them."""

    shards: tuple[ShardTraining, ...]
    served_path: Path
    served_sha256: str
    base_model_sha256: str
    config_sha256: str


def training_key(base_model_sha256: str, config_sha256: str, texts: list[str],
                 spans: Mapping[str, Spans] | None = None) -> str:
    """What a shard adapter is a function of: base model, config and its texts (order-free), with the spans
    the loss covered where it did not cover a whole text."""
    spans = spans or {}
    text_hashes = sorted(hashlib.sha256(t.encode("utf-8")).hexdigest()
                         + (json.dumps(spans[t]) if t in spans else "") for t in texts)
    return hashlib.sha256(json.dumps([base_model_sha256, config_sha256, text_hashes]).encode()).hexdigest()


def _reusable(shard_dir: Path, key: str) -> dict | None:
    marker = shard_dir / SHARD_MARKER
    if not marker.is_file():
        return None
    recorded = json.loads(marker.read_text())
    return recorded if recorded.get("training_key") == key else None


def train_shard(base_model_dir: Path, shard_id: str, texts: list[str], config: LoraTrainingConfig,
                shard_dir: Path, base_model_sha256: str, on_step: Callable[[int, float], None] | None = None,
                turns: Mapping[str, TurnSpans] | None = None) -> ShardTraining:
    """Train one shard's adapter, or reuse the one on disk trained from exactly the same inputs."""
    key = training_key(base_model_sha256, config.config_sha256(), texts, loss_spans(turns, config.loss_on))
    recorded = _reusable(shard_dir, key)
    if recorded is not None:
        return ShardTraining(shard_id, shard_dir, model_dir_sha256(shard_dir), key, True,
                             recorded["steps"], recorded["final_loss"], 0.0)
    trained = train_lora_adapter(base_model_dir, texts, config, shard_dir, on_step=on_step, turns=turns)
    (shard_dir / SHARD_MARKER).write_text(json.dumps(
        {"shard_id": shard_id, "training_key": key, "steps": trained.steps, "final_loss": trained.final_loss,
         "records": len(texts)}, sort_keys=True))
    return ShardTraining(shard_id, shard_dir, model_dir_sha256(shard_dir), key, False, trained.steps,
                         trained.final_loss, trained.seconds)


def train_sharded_adapters(base_model_dir: Path, shard_texts: dict[str, list[str]],
                           config: LoraTrainingConfig, out_dir: Path, manifest: dict,
                           on_step: Callable[[int, float], None] | None = None,
                           turns: Mapping[str, TurnSpans] | None = None) -> ShardedTraining:
    """Train (or reuse) each shard's adapter under out_dir/shards, merge them into out_dir/served; `turns`:
    the chat records' turns by text (`train_lora_adapter`)."""
    out_dir = Path(out_dir)
    check_model_dir(base_model_dir)
    base_sha = model_dir_sha256(base_model_dir)
    shards = tuple(
        train_shard(base_model_dir, shard_id, texts, config, out_dir / "shards" / shard_id[:16], base_sha, on_step,
                    turns)
        for shard_id, texts in sorted(shard_texts.items())
    )
    scratch = out_dir / ".served-merge"
    merge_shard_adapters(base_model_dir, [s.path for s in shards], scratch)
    served = out_dir / "served"
    with atomic_directory(served) as staging:
        for file in scratch.iterdir():
            shutil.copy2(file, staging / file.name)
        # The manifest is part of the served adapter's digest: files and lineage are bound together.
        (staging / MANIFEST).write_text(json.dumps(
            {**manifest, "shard_ids": [s.shard_id for s in shards], "base_model_sha256": base_sha,
             "config_sha256": config.config_sha256(), "training_config": config.model_dump(mode="json"),
             "shard_adapters": {s.shard_id: s.sha256 for s in shards}}, sort_keys=True, indent=1))
    shutil.rmtree(scratch)
    return ShardedTraining(shards, served, model_dir_sha256(served), base_sha, config.config_sha256())
