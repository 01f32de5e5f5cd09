"""Which subjects a text mentions: Presidio findings turned into subject keys, never raw values."""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from presidio_analyzer import RecognizerResult

from lineage.keys import IdentifierKind, SubjectKeyer, normalize_identifier
from lineage.pii.engine import LANGUAGE, build_analyzer, nlp_engine
from lineage.pii.recognizers import ACCOUNT_ID
from lineage.errors import InvalidValueError
from lineage.turns import Turn, turn_texts

# Presidio entity -> the identifier kind it names; other entities (cards, IBANs...) are only counted.
ENTITY_KINDS = {
    "EMAIL_ADDRESS": IdentifierKind.EMAIL,
    "PHONE_NUMBER": IdentifierKind.PHONE,
    ACCOUNT_ID: IdentifierKind.ACCOUNT,
    "PERSON": IdentifierKind.NAME,
}
KIND_ENTITIES = {kind: entity for entity, kind in ENTITY_KINDS.items()}
KEY_CACHE_SIZE = 100_000
_MISSING = object()


@dataclass(frozen=True)
class Mention:
    """One subject named in a text: its kind, its subject key and the Presidio entity that found it."""

    kind: str
    key: str
    entity: str


@dataclass(frozen=True)
class ScanResult:
    """The distinct subjects one text mentions, and how many spans of each entity were found."""

    mentions: tuple[Mention, ...]
    entity_counts: dict[str, int]


class PiiScanner:
    """Presidio over texts, with deny lists of known identifiers; reports subject keys only."""

    def __init__(self, keyer: SubjectKeyer, known: Iterable[tuple[str, str]] = (), *,
                 aliases: Iterable[tuple[str, str, str]] = (), spacy_model: str | None = None,
                 score_threshold: float = 0.4):
        """`known`: (kind, value) deny lists; `aliases`: (kind, value, key) other spellings of an identifier
        (a name without its middle name, say), found like `known` and reported under the identifier's key."""
        if not 0.0 <= score_threshold <= 1.0:
            raise InvalidValueError(f"score_threshold must be in [0, 1], got {score_threshold!r}")
        self._keyer = keyer
        self._keys: dict[tuple[IdentifierKind, str], str | None] = {}  # raw spans, in memory only
        aliases = list(aliases)
        self._aliases = {(IdentifierKind(kind), normalize_identifier(IdentifierKind(kind), value)): key
                         for kind, value, key in aliases}
        known = [*known, *((kind, value) for kind, value, _ in aliases)]
        self._threshold = score_threshold
        self._engine = nlp_engine(spacy_model)
        deny_lists, self.known_skipped = _deny_lists(known)
        self.deny_list_size = sum(len(values) for values in deny_lists.values())
        self._analyzer = build_analyzer(self._engine, deny_lists, score_threshold)

    @property
    def spacy_pipeline(self) -> str:
        """The spaCy pipeline in use: "blank" or a model name."""
        return self._engine.pipeline_name

    def scan(self, texts: Sequence[str], batch_size: int = 256) -> list[ScanResult]:
        """One ScanResult per text, in order; spaCy tokenizes each batch in one nlp.pipe call."""
        if batch_size < 1:
            raise InvalidValueError(f"batch_size must be >= 1, got {batch_size!r}")
        bad = next((i for i, text in enumerate(texts) if not isinstance(text, str)), None)
        if bad is not None:
            raise TypeError(f"texts[{bad}] is a {type(texts[bad]).__name__}, not a str")
        results = []
        for start in range(0, len(texts), batch_size):
            # NFKC, as keys are normalized: a name typed decomposed still matches its deny-list entry.
            # Offsets are never reported, so the normalized text can stand in for the original.
            batch = [unicodedata.normalize("NFKC", text) for text in texts[start:start + batch_size]]
            for text, artifacts in self._engine.process_batch(batch, LANGUAGE, batch_size=batch_size):
                found = self._analyzer.analyze(text, LANGUAGE, nlp_artifacts=artifacts,
                                               score_threshold=self._threshold)
                results.append(self._result(text, found))
        return results

    def scan_records(self, texts: Sequence[str], turns: Mapping[int, Sequence[Turn]] | None = None
                     ) -> list[ScanResult]:
        """One ScanResult per record; a chat record (its index in `turns`) is scanned message by message, so
        an identifier never runs across two turns or into the template's markers."""
        turns = turns or {}
        pieces = [turn_texts(text, turns.get(i)) for i, text in enumerate(texts)]
        flat = self.scan([piece for record in pieces for piece in record])
        out, at = [], 0
        for record in pieces:
            parts, at = flat[at:at + len(record)], at + len(record)
            out.append(parts[0] if len(parts) == 1 else _merged(parts))
        return out

    def _result(self, text: str, found: list[RecognizerResult]) -> ScanResult:
        """Key every identifier span; junk spans (which do not normalize) are counted but not keyed."""
        mentions: dict[tuple[str, str], Mention] = {}
        for item in sorted(found, key=lambda r: (r.start, r.end)):
            kind = ENTITY_KINDS.get(item.entity_type)
            if kind is None:
                continue
            key = self._key(kind, text[item.start:item.end])
            if key is None:
                continue  # e.g. a "phone" of 4 digits: not an identifier anyone can be named by
            mentions.setdefault((kind.value, key), Mention(kind.value, key, item.entity_type))
        counts = Counter(item.entity_type for item in found)
        return ScanResult(tuple(mentions.values()), dict(sorted(counts.items())))

    def _key(self, kind: IdentifierKind, value: str) -> str | None:
        """The subject key of a span (None for junk), memoized: the same identifiers recur across tickets."""
        cached = self._keys.get((kind, value), _MISSING)
        if cached is _MISSING:
            try:
                cached = self._aliases.get((kind, normalize_identifier(kind, value))) or self._keyer.key(kind, value)
            except ValueError:
                cached = None
            if len(self._keys) >= KEY_CACHE_SIZE:
                self._keys.clear()  # a crude bound; refilling is cheap
            self._keys[(kind, value)] = cached
        return cached

    def __repr__(self) -> str:  # never print the known identifiers
        return (f"PiiScanner(spacy_pipeline={self.spacy_pipeline!r}, deny_list_size={self.deny_list_size}, "
                f"score_threshold={self._threshold})")


