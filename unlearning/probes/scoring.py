"""The scoring pass: one teacher-forced forward with the adapter and one without it, per batch of records.

Per record it gives `nll` and `ref_nll` (mean token NLL with the adapter, and with it disabled through
peft's `disable_adapter()`, so no second copy of the model), their ratio, Min-K%++, extraction strength
`es` and exact memorization `em` (definitions in DESIGN.md, "Evidence of memorization").

Vocabulary-wide statistics (log-softmax, its mean and variance for Min-K%++) are computed a slice of
positions at a time from the final hidden states, so memory is bounded by `vocab_chunk_elements`
whatever the sequence length or vocabulary size. Records longer than the model's context are scored in
overlapping windows (stride half the context); every token is scored once, with at least half a
context of history, and the record says how many windows it took.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from peft.tuners.tuners_utils import BaseTunerLayer

from unlearning.errors import ProbeInputError
from unlearning.runtime import autocast
from unlearning.token_spans import Spans, text_token_masks

__all__ = ["RecordScores", "Spans", "TokenScores", "adapter_merged", "adapter_off", "default_vocab_chunk_elements",
           "masked_tokens", "min_k_plus_plus", "record_scores", "score_token_sequences", "score_texts",
           "scored_target_masks", "text_token_ids"]

DEFAULT_VOCAB_CHUNK_ELEMENTS = 1 << 24  # 64 MiB of float32 logits per slice on the CPU
MAX_GPU_VOCAB_CHUNK_ELEMENTS = 1 << 28  # 1 GiB of float32 logits per slice on a GPU, if free memory allows


def default_vocab_chunk_elements(device: torch.device) -> int:
    """Logit elements per vocabulary slice: 16M on the CPU; on a GPU up to 256M, within 1/16 of free memory.

    A slice holds the logits and about three temporaries of the same size in float32 (16 bytes an
    element); on an H200 the larger slice made the 1.1B scoring benchmark ~10% faster (bench.probes_gpu).
    """
    if device.type != "cuda":
        return DEFAULT_VOCAB_CHUNK_ELEMENTS
    free, _total = torch.cuda.mem_get_info(device)
    return max(DEFAULT_VOCAB_CHUNK_ELEMENTS, min(MAX_GPU_VOCAB_CHUNK_ELEMENTS, free // (16 * 16)))


@dataclass(frozen=True)
class TokenScores:
    """Per scored target token of one sequence: log-probs with and without the adapter, Min-K%++ z, argmax hit."""

    logp: np.ndarray
    ref_logp: np.ndarray | None
    z: np.ndarray
    correct: np.ndarray
    windows: int


@dataclass(frozen=True)
class RecordScores:
    """The memorization scores of one record under one adapter."""

    nll: float
    ref_nll: float
    ratio: float  # nll / ref_nll: below 1 when the adapter made the text likelier than the base did
    min_k_pp: float
    es: float
    em: float
    tokens: int
    windows: int

    def as_dict(self) -> dict[str, float | int]:
        """Plain dict for JSON reports."""
        return {"nll": self.nll, "ref_nll": self.ref_nll, "ratio": self.ratio, "min_k_pp": self.min_k_pp,
                "es": self.es, "em": self.em, "tokens": self.tokens, "windows": self.windows}


@dataclass(frozen=True)
class _Window:
    sequence: int  # index of the sequence it belongs to
    ids: list[int]
    first_target: int  # targets ids[j + 1] for j >= first_target are scored in this window


def pad_token_id(tokenizer) -> int | None:
    """The id batches are padded with: the tokenizer's pad token, else its EOS (padding is masked anyway)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def text_token_ids(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """BOS + the text's tokens (no EOS: the scores are about the text itself), refusing empty texts."""
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ProbeInputError(f"record {i} is empty (got {text!r}); give every record some text to score")
    encoded = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    bos = [] if tokenizer.bos_token_id is None else [tokenizer.bos_token_id]
    out = [bos + ids for ids in encoded]
    for i, ids in enumerate(out):
        if len(ids) < 2:
            raise ProbeInputError(f"record {i} has no token to score after the first one: {len(ids)} token(s)")
    return out


def _windows(sequences: Sequence[list[int]], context: int) -> list[_Window]:
    if context < 2:
        raise ProbeInputError(f"the scoring context must be at least 2 tokens, got {context}")
    stride = max(1, context // 2)
    windows = []
    for n, ids in enumerate(sequences):
        if len(ids) <= context:
            windows.append(_Window(n, list(ids), 0))
            continue
        start, scored_up_to = 0, 0  # targets ids[1 .. scored_up_to] are done
        while scored_up_to < len(ids) - 1:
            chunk = ids[start:start + context]
            windows.append(_Window(n, chunk, max(0, scored_up_to - start)))
            scored_up_to = start + len(chunk) - 1
            start += stride
    return windows


def _decoder_and_head(model) -> tuple[torch.nn.Module, torch.nn.Module, float | None]:
    """The transformer body and the LM head of a causal LM (peft-wrapped or not), and any logit soft-cap."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = getattr(base, base.base_model_prefix, None)
    head = base.get_output_embeddings()
    if body is None or head is None:
        raise ProbeInputError(f"{type(base).__name__} has no separate decoder and LM head to score with")
    return body, head, getattr(base.config, "final_logit_softcapping", None)


