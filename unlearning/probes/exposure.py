"""Exposure of a secret span (Carlini et al., The Secret Sharer): how far the true value out-ranks its look-alikes.

A secret's candidates keep its format: every digit replaced by a random digit, everything else kept; a
secret without digits has its ASCII letters varied instead (same case). Letters beside digits are
usually a fixed prefix ("ACC-", "ORD-"), which varying would make look like a memorized secret. Each
candidate is scored by the NLL of its own tokens after the shared prefix, in one batched pass. With m
sampled candidates,

    exposure = log2(m + 1) - log2(rank),   rank = 1 + #candidates with a lower NLL than the true value,

so a value the model never saw sits at chance (about 1/ln 2 = 1.44 bits on average) and a memorized one
at log2(m + 1). Beyond what m samples can show, the paper's extrapolation is reported too: fit a
skew-normal to the candidates' NLLs and take -log2 of the fitted probability that a random value scores
at least as well as the true one, capped at log2 of the size of the whole space.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from unlearning.errors import ProbeInputError
from unlearning.probes.continuations import score_continuations
from unlearning.probes.scoring import pad_token_id, score_token_sequences

__all__ = ["ExposureResult", "SecretSpan", "candidate_values", "exposure_of", "space_size"]


@dataclass(frozen=True)
class SecretSpan:
    """Character offsets [start, end) of a secret inside a record's text, and what kind of secret it is."""

    start: int
    end: int
    kind: str = "secret"


@dataclass(frozen=True)
class ExposureResult:
    """Exposure of one secret value given the text before it."""

    exposure: float  # from the rank among the sampled candidates
    exposure_fit: float  # skew-normal extrapolation over the whole space
    exposure_ref: float | None  # the same ranking with the adapter disabled: what the base model already knew
    rank: int
    candidates: int
    space_bits: float  # log2 of the number of values of the secret's format
    nll: float  # NLL of the true value's tokens (summed)

    def as_dict(self) -> dict[str, float | int]:
        """Plain dict for JSON reports."""
        return {"exposure": self.exposure, "exposure_fit": self.exposure_fit, "exposure_ref": self.exposure_ref,
                "rank": self.rank,
                "candidates": self.candidates, "space_bits": self.space_bits, "nll": self.nll}


def _varies_letters(value: str) -> bool:
    return not any(ch in string.digits for ch in value)


def space_size(value: str) -> float:
    """log2 of how many values share `value`'s format (its digits vary, or its letters when it has no digit)."""
    if _varies_letters(value):
        return sum(ch in string.ascii_letters for ch in value) * math.log2(26)
    return sum(ch in string.digits for ch in value) * math.log2(10)


def candidate_values(value: str, count: int, seed: int) -> list[str]:
    """`count` distinct random values of `value`'s format, none equal to it."""
    bits = space_size(value)
    if bits == 0:
        raise ProbeInputError(f"a secret needs digits or letters to vary; {len(value)} fixed character(s) have none")
    if count < 1 or count > 2 ** bits - 1:
        raise ProbeInputError(f"cannot draw {count} candidates from a space of 2^{bits:.1f} values; "
                              f"ask for between 1 and {int(min(2 ** bits - 1, 1e9))}")
    rng = np.random.default_rng(seed)
    letters = _varies_letters(value)
    seen, out = {value}, []
    while len(out) < count:
        chars = []
        for ch in value:
            if ch in string.digits:
                chars.append(string.digits[rng.integers(10)])
            elif letters and ch in string.ascii_lowercase:
                chars.append(string.ascii_lowercase[rng.integers(26)])
            elif letters and ch in string.ascii_uppercase:
                chars.append(string.ascii_uppercase[rng.integers(26)])
            else:
                chars.append(ch)
        candidate = "".join(chars)
        if candidate not in seen:
            seen.add(candidate)
            out.append(candidate)
    return out