def _merged(parts: Sequence[ScanResult]) -> ScanResult:
    """The results of one record's messages as one: distinct subjects in order, entity counts summed."""
    mentions: dict[tuple[str, str], Mention] = {}
    counts: Counter[str] = Counter()
    for part in parts:
        for mention in part.mentions:
            mentions.setdefault((mention.kind, mention.key), mention)
        counts.update(part.entity_counts)
    return ScanResult(tuple(mentions.values()), dict(sorted(counts.items())))


def _deny_lists(known: Iterable[tuple[str, str]]) -> tuple[dict[str, set[str]], int]:
    """Known identifiers grouped by Presidio entity, and how many were skipped as unusable."""
    lists: dict[str, set[str]] = {entity: set() for entity in ENTITY_KINDS}
    skipped = 0
    for kind_name, value in known:
        try:
            kind = IdentifierKind(kind_name)
        except ValueError:
            raise InvalidValueError(f"unknown identifier kind {kind_name!r}; expected one of "
                             f"{[k.value for k in IdentifierKind]}") from None
        if not isinstance(value, str):
            raise TypeError(f"known {kind.value} values must be str, got {type(value).__name__}")
        try:
            normalize_identifier(kind, value)
        except ValueError:
            skipped += 1  # it could never be keyed, so matching it would only find junk
            continue
        lists[KIND_ENTITIES[kind]].add(unicodedata.normalize("NFKC", value).strip())
    return {entity: values for entity, values in lists.items() if values}, skipped