def adapter_off(model) -> contextlib.AbstractContextManager:
    """The reference pass: the adapter disabled (peft's `disable_adapter()`), or a bare model as it is."""
    if hasattr(model, "disable_adapter"):
        return model.disable_adapter()
    return contextlib.nullcontext()  # a bare base model: the reference pass is the same model


@contextlib.contextmanager
def adapter_merged(model) -> Iterator[None]:
    """Fold the LoRA weights into the base weights for the adapter pass when that is exact enough.

    In float32 merging costs one add per weight and saves the adapter's extra matmuls on every token
    (measured ~25% of the pass on the CPU); in bf16 the sum would round the small LoRA delta away, so
    the adapter then runs unmerged.
    """
    weights = next(model.parameters())
    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    quantized = getattr(base, "hf_quantizer", None) is not None  # merging into int8/4-bit weights rounds
    if not layers or quantized or weights.dtype != torch.float32 or any(m.merged for m in layers):
        yield
        return
    model.merge_adapter()
    try:
        yield
    finally:
        model.unmerge_adapter()


def _vocab_stats(logits: torch.Tensor, target: torch.Tensor, softcap: float | None,
                 full_stats: bool) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Per position: the target's log-prob and, with `full_stats`, its Min-K%++ z and whether it is the argmax."""
    if softcap:
        logits = softcap * torch.tanh(logits.float() / softcap)
    logprobs = torch.log_softmax(logits, dim=-1, dtype=torch.float32)  # no separate float32 copy first
    logp = logprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    if not full_stats:
        return logp, None, None
    probs = logprobs.exp()
    mu = (probs * logprobs).sum(-1)
    var = (probs * logprobs.square()).sum(-1) - mu.square()
    return logp, (logp - mu) / var.clamp(min=1e-12).sqrt(), logprobs.argmax(-1) == target


def _compiled(model) -> tuple[torch.nn.Module, Callable]:
    """The decoder body and the vocabulary statistics compiled by torch.compile, once per model object.

    Dynamic shapes, so batches of other widths reuse the graphs; the adapter's on and off states each
    compile once (peft's switch is a guard).
    """
    cached = getattr(model, "_lethe_compiled_scoring", None)
    if cached is None:
        body = _decoder_and_head(model)[0]
        cached = (torch.compile(body, dynamic=True), torch.compile(_vocab_stats, dynamic=True))
        model._lethe_compiled_scoring = cached
    return cached


