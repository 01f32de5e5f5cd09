"""Where each message of a chat record sits in its rendered text.

A chat record is trained on as one text: the chat template's rendering of its messages. Its `turns` say
which characters of that text are which message's content (`start`, `end`, `role`), so the PII scan reads
each message on its own (a name ending one turn never joins a word starting the next), a fine-tune may put
its loss on the assistant turns only, and the probes score what the loss taught rather than the template's
markers every record repeats (unlearning.token_spans). Offsets only: a turn holds no text of its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from lineage.errors import InvalidValueError

__all__ = ["Turn", "decode_turns", "encode_turns", "locate_turns", "turn_texts", "validate_turns"]

ASSISTANT = "assistant"


class Turn(NamedTuple):
    """One message's content in the rendered text: text[start:end], said by `role`."""

    start: int
    end: int
    role: str


def locate_turns(rendering: str, messages: Sequence[Mapping[str, str]]) -> list[Turn]:
    """Find each message's content in the rendering, in order; refuses a template that rewrites content.

    Templates wrap contents in markers and may trim their whitespace; the content itself must appear
    verbatim (trimmed), after the previous message's, or the turns could not be trusted.
    """
    turns, cursor = [], 0
    for index, message in enumerate(messages):
        content = message["content"].strip()
        if not content:
            continue
        start = rendering.find(content, cursor)
        if start < 0:
            raise InvalidValueError(f"message {index} ({message['role']}) does not appear verbatim in the chat "
                                    "template's rendering; use a template that keeps message contents as they are")
        turns.append(Turn(start, start + len(content), message["role"]))
        cursor = start + len(content)
    return turns


def validate_turns(turns: Sequence[Sequence], text: str) -> list[Turn]:
    """Turns as given in a batch file, checked against the text: in order, inside it, not overlapping."""
    checked, previous_end = [], 0
    for index, turn in enumerate(turns):
        if (len(turn) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) for v in turn[:2])
                or not isinstance(turn[2], str) or not turn[2]):
            raise InvalidValueError(f"turn {index} must be [start, end, role] with integer offsets and a role")
        start, end, role = turn
        if not previous_end <= start < end <= len(text):
            raise InvalidValueError(f"turn {index} spans [{start}, {end}), outside the text (length {len(text)}) "
                                    "or overlapping the turn before it; turns are offsets into `text`, in order")
        checked.append(Turn(start, end, role))
        previous_end = end
    if checked and not any(t.role == ASSISTANT for t in checked):
        raise InvalidValueError("a chat record's turns need an assistant turn (what the model is trained to say)")
    return checked


def turn_texts(text: str, turns: Sequence[Turn] | None) -> list[str]:
    """The pieces the PII scan reads: each message on its own, or the whole text of a plain record."""
    return [text[t.start:t.end] for t in turns] if turns else [text]


def encode_turns(turns: Sequence[Turn] | None) -> str | None:
    """Turns as the content store keeps them (compact JSON), None for a plain record."""
    return json.dumps([list(t) for t in turns], separators=(",", ":")) if turns else None


def decode_turns(stored: str | None) -> list[Turn] | None:
    return [Turn(*t) for t in json.loads(stored)] if stored else None
