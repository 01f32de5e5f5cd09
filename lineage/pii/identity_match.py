"""One person's identifiers and secrets found in texts whatever their format (values in memory only).

Presidio finds identifiers in the formats its recognizers know. A person's account number written
"4471 2290" or "KX-4471-2290-Q", a recovery code split another way, or a name written "Ms Quist" escape
it. Here every text and every needle is reduced to its letters and digits, casefolded, and a needle
matches where its reduced form starts and ends on token boundaries of the reduced text: "ZX-88-4417-Q",
"zx 88 4417 q" and "ZX884417Q" are one match; "ZX884417QA" is none.

A needle is strong when a hit alone names the person (an email, a phone number, an account number, a
full name, a secret of theirs) and weak when it may name someone else ("Ms Quist", "O. Quist"): callers
include a record on a strong hit and ask a person about a weak one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import phonenumbers

from lineage.keys import DEFAULT_PHONE_REGION

__all__ = ["Hit", "Needle", "NeedleSet", "candidate_values", "identifier_needles", "name_variants",
           "secret_needle"]

_TOKEN = re.compile(r"[^\W_]+")
MIN_REDUCED = 5  # shorter needles ("Al Li", "4417") would match by accident
MIN_NAME_REDUCED = 4
TITLES = ("Mr", "Ms", "Mrs", "Miss", "Mx", "Dr")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"\+?\(?\d[\d ().\-/]{5,}\d")
_WORD = re.compile(r"\S+")
_CAPITALIZED = re.compile(r"^[A-ZÀ-Þ][\w'’.-]*$")
_EDGE_PUNCT = "()[]{}<>,;:!?\"'“”‘’"
MAX_WINDOW = 4  # words in a candidate name or account number


@dataclass(frozen=True)
class Needle:
    """One form of one identifier or secret: what it is, how strong a hit is, its reduced text."""

    kind: str  # email | phone | account | name | secret
    form: str  # value | e164 | national | full | no_middle | reversed | initials | title
    strong: bool
    reduced: str = field(repr=False)  # the value's letters and digits: never printed, never stored
    key: str | None = None  # the identifier's subject key (None for a secret)


@dataclass(frozen=True)
class Hit:
    """A needle found in a text: its kind, form, strength and key (never the value)."""

    kind: str
    form: str
    strong: bool
    key: str | None


def _reduce(text: str) -> tuple[str, set[int], set[int]]:
    """The text's letters and digits, casefolded, with the offsets where its tokens start and end."""
    parts, starts, ends, at = [], set(), set(), 0
    for match in _TOKEN.finditer(unicodedata.normalize("NFKC", text)):
        token = match.group(0).casefold()
        starts.add(at)
        at += len(token)
        ends.add(at)
        parts.append(token)
    return "".join(parts), starts, ends


def reduced(value: str) -> str:
    """A value reduced as texts are: letters and digits, casefolded."""
    return _reduce(value)[0]


class NeedleSet:
    """Needles of one or more people, found in texts on token boundaries."""

    def __init__(self, needles: Iterable[Needle]):
        best: dict[str, Needle] = {}
        for needle in needles:
            kept = best.get(needle.reduced)
            if kept is None or (needle.strong and not kept.strong):
                best[needle.reduced] = needle
        self.needles = tuple(best.values())

    def __len__(self) -> int:
        return len(self.needles)

    def __repr__(self) -> str:  # never the values
        return f"NeedleSet({len(self.needles)} needles: {sorted({n.kind for n in self.needles})})"

    def find(self, text: str) -> list[Hit]:
        """The needles found in `text` (each at most once)."""
        return [Hit(n.kind, n.form, n.strong, n.key) for n in self.found(text)]

    def found(self, text: str) -> list[Needle]:
        """The needles themselves found in `text` (each at most once; in memory only: they hold values)."""
        flat, starts, ends = _reduce(text)
        hits = []
        for needle in self.needles:
            at = flat.find(needle.reduced)
            while at >= 0:
                if at in starts and at + len(needle.reduced) in ends:
                    hits.append(needle)
                    break
                at = flat.find(needle.reduced, at + 1)
        return hits

    def scan(self, texts: Mapping[str, str]) -> dict[str, list[Hit]]:
        """Record id -> its hits, for the texts with at least one."""
        out = {}
        for record_id, text in texts.items():
            hits = self.find(text)
            if hits:
                out[record_id] = hits
        return out


