"""Tests for the deterministic synthetic demo corpus."""

from __future__ import annotations

import json
import re

import pytest

from lethe.demo.corpus import DemoCorpus, generate_corpus, write_jsonl

CANARY_FORMAT = r"\d{4}-\d{4}-\d{4}"
SETTINGS = [
    {},  # the defaults the demo uses
    {"customers": 2, "seed": 1},
    {"customers": 50, "seed": 3, "repeat_fraction": 0.2, "repeats": 3, "mention_fraction": 0.3,
     "canary_fraction": 0.5},
    {"customers": 30, "seed": 11, "repeat_fraction": 0.0, "mention_fraction": 0.0, "canary_fraction": 0.0},
    {"customers": 20, "seed": 5, "repeat_fraction": 1.0, "repeats": 1, "mention_fraction": 1.0,
     "canary_fraction": 1.0},
]


def _settings_id(settings: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in settings.items()) or "defaults"


@pytest.fixture(scope="module", params=SETTINGS, ids=_settings_id)
def corpus(request) -> DemoCorpus:
    return generate_corpus(**request.param)


def _by_id(corpus: DemoCorpus) -> dict[str, dict]:
    return {r["id"]: r for r in corpus.records}


def _owner(corpus: DemoCorpus) -> dict[str, int]:
    return {rid: c["index"] for c in corpus.truth["customers"] for rid in c["record_ids"]}


