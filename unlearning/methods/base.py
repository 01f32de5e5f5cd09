"""What every remedy method is: a pydantic config, a kind (exact or approximate), and one function.

A method takes a `RemedyInput` (the base model, the served adapter, the forget and retain texts, and
for exact retraining the shard layout) and writes a new adapter directory; it returns a `RemedyOutcome`
that records what it did (steps, losses, time). Nothing here touches the graph or decides whether the
remedy worked: probing and escalation live in `unlearning.methods.remedy`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from pydantic import BaseModel, ConfigDict

__all__ = ["MethodConfig", "MethodKind", "RemedyInput", "RemedyOutcome", "StepCallback"]

StepCallback = Callable[[int, int, float], None]  # (step, total steps, loss)


class MethodKind(str, Enum):
    """Exact methods give the adapter that training without the records would have; approximate ones do not."""

    EXACT = "exact"
    APPROXIMATE = "approximate"


class MethodConfig(BaseModel):
    """Base of every method's config: frozen, no unknown fields, every value range-checked."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True)
class RemedyInput:
    """Everything a method may use. Texts are in memory only; the output goes to `out_dir` (must not exist)."""

    base_model_dir: Path
    adapter_dir: Path  # the served adapter being remedied
    forget: Mapping[str, str]  # record id -> text of the scope records
    retain: Mapping[str, str]  # record id -> text of records the adapter keeps (for retain terms)
    out_dir: Path
    # For exact retraining: shard id -> {record id: text} AFTER removing the scope, and the old run folder.
    shards: Mapping[str, Mapping[str, str]] | None = None
    run_dir: Path | None = None
    training_config: Mapping | None = None  # the recorded LoraTrainingConfig of the run (JSON form)
    manifest: Mapping | None = None  # lineage facts written beside the new served adapter
    # The chat records' turns by text ((start, end, role) of each message): a retrain keeps the run's loss_on.
    turns: Mapping[str, Sequence[tuple[int, int, str]]] | None = None


@dataclass(frozen=True)
class RemedyOutcome:
    """What a method did: the new adapter, its digest, and the record of the work."""

    method: str
    kind: MethodKind
    config: dict
    adapter_dir: Path
    adapter_sha256: str
    steps: int
    losses: list[float]
    seconds: float
    details: dict = field(default_factory=dict)  # method-specific facts (e.g. shards retrained / reused)