def name_variants(name: str) -> list[tuple[str, bool, str]]:
    """(form, strong, text) of the usual ways to write a name: full, without middle names, reversed
    ("Quist, Orla"), and the weak ones: initials with the surname, a title with the surname."""
    words = [w.strip(".,") for w in name.split() if w.strip(".,")]
    if not words:
        return []
    if len(words) == 1:
        return [("full", True, words[0])]
    first, middles, last = words[0], words[1:-1], words[-1]
    out = [("full", True, " ".join(words)), ("reversed", True, f"{last} {first}")]
    if middles:
        out.append(("no_middle", True, f"{first} {last}"))
        out.append(("initials", False, " ".join(w[0] for w in [first, *middles]) + f" {last}"))
    out.append(("initials", False, f"{first[0]} {last}"))
    out += [("title", False, f"{title} {last}") for title in TITLES]
    return out


def _phone_forms(value: str) -> list[tuple[str, str]]:
    """(form, digits) of a phone number: as E.164 without '+', and its national number."""
    digits = re.sub(r"\D", "", value)
    forms = [("value", digits)]
    try:
        number = phonenumbers.parse(value, DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException:
        return forms
    forms.append(("e164", f"{number.country_code}{number.national_number}"))
    forms.append(("national", str(number.national_number)))
    return forms


def identifier_needles(kind: str, value: str, key: str | None, *, strong: bool = True) -> list[Needle]:
    """The needles of one identifier; `strong=False` for one that may name someone else too."""
    if kind == "name":
        return [Needle("name", form, strong and is_strong, r, key)
                for form, is_strong, text in name_variants(value)
                if len(r := reduced(text)) >= MIN_NAME_REDUCED]
    forms = _phone_forms(value) if kind == "phone" else [("value", reduced(value))]
    distinct: dict[str, str] = {}
    for form, r in forms:
        if len(r) >= MIN_REDUCED:
            distinct.setdefault(r, form)
    return [Needle(kind, form, strong, r, key) for r, form in distinct.items()]


def secret_needle(value: str) -> Needle | None:
    """A needle for one of the person's secrets (a code, a number), or None when too short to tell."""
    r = reduced(value)
    return Needle("secret", "value", True, r) if len(r) >= MIN_REDUCED else None


def _windows(words: list[str]) -> Iterator[str]:
    for start in range(len(words)):
        for end in range(start + 1, min(len(words), start + MAX_WINDOW) + 1):
            yield " ".join(words[start:end])


def candidate_values(text: str, kind: str) -> Iterator[str]:
    """Spans of `text` that could be an identifier of `kind`, for keying (a key match recovers a value)."""
    if kind == "email":
        yield from (m.group(0).strip(".") for m in _EMAIL.finditer(text))
    elif kind == "phone":
        yield from (m.group(0) for m in _PHONE.finditer(text))
    elif kind == "account":
        for run in _runs(text, lambda w: any(ch.isdigit() for ch in w)):
            yield from _windows(run)
    elif kind == "name":
        for run in _runs(text, lambda w: bool(_CAPITALIZED.match(w))):
            yield from _windows(run)


def _runs(text: str, keep) -> Iterator[list[str]]:
    """Maximal runs of consecutive words (edge punctuation stripped) that `keep` accepts."""
    run: list[str] = []
    for match in _WORD.finditer(text):
        raw = match.group(0)
        word = raw.strip(_EDGE_PUNCT).rstrip(".")
        if word and keep(word):
            run.append(word)
            if raw[-1] in ",;:!?)" or (raw.endswith(".") and len(word) > 1):
                yield run
                run = []
        elif run:
            yield run
            run = []
    if run:
        yield run
