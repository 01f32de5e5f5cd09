"""PII scan throughput: PiiScanner (batched, tuned recognizers) versus naive per-record Presidio.

Records are demo-corpus support tickets. The deny lists hold every customer's email, phone and
account id, and their names topped up with made-up ones ("First X. Last") to --deny-names, as a
store-wide list would be. Measured: records_per_s = records / wall time of `PiiScanner.scan` over all
records (building the scanner is timed apart, as build_s). The baseline is what Presidio does out of
the box, offline: the same blank pipeline, the default recognizer registry plus PatternRecognizer
deny lists of the same identifiers and an ACC- pattern, and one `AnalyzerEngine.analyze` call per
record over a sample of --naive-records; ratio_vs_naive compares the two records/s (wall time), and
cpu_ratio_vs_naive the CPU seconds per record, which a busy neighbour distorts less. The deny-list
matchers are also timed alone on the sample (µs per record): spaCy's PhraseMatcher, as used here,
against Presidio's single regex alternation.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time

from lethe.demo.corpus import FIRST_NAMES, LAST_NAMES, MAX_CUSTOMERS, generate_corpus
from lineage.keys import SubjectKeyer

BENCH_PEPPER = hashlib.sha256(b"lethe-bench-pepper").digest()
FIELDS = {"email": "email", "phone": "phone", "account": "account_id", "name": "name"}
RECORDS_PER_CUSTOMER = 3.3  # what generate_corpus makes on average with its default fractions


def progress(message: str) -> None:
    """One line of progress on stderr (stdout carries only the figures)."""
    print(message, file=sys.stderr, flush=True)


def corpus_texts(records: int, seed: int) -> tuple[list[str], list[tuple[str, str]]]:
    """About `records` ticket texts (cut to exactly that many) and their customers' identifiers."""
    customers = max(2, min(MAX_CUSTOMERS, round(records / RECORDS_PER_CUSTOMER) + 1))
    corpus = generate_corpus(customers=customers, seed=seed)
    texts = [r["text"] for r in corpus.records]
    while len(texts) < records:  # past MAX_CUSTOMERS: repeat, as a busy helpdesk would
        texts += texts[:records - len(texts)]
    known = [(kind, c[field]) for c in corpus.truth["customers"] for kind, field in FIELDS.items()]
    return texts[:records], known


def padded_names(known: list[tuple[str, str]], names: int) -> list[tuple[str, str]]:
    """`known` plus made-up names until the deny list holds `names` distinct names."""
    have = {value for kind, value in known if kind == "name"}
    extra = (f"{first} {initial}. {last}" for initial in "ABCDEFGHJKLMNPRSTW"
             for first in FIRST_NAMES for last in LAST_NAMES)
    padding = []
    for name in extra:
        if len(have) + len(padding) >= names:
            break
        padding.append(("name", name))
    return known + padding


def naive_analyzer(known: list[tuple[str, str]]):
    """Presidio as it comes (offline): default registry, stock deny lists, an account-id pattern."""
    from presidio_analyzer import AnalyzerEngine, PatternRecognizer

    from lineage.pii.engine import BLANK, LANGUAGE, nlp_engine, predefined_registry
    from lineage.pii.recognizers import AccountIdRecognizer
    from lineage.pii.scanner import KIND_ENTITIES

    engine = nlp_engine(BLANK)
    registry = predefined_registry(engine)
    registry.add_recognizer(AccountIdRecognizer())
    for kind, entity in KIND_ENTITIES.items():
        values = sorted({value for k, value in known if k == kind.value})
        registry.add_recognizer(PatternRecognizer(supported_entity=entity, deny_list=values,
                                                  name=f"deny {entity}"))
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=[LANGUAGE])


def deny_list_cost(scanner, known: list[tuple[str, str]], texts: list[str]) -> dict[str, float]:
    """µs per record of the deny-list matchers alone: PhraseMatcher (ours) and Presidio's regex."""
    from presidio_analyzer import PatternRecognizer

    from lineage.pii.recognizers import KnownIdentifierRecognizer

    ours = next(r for r in scanner._analyzer.registry.recognizers if isinstance(r, KnownIdentifierRecognizer))
    names = sorted({value for kind, value in known if kind == "name"})
    regex = PatternRecognizer(supported_entity="PERSON", deny_list=names)
    docs = [scanner._engine.pipeline.make_doc(text) for text in texts]

    def per_record(run) -> float:
        started = time.perf_counter()
        run()
        return round((time.perf_counter() - started) / len(texts) * 1e6, 1)

    return {"deny_list_phrase_matcher_us": per_record(lambda: [ours._matcher(doc) for doc in docs]),
            "deny_list_presidio_regex_us": per_record(lambda: [regex.analyze(t, ["PERSON"]) for t in texts])}


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print progress to stderr and the figures as one JSON line on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--naive-records", type=int, default=500)
    parser.add_argument("--deny-names", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--spacy-model", default="blank", help='"blank", a model name, or "auto"')
    args = parser.parse_args(argv)
    if args.records < 1 or args.naive_records < 1:
        parser.error("--records and --naive-records must be >= 1")

    progress("importing presidio (it imports transformers and torch when they are installed) ...")
    from lineage.pii import PiiScanner

    texts, known = corpus_texts(args.records, args.seed)
    known = padded_names(known, args.deny_names)
    keyer = SubjectKeyer(BENCH_PEPPER)
    started = time.perf_counter()
    scanner = PiiScanner(keyer, known, spacy_model=None if args.spacy_model == "auto" else args.spacy_model)
    build_s = time.perf_counter() - started
    progress(f"{scanner!r} built in {build_s:.2f}s; scanning {len(texts)} records ...")
    scanner.scan(texts[:50])  # first-call costs (regex compilation) are not throughput
    wall, cpu = time.perf_counter(), time.process_time()
    results = scanner.scan(texts, batch_size=args.batch_size)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    progress(f"scanned {len(texts)} records in {wall:.2f}s wall, {cpu:.2f}s CPU")

    sample = texts[:args.naive_records]
    naive = naive_analyzer(known)
    for text in sample[:50]:
        naive.analyze(text, language="en")
    progress(f"naive baseline: one AnalyzerEngine.analyze per record over {len(sample)} records ...")
    naive_wall, naive_cpu = time.perf_counter(), time.process_time()
    for text in sample:
        naive.analyze(text, language="en")
    naive_wall, naive_cpu = time.perf_counter() - naive_wall, time.process_time() - naive_cpu

    records_per_s = len(texts) / wall
    naive_per_s = len(sample) / naive_wall
    figures = {
        "records": len(texts), "records_per_s": round(records_per_s, 1),
        "cpu_records_per_s": round(len(texts) / cpu, 1), "build_s": round(build_s, 3),
        "naive_records": len(sample), "naive_records_per_s": round(naive_per_s, 1),
        "ratio_vs_naive": round(records_per_s / naive_per_s, 2),
        # CPU seconds per record, which another busy process on the machine distorts less than wall time.
        "cpu_ratio_vs_naive": round((naive_cpu / len(sample)) / (cpu / len(texts)), 2),
        "deny_list_size": scanner.deny_list_size,
        "deny_list_names": len({value for kind, value in known if kind == "name"}),
        "spacy_pipeline": scanner.spacy_pipeline,
        "mean_words": round(sum(len(t.split()) for t in texts) / len(texts), 1),
        "mentions": sum(len(r.mentions) for r in results),
        **deny_list_cost(scanner, known, sample),
    }
    print(json.dumps(figures, sort_keys=True), flush=True)
    return figures


if __name__ == "__main__":
    main()
