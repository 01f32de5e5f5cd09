"""Identity resolution on the real Neo4j: co-owners followed one hop, shared identifiers reported and never
followed, values read back from the records, bounds and the off switch."""

from __future__ import annotations

import pytest

from erasure.identity import Decision, recover_values, resolve_identity
from lineage.content_store import ContentStore
from lineage.ingest import ingest_batch
from lineage.record_batch import parse_jsonl
from lineage.store.writers import LineageWriter
from tests.lineage.lineage_fixtures import jsonl

ADA = {"email": "ada@example.com", "phone": "+1 202 555 0142", "account_id": "KX-1", "name": "Ada Byron"}
BEA = {"email": "bea@example.org", "phone": "+1 303 555 0177", "account_id": "KX-1", "name": "Bea Ito"}


def _record(rid: str, subject: dict, text: str) -> dict:
    return {"id": rid, "subject": subject, "text": text, "source": "helpdesk"}


RECORDS = [
    _record("a1", ADA, "Ada Byron here, account KX-1, phone +1 202 555 0142."),
    _record("a2", {"email": ADA["email"], "name": ADA["name"]}, "Please close my account. Ada Byron"),
    _record("a3", {"phone": ADA["phone"]}, "Call me back on +1 202 555 0142, I lost my email."),  # phone only
    _record("b1", BEA, "Bea Ito, account KX-1 (the family account), phone +1 303 555 0177."),
    _record("c1", {"email": "cy@example.net", "name": "Cy Lo"}, "Cy Lo asks about a parcel."),
]


@pytest.fixture
def people(graph, keyer, tmp_path):
    content = ContentStore(tmp_path / "content.sqlite")
    ingest_batch(parse_jsonl(jsonl(RECORDS), keyer), LineageWriter(graph), content)
    yield graph, keyer, content
    content.close()


def _by_kind(identity) -> dict:
    return {i.kind: i for i in identity.identifiers}


def test_an_email_leads_to_the_persons_other_identifiers_and_records(people):
    graph, keyer, _ = people
    identity = resolve_identity(graph, {keyer.key("email", ADA["email"]): "email"})
    found = _by_kind(identity)
    assert found["email"].decision is Decision.GIVEN
    assert found["name"].decision is Decision.FOLLOWED and found["phone"].decision is Decision.FOLLOWED
    assert found["phone"].linked_by == ["a1"] and found["phone"].hop == 1
    # The account is also Bea's: her records form another group, so it is reported and not followed.
    assert found["account"].decision is Decision.SHARED and found["account"].people == 2
    assert identity.records == ["a1", "a2", "a3"]  # a3: owned by her phone alone, found through it
    assert identity.ambiguous_records == []


def test_a_filed_shared_identifier_keeps_the_persons_group_and_leaves_the_other_for_review(people):
    graph, keyer, _ = people
    given = {keyer.key("account", "KX-1"): "account", keyer.key("email", ADA["email"]): "email"}
    identity = resolve_identity(graph, given)
    account = _by_kind(identity)["account"]
    assert account.decision is Decision.GIVEN and account.people == 2
    assert "b1" in identity.ambiguous_records and "b1" not in identity.records
    alone = resolve_identity(graph, {keyer.key("account", "KX-1"): "account"})
    assert alone.records == [] and sorted(alone.ambiguous_records) == ["a1", "b1"]
    assert any("shared" in note for note in alone.notes)


def test_expansion_can_be_turned_off_and_is_bounded(people):
    graph, keyer, _ = people
    given = {keyer.key("email", ADA["email"]): "email"}
    off = resolve_identity(graph, given, expand=False)
    assert {i.decision for i in off.identifiers if i.hop} == {Decision.NOT_FOLLOWED, Decision.SHARED}
    assert off.records == ["a1", "a2"]
    bounded = resolve_identity(graph, given, max_identifiers=1)
    assert sorted(i.decision.value for i in bounded.identifiers if i.hop) == \
        ["followed", "over_limit", "shared_not_followed"]
    with pytest.raises(ValueError, match="hops"):
        resolve_identity(graph, given, hops=9)


def test_plain_values_are_read_back_from_texts_and_batch_files(people, tmp_path):
    graph, keyer, content = people
    identity = resolve_identity(graph, {keyer.key("email", ADA["email"]): "email"})
    wanted = {i.key: i.kind for i in identity.active() if i.hop}
    values = recover_values(content, None, keyer, wanted, identity.records)
    assert {v for v, _ in values.values()} == {"Ada Byron", "+1 202 555 0142"}
    assert {source for _, source in values.values()} == {"text"}
    # A value no text spells out comes from Lethe's batch files (the record's subject fields).
    batches = tmp_path / "batches"
    batches.mkdir()
    (batches / "b.jsonl").write_bytes(jsonl([_record("a9", {"name": "Ada Byron", "email": ADA["email"]}, "x")]))
    name_key = keyer.key("name", "Ada Byron")
    assert recover_values(content, batches, keyer, {name_key: "name"}, ["a9"]) == {name_key: ("Ada Byron",
                                                                                               "batch_file")}
