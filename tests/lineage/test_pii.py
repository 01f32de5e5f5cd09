import dataclasses
import logging
import re
import socket
import threading
import time
import warnings

import pytest
import spacy
import tldextract
from presidio_analyzer import RecognizerResult
from presidio_analyzer import predefined_recognizers as predefined

from lethe.demo.corpus import generate_corpus
from lineage.keys import SubjectKeyer
from lineage.pii import BLANK, Mention, PiiEngineError, PiiScanner, ScanResult
from lineage.pii import engine as pii_engine
from lineage.pii import recognizers as pii_recognizers

PEPPER = bytes(range(32))
FIELDS = {"email": "email", "phone": "phone", "account": "account_id", "name": "name"}
KNOWN = [("email", "ada.lovelace@example.com"), ("phone", "+1-202-555-0142"), ("account", "ACC-12345678"),
         ("name", "Ada Lovelace"), ("name", "Zoë Brontë")]


@pytest.fixture(scope="module")
def keyer() -> SubjectKeyer:
    return SubjectKeyer(PEPPER)


@pytest.fixture(scope="module")
def corpus():
    return generate_corpus(customers=300, seed=11)


def known_of(customers) -> list[tuple[str, str]]:
    return [(kind, c[field]) for c in customers for kind, field in FIELDS.items()]


@pytest.fixture(scope="module")
def scanner(keyer, corpus) -> PiiScanner:
    return PiiScanner(keyer, known_of(corpus.truth["customers"]), spacy_model=BLANK)


@pytest.fixture(scope="module")
def scanned(scanner, corpus) -> dict[str, ScanResult]:
    results = scanner.scan([r["text"] for r in corpus.records])
    return {r["id"]: result for r, result in zip(corpus.records, results)}


def keys(result: ScanResult, kind: str | None = None) -> set[str]:
    return {m.key for m in result.mentions if kind is None or m.kind == kind}


@pytest.mark.parametrize("kind", ["email", "phone", "account", "name"])
def test_owner_identifiers_in_their_tickets_are_found(kind, keyer, corpus, scanned):
    checked = 0
    for record in corpus.records:
        value = record["subject"][FIELDS[kind]]
        if value in record["text"]:
            checked += 1
            assert keyer.key(kind, value) in keys(scanned[record["id"]], kind), record["id"]
    assert checked >= 50  # the corpus puts every kind in many tickets


@pytest.mark.parametrize("kind", ["email", "name"])
def test_the_other_customer_in_mention_records_is_found(kind, keyer, corpus, scanned):
    assert len(corpus.truth["mentions"]) >= 5
    for mention in corpus.truth["mentions"]:
        other = corpus.truth["customers"][mention["mentioned_customer"]]
        assert keyer.key(kind, other[FIELDS[kind]]) in keys(scanned[mention["record_id"]], kind), mention


def test_mentioned_emails_are_found_without_deny_lists(keyer, corpus):
    bare = PiiScanner(keyer, spacy_model=BLANK)
    mentions = corpus.truth["mentions"]
    texts = {r["id"]: r["text"] for r in corpus.records}
    results = bare.scan([texts[m["record_id"]] for m in mentions])
    for mention, result in zip(mentions, results):
        other = corpus.truth["customers"][mention["mentioned_customer"]]
        assert keyer.key("email", other["email"]) in keys(result, "email"), mention


@pytest.mark.parametrize("text", [
    "Hello, my order arrived late and the box was damaged. Could you help?",
    "The invoice for March 3 shows $42.10 but my Pro plan should cost less.",
    "Our integration returns HTTP 502 since Tuesday; order ORD-004211, tracking TRK0012345678.",
    "",
])
def test_a_clean_text_has_no_mentions(text, scanner):
    (result,) = scanner.scan([text])
    assert result.mentions == () and result.entity_counts == {}


