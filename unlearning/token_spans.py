"""Which tokens of a text lie in given character spans: the part of a chat record a loss or a score covers.

A chat record is one rendered text; its turns (lineage.turns) are character spans. Training with the loss
on the assistant turns, and probing the same tokens, both need those spans as token positions: a token
counts when its characters overlap a span (a fast tokenizer's `offset_mapping`, over the same encoding as
`runtime.encode_texts` and `probes.scoring.text_token_ids`, i.e. without special tokens).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from unlearning.errors import TextSpanError

__all__ = ["LossOn", "Spans", "TurnSpans", "loss_spans", "scored_spans", "spans_of", "text_token_masks"]

Spans = tuple[tuple[int, int], ...]  # (start, end) character spans of one text
TurnSpans = Sequence[tuple[int, int, str]]  # a chat record's turns: (start, end, role) of each message
LossOn = Literal["all", "assistant"]


def loss_spans(turns: Mapping[str, TurnSpans] | None, loss_on: LossOn) -> dict[str, Spans]:
    """Text -> the spans a fine-tune's loss covers: a chat record's assistant turns when the loss is on the
    assistant, nothing (the whole text) when it is on all tokens."""
    if loss_on == "all" or not turns:
        return {}
    return {text: tuple((start, end) for start, end, role in spans if role == "assistant")
            for text, spans in turns.items()}


def scored_spans(turns: Mapping[str, TurnSpans] | None, loss_on: LossOn) -> dict[str, Spans]:
    """Text -> the spans the probes score: what the loss taught. Assistant turns when the loss was on them;
    with the loss on all tokens, every message's content (the template's markers and role names are the
    same in every record, trained or not, and say nothing about membership)."""
    if not turns:
        return {}
    if loss_on == "assistant":
        return loss_spans(turns, loss_on)
    return {text: tuple((start, end) for start, end, _ in spans) for text, spans in turns.items()}


def spans_of(texts: Sequence[str], by_text: Mapping[str, Spans] | None) -> list[Spans | None]:
    """Each text's spans from a text -> spans mapping (None: the whole text)."""
    by_text = by_text or {}
    return [by_text.get(text) for text in texts]


def text_token_masks(tokenizer, texts: Sequence[str], spans: Sequence[Spans | None]) -> list[np.ndarray | None]:
    """Per text, a boolean per token of the text (no BOS, no EOS) that overlaps one of its spans; None where
    it has no spans (the whole text counts). Refuses spans that cover no token."""
    if len(spans) != len(texts):
        raise TextSpanError(f"{len(spans)} span lists for {len(texts)} texts")
    if not any(spans):
        return [None] * len(texts)
    if not getattr(tokenizer, "is_fast", False):
        raise TextSpanError(f"{type(tokenizer).__name__} gives no character offsets; chat records' turns "
                                "need a fast tokenizer (save the base model with its tokenizer.json)")
    wanted = [n for n, s in enumerate(spans) if s]
    offsets = tokenizer([texts[n] for n in wanted], add_special_tokens=False, return_offsets_mapping=True,
                        verbose=False)["offset_mapping"]
    masks: list[np.ndarray | None] = [None] * len(texts)
    for n, text_offsets in zip(wanted, offsets):
        bounds = np.asarray(text_offsets, dtype=np.int64).reshape(-1, 2)
        mask = np.zeros(len(bounds), dtype=bool)
        for start, end in spans[n]:
            mask |= (bounds[:, 0] < end) & (bounds[:, 1] > start)
        if not mask.any():
            raise TextSpanError(f"text {n}'s spans {list(spans[n])[:3]} cover none of its tokens")
        masks[n] = mask
    return masks
