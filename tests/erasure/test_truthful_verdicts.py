"""Truthful verdicts on a corpus of our own making (tests/erasure/planted_corpus.py), end to end on the real
Neo4j, Dagster pipeline, peft adapters, Presidio and FAISS.

Four requests filed by email only and run together (one remedy): a person whose name, account number and
code another customer's ticket restates in forms no built-in recognizer knows; the same with that ticket
excluded by a reviewer; a person one of whose tickets another customer copied; and a person whose own
records arrived after training while a trained ticket names them.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from attestation import KeyRegistry, verify_bundle
from lethe.demo.corpus import write_jsonl
from erasure.engine import EngineOptions, file_and_scope, review_scope, run_requests, step_results
from erasure.requests import ErasureIntake
from lineage.content_store import ContentStore
from lineage.pii.identity_match import NeedleSet, identifier_needles, secret_needle
from lethe.wiring import erasure_context
from tests.erasure.planted_corpus import planted_corpus
from tests.pipeline_support import materialized_pipeline

# Few epochs: what is tested here is the scope, the sweeps and the verdicts, not memorization.
TRAIN_CONFIG = {"ops": {"fine_tune": {"config": {"epochs": 3}}, "shards": {"config": {"holdout_fraction": 0.25}},
                        "deployment": {"config": {"form": "fp32"}}}}


@pytest.fixture(scope="module")
def corpus():
    return planted_corpus()


def _intake(person: dict, key: str) -> ErasureIntake:
    return ErasureIntake.model_validate({"identifiers": {"email": person["email"]}, "regime": "gdpr",
                                         "received_at": datetime.now(timezone.utc), "requester": "legal-team",
                                         "idempotency_key": key})


def _ingest_late(settings, graph, records: list[dict]) -> None:
    """The late person's tickets arrive after training: a new batch file, ingested, in no dataset version."""
    from lethe import wiring
    from lethe.ingestion import ingest_file
    from lineage.record_batch import parse_jsonl

    path = settings.record_batches_dir / "batch-3.jsonl"
    write_jsonl(records, path)
    batch = parse_jsonl(path.read_bytes(), wiring.subject_keyer(settings))
    content = wiring.content_store(settings)
    ingest_file(batch, graph, content)
    content.close()


@pytest.fixture(scope="module")
def erased(tmp_path_factory, neo4j_server, session_graph, tiny_base_model, corpus):
    """File the four requests by email only (one held for review, which excludes the restating ticket), run
    them as one run; yields the pipeline, the requests by role and their outcomes."""
    with materialized_pipeline(tmp_path_factory.mktemp("truthful-state"), neo4j_server, session_graph,
                               tiny_base_model, corpus, TRAIN_CONFIG) as pipeline:
        settings, graph = pipeline["settings"], pipeline["graph"]
        _ingest_late(settings, graph, corpus.truth["late"]["records"])
        people = {**corpus.truth["planted"], "late": corpus.truth["late"]}
        requests = {}
        for role, person in people.items():
            request, _ = file_and_scope(erasure_context(settings, graph), _intake(person, f"case-{role}"), review=role == "excluded")
            requests[role] = request
        filed_scopes = {role: step_results(settings.state_dir, r.id).result_document("scope") for role, r in requests.items()}
        look_alikes = [r["id"] for r in filed_scopes["excluded"]["records"] if r["decision"] == "excluded_borderline"]
        review_scope(erasure_context(settings, graph), requests["excluded"].id, [], [people["excluded"]["other"], *look_alikes])
        # The relearning check is tested in test_engine and test_served_forms, extraction by generation in
        # test_engine and test_generation_probes (here it runs on a quarter of the budget); the subject is the scope.
        options = EngineOptions(relearn=False, relearn_off_reason="test of scope, sweeps and verdicts",
                                generation_budget=256)
        outcomes = run_requests(erasure_context(settings, graph), [r.id for r in requests.values()], options)
        yield {**pipeline, "people": people, "requests": requests, "filed_scopes": filed_scopes,
               "outcomes": dict(zip(requests, outcomes))}


def _scope_row(scope: dict, record_id: str) -> dict:
    return next(r for r in scope["records"] if r["id"] == record_id)


def _needles(person: dict) -> NeedleSet:
    """The person's identifiers and code, found in any format (as the sweep finds them)."""
    needles = [n for kind, field in (("email", "email"), ("phone", "phone"), ("account", "account_id"),
                                     ("name", "name")) for n in identifier_needles(kind, person[field], None)]
    return NeedleSet([*needles, secret_needle(person["code"])])


