"""Where and how torch code runs: device, dtype, seeds, token batches, the training loop, atomic writes."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.utils.deterministic

from unlearning.token_spans import Spans, text_token_masks

__all__ = ["TokenBatch", "atomic_directory", "autocast", "compute_dtype", "encode_texts", "fit_causal_lm",
           "loss_labels", "seed_everything", "select_device", "token_batches"]

# peft reads transformers' deprecated `is_gradient_checkpointing` each time it wraps a model; the
# FutureWarning is theirs to fix and says nothing about Lethe's run, so it is not printed.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def select_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def compute_dtype(device: torch.device) -> torch.dtype:
    """bf16 on a CUDA device that supports it, else float32."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision where `compute_dtype` says so; a no-op context in float32 (the CPU path)."""
    dtype = compute_dtype(device)
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype != torch.float32)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch, and ask torch for deterministic kernels where they exist."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    # warn_only: an op without a deterministic kernel warns instead of failing the run.
    torch.use_deterministic_algorithms(True, warn_only=True)
    # That mode also NaN-fills every new tensor, which made CPU LoRA steps ~15x slower; results don't need it.
    torch.utils.deterministic.fill_uninitialized_memory = False


@dataclass(frozen=True)
class TokenBatch:
    """Right-padded token ids with their attention mask and labels (-100 on padding)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    def to(self, device: torch.device) -> TokenBatch:
        """The same batch on `device`."""
        return TokenBatch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device))


def encode_texts(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each text: BOS, the text, EOS, cut to `max_length` (the way every model here sees text)."""
    # verbose=False: the "longer than model_max_length" warning is moot, sequences are cut just below.
    encoded = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    # Some tokenizers (Qwen's) have no BOS; their first token is then context only.
    bos = [] if tokenizer.bos_token_id is None else [tokenizer.bos_token_id]
    return [(bos + ids + [tokenizer.eos_token_id])[:max_length] for ids in encoded]


def loss_labels(tokenizer, texts: Sequence[str], sequences: Sequence[list[int]],
                spans: Sequence[Spans | None]) -> list[list[int]] | None:
    """Labels of `encode_texts`'s sequences with the loss on each text's spans only (-100 elsewhere; the EOS
    is learned when the text's last token is in a span); None when no text has spans (the loss on all)."""
    masks = text_token_masks(tokenizer, texts, spans)
    if all(mask is None for mask in masks):
        return None
    first = 0 if tokenizer.bos_token_id is None else 1  # where the text's tokens start in the sequence
    out = []
    for seq, mask in zip(sequences, masks):
        if mask is None:
            out.append(list(seq))
            continue
        keep = [False] * first + mask.tolist() + [bool(mask[-1])]  # BOS, the text, EOS (then cut like seq)
        out.append([token if kept else -100 for token, kept in zip(seq, keep)])
    return out


def token_batches(sequences: Sequence[list[int]], batch_size: int, pad_id: int,
                  order: Sequence[int] | None = None,
                  labels: Sequence[list[int]] | None = None) -> Iterator[TokenBatch]:
    """Padded batches of `sequences`, taken in `order` (default: as given); `labels` (as long as each
    sequence, -100 where no loss) default to the ids, padding masked out."""
    order = list(range(len(sequences)) if order is None else order)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        width = max(len(sequences[i]) for i in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        targets = torch.full((len(rows), width), -100, dtype=torch.long)
        for row, i in enumerate(rows):
            seq = sequences[i]
            ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, :len(seq)] = 1
            targets[row, :len(seq)] = torch.tensor(seq if labels is None else labels[i], dtype=torch.long)
        yield TokenBatch(ids, mask, targets)


def fit_causal_lm(model: torch.nn.Module, sequences: Sequence[list[int]], *, pad_id: int, epochs: int,
                  batch_size: int, learning_rate: float, seed: int, device: torch.device,
                  max_steps: int | None = None, on_step: Callable[[int, float], None] | None = None,
                  labels: Sequence[list[int]] | None = None) -> list[float]:
    """Plain deterministic next-token training (AdamW, seeded shuffles); returns the loss of every step.
    `labels` (see `loss_labels`) put the loss on part of each sequence; default, all of it."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    shuffle = torch.Generator().manual_seed(seed)  # its own generator: the order does not depend on model init
    model.train()
    losses: list[float] = []
    for _ in range(epochs):
        order = torch.randperm(len(sequences), generator=shuffle).tolist()
        for batch in token_batches(sequences, batch_size, pad_id, order, labels):
            batch = batch.to(device)
            with autocast(device):
                out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels)
            out.loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(out.loss.detach()))
            if on_step is not None:
                on_step(len(losses), losses[-1])
            if max_steps is not None and len(losses) >= max_steps:
                model.eval()
                return losses
    model.eval()
    return losses


@contextlib.contextmanager
def atomic_directory(out_dir: Path) -> Iterator[Path]:
    """Yield a fresh temp directory beside `out_dir` that replaces it only if the block succeeds."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Beside the target, so the final rename stays on one filesystem; a crash leaves only a dot-dir.
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".tmp"))
    try:
        yield staging
        if out_dir.exists():
            # Two renames: the old directory is never half-overwritten, only swapped out whole.
            old = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".old"))
            os.replace(out_dir, old / "dir")
            os.replace(staging, out_dir)
            shutil.rmtree(old)
        else:
            os.replace(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
