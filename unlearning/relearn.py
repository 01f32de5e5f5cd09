"""The relearning check: a short, benign fine-tune of a remedied adapter on retained records only.

A few steps of ordinary fine-tuning on unrelated data can bring "unlearned" data back (relearning
attacks, e.g. arXiv 2406.13356): forgetting that only hid the records comes back, forgetting that removed
them does not. The forget records are never trained on here; the probes then score them again on the
relearned adapter, calibrated on the holdout scored under it.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from unlearning.errors import TrainingDataError

__all__ = ["RelearnConfig", "RelearnFacts", "relearn_adapter"]


class RelearnConfig(BaseModel):
    """How the relearning fine-tune runs: seeded, recorded in the remedy and its probe report."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: int = Field(20, ge=1, le=100_000, description="optimizer steps on retained records")
    learning_rate: float = Field(1e-3, gt=0.0, le=1.0)
    batch_size: int = Field(8, ge=1, le=4096)
    max_length: int = Field(128, ge=2, le=1_048_576)
    seed: int = Field(0, ge=0, lt=2**63)


class RelearnFacts(BaseModel):
    """What the relearning fine-tune did (no text): its config, the records it trained on, its cost."""

    model_config = ConfigDict(extra="forbid")

    config: RelearnConfig
    retain_records: int
    steps: int
    final_loss: float
    seconds: float


def relearn_adapter(base_model_dir: Path, adapter_dir: Path, retain_texts: list[str], config: RelearnConfig,
                    out_dir: Path) -> RelearnFacts:
    """Fine-tune the adapter at `adapter_dir` on `retain_texts` for `config.steps` steps; write it to `out_dir`."""
    from peft import PeftModel

    from unlearning.adapters import save_adapter
    from unlearning.base_model import load_base_model
    from unlearning.runtime import atomic_directory, encode_texts, fit_causal_lm, seed_everything, select_device

    if not retain_texts:
        raise TrainingDataError("the relearning check needs retained records to fine-tune on; there are none")
    started = time.perf_counter()
    device = select_device()
    model, tokenizer = load_base_model(base_model_dir, device=device)
    seed_everything(config.seed)
    peft_model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)
    sequences = encode_texts(tokenizer, retain_texts, config.max_length)
    epochs = math.ceil(config.steps * config.batch_size / len(sequences))
    losses = fit_causal_lm(peft_model, sequences, pad_id=tokenizer.pad_token_id, epochs=epochs,
                           batch_size=config.batch_size, learning_rate=config.learning_rate, seed=config.seed,
                           device=device, max_steps=config.steps)
    with atomic_directory(out_dir) as staging:
        save_adapter(peft_model, "default", staging)
    return RelearnFacts(config=config, retain_records=len(sequences), steps=len(losses), final_loss=losses[-1],
                        seconds=time.perf_counter() - started)
