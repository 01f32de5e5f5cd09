"""Presidio's NLP side built offline: an installed spaCy pipeline or a blank one, never a download."""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Iterator, Mapping

import spacy
from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerRegistry, RecognizerResult
from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import CreditCardRecognizer, EmailRecognizer
from spacy.attrs import IDX, LEMMA, LOWER
from spacy.language import Language
from spacy.tokens import Doc

from lineage.errors import LineageError
from lineage.pii.recognizers import (
    AccountIdRecognizer,
    CandidatePhoneRecognizer,
    KnownIdentifierRecognizer,
    OfflineEmailRecognizer,
    PrefilteredIbanRecognizer,
    PrefilteredIpRecognizer,
    PrefilteredUsSsnRecognizer,
)

BLANK = "blank"
LANGUAGE = "en"
# Tried in order when no model is named: the small one first, because throughput matters more
# here than NER recall (known names are found by deny lists anyway).
INSTALLED_MODELS = ("en_core_web_sm", "en_core_web_md", "en_core_web_lg")
# NER labels kept from a full model; every other label is ignored up front, so Presidio neither
# returns it nor logs "not mapped" warnings for each document.
KEPT_NER_LABELS = frozenset({"PERSON", "PER"})
LOWER_LEMMA = "lethe_lower_lemma"


class PiiEngineError(LineageError):
    """The PII engine cannot be built as configured (for example, a named spaCy model is missing)."""


@Language.component(LOWER_LEMMA)
def _lower_lemma(doc: Doc) -> Doc:
    """Lowercase forms as lemmas, so Presidio's context words ("phone", "email") work without a lemmatizer."""
    doc.from_array([LEMMA], doc.to_array([LOWER]))  # one array copy; a Python loop costs 10x more
    return doc


class BelowThresholdContextEnhancer(LemmaContextAwareEnhancer):
    """Presidio's lemma context enhancer, given only the results below the score threshold."""

    def __init__(self, score_threshold: float):
        super().__init__()
        self.score_threshold = score_threshold

    def enhance_using_context(self, text: str, raw_results: list[RecognizerResult],
                              nlp_artifacts: NlpArtifacts, recognizers: list[EntityRecognizer],
                              context: list[str] | None = None) -> list[RecognizerResult]:
        """Enhance the results that context words could lift over the threshold; keep the rest as they are."""
        # Context only ever raises a score and the scanner keeps pass/fail, not scores: a result at or
        # above the threshold passes either way. The base class deep-copies every result and walks
        # the tokens around each, which was a third of the analysis time.
        low = [r for r in raw_results if r.score < self.score_threshold]
        if not low:
            return list(raw_results)
        return ([r for r in raw_results if r.score >= self.score_threshold]
                + super().enhance_using_context(text, low, nlp_artifacts, recognizers, context))


class LazyKeywordsNlpArtifacts(NlpArtifacts):
    """NlpArtifacts whose keywords (two vocab lookups per token) are computed only when asked for."""

    def __init__(self, *, language: str, **kwargs):
        self._language, self._keywords = language, None
        super().__init__(language=language, **kwargs)

    @staticmethod
    def set_keywords(nlp_engine, lemmas: list[str], language: str) -> None:
        """Defer: most texts never need keywords, because context runs only on results below the threshold."""
        return None

    @property
    def keywords(self) -> list[str]:
        """Lemmas that are neither stop words nor punctuation, as the base class computes them."""
        if self._keywords is None:
            self._keywords = NlpArtifacts.set_keywords(self.nlp_engine, self.lemmas, self._language)
        return self._keywords

    @keywords.setter
    def keywords(self, value: list[str] | None) -> None:
        self._keywords = value