@pytest.mark.parametrize("text, kind", [
    ("Please check ACC-1234567 today.", "account"),           # seven digits
    ("Please check ACC-123456789 today.", "account"),         # nine digits
    ("Please check ACC12345678X today.", "account"),
    ("Write to ada.lovelace@localhost please.", "email"),      # no public suffix
    ("Write to ada.lovelace at example dot com.", "email"),
    ("My recovery code is 1234-5678-9012.", "phone"),
    ("Call 555-0142 after lunch.", "phone"),                   # no area code
    ("The total was $202.55 for 3 items.", "phone"),
    ("Ada Lovelaces called twice.", "name"),                   # another token
    ("Ada and Lovelace are two of our cats.", "name"),
])
def test_near_misses_are_not_mentions(text, kind, scanner_with_ada):
    (result,) = scanner_with_ada.scan([text])
    assert not keys(result, kind), result


@pytest.fixture(scope="module")
def scanner_with_ada(keyer) -> PiiScanner:
    return PiiScanner(keyer, KNOWN, spacy_model=BLANK)


@pytest.mark.parametrize("text, kind, value", [
    ("Reach me at (202) 555-0142.", "phone", "(202) 555-0142"),
    ("Reach me at +1-202-555-0142.", "phone", "+1-202-555-0142"),
    ("UK office: +44 20 7946 0958", "phone", "+44 20 7946 0958"),
    ("account acc-12345678, thanks", "account", "ACC-12345678"),
    ("ADA LOVELACE wrote: hi", "name", "ada lovelace"),
    ("Ada Lovelace's order is late", "name", "Ada Lovelace"),
    ("Zoe\u0308 Bronte\u0308 wrote", "name", "Zoë Brontë"),          # decomposed accents
    ("mail Ada.Lovelace@Example.com.", "email", "ada.lovelace@example.com"),
    ("mail (someone.else@example.org)", "email", "someone.else@example.org"),
])
def test_spellings_in_context_key_like_the_identifier(text, kind, value, keyer, scanner_with_ada):
    (result,) = scanner_with_ada.scan([text])
    assert keyer.key(kind, value) in keys(result, kind), result


@pytest.mark.parametrize("text, entity", [
    ("Card 4111 1111 1111 1111 was charged twice.", "CREDIT_CARD"),
    ("Pay to GB82 WEST 1234 5698 7654 32 please.", "IBAN_CODE"),
    ("Logins came from 203.0.113.7 last night.", "IP_ADDRESS"),
    ("Logins came from 2001:db8::ff00:42:8329 last night.", "IP_ADDRESS"),
])
def test_other_pii_is_counted_but_names_no_subject(text, entity, scanner):
    (result,) = scanner.scan([text])
    assert result.entity_counts.get(entity) == 1 and result.mentions == (), result


@pytest.mark.parametrize("text, expected_len", [
    ("my ssn is 536221234", 1),          # a very weak pattern, lifted over the threshold by context
    ("order 536221234 is late", 0),      # the same digits without context stay below it
])
def test_context_words_lift_weak_results(text, expected_len, scanner):
    (result,) = scanner.scan([text])
    assert result.entity_counts.get("US_SSN", 0) == expected_len


EXTRA_TEXTS = ["Card 4111 1111 1111 1111", "GB82 WEST 1234 5698 7654 32", "gb82west12345698765432",
               "from 203.0.113.7 and 2001:db8::ff00:42:8329", "ssn 536-22-1234 or 536 22 1234 or 536221234",
               "zip 12345-6789, ref 123-456789", "mail ada@example.com"]


