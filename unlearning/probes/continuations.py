"""Many continuations of one shared prefix, scored with the prefix run once (its key/value cache reused).

Exposure ranks hundreds of look-alike values that differ only after a long shared prefix (the ticket
up to its secret). Scoring each as a full sequence runs the prefix through the model once per
candidate; here it runs once per pass (with the adapter, and with it disabled), and each batch of
candidates runs only its own tokens on a copy of the prefix's cache. The log-probabilities are those
of the full sequences (a test checks them against `score_token_sequences`).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence

import numpy as np
import torch

from unlearning.errors import ProbeInputError
from unlearning.probes.scoring import adapter_merged, adapter_off, default_vocab_chunk_elements
from unlearning.runtime import autocast

__all__ = ["score_continuations"]


def _cache_argument(model) -> str:
    """The forward argument that takes a key/value cache: `cache` (transformers >= 5.2x) or `past_key_values`."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


@torch.no_grad()
def _pass(model, prefix: list[int], tails: Sequence[list[int]], pad_id: int, batch_size: int,
          device: torch.device) -> list[np.ndarray]:
    """Log-prob of every tail token given the prefix and the tail before it, per tail (one pass)."""
    argument = _cache_argument(model)
    with autocast(device):
        out = model(input_ids=torch.tensor([prefix], device=device), use_cache=True)
    last = torch.log_softmax(out.logits[0, -1].float(), dim=-1)  # predicts each tail's first token
    cache = out.cache if hasattr(out, "cache") else out.past_key_values
    # Rows per batch: at most batch_size, and the batch's float32 logits within the vocabulary-slice budget.
    width = max(len(t) for t in tails)
    rows = max(1, min(batch_size, default_vocab_chunk_elements(device) // (width * last.numel())))
    results: list[np.ndarray] = []
    for start in range(0, len(tails), rows):
        batch = tails[start:start + rows]
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), len(prefix) + width), dtype=torch.long)
        mask[:, :len(prefix)] = 1
        for row, tail in enumerate(batch):
            ids[row, :len(tail)] = torch.tensor(tail, dtype=torch.long)
            mask[row, len(prefix):len(prefix) + len(tail)] = 1
        ids, mask = ids.to(device), mask.to(device)
        shared = copy.deepcopy(cache)
        shared.batch_repeat_interleave(len(batch))
        with autocast(device):
            logits = model(input_ids=ids, attention_mask=mask, use_cache=True, **{argument: shared}).logits
        # Position t predicts tail token t + 1; the prefix's last position predicts token 0.
        following = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        logp = torch.cat([last[ids[:, 0]].unsqueeze(1), following], dim=1).cpu().numpy()
        results.extend(logp[row, :len(tail)] for row, tail in enumerate(batch))
        del shared, logits, following
    return results


def score_continuations(model, prefix: list[int], tails: Sequence[list[int]], *, pad_id: int, batch_size: int = 128,
                        reference: bool = True) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """Per tail, the log-prob of each of its tokens after `prefix` (+ the same with the adapter disabled).

    `prefix` must hold at least one token and every tail at least one; prefix plus tail must fit the
    model's context (callers score longer texts with `score_token_sequences`, which windows them).
    """
    if not prefix:
        raise ProbeInputError("a shared prefix needs at least one token (a BOS token will do)")
    if not tails or any(not t for t in tails):
        raise ProbeInputError("every continuation needs at least one token")
    if batch_size < 1:
        raise ProbeInputError(f"batch_size must be >= 1, got {batch_size}")
    if pad_id is None:
        raise ProbeInputError("the tokenizer has neither a pad nor an EOS token to pad batches with")
    device = next(model.parameters()).device
    with adapter_merged(model):
        scored = _pass(model, prefix, tails, pad_id, batch_size, device)
    ref = None
    if reference and hasattr(model, "disable_adapter"):
        with adapter_off(model):
            ref = _pass(model, prefix, tails, pad_id, batch_size, device)
    return scored, ref
