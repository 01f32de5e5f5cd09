import json

import pytest

from lineage.errors import BatchRejectedError
from lineage.record_batch import parse_jsonl


def line(**fields) -> bytes:
    record = {"id": "t-1", "text": "Hello, my order is late.", "source": "helpdesk",
              "subject": {"email": "ada@example.com"}, "created_at": "2025-01-02T03:04:05Z"}
    record.update(fields)
    return json.dumps({k: v for k, v in record.items() if v is not ...}).encode()


def test_valid_batch_keys_subjects_and_hashes_content(keyer):
    batch = parse_jsonl(line() + b"\n" + line(id="t-2", subject={"phone": "+1 202 555 0100"}) + b"\n", keyer)
    assert [r.id for r in batch.records] == ["t-1", "t-2"]
    first = batch.records[0]
    assert first.owners == ((keyer.key("email", "ada@example.com"), "email"),)
    assert len(first.content_sha256) == 64 and first.created_at.startswith("2025-01-02T03:04:05")


@pytest.mark.parametrize("raw, field, problem", [
    (line(id=...), "id", "Field required"),
    (line(id="  "), "id", "blank"),
    (line(text="   "), "text", "empty"),
    (line(text=...), "text", "Field required"),
    (b'{"id": "t-1", "text": "caf\xe9", "source": "s"}', "line", "invalid UTF-8"),
    (b'{"id": "t-1", "text": ', "line", "not valid JSON"),
    (b'["a", "list"]', "line", "JSON object"),
    (line(colour="red"), "colour", "Extra inputs"),
    (line(subject={"passport": "X1"}), "subject", "unknown identifier kind"),
    (line(subject={"email": "nope"}), "subject.email", "email"),
    (line(created_at="yesterday"), "created_at", "datetime"),
])
def test_malformed_record_is_named_by_line_and_field(keyer, raw, field, problem):
    data = line(id="t-0") + b"\n" + raw + b"\n"
    with pytest.raises(BatchRejectedError) as caught:
        parse_jsonl(data, keyer, "batch.jsonl")
    [error] = caught.value.errors
    assert (error.line, error.field) == (2, field)
    assert problem in error.problem
    assert "line 2" in str(caught.value) and "not written" in str(caught.value)


def test_same_id_with_different_content_is_rejected_and_exact_repeat_dropped(keyer):
    data = b"\n".join([line(), line(), line(text="Something else entirely.")])
    with pytest.raises(BatchRejectedError) as caught:
        parse_jsonl(data, keyer)
    [error] = caught.value.errors
    assert error.line == 3 and "line 1" in error.problem
    assert parse_jsonl(line() + b"\n" + line(), keyer).repeats_dropped == 1


def test_error_messages_never_echo_identifiers(keyer):
    with pytest.raises(BatchRejectedError) as caught:
        parse_jsonl(line(subject={"email": "secret-person-at-example.com"}), keyer)
    assert "secret-person" not in str(caught.value)


def test_every_error_of_a_batch_is_listed(keyer):
    data = b"\n".join([line(id="a", text=""), line(id="b"), line(id="c", source="")])
    with pytest.raises(BatchRejectedError) as caught:
        parse_jsonl(data, keyer)
    assert [e.line for e in caught.value.errors] == [1, 3]