@pytest.mark.parametrize("ours, stock", [
    (pii_recognizers.OfflineEmailRecognizer, predefined.EmailRecognizer),
    (pii_recognizers.PrefilteredIpRecognizer, predefined.IpRecognizer),
    (pii_recognizers.PrefilteredIbanRecognizer, predefined.IbanRecognizer),
    (pii_recognizers.PrefilteredUsSsnRecognizer, predefined.UsSsnRecognizer),
])
def test_prefilters_only_skip_texts_without_matches(ours, stock, corpus, no_network, monkeypatch):
    # The stock email recognizer calls tldextract.extract, which would fetch the suffix list.
    monkeypatch.setattr(tldextract, "extract", pii_recognizers.offline_tld_extractor())
    texts = [r["text"] for r in corpus.records] + EXTRA_TEXTS
    spans = lambda recognizer: [[(r.entity_type, r.start, r.end, r.score)  # noqa: E731
                                 for r in recognizer.analyze(t, recognizer.supported_entities)] for t in texts]
    found = spans(ours())
    assert found == spans(stock()) and any(found)
    assert no_network == []


def test_mentions_are_distinct_per_text(keyer, scanner_with_ada):
    (result,) = scanner_with_ada.scan(["Ada Lovelace (ada.lovelace@example.com), again: Ada Lovelace, "
                                       "ADA.LOVELACE@example.com"])
    assert len(result.mentions) == len({(m.kind, m.key) for m in result.mentions}) == 2
    assert result.entity_counts == {"EMAIL_ADDRESS": 2, "PERSON": 2}


def test_junk_spans_are_counted_not_keyed(scanner):
    result = scanner._result("1234 is short", [RecognizerResult("PHONE_NUMBER", 0, 4, 0.9)])
    assert result.mentions == () and result.entity_counts == {"PHONE_NUMBER": 1}


def test_results_carry_keys_never_raw_identifiers(corpus, scanned, scanner):
    assert [f.name for f in dataclasses.fields(Mention)] == ["kind", "key", "entity"]
    assert [f.name for f in dataclasses.fields(ScanResult)] == ["mentions", "entity_counts"]
    raw = {c[field] for c in corpus.truth["customers"] for field in FIELDS.values()}
    shown = repr(list(scanned.values())) + repr(scanner)
    assert not [value for value in raw if value in shown or value.lower() in shown]
    for result in scanned.values():
        for m in result.mentions:
            assert re.fullmatch(r"[0-9a-f]{64}", m.key) and m.kind in FIELDS


def test_order_and_batching_do_not_change_results(corpus, scanner, scanned):
    records = corpus.records[:40]
    small = scanner.scan([r["text"] for r in records], batch_size=3)
    assert small == [scanned[r["id"]] for r in records]
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        scanner.scan(["fine", None])


@pytest.fixture
def no_network(monkeypatch) -> list[tuple]:
    """Every outbound connection attempt made by this test's thread is recorded and refused.

    Other threads pass through untouched: the session's Neo4j servers start in a background
    thread (tests/neo4j_servers.py) and poll their own port while these tests run; the code under
    test here runs on the test's thread.
    """
    attempts: list[tuple] = []
    test_thread = threading.get_ident()

    def refusing(original):
        def refuse(*args, **kwargs):
            if threading.get_ident() != test_thread:
                return original(*args, **kwargs)
            attempts.append(args[1:] or args)
            raise OSError("network disabled by test")
        return refuse

    for owner, name in ((socket.socket, "connect"), (socket.socket, "connect_ex"), (socket, "getaddrinfo")):
        monkeypatch.setattr(owner, name, refusing(getattr(owner, name)))
    monkeypatch.setattr(spacy.cli, "download", refusing(spacy.cli.download))
    return attempts


def test_a_fresh_engine_scans_with_sockets_blocked_and_quietly(keyer, no_network, caplog, capsys):
    # Rebuild everything that is cached, so the suffix list and the pipeline load under the block.
    pii_engine._engine_for.cache_clear()
    pii_recognizers.offline_tld_extractor.cache_clear()
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        started = time.monotonic()
        scanner = PiiScanner(keyer, KNOWN)
        (result,) = scanner.scan(["I'm Ada Lovelace, mail ada.lovelace@example.com or call +1-202-555-0142."])
        elapsed = time.monotonic() - started
    assert {m.kind for m in result.mentions} == {"name", "email", "phone"}
    assert no_network == []
    assert elapsed < 30  # no waiting on a time-out
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert capsys.readouterr() == ("", "")