def test_same_arguments_give_identical_output(tmp_path):
    a, b = generate_corpus(customers=40, seed=9), generate_corpus(customers=40, seed=9)
    assert a == b
    write_jsonl(a.records, tmp_path / "a.jsonl")
    write_jsonl(b.records, tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_different_seed_differs():
    assert generate_corpus(customers=40, seed=1).records != generate_corpus(customers=40, seed=2).records


def test_records_have_required_fields(corpus):
    for r in corpus.records:
        assert set(r) == {"id", "subject", "text", "source", "created_at"}
        assert set(r["subject"]) == {"email", "phone", "account_id", "name"}
        assert all(isinstance(v, str) and v for v in r["subject"].values())
        assert r["source"] == "helpdesk"
        assert isinstance(r["text"], str) and 20 <= len(r["text"].split()) <= 80
        assert re.fullmatch(r"2025-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["created_at"])
        assert re.fullmatch(r"t-\d{6}", r["id"])


def test_ids_unique_and_in_stable_order(corpus):
    ids = [r["id"] for r in corpus.records]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert [r["created_at"] for r in corpus.records] == sorted(r["created_at"] for r in corpus.records)


def test_identifiers_are_fictitious_and_unique(corpus):
    customers = corpus.truth["customers"]
    for key in ("email", "phone", "account_id"):
        assert len({c[key] for c in customers}) == len(customers)
    for c in customers:
        assert re.fullmatch(r"[a-z]+\.[a-z]+\.\d+@example\.(com|org|net)", c["email"])
        assert re.fullmatch(r"\+1-\d{3}-555-01\d\d", c["phone"])
        assert re.fullmatch(r"ACC-\d{8}", c["account_id"])


def test_truth_matches_records(corpus):
    by_id, customers = _by_id(corpus), corpus.truth["customers"]
    owned = [rid for c in customers for rid in c["record_ids"]]
    assert sorted(owned) == sorted(by_id)  # every record has exactly one owner
    for c in customers:
        assert c["record_ids"]
        for rid in c["record_ids"]:
            subject = by_id[rid]["subject"]
            assert (subject["email"], subject["phone"], subject["account_id"], subject["name"]) == (
                c["email"], c["phone"], c["account_id"], c["name"])
    json.dumps(corpus.truth)  # must be JSON-serializable


def test_base_ticket_counts_and_identifiers_in_text(corpus):
    repeated = {rid for group in corpus.truth["repeated_record_ids"] for rid in group}
    paraphrase = corpus.truth["paraphrase"]["paraphrase_record_id"]
    by_id = _by_id(corpus)
    for c in corpus.truth["customers"]:
        base = [rid for rid in c["record_ids"] if rid not in repeated and rid != paraphrase]
        assert 1 <= len(base) <= 5
        for rid in c["record_ids"]:
            text = by_id[rid]["text"]
            assert any(c[k] in text for k in ("email", "phone", "account_id", "name"))


def test_repeated_groups(corpus, request):
    settings = request.node.callspec.params["corpus"]
    repeats = settings.get("repeats", 8)
    by_id, owner = _by_id(corpus), _owner(corpus)
    groups = corpus.truth["repeated_record_ids"]
    if settings.get("repeat_fraction", 0.05) > 0:
        assert groups
    for group in groups:
        assert len(group) == repeats == len(set(group))
        assert len({by_id[rid]["text"] for rid in group}) == 1
        assert len({owner[rid] for rid in group}) == 1
    others = [r["text"] for r in corpus.records if r["id"] not in {rid for g in groups for rid in g}]
    assert len(set(others)) == len(others)  # only planted groups repeat


def test_canaries_and_controls(corpus, request):
    settings = request.node.callspec.params["corpus"]
    owner = _owner(corpus)
    canaries = corpus.truth["canaries"]
    if settings.get("canary_fraction", 0.1) > 0:
        assert canaries
    if settings.get("canary_fraction", 0.1) > 0 and settings.get("repeat_fraction", 0.05) > 0:
        assert any(c["repeated"] for c in canaries)
    values = [c["value"] for c in canaries] + [c["control"] for c in canaries]
    assert len(set(values)) == len(values)
    repeated_groups = [sorted(g) for g in corpus.truth["repeated_record_ids"]]
    for c in canaries:
        assert re.fullmatch(CANARY_FORMAT, c["value"]) and re.fullmatch(CANARY_FORMAT, c["control"])
        assert len({owner[rid] for rid in c["record_ids"]}) == 1
        holders = {r["id"] for r in corpus.records if c["value"] in r["text"]}
        assert holders == set(c["record_ids"])
        assert (sorted(c["record_ids"]) in repeated_groups) == c["repeated"]
        assert not any(c["control"] in r["text"] for r in corpus.records)


def test_mentions_name_another_customer(corpus):
    by_id, owner = _by_id(corpus), _owner(corpus)
    customers = corpus.truth["customers"]
    assert corpus.truth["mentions"]  # the paraphrase always mentions customer 0
    for m in corpus.truth["mentions"]:
        other = customers[m["mentioned_customer"]]
        assert owner[m["record_id"]] != other["index"]
        assert other["email"] in by_id[m["record_id"]]["text"]
        assert other["name"] in by_id[m["record_id"]]["text"]
    # Ground truth is complete: no other record carries another customer's email.
    mentioned = {(m["record_id"], m["mentioned_customer"]) for m in corpus.truth["mentions"]}
    for r in corpus.records:
        for c in customers:
            if c["index"] != owner[r["id"]] and c["email"] in r["text"]:
                assert (r["id"], c["index"]) in mentioned


def test_mention_fraction_is_respected():
    few = generate_corpus(customers=100, seed=4, mention_fraction=0.0)
    many = generate_corpus(customers=100, seed=4, mention_fraction=0.5)
    assert len(few.truth["mentions"]) == 1  # only the planted paraphrase
    assert len(many.truth["mentions"]) > 50


def test_paraphrase(corpus):
    by_id, owner = _by_id(corpus), _owner(corpus)
    p = corpus.truth["paraphrase"]
    original, paraphrase = by_id[p["original_record_id"]], by_id[p["paraphrase_record_id"]]
    assert owner[original["id"]] == 0 and owner[paraphrase["id"]] != 0
    assert original["text"] != paraphrase["text"]
    assert original["text"] not in paraphrase["text"]
    facts = re.findall(r"ORD-\d+|\$\d+\.\d\d|ACC-\d+|\S+@example\.\w+", original["text"])
    assert len(facts) == 4
    assert all(fact in paraphrase["text"] for fact in facts)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"customers": 1}, "customers"),
        ({"customers": 0}, "customers"),
        ({"customers": 10**6}, "customers"),
        ({"customers": 2.5}, "customers"),
        ({"repeats": 0}, "repeats"),
        ({"repeat_fraction": -0.1}, "repeat_fraction"),
        ({"repeat_fraction": 1.5}, "repeat_fraction"),
        ({"mention_fraction": 2}, "mention_fraction"),
        ({"mention_fraction": float("nan")}, "mention_fraction"),
        ({"canary_fraction": -1}, "canary_fraction"),
    ],
)
def test_argument_validation_names_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must be .*\[|^{name} must be .*>="):
        generate_corpus(**kwargs)


def test_write_jsonl_round_trips(tmp_path):
    corpus = generate_corpus(customers=10, seed=2)
    path = tmp_path / "nested" / "tickets.jsonl"
    write_jsonl(corpus.records, path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == corpus.records
    assert all(line == json.dumps(json.loads(line), sort_keys=True, ensure_ascii=False) for line in lines)
    assert [p.name for p in path.parent.iterdir()] == ["tickets.jsonl"]  # no temp file left behind
    write_jsonl(corpus.records[:3], path)  # overwrite replaces the whole file
    assert len(path.read_text(encoding="utf-8").splitlines()) == 3


def test_write_jsonl_handles_non_ascii(tmp_path):
    path = tmp_path / "x.jsonl"
    write_jsonl([{"b": "José", "a": 1}], path)
    assert path.read_bytes() == '{"a": 1, "b": "José"}\n'.encode()
