"""Rare spans: the numbers, codes and names two texts share and few other texts contain.

Other customers' tickets written from one template reach a cosine of 0.997 with a subject's ticket,
so similarity alone cannot put a record in an erasure's scope. What tells a restatement of the
subject's ticket from a look-alike is what the two share beyond the template: an account number, an
order or recovery code, a name. Rarity is measured on the corpus itself (how many records outside the
scope contain the span), not on any identifier format, so a team's own formats work as well as the
demo's. Spans are kept in memory with the texts they come from; only their kinds and counts leave.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping

__all__ = ["MIN_CODE_CHARS", "SECRET_MIN_DIGITS", "SpanFrequencies", "confirms", "rare_limit", "spans_of"]

MIN_CODE_CHARS = 5  # a span of fewer letters and digits (a year, a card's last four) is too common
SECRET_MIN_DIGITS = 6  # a code or number of the subject's that the residual sweep looks for
RARE_SHARE = 0.001  # a span in at most this share of the records outside the scope (and at least 2) is rare
_WORD = r"[^\W_]+(?:[-./][^\W_]+)*"
_CODE_RUN = re.compile(rf"{_WORD}(?:[ ]{_WORD})*")
_NAME = re.compile(r"\b[A-ZÀ-Þ][a-zß-ÿ'’]+(?:[- ][A-ZÀ-Þ][a-zß-ÿ'’]+){1,2}\b")
_DATE = re.compile(r"^(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})$")


def _code_spans(text: str) -> Iterable[tuple[str, str]]:
    """(kind, normalized) of runs of words holding digits: 'ACC-1234 5678' -> ('code', 'ACC12345678')."""
    for match in _CODE_RUN.finditer(text):
        group: list[str] = []
        for word in match.group(0).split(" ") + [""]:
            if word and any(ch.isdigit() for ch in word) and not _DATE.match(word):
                group.append(word)
                continue
            if group:
                flat = re.sub(r"[^\w]|_", "", "".join(group)).upper()
                if len(flat) >= MIN_CODE_CHARS:
                    yield ("number" if flat.isdigit() else "code"), flat
                group = []


def spans_of(text: str) -> set[tuple[str, str]]:
    """The spans of one text worth comparing: numbers, codes, and names of two or three capitalized words."""
    spans = set(_code_spans(text))
    spans.update(("name", m.group(0).replace("-", " ").casefold()) for m in _NAME.finditer(text))
    return spans


def rare_limit(records: int) -> int:
    """How many records outside the scope may contain a span that still counts as rare."""
    return max(2, math.ceil(RARE_SHARE * records))


class SpanFrequencies:
    """In how many records of a corpus each span occurs (document frequency)."""

    def __init__(self, texts: Mapping[str, str]):
        self.spans = {record_id: spans_of(text) for record_id, text in texts.items()}
        self.frequency = Counter(span for spans in self.spans.values() for span in spans)
        self.records = len(texts)

    def outside(self, record_ids: Iterable[str]) -> Counter:
        """Document frequencies with the given records left out (the scope: the subject's own texts)."""
        inside = Counter(span for rid in set(record_ids) if rid in self.spans for span in self.spans[rid])
        return Counter({span: n - inside[span] for span, n in self.frequency.items() if n > inside[span]})

    def shared_rare(self, record_id: str, others: Iterable[str], outside: Counter,
                    exclude: Collection[tuple[str, str]] = ()) -> Counter:
        """Kinds of the rare spans `record_id` shares with any of `others` (counts per kind, never values);
        spans in `exclude` (other people's identifiers) do not count."""
        theirs = set().union(*(self.spans.get(o, set()) for o in others))
        limit = rare_limit(self.records)
        return Counter(kind for kind, value in self.spans.get(record_id, set()) & theirs
                       if outside[(kind, value)] <= limit and (kind, value) not in exclude)

    def secrets_of(self, record_ids: Iterable[str], exclude: Collection[tuple[str, str]] = ()) -> set[str]:
        """Numbers and codes of these records (the subject's) with enough digits, rare outside them;
        spans in `exclude` (other people's identifiers written in the subject's records) left out."""
        ids = set(record_ids)
        outside, limit = self.outside(ids), rare_limit(self.records)
        return {value for rid in ids for kind, value in self.spans.get(rid, set())
                if kind != "name" and sum(ch.isdigit() for ch in value) >= SECRET_MIN_DIGITS
                and outside[(kind, value)] <= limit and (kind, value) not in exclude}


def confirms(shared: Counter) -> bool:
    """Whether shared rare spans confirm a near-duplicate: a number or code, or two rare spans of any kind."""
    return shared["number"] + shared["code"] >= 1 or sum(shared.values()) >= 2