def test_the_identity_is_resolved_from_an_email_alone(erased):
    steps = step_results(erased["settings"].state_dir, erased["requests"]["restated"].id)
    identity = steps.result_document("identity")
    by_kind = {i["kind"]: i for i in identity["identifiers"]}
    assert by_kind["email"]["decision"] == "given"
    for kind in ("name", "phone", "account"):  # the subject fields of the records the email owns
        assert by_kind[kind]["decision"] == "followed" and by_kind[kind]["hop"] == 1, by_kind[kind]
        assert by_kind[kind]["value_source"] in ("text", "batch_file")
        assert set(by_kind[kind]["linked_by"]) <= set(erased["people"]["restated"]["own"])
    dumped = json.dumps(identity)
    person = erased["people"]["restated"]
    assert not [v for v in (person["name"], person["phone"], person["account_id"]) if v in dumped]


def test_a_restatement_no_recognizer_knows_is_in_scope_and_the_verdict_is_erased(erased):
    person = erased["people"]["restated"]
    row = _scope_row(erased["filed_scopes"]["restated"], person["other"])
    assert row["decision"] == "included" and "mentioned" in row["reasons"], row
    assert {"account (resolved)", "name (resolved)"} <= set(row["identifiers"]), row
    outcome = erased["outcomes"]["restated"]
    assert outcome.verdict == {"status": "erased", "reasons": []}, outcome.verdict
    registry = KeyRegistry.load(erased["settings"].state_dir / "attestation" / "registry.json")
    report = verify_bundle(outcome.bundle.read_bytes(), registry)
    assert report.ok, report.to_json()
    predicate = report.statement.predicate
    assert predicate.sweeps.after.hits == [] and predicate.sweeps.after.texts_scanned > 0
    assert {"account", "name", "phone", "email"} <= set(predicate.sweeps.after.identifier_kinds)
    assert predicate.false_alarm_control.run_requests == 4


def test_no_text_lethe_keeps_holds_an_erased_persons_identifiers(erased):
    settings, graph = erased["settings"], erased["graph"]
    needles = {role: _needles(erased["people"][role]) for role in ("restated", "copied", "late")}
    content = ContentStore(settings.content_store_path)
    texts = {rid: text for chunk in content.iter_texts() for rid, text in chunk.items()}
    content.close()
    found = {role: sorted(rid for rid, text in texts.items() if n.find(text)) for role, n in needles.items()}
    assert found == {"restated": [], "copied": [], "late": []}, found
    files = [p for p in settings.state_dir.rglob("*") if p.is_file() and p.suffix not in (".safetensors", ".bin")
             and "dagster" not in p.parts]
    for path in files:
        text = path.read_bytes().decode("utf-8", errors="replace")
        hits = {role: [h.kind for h in n.find(text) if h.strong] for role, n in needles.items()}
        assert not any(hits.values()), (path, hits)
    dump = json.dumps(graph.read("MATCH (n) RETURN properties(n) AS p"), default=str)
    assert not any(h.strong for n in needles.values() for h in n.find(dump))


def test_a_reviewers_exclusion_leaves_residue_and_the_verdict_names_it(erased):
    person = erased["people"]["excluded"]
    assert _scope_row(erased["filed_scopes"]["excluded"], person["other"])["decision"] == "included"
    outcome = erased["outcomes"]["excluded"]
    assert outcome.verdict["status"] == "incomplete"
    assert any(person["other"] in reason and "reviewer" in reason for reason in outcome.verdict["reasons"]), \
        outcome.verdict
    steps = step_results(erased["settings"].state_dir, erased["requests"]["excluded"].id)
    hit = next(h for h in steps.result_document("sweep_after")["hits"] if h["record_id"] == person["other"])
    assert hit["disposition"] == "excluded_by_reviewer" and "training" in hit["places"] or "content_store" in hit["places"]


def test_a_near_verbatim_copy_under_another_owner_is_pulled_into_scope(erased):
    person = erased["people"]["copied"]
    row = _scope_row(erased["filed_scopes"]["copied"], person["other"])
    assert row["decision"] == "included" and "near_duplicate" in row["reasons"], row
    assert row["confirmation"] in ("near_verbatim", "rare_spans") and row["shared_spans"], row
    assert erased["outcomes"]["copied"].verdict["status"] == "erased"


def test_a_person_never_trained_on_is_said_so_with_the_adapters_that_read_about_them(erased):
    outcome = erased["outcomes"]["late"]
    registry = KeyRegistry.load(erased["settings"].state_dir / "attestation" / "registry.json")
    training = verify_bundle(outcome.bundle.read_bytes(), registry).statement.predicate.training
    assert training.never_trained and training.subject_records == 3 and training.not_in_any_run == 3
    assert training.adapters_trained_on_mentions  # the trained ticket that names her
    assert "Never trained" in outcome.report.read_text(encoding="utf-8")
    assert outcome.verdict["status"] == "erased"
