"""Where the secrets are in a text: spans of numbers a model could leak digit by digit (for exposure probes).

Presidio finds phone numbers, account ids, cards, IBANs and SSNs; a pattern recognizer adds the codes
support tickets carry (recovery, backup or verification codes: groups of digits joined by dashes or
spaces). Offsets are into the text as given; the spans stay in memory with the text they index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry

from lineage.pii.engine import LANGUAGE, nlp_engine
from lineage.pii.recognizers import (AccountIdRecognizer, CandidatePhoneRecognizer, PrefilteredIbanRecognizer,
                                     PrefilteredUsSsnRecognizer)

__all__ = ["SECRET_CODE", "SecretFinder", "SecretSpanFound"]

SECRET_CODE = "SECRET_CODE"
# 3+ groups of 3-6 digits, or one run of 8+ digits: codes, not dates, amounts or years.
CODE_PATTERNS = (Pattern("digit groups", r"(?<![\w-])\d{3,6}(?:[- ]\d{3,6}){2,5}(?![\w-])", 0.6),
                 Pattern("long number", r"(?<![\w-])\d{8,19}(?![\w-])", 0.5))
SECRET_ENTITIES = ("PHONE_NUMBER", "ACCOUNT_ID", "CREDIT_CARD", "IBAN_CODE", "US_SSN", SECRET_CODE)


@dataclass(frozen=True)
class SecretSpanFound:
    """A secret's character offsets [start, end) in its text, and the Presidio entity that found it."""

    start: int
    end: int
    entity: str


class SecretFinder:
    """Presidio over texts, for the spans worth an exposure test; overlapping spans keep the longest."""

    def __init__(self, spacy_model: str | None = None, score_threshold: float = 0.4):
        from presidio_analyzer.predefined_recognizers import CreditCardRecognizer

        self._engine = nlp_engine(spacy_model)
        recognizers = [CandidatePhoneRecognizer(), AccountIdRecognizer(), CreditCardRecognizer(),
                       PrefilteredIbanRecognizer(), PrefilteredUsSsnRecognizer(),
                       PatternRecognizer(supported_entity=SECRET_CODE, patterns=list(CODE_PATTERNS))]
        registry = RecognizerRegistry(recognizers=recognizers, supported_languages=[LANGUAGE])
        self._analyzer = AnalyzerEngine(registry=registry, nlp_engine=self._engine, supported_languages=[LANGUAGE],
                                        default_score_threshold=score_threshold)

    def find(self, texts: Sequence[str]) -> list[list[SecretSpanFound]]:
        """The secret spans of each text, in order of position."""
        out = []
        for text, artifacts in self._engine.process_batch(list(texts), LANGUAGE):
            found = self._analyzer.analyze(text, LANGUAGE, entities=list(SECRET_ENTITIES), nlp_artifacts=artifacts)
            spans: list[SecretSpanFound] = []
            for item in sorted(found, key=lambda r: (-(r.end - r.start), r.start)):
                if any(item.start < s.end and s.start < item.end for s in spans):
                    continue
                if any(ch.isdigit() for ch in text[item.start:item.end]):
                    spans.append(SecretSpanFound(item.start, item.end, item.entity_type))
            out.append(sorted(spans, key=lambda s: s.start))
        return out
