"""The loop every approximate method shares: fine-tune the served adapter itself, a fixed number of steps.

A method only says how a batch's terms become a loss (`Objective`); loading, seeding, batching, the
reference likelihoods, the checks and the atomic write of the new adapter are done once, here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import PeftModel
from pydantic import Field

from unlearning.adapters import ADAPTER_FILES, save_adapter
from unlearning.base_model import load_base_model
from unlearning.errors import RemedyError
from unlearning.methods.base import MethodConfig, MethodKind, RemedyInput, RemedyOutcome, StepCallback
from unlearning.methods.changed import check_adapter_changed
from unlearning.methods.losses import sequence_stats
from unlearning.runtime import (atomic_directory, autocast, encode_texts, seed_everything, select_device,
                                token_batches)
from unlearning.sharded import MANIFEST

__all__ = ["ApproximateConfig", "BatchTerms", "Objective", "run_approximate"]


class ApproximateConfig(MethodConfig):
    """What every approximate method needs: how long, how fast, how wide, and the seed."""

    # Defaults measured on the demo's tiny model (see the tests): 20 steps at 3e-4 lift a memorized text's
    # NLL above the base model's; at 1e-3 and above plain ascent wrecks every text's NLL (> 14 nats).
    steps: int = Field(20, ge=1, le=100_000, description="optimizer steps (AdamW) on the served adapter")
    learning_rate: float = Field(3e-4, gt=0.0, le=1.0, description="AdamW learning rate")
    batch_size: int = Field(8, ge=1, le=4096, description="forget (and retain) texts per step")
    max_length: int = Field(128, ge=2, le=1_048_576, description="tokens per text, BOS and EOS included")
    seed: int = Field(0, ge=0, lt=2**63, description="seed of the batch order and of any dropout")


@dataclass(frozen=True)
class BatchTerms:
    """What a step knows about its batches; each tensor has one value per sequence."""

    forget_nll: torch.Tensor  # mean token NLL under the adapter being trained
    forget_logp: torch.Tensor  # summed token log-likelihood under the adapter being trained
    reference_logp: torch.Tensor  # the same under the served adapter before unlearning (fixed)
    retain_nll: torch.Tensor | None  # None unless the method asked for a retain term


Objective = Callable[[BatchTerms], torch.Tensor]


def _texts(records: Mapping[str, str], what: str) -> list[str]:
    # Sorted by record id: the result must not depend on the order the caller built the mapping in.
    for record_id, text in records.items():
        if not isinstance(text, str) or not text.strip():
            raise RemedyError(f"{what} record {record_id!r} has no text; drop it from the {what} set")
    return [records[record_id] for record_id in sorted(records)]


def _check_input(remedy: RemedyInput, uses_retain: bool) -> None:
    adapter_dir, out_dir = Path(remedy.adapter_dir).resolve(), Path(remedy.out_dir).resolve()
    if not remedy.forget:
        raise RemedyError("the forget set is empty: there is nothing to unlearn")
    if uses_retain and not remedy.retain:
        raise RemedyError("this method has a retain term but the retain set is empty; pass retained records, "
                          "or set retain_weight=0")
    if not all((adapter_dir / name).is_file() for name in ADAPTER_FILES):
        raise RemedyError(f"{adapter_dir} is not a LoRA adapter directory "
                          f"(needs {' and '.join(ADAPTER_FILES)})")
    if out_dir.exists():
        raise RemedyError(f"{out_dir} already exists; a remedy never overwrites an adapter, "
                          "choose a new folder")
    if out_dir == adapter_dir or adapter_dir in out_dir.parents:
        raise RemedyError(f"{out_dir} is inside the served adapter {adapter_dir}, which must stay untouched")


def _cycle(count: int, batch_size: int, generator: torch.Generator) -> Iterator[list[int]]:
    """Index batches forever: a fresh seeded permutation per pass, so every text is used equally often."""
    while True:
        order = torch.randperm(count, generator=generator).tolist()
        for start in range(0, count, batch_size):
            yield order[start:start + batch_size]


def _batch(sequences: list[list[int]], indices: list[int], pad_id: int, device: torch.device):
    return next(token_batches(sequences, len(indices), pad_id, indices)).to(device)


def _forward(model, batch, device: torch.device) -> torch.Tensor:
    with autocast(device):
        return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits


@torch.no_grad()
def _score(model, sequences: list[list[int]], pad_id: int, batch_size: int, device: torch.device):
    """Per sequence: (mean token NLL, summed log-likelihood), with the model as it is now, in eval mode."""
    model.eval()
    nlls, logps = [], []
    for start in range(0, len(sequences), batch_size):
        batch = _batch(sequences, list(range(start, min(start + batch_size, len(sequences)))), pad_id, device)
        nll, logp = sequence_stats(_forward(model, batch, device), batch.labels)
        nlls.append(nll)
        logps.append(logp)
    return torch.cat(nlls).cpu(), torch.cat(logps).cpu()


@dataclass(frozen=True)
class _Encoded:
    """What the steps train on: token ids, the forget set's reference likelihoods, the padding and device."""

    forget: list[list[int]]
    retain: list[list[int]]  # empty unless the method has a retain term
    reference_logp: torch.Tensor  # per forget sequence, under the served adapter before any step
    pad_id: int
    device: torch.device