def test_building_again_reuses_the_pipeline_and_is_cheap(keyer, corpus):
    known = known_of(corpus.truth["customers"])
    first = PiiScanner(keyer, known, spacy_model=BLANK)
    started = time.perf_counter()
    second = PiiScanner(keyer, known, spacy_model=BLANK)
    elapsed = time.perf_counter() - started
    assert second._engine is first._engine is pii_engine.nlp_engine(BLANK)
    assert pii_recognizers.offline_tld_extractor() is pii_recognizers.offline_tld_extractor()
    assert second.deny_list_size == first.deny_list_size >= 1000
    assert elapsed < 2.0, elapsed  # deny lists of 1,200 identifiers, pipeline and suffix list cached


def test_a_missing_model_is_refused_never_downloaded(keyer, no_network):
    with pytest.raises(PiiEngineError, match="en_core_web_nonexistent.*never downloads"):
        PiiScanner(keyer, spacy_model="en_core_web_nonexistent")
    assert no_network == []


def test_without_an_installed_model_the_blank_pipeline_is_used(keyer, monkeypatch):
    monkeypatch.setattr(spacy.util, "is_package", lambda name: False)
    assert PiiScanner(keyer).spacy_pipeline == BLANK


def test_an_installed_model_adds_its_person_entities(keyer, monkeypatch, caplog):
    def fake_model(name, **kwargs):  # a stand-in for en_core_web_sm: a rule-based "ner"
        nlp = spacy.blank("en")
        ruler = nlp.add_pipe("entity_ruler", name="ner")
        ruler.add_patterns([{"label": "PERSON", "pattern": "Grace Hopper"},
                            {"label": "ORG", "pattern": "Acme"}])
        return nlp

    monkeypatch.setattr(spacy.util, "is_package", lambda name: name == "en_core_web_sm")
    monkeypatch.setattr(spacy, "load", fake_model)
    pii_engine._engine_for.cache_clear()
    try:
        scanner = PiiScanner(keyer, KNOWN)
        caplog.set_level(logging.WARNING)
        (result,) = scanner.scan(["Grace Hopper from Acme asked about Ada Lovelace's account."])
    finally:
        pii_engine._engine_for.cache_clear()
    assert scanner.spacy_pipeline == "en_core_web_sm"
    assert keys(result, "name") == {keyer.key("name", "Grace Hopper"), keyer.key("name", "Ada Lovelace")}
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "ORGANIZATION" not in result.entity_counts and warnings == []


@pytest.mark.parametrize("known, error", [
    ([("passport", "X123")], ValueError),
    ([("email", 42)], TypeError),
])
def test_bad_known_identifiers_are_refused(known, error, keyer):
    with pytest.raises(error):
        PiiScanner(keyer, known, spacy_model=BLANK)


def test_unusable_known_identifiers_are_skipped(keyer):
    scanner = PiiScanner(keyer, [("email", "not-an-email"), ("phone", "12"), ("name", "Ada Lovelace")],
                         spacy_model=BLANK)
    assert (scanner.deny_list_size, scanner.known_skipped) == (1, 2)


def test_aliases_of_a_known_identifier_are_reported_under_its_key(keyer):
    key = keyer.key("name", "Orla Maeve Brennan-Quist")
    scanner = PiiScanner(keyer, known=[("name", "Orla Maeve Brennan-Quist")],
                         aliases=[("name", "Orla Brennan-Quist", key), ("name", "Brennan-Quist Orla", key)])
    texts = ["Writing for Orla Brennan-Quist today.", "brennan-quist orla called", "Orla Quist called"]
    assert [[m.key for m in r.mentions] for r in scanner.scan(texts)] == [[key], [key], []]
    assert "Brennan" not in repr(scanner)