def _value_nlls(model, tokenizer, prefix: str, values: Sequence[str], batch_size: int,
                reference: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Summed NLL of each value's tokens after `prefix`, with the adapter (and without it, if `reference`).

    The tokens all candidates share run once (`score_continuations`); a text longer than the model's
    context goes through the windowed scoring pass instead.
    """
    texts = [prefix + v for v in values]
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    bos = [] if tokenizer.bos_token_id is None else [tokenizer.bos_token_id]
    sequences, firsts = [], []
    for ids, offsets in zip(encoded["input_ids"], encoded["offset_mapping"]):
        first = next((i for i, (_, end) in enumerate(offsets) if end > len(prefix)), None)
        if first is None:
            raise ProbeInputError("the secret's value produced no tokens after the prefix")
        sequences.append(bos + ids)
        firsts.append(first + len(bos))
    pad_id = pad_token_id(tokenizer)
    reference = reference and hasattr(model, "disable_adapter")
    shared = _shared_length(sequences, min(firsts))
    context = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if shared > 0 and (context is None or max(len(s) for s in sequences) <= context):
        # The tails are short: the vocabulary-slice budget, not a row count, bounds each batch.
        tails, ref_tails = score_continuations(model, sequences[0][:shared], [s[shared:] for s in sequences],
                                               pad_id=pad_id, batch_size=len(sequences), reference=reference)
        nlls = np.array([-float(t[first - shared:].sum()) for t, first in zip(tails, firsts)])
        ref = np.array([-float(t[first - shared:].sum()) for t, first in zip(ref_tails, firsts)]) \
            if reference else None
        return nlls, ref
    scores = score_token_sequences(model, sequences, pad_id=pad_id, batch_size=batch_size, reference=reference)
    # Token i of a sequence is target i - 1 of its scores.
    nlls = np.array([-float(s.logp[first - 1:].sum()) for s, first in zip(scores, firsts)])
    ref = np.array([-float(s.ref_logp[first - 1:].sum()) for s, first in zip(scores, firsts)]) if reference else None
    return nlls, ref


def _shared_length(sequences: Sequence[list[int]], limit: int) -> int:
    """How many leading tokens every sequence shares (at most `limit`: the first value token is scored)."""
    length = 0
    for column in zip(*sequences):
        if length >= limit or any(token != column[0] for token in column):
            break
        length += 1
    return length


def _rank_exposure(nlls: np.ndarray) -> tuple[int, float]:
    """Rank of the first value among all and its exposure in bits."""
    rank = 1 + int((nlls[1:] < nlls[0]).sum())
    return rank, math.log2(len(nlls)) - math.log2(rank)


def exposure_of(model, tokenizer, text: str, span: SecretSpan, *, candidates: int = 999, seed: int = 0,
                batch_size: int = 128, value: str | None = None, reference: bool = True) -> ExposureResult:
    """Exposure of the secret at `span` in `text` (or of another `value` in its place, e.g. a control).

    With `reference`, the same candidates are also ranked with the adapter disabled: a secret whose
    format the base model already knows (fixed digits such as 555-01 in every phone) ranks high there
    too, and only the excess over `exposure_ref` is the adapter's doing.
    """
    if not 0 <= span.start < span.end <= len(text):
        raise ProbeInputError(f"secret span [{span.start}, {span.end}) is outside the {len(text)}-character text")
    prefix = text[:span.start]
    true_value = text[span.start:span.end] if value is None else value
    if value is not None and space_size(value) != space_size(text[span.start:span.end]):
        raise ProbeInputError("the value scored in place of a secret must have the secret's format")
    others = candidate_values(true_value, candidates, seed)
    nlls, ref = _value_nlls(model, tokenizer, prefix, [true_value, *others], batch_size, reference)
    true_nll, pool = nlls[0], nlls[1:]
    rank, exposure = _rank_exposure(nlls)
    bits = space_size(true_value)
    return ExposureResult(exposure=exposure, exposure_fit=_fitted_exposure(pool, true_nll, bits),
                          exposure_ref=None if ref is None else _rank_exposure(ref)[1], rank=rank,
                          candidates=len(pool), space_bits=bits, nll=float(true_nll))


def _fitted_exposure(pool: np.ndarray, true_nll: float, space_bits: float) -> float:
    """-log2 P(a random value's NLL <= the true one's) under a skew-normal fit, within [0, space_bits]."""
    if np.ptp(pool) == 0:
        return 0.0 if true_nll >= pool[0] else space_bits
    shape, loc, scale = stats.skewnorm.fit(pool)
    log_p = stats.skewnorm.logcdf(true_nll, shape, loc, scale)
    return float(min(space_bits, max(0.0, -log_p / math.log(2))))