def _load_trainable(remedy: RemedyInput, device: torch.device):
    """The served adapter on the frozen base, its LoRA weights trainable; the model, tokenizer and weights."""
    model, tokenizer = load_base_model(remedy.base_model_dir, device=device)
    try:  # trainable LoRA weights on a frozen base; the served adapter's files are only read
        peft_model = PeftModel.from_pretrained(model, str(remedy.adapter_dir), is_trainable=True)
    except (RuntimeError, ValueError, KeyError) as exc:  # shape mismatches, missing target modules
        raise RemedyError(f"the adapter at {remedy.adapter_dir} does not fit the base model at "
                          f"{remedy.base_model_dir}: {str(exc).splitlines()[0][:300]}") from exc
    params = [p for p in peft_model.parameters() if p.requires_grad]
    if not params:
        raise RemedyError(f"the adapter at {remedy.adapter_dir} has no trainable LoRA weights once loaded")
    return peft_model, tokenizer, params


def _terms(model, data: _Encoded, indices: list[int], retain_indices: list[int] | None) -> BatchTerms:
    """One step's forward passes: the forget batch and, when the method has a retain term, a retain batch."""
    batch = _batch(data.forget, indices, data.pad_id, data.device)
    forget_nll, forget_logp = sequence_stats(_forward(model, batch, data.device), batch.labels)
    retain_nll = None
    if retain_indices is not None:
        retain_batch = _batch(data.retain, retain_indices, data.pad_id, data.device)
        retain_nll, _ = sequence_stats(_forward(model, retain_batch, data.device), retain_batch.labels)
    return BatchTerms(forget_nll=forget_nll, forget_logp=forget_logp,
                      reference_logp=data.reference_logp[indices], retain_nll=retain_nll)


def _train(method: str, config: ApproximateConfig, model, params: list, data: _Encoded,
           objective: Objective, *, uses_retain: bool, on_step: StepCallback | None) -> list[float]:
    """`config.steps` AdamW steps on `objective`; the loss of each step."""
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    order = torch.Generator().manual_seed(config.seed)  # its own generator: batches depend on the seed alone
    forget_batches = _cycle(len(data.forget), config.batch_size, order)
    retain_batches = _cycle(len(data.retain), config.batch_size, order) if uses_retain else None
    losses: list[float] = []
    model.train()
    for step in range(1, config.steps + 1):
        indices = next(forget_batches)  # forget first, then retain: both draw from `order`
        retain_indices = next(retain_batches) if retain_batches is not None else None
        loss = objective(_terms(model, data, indices, retain_indices))
        if not torch.isfinite(loss):
            raise RemedyError(f"{method}: the loss became {float(loss)} at step {step}/{config.steps} "
                              f"(learning_rate={config.learning_rate}); lower the learning rate or the steps")
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step, config.steps, losses[-1])
    return losses


def _write_adapter(model, method: str, config_json: dict, remedy: RemedyInput) -> str:
    """Write the adapter (and its manifest) to `remedy.out_dir` atomically; its digest, checked changed."""
    with atomic_directory(remedy.out_dir) as staging:
        save_adapter(model, "default", staging)
        if remedy.manifest is not None:
            # Inside the adapter folder, so the digest binds the weights to their lineage and to this remedy.
            manifest = {**dict(remedy.manifest), "remedy_method": method, "remedy_config": config_json}
            (staging / MANIFEST).write_text(json.dumps(manifest, sort_keys=True, indent=1), encoding="utf-8")
        digest = check_adapter_changed(remedy.adapter_dir, staging)
    return digest


def run_approximate(method: str, config: ApproximateConfig, remedy: RemedyInput, objective: Objective, *,
                    uses_retain: bool, on_step: StepCallback | None = None) -> RemedyOutcome:
    """Train the served adapter for `config.steps` steps on `objective`; write it to `remedy.out_dir`."""
    _check_input(remedy, uses_retain)
    forget_texts = _texts(remedy.forget, "forget")
    retain_texts = _texts(remedy.retain, "retain") if uses_retain else []
    started = time.perf_counter()
    device = select_device()
    peft_model, tokenizer, params = _load_trainable(remedy, device)
    seed_everything(config.seed)
    pad = tokenizer.pad_token_id
    forget = encode_texts(tokenizer, forget_texts, config.max_length)
    retain = encode_texts(tokenizer, retain_texts, config.max_length) if retain_texts else []
    # π_ref of NPO is the served adapter as loaded: scored once, before any step.
    nll_before, reference = _score(peft_model, forget, pad, config.batch_size, device)
    data = _Encoded(forget=forget, retain=retain, reference_logp=reference.to(device), pad_id=pad,
                    device=device)
    losses = _train(method, config, peft_model, params, data, objective, uses_retain=uses_retain,
                    on_step=on_step)
    nll_after, _ = _score(peft_model, forget, pad, config.batch_size, device)
    config_json = config.model_dump(mode="json")
    digest = _write_adapter(peft_model, method, config_json, remedy)
    return RemedyOutcome(
        method=method, kind=MethodKind.APPROXIMATE, config=config_json, adapter_dir=Path(remedy.out_dir),
        adapter_sha256=digest, steps=len(losses), losses=losses, seconds=time.perf_counter() - started,
        details={"forget_records": len(forget), "retain_records": len(retain), "device": str(device),
                 "forget_nll_before": float(nll_before.mean()), "forget_nll_after": float(nll_after.mean())})
