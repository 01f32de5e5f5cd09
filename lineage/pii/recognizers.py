"""The project's Presidio recognizers: offline email, fast phone and IP, account ids, deny lists."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import phonenumbers
import tldextract
from presidio_analyzer import EntityRecognizer, LocalRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import (
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    UsSsnRecognizer,
)
from spacy.language import Language
from spacy.matcher import PhraseMatcher
from lineage.errors import InvalidValueError

ACCOUNT_ID = "ACCOUNT_ID"
# A digit run that could be a phone number: at least 7 characters, not glued to a word or to an
# id prefix such as ACC- / ORD- / TRK (those are ids, and parsing them as phones is most of the cost).
_PHONE_CANDIDATE = re.compile(r"(?<![\w+\-/.])\+?\(?\d[\d ().\-/]{5,}\d(?![\w\-/]|\.\d)")


@functools.lru_cache(maxsize=1)
def offline_tld_extractor() -> tldextract.TLDExtract:
    """A TLD extractor on tldextract's bundled suffix-list snapshot: no HTTP fetch, no cache on disk."""
    extractor = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)
    extractor("warm-up.example.com")  # parse the snapshot now, not inside the first scan
    return extractor


class _Prefiltered:
    """Mixin: skip a pattern recognizer's regexes on texts where a cheap hint shows no match can be."""

    HINT: re.Pattern

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
                regex_flags: int | None = None) -> list[RecognizerResult]:
        """The recognizer's results, or none at once when its hint is absent."""
        if not self.HINT.search(text):
            return []
        return super().analyze(text, entities, nlp_artifacts, regex_flags)


class OfflineEmailRecognizer(_Prefiltered, EmailRecognizer):
    """Presidio's email recognizer, validating TLDs offline (the stock one may fetch the suffix list)."""

    HINT = re.compile("@")

    def __init__(self):
        super().__init__()
        offline_tld_extractor()  # build the suffix trie now (once per process), not in the first scan

    def validate_result(self, pattern_text: str) -> bool:
        """True when the address ends in a known public suffix."""
        return offline_tld_extractor()(pattern_text).fqdn != ""


class PrefilteredIpRecognizer(_Prefiltered, IpRecognizer):
    """Presidio's IP recognizer, run only where an IPv4 (d.d.d) or IPv6 (':') address can be."""

    HINT = re.compile(r"\d\.\d{1,3}\.\d|:")


class PrefilteredIbanRecognizer(_Prefiltered, IbanRecognizer):
    """Presidio's IBAN recognizer, run only where a country code and check digits (AB12) appear."""

    HINT = re.compile(r"[A-Za-z]{2}\d{2}")


class PrefilteredUsSsnRecognizer(_Prefiltered, UsSsnRecognizer):
    """Presidio's US SSN recognizer, run only where nine digits with at most two separators appear."""

    HINT = re.compile(r"\d{3}[- .]?\d{2}[- .]?\d{4}")  # covers all five of its patterns


class CandidatePhoneRecognizer(PhoneRecognizer):
    """Presidio's phone recognizer, run by python-phonenumbers only on phone-like digit runs."""

    DEFAULT_SUPPORTED_REGIONS = ("US", "GB")
    CACHE_SIZE = 50_000

    def __init__(self, supported_regions: Iterable[str] = DEFAULT_SUPPORTED_REGIONS, leniency: int = 1):
        super().__init__(supported_regions=tuple(supported_regions), leniency=leniency)
        # The same numbers recur across tickets, and parsing is most of this recognizer's cost.
        self._found: dict[str, list[tuple[int, int, str]]] = {}  # raw windows: in memory only

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
                ) -> list[RecognizerResult]:
        """Phone numbers in the text; the matcher sees only candidate windows, offsets are the text's."""
        results = []
        for candidate in _PHONE_CANDIDATE.finditer(text):
            for start, end, region in self._numbers_in(candidate.group()):
                result = self._get_recognizer_result(_Span(start, end), text, region, nlp_artifacts)
                result.start, result.end = start + candidate.start(), end + candidate.start()
                results.append(result)
        return EntityRecognizer.remove_duplicates(results)

    def _numbers_in(self, window: str) -> list[tuple[int, int, str]]:
        """(start, end, region) of each number python-phonenumbers finds in one candidate window."""
        found = self._found.get(window)
        if found is None:
            # A leading '+' carries its own country code: one region is enough to parse it.
            regions = self.supported_regions[:1] if window.startswith("+") else self.supported_regions
            found = [(match.start, match.end, region) for region in regions
                     for match in phonenumbers.PhoneNumberMatcher(window, region, leniency=self.leniency)]
            if len(self._found) >= self.CACHE_SIZE:
                self._found.clear()
            self._found[window] = found
        return found


@dataclass(frozen=True)
class _Span:
    """The start and end that PhoneRecognizer._get_recognizer_result reads from a phonenumbers match."""

    start: int
    end: int


class AccountIdRecognizer(PatternRecognizer):
    """Account ids of the form ACC-12345678 (ACC- and eight digits)."""

    PATTERNS = [Pattern("account id", r"\bACC-\d{8}\b", 0.85)]
    CONTEXT = ["account", "acct", "customer"]

    def __init__(self):
        super().__init__(supported_entity=ACCOUNT_ID, patterns=list(self.PATTERNS),
                         context=list(self.CONTEXT), name="AccountIdRecognizer")


class KnownIdentifierRecognizer(LocalRecognizer):
    """Deny lists of known identifiers (one per entity), matched token-wise by spaCy's PhraseMatcher."""

    SCORE = 1.0

    def __init__(self, pipeline: Language, deny_lists: Mapping[str, Iterable[str]]):
        phrases = {entity: sorted(set(values)) for entity, values in deny_lists.items() if values}
        if not phrases:
            raise InvalidValueError("KnownIdentifierRecognizer needs at least one non-empty deny list")
        super().__init__(supported_entities=sorted(phrases), name="KnownIdentifierRecognizer")
        self._make_doc = pipeline.make_doc
        self._vocab = pipeline.vocab
        # LOWER matches case-insensitively, like the normalization of every kind before keying;
        # whole tokens give word boundaries for free and the lookup is a hash per token.
        self._matcher = PhraseMatcher(pipeline.vocab, attr="LOWER")
        for entity, values in phrases.items():
            self._matcher.add(entity, list(pipeline.tokenizer.pipe(values)))

    def load(self) -> None:
        """Nothing to load: the matcher is built in __init__."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
                ) -> list[RecognizerResult]:
        """Known identifiers in the text, at score 1.0."""
        doc = nlp_artifacts.tokens if nlp_artifacts is not None else None
        if doc is None or doc.vocab is not self._vocab:  # e.g. analyzed without this pipeline
            doc = self._make_doc(text)
        results = []
        for match_id, start, end in self._matcher(doc):
            entity = self._vocab.strings[match_id]
            if entity in entities:
                span = doc[start:end]
                results.append(RecognizerResult(entity, span.start_char, span.end_char, self.SCORE,
                                                recognition_metadata={
                                                    RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}))
        return EntityRecognizer.remove_duplicates(results)
