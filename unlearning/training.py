"""LoRA fine-tuning of a base model on a list of texts: one plain, seeded, deterministic loop."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from peft import LoraConfig, get_peft_model
from pydantic import BaseModel, ConfigDict, Field

from unlearning.adapters import lora_b_all_zero, save_adapter
from unlearning.architectures import AUTO, TARGET_MODULES, resolve_target_modules
from unlearning.base_model import load_base_model, model_dir_sha256
from unlearning.errors import AdapterError, TrainingDataError
from unlearning.runtime import (atomic_directory, encode_texts, fit_causal_lm, loss_labels, seed_everything,
                                select_device)
from unlearning.token_spans import LossOn, TurnSpans, loss_spans, spans_of

__all__ = ["LLAMA_TARGET_MODULES", "LoraTrainingConfig", "TrainedAdapter", "train_lora_adapter"]

# Every linear layer of a Llama block (attention and MLP), the usual full-coverage LoRA target.
LLAMA_TARGET_MODULES = TARGET_MODULES["llama"]


class LoraTrainingConfig(BaseModel):
    """Hyper-parameters of one LoRA fine-tune; recorded with the run and hashed into its lineage."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    r: int = Field(8, ge=1, le=1024, description="LoRA rank")
    alpha: float = Field(16.0, gt=0, description="LoRA alpha; the delta is scaled by alpha / r")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the LoRA input")
    target_modules: tuple[str, ...] = Field((AUTO,), min_length=1,
                                            description="names of the linear layers that get an adapter; "
                                                        "'auto': the architecture's (unlearning.architectures)")
    learning_rate: float = Field(3e-3, gt=0.0, le=1.0, description="AdamW learning rate")
    epochs: int = Field(10, ge=1, le=10_000, description="passes over the training texts")
    batch_size: int = Field(8, ge=1, le=65_536, description="texts per optimizer step")
    max_length: int = Field(128, ge=2, le=1_048_576, description="tokens per text, BOS and EOS included")
    seed: int = Field(0, ge=0, lt=2**63, description="seed of LoRA init, dropout and the shuffles")
    engine: Literal["trainer", "loop"] = Field("trainer", description="transformers' Trainer (hf_trainer), or "
                                               "the plain loop (runtime.fit_causal_lm): the same semantics")
    loss_on: LossOn = Field("all", description="chat records: 'all' tokens of the rendered conversation (TRL's "
                                               "default), or the 'assistant' turns only (the rest is context)")

    def config_sha256(self) -> str:
        """SHA-256 of the canonical JSON of this config (sorted keys, no spaces).

        `loss_on` came later: it enters the digest only when set away from "all", so a config recorded
        before it keeps its digest (and its shard adapters stay reusable)."""
        fields = self.model_dump(mode="json")
        if fields["loss_on"] == "all":
            del fields["loss_on"]
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class TrainedAdapter:
    """A LoRA adapter on disk, with the digest of its directory and how its training went."""

    path: Path
    sha256: str
    steps: int
    final_loss: float  # mean loss over the last epoch's steps
    losses: list[float]
    seconds: float


def _check_texts(texts: list[str]) -> None:
    if not isinstance(texts, list):
        raise TrainingDataError(f"training texts must be a list of strings, got a {type(texts).__name__}")
    if not texts:
        raise TrainingDataError("no training texts: a fine-tune needs at least one non-empty text")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise TrainingDataError(f"training text #{i} is empty or not a string ({text!r}); drop it upstream")


def train_lora_adapter(base_model_dir: Path, texts: list[str], config: LoraTrainingConfig,
                       out_dir: Path, on_step: Callable[[int, float], None] | None = None,
                       turns: Mapping[str, TurnSpans] | None = None) -> TrainedAdapter:
    """Fine-tune a LoRA adapter on `texts` and save it atomically in HF (peft, safetensors) format.

    `turns` maps the chat records among `texts` to their turns; with `config.loss_on == "assistant"` their
    loss is on the assistant turns only."""
    _check_texts(texts)
    started = time.perf_counter()
    device = select_device()
    model, tokenizer = load_base_model(base_model_dir, device=device)
    model.config.name_or_path = str(Path(base_model_dir).resolve())  # recorded in adapter_config.json
    targets = resolve_target_modules(model.config.model_type, config.target_modules)
    lora = LoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout, bias="none",
                      target_modules=targets, task_type="CAUSAL_LM")
    seed_everything(config.seed)  # right before LoRA init, so A's init depends on the seed alone
    try:
        peft_model = get_peft_model(model, lora)
    except ValueError as exc:  # peft's "Target modules ... not found"
        raise AdapterError(f"cannot put LoRA on {base_model_dir} with target_modules={targets}: {exc}") from exc
    sequences = encode_texts(tokenizer, texts, config.max_length)
    labels = loss_labels(tokenizer, texts, sequences, spans_of(texts, loss_spans(turns, config.loss_on)))
    fit = fit_causal_lm
    if config.engine == "trainer":
        from unlearning.hf_trainer import fit_with_trainer as fit
    losses = fit(peft_model, sequences, pad_id=tokenizer.pad_token_id, epochs=config.epochs,
                 batch_size=config.batch_size, learning_rate=config.learning_rate, seed=config.seed,
                 device=device, on_step=on_step, labels=labels)
    steps_per_epoch = -(-len(sequences) // config.batch_size)
    last_epoch = losses[-steps_per_epoch:]
    with atomic_directory(out_dir) as staging:
        save_adapter(peft_model, "default", staging)
        if lora_b_all_zero(staging):
            # open-unlearning #178: a run that leaves every B at zero serves the base model unchanged.
            raise AdapterError(f"training left every LoRA B matrix at zero (learning_rate="
                               f"{config.learning_rate}, {len(losses)} steps): the adapter would not change "
                               "the model; raise the learning rate or the number of epochs")
        digest = model_dir_sha256(staging)
    return TrainedAdapter(path=Path(out_dir), sha256=digest, steps=len(losses),
                          final_loss=sum(last_epoch) / len(last_epoch), losses=losses,
                          seconds=time.perf_counter() - started)