class PreloadedSpacyNlpEngine(SpacyNlpEngine):
    """A SpacyNlpEngine around a pipeline built by the caller; `load` never reaches spacy.cli.download."""

    def __init__(self, pipeline: Language, pipeline_name: str,
                 ner_model_configuration: NerModelConfiguration):
        super().__init__(models=[{"lang_code": LANGUAGE, "model_name": pipeline_name}],
                         ner_model_configuration=ner_model_configuration)
        self.pipeline, self.pipeline_name = pipeline, pipeline_name
        self.load()

    def load(self) -> None:
        """Use the given pipeline (the base class would download a missing model here)."""
        self.nlp = {LANGUAGE: self.pipeline}

    def process_batch(self, texts: Iterable[str], language: str, batch_size: int = 1, n_process: int = 1,
                      as_tuples: bool = False) -> Iterator[tuple[str, NlpArtifacts]]:
        """(text, artifacts) per text via nlp.pipe; the base class re-joins every doc's tokens instead."""
        if as_tuples:
            yield from super().process_batch(texts, language, batch_size, n_process, as_tuples=True)
            return
        texts = [str(text) for text in texts]
        docs = self.nlp[language].pipe(texts, batch_size=batch_size, n_process=n_process)
        for text, doc in zip(texts, docs):
            yield text, self._doc_to_nlp_artifact(doc, language)

    def _doc_to_nlp_artifact(self, doc: Doc, language: str) -> NlpArtifacts:
        """The base class's artifacts, with lemmas and offsets read as arrays (not a Token per word)."""
        strings = doc.vocab.strings
        entities, scores = self._get_updated_entities(self._get_entities(doc),
                                                      self._get_scores_for_entities(doc))
        lemmas = [strings[h] for h in doc.to_array(LEMMA).tolist()]
        offsets = doc.to_array(IDX).tolist()
        return LazyKeywordsNlpArtifacts(entities=entities, tokens=doc, tokens_indices=offsets, lemmas=lemmas,
                                        nlp_engine=self, language=language, scores=scores)

    @property
    def has_ner(self) -> bool:
        """Whether the pipeline finds named entities (a blank one does not)."""
        return "ner" in self.pipeline.pipe_names


def resolve_model(spacy_model: str | None) -> str:
    """The pipeline to use: the one named, else the first installed English model, else "blank"."""
    if spacy_model is None:
        return next((name for name in INSTALLED_MODELS if spacy.util.is_package(name)), BLANK)
    if spacy_model == BLANK or spacy.util.is_package(spacy_model):
        return spacy_model
    raise PiiEngineError(
        f"spaCy model {spacy_model!r} is not installed, and Lethe never downloads models. Install its "
        f"wheel with pip (e.g. `pip install {spacy_model}-<version>-py3-none-any.whl`), or pass "
        f"spacy_model={BLANK!r} (pattern and deny-list recognizers only) or None (auto-detect)."
    )


def nlp_engine(spacy_model: str | None = None) -> PreloadedSpacyNlpEngine:
    """The Presidio NLP engine for a pipeline name (see `resolve_model`), built once per process."""
    return _engine_for(resolve_model(spacy_model))


@functools.lru_cache(maxsize=4)
def _engine_for(name: str) -> PreloadedSpacyNlpEngine:
    """Load (or create blank) one pipeline; cached because loading a model takes seconds."""
    if name == BLANK:
        pipeline = spacy.blank(LANGUAGE)
        pipeline.add_pipe(LOWER_LEMMA)
        ignored: set[str] = set()
    else:
        # The parser only splits sentences, which Presidio does not need.
        pipeline = spacy.load(name, exclude=["parser", "senter"])
        labels = pipeline.get_pipe("ner").labels if "ner" in pipeline.pipe_names else ()
        ignored = set(labels) - KEPT_NER_LABELS
    config = NerModelConfiguration(labels_to_ignore=sorted(ignored))
    return PreloadedSpacyNlpEngine(pipeline, name, config)


def predefined_registry(engine: PreloadedSpacyNlpEngine) -> RecognizerRegistry:
    """Presidio's default recognizers for English, with the email recognizer swapped for the offline one."""
    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    registry.load_predefined_recognizers(languages=[LANGUAGE], nlp_engine=engine)
    registry.recognizers = [r for r in registry.recognizers if not isinstance(r, EmailRecognizer)]
    registry.add_recognizer(OfflineEmailRecognizer())
    return registry


def build_analyzer(engine: PreloadedSpacyNlpEngine, deny_lists: Mapping[str, Collection[str]],
                   score_threshold: float) -> AnalyzerEngine:
    """An AnalyzerEngine with the project's recognizers, the deny lists, and NER if the pipeline has it."""
    recognizers = [OfflineEmailRecognizer(), CandidatePhoneRecognizer(), AccountIdRecognizer(),
                   CreditCardRecognizer(), PrefilteredIbanRecognizer(), PrefilteredIpRecognizer(),
                   PrefilteredUsSsnRecognizer()]
    if any(deny_lists.values()):
        recognizers.append(KnownIdentifierRecognizer(engine.pipeline, deny_lists))
    registry = RecognizerRegistry(recognizers=recognizers, supported_languages=[LANGUAGE])
    if engine.has_ner:
        registry.add_nlp_recognizer(nlp_engine=engine)
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=[LANGUAGE],
                          default_score_threshold=score_threshold,
                          context_aware_enhancer=BelowThresholdContextEnhancer(score_threshold))