@torch.no_grad()
def _score_batch(model, batch: list[_Window], pad_id: int, device: torch.device, vocab_chunk_elements: int,
                 full_stats: bool, compile_model: bool = False) -> list[tuple[np.ndarray, ...]]:
    """Target log-probs of every scored position (plus z and argmax hits when `full_stats`), per window.

    Only the scored positions go through the LM head: they are gathered into one contiguous
    (positions x hidden) matrix, so padding costs nothing there and each vocabulary slice is one plain
    matrix product (slicing positions of a 3-D batch instead ran as a batched product of a few rows each,
    a third of the GPU time in the profile).
    """
    body, head, softcap = _decoder_and_head(model)
    stats = _vocab_stats
    if compile_model:
        body, stats = _compiled(model)
    width = max(len(w.ids) for w in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    scored = torch.zeros((len(batch), width - 1), dtype=torch.bool)
    for row, w in enumerate(batch):
        ids[row, :len(w.ids)] = torch.tensor(w.ids, dtype=torch.long)
        mask[row, :len(w.ids)] = 1
        scored[row, w.first_target:len(w.ids) - 1] = True
    ids, mask, scored = ids.to(device), mask.to(device), scored.to(device)
    with autocast(device):
        hidden = body(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
    positions = hidden[:, :-1][scored]  # (scored positions, hidden), row-major: row 0's first
    targets = ids[:, 1:][scored]
    del hidden
    step = max(1, vocab_chunk_elements // head.weight.shape[0])
    logp_parts, z_parts, hit_parts = [], [], []
    for start in range(0, len(targets), step):
        with autocast(device):
            logits = head(positions[start:start + step])
        logp, z, hit = stats(logits, targets[start:start + step], softcap, full_stats)
        logp_parts.append(logp)
        if full_stats:
            z_parts.append(z)
            hit_parts.append(hit)
        del logits
    bounds = np.cumsum([len(w.ids) - 1 - w.first_target for w in batch])[:-1]
    logp = np.split(torch.cat(logp_parts).cpu().numpy(), bounds)
    z = np.split(torch.cat(z_parts).cpu().numpy(), bounds) if full_stats else [None] * len(batch)
    hits = np.split(torch.cat(hit_parts).cpu().numpy(), bounds) if full_stats else [None] * len(batch)
    return list(zip(logp, z, hits))


def _batches(windows: list[_Window], batch_size: int) -> Iterator[list[int]]:
    # Longest first, so each batch pads little; results do not depend on the order (no cross-row state).
    order = sorted(range(len(windows)), key=lambda i: -len(windows[i].ids))
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


def score_token_sequences(model, sequences: Sequence[list[int]], *, pad_id: int, batch_size: int = 32,
                          context: int | None = None, reference: bool = True,
                          vocab_chunk_elements: int | None = None,
                          compile_model: bool = False) -> list[TokenScores]:
    """Token-level scores of each sequence; `reference` adds the adapter-disabled pass.

    `vocab_chunk_elements` bounds the logits held at once (default: `default_vocab_chunk_elements`).
    `compile_model` runs the decoder and the vocabulary statistics through torch.compile (fused
    element-wise kernels); the first call per model pays the compilation.
    """
    if batch_size < 1:
        raise ProbeInputError(f"batch_size must be >= 1, got {batch_size}")
    if not sequences:
        return []
    device = next(model.parameters()).device
    vocab_chunk_elements = vocab_chunk_elements or default_vocab_chunk_elements(device)
    context = context or _decoder_and_head(model)[0].config.max_position_embeddings
    if pad_id is None:
        raise ProbeInputError("the tokenizer has neither a pad nor an EOS token to pad batches with")
    windows = _windows(sequences, context)
    per_window: list[tuple | None] = [None] * len(windows)
    ref_window: list[np.ndarray | None] = [None] * len(windows)
    batches = list(_batches(windows, batch_size))
    # All adapter passes first, then all reference passes: the adapter is merged (or disabled) once.
    with adapter_merged(model):
        for idx in batches:
            results = _score_batch(model, [windows[i] for i in idx], pad_id, device, vocab_chunk_elements, True,
                                   compile_model)
            for i, result in zip(idx, results):
                per_window[i] = result
    if reference:
        with adapter_off(model):
            for idx in batches:
                results = _score_batch(model, [windows[i] for i in idx], pad_id, device, vocab_chunk_elements,
                                       False, compile_model)
                for i, result in zip(idx, results):
                    ref_window[i] = result[0]
    parts: list[list[int]] = [[] for _ in sequences]
    for i, w in enumerate(windows):
        parts[w.sequence].append(i)
    out = []
    for n, idx in enumerate(parts):
        out.append(TokenScores(
            logp=np.concatenate([per_window[i][0] for i in idx]),
            ref_logp=np.concatenate([ref_window[i] for i in idx]) if reference else None,
            z=np.concatenate([per_window[i][1] for i in idx]),
            correct=np.concatenate([per_window[i][2] for i in idx]),
            windows=len(idx)))
    return out


def min_k_plus_plus(z: np.ndarray, k_fraction: float) -> float:
    """Mean of the lowest k% of the per-token normalized log-probs (at least one token)."""
    if not 0.0 < k_fraction <= 1.0:
        raise ProbeInputError(f"Min-K%++ k must be in (0, 1], got {k_fraction}")
    count = max(1, math.ceil(k_fraction * len(z)))
    return float(np.sort(z)[:count].mean())


def record_scores(tokens: TokenScores, k_fraction: float = 0.2) -> RecordScores:
    """Reduce one sequence's token scores to the record-level scores."""
    if tokens.ref_logp is None:
        raise ProbeInputError("record scores need the reference pass (reference=True)")
    n = len(tokens.logp)
    nll, ref_nll = float(-tokens.logp.mean()), float(-tokens.ref_logp.mean())
    misses = np.flatnonzero(~tokens.correct)
    # Earliest prefix from which greedy decoding reproduces the rest: just after the last miss.
    k = 0 if len(misses) == 0 else int(misses[-1]) + 1
    return RecordScores(nll=nll, ref_nll=ref_nll, ratio=nll / ref_nll if ref_nll > 0 else math.inf,
                        min_k_pp=min_k_plus_plus(tokens.z, k_fraction), es=1.0 - k / n,
                        em=float(tokens.correct.mean()), tokens=n, windows=tokens.windows)


def scored_target_masks(tokenizer, texts: Sequence[str], spans: Sequence[Spans | None] | None
                        ) -> list[np.ndarray | None]:
    """Per text, which of its targets (as `text_token_ids` lays them out) lie in its scored spans, e.g. a
    chat record's turns; None where the whole text is scored."""
    masks = text_token_masks(tokenizer, texts, spans or [None] * len(texts))
    first = 0 if tokenizer.bos_token_id is not None else 1  # without a BOS the first token is no target
    return [None if mask is None else mask[first:] for mask in masks]


def masked_tokens(tokens: TokenScores, mask: np.ndarray | None) -> TokenScores:
    """The token scores of the masked targets only (all of them without a mask)."""
    if mask is None:
        return tokens
    if len(mask) != len(tokens.logp):
        raise ProbeInputError(f"a mask of {len(mask)} targets for a sequence of {len(tokens.logp)}")
    return TokenScores(logp=tokens.logp[mask], ref_logp=None if tokens.ref_logp is None else tokens.ref_logp[mask],
                       z=tokens.z[mask], correct=tokens.correct[mask], windows=tokens.windows)


def score_texts(model, tokenizer, texts: Sequence[str], *, batch_size: int = 32, k_fraction: float = 0.2,
                context: int | None = None, vocab_chunk_elements: int | None = None,
                compile_model: bool = False, spans: Sequence[Spans | None] | None = None) -> list[RecordScores]:
    """Record-level scores of each text under `model` (a peft model: adapter on, then off); with `spans`, a
    text's scores count only the tokens in its spans (the whole text is still the context they see)."""
    if not 0.0 < k_fraction <= 1.0:
        raise ProbeInputError(f"Min-K%++ k must be in (0, 1], got {k_fraction}")
    sequences = text_token_ids(tokenizer, texts)
    masks = scored_target_masks(tokenizer, texts, spans)
    pad_id = pad_token_id(tokenizer)
    tokens = score_token_sequences(model, sequences, pad_id=pad_id, batch_size=batch_size,
                                   context=context, vocab_chunk_elements=vocab_chunk_elements,
                                   compile_model=compile_model)
    return [record_scores(masked_tokens(t, m), k_fraction) for t, m in zip(tokens, masks)]
