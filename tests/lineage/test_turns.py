"""Chat records' turns: found in the rendering, checked in batch files, kept by the content store, and read
one message at a time by the PII scan."""

from __future__ import annotations

import json
import sqlite3

import pytest

from lineage.content_store import ContentStore
from lineage.errors import InvalidRecordError, InvalidValueError
from lineage.keys import IdentifierKind, SubjectKeyer
from lineage.pii import PiiScanner
from lineage.pii.engine import BLANK
from lineage.record_batch import parse_line
from lineage.turns import Turn, locate_turns, turn_texts

MESSAGES = [{"role": "system", "content": "You are support."},
            {"role": "user", "content": "Hi, I am Ada Lovelace, write to ada@example.com please"},
            {"role": "assistant", "content": "Thanks Ada, noted."}]
KEYER = SubjectKeyer(b"k" * 32)


def chatml(messages) -> str:
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


def test_each_message_is_found_where_the_template_put_it():
    text = chatml(MESSAGES)
    turns = locate_turns(text, MESSAGES)
    assert [t.role for t in turns] == ["system", "user", "assistant"]
    assert turn_texts(text, turns) == [m["content"] for m in MESSAGES]


def test_a_template_that_trims_whitespace_still_places_the_turns():
    messages = [{"role": "user", "content": "  hello there \n"}, {"role": "assistant", "content": "hi"}]
    text = "".join(f"[{m['role']}] {m['content'].strip()}\n" for m in messages)
    assert turn_texts(text, locate_turns(text, messages)) == ["hello there", "hi"]


def test_a_template_that_rewrites_a_message_is_refused_naming_it():
    text = chatml([MESSAGES[0], {"role": "user", "content": "HI, I AM ADA"}, MESSAGES[2]])
    with pytest.raises(InvalidValueError, match=r"message 1 \(user\) does not appear verbatim"):
        locate_turns(text, MESSAGES)


def _line(**fields) -> bytes:
    text = chatml(MESSAGES)
    record = {"id": "t-1", "text": text, "source": "helpdesk",
              "turns": [list(t) for t in locate_turns(text, MESSAGES)], **fields}
    return json.dumps(record).encode()


def test_a_batch_line_carries_its_turns_and_bad_ones_are_refused_by_field():
    assert parse_line(_line(), 1, KEYER).turns[-1].role == "assistant"
    for turns, problem in (([[0, 10_000, "assistant"]], "outside the text"),
                           ([[5, 9, "user"]], "need an assistant turn"),
                           ([[5, 9, "assistant"], [7, 12, "user"]], "overlapping"),
                           ([[5, 9]], "must be [start, end, role]")):
        with pytest.raises(InvalidRecordError) as caught:
            parse_line(_line(turns=turns), 3, KEYER)
        assert caught.value.field == "turns" and problem in caught.value.problem, caught.value


def test_the_content_store_keeps_turns_and_opens_a_store_from_before_them(tmp_path):
    path = tmp_path / "content.sqlite"
    old = sqlite3.connect(path)  # the schema before chat records
    old.execute("CREATE TABLE content (id TEXT PRIMARY KEY, sha256 TEXT NOT NULL, text TEXT NOT NULL)")
    old.execute("INSERT INTO content VALUES ('t-0', 'aa', 'a plain ticket')")
    old.commit()
    old.close()
    store = ContentStore(path)
    text = chatml(MESSAGES)
    store.put_many([("t-1", "bb", text, locate_turns(text, MESSAGES)), ("t-2", "cc", "plain", None)])
    assert store.get_many(["t-0", "t-1"]) == {"t-0": "a plain ticket", "t-1": text}
    turns = store.turns(["t-0", "t-1", "t-2"])
    assert list(turns) == ["t-1"] and turns["t-1"][2] == Turn(text.index("Thanks"), len(text) - len("<|im_end|>\n"),
                                                              "assistant")
    store.close()


def test_the_pii_scan_reads_each_message_on_its_own():
    # A template that glues the turns ("...ada@example.comassistant: ..."): read whole, the address runs into
    # the next role's name and keys as someone else; read per message, it is Ada's.
    messages = [{"role": "user", "content": "please write to ada@example.com"},
                {"role": "assistant", "content": "Thanks, done."}]
    text = "".join(f"{m['role']}: {m['content']}" for m in messages)
    scanner = PiiScanner(KEYER, spacy_model=BLANK)
    ada = KEYER.key(IdentifierKind.EMAIL, "ada@example.com")
    [whole] = scanner.scan([text])
    [per_message] = scanner.scan_records([text], {0: locate_turns(text, messages)})
    assert ada not in {m.key for m in whole.mentions}, whole
    assert {(m.kind, m.key) for m in per_message.mentions} == {("email", ada)}, per_message
    assert scanner.scan_records([text]) == [whole]  # a plain record is read whole, as before
