"""Identifiers and secrets found in any format on token boundaries; rare spans measured on the corpus."""

from __future__ import annotations

from collections import Counter

import pytest

from lineage.pii.identity_match import NeedleSet, candidate_values, identifier_needles, name_variants, secret_needle
from lineage.pii.rare_spans import SpanFrequencies, confirms, rare_limit, spans_of


def _kinds(needles: NeedleSet, text: str) -> set[tuple[str, bool]]:
    return {(h.kind, h.strong) for h in needles.find(text)}


@pytest.mark.parametrize("text, found", [
    ("her acct kx 4471 2290 q is locked", {("account", True)}),
    ("account KX44712290Q", {("account", True)}),
    ("account KX-4471-2290-QA", set()),  # not on a token boundary
    ("call (415) 555-0187 please", {("phone", True)}),
    ("call +1 415 555 0187 please", {("phone", True)}),
    ("written by orla brennan quist", {("name", True)}),
    ("Brennan-Quist, Orla wrote", {("name", True)}),
    ("Ms Brennan-Quist called", {("name", False)}),
    ("O. M. Brennan-Quist called", {("name", False)}),
    ("Orla called", set()),  # a first name alone names nobody
    ("code zr 7731 0042 refused", {("secret", True)}),
])
def test_identifiers_are_found_whatever_their_format(text, found):
    needles = NeedleSet([*identifier_needles("account", "KX-4471-2290-Q", "k-account"),
                         *identifier_needles("phone", "+1 415 555 0187", "k-phone"),
                         *identifier_needles("name", "Orla Maeve Brennan-Quist", "k-name"),
                         secret_needle("ZR-7731-0042")])
    assert _kinds(needles, text) == found


def test_a_shared_identifier_gives_weak_needles_and_values_never_print():
    needles = NeedleSet(identifier_needles("name", "Mary Smith", "k", strong=False))
    assert all(not n.strong for n in needles.needles)
    assert "mary" not in repr(needles).lower() and "smith" not in repr(needles.needles).lower()


def test_name_variants_cover_middle_names_initials_and_titles():
    forms = {form: text for form, _, text in name_variants("Orla Maeve Brennan-Quist")}
    assert forms["full"] == "Orla Maeve Brennan-Quist" and forms["no_middle"] == "Orla Brennan-Quist"
    texts = {text for _, strong, text in name_variants("Orla Maeve Brennan-Quist") if not strong}
    assert {"O Brennan-Quist", "O M Brennan-Quist", "Ms Brennan-Quist", "Mr Brennan-Quist"} <= texts


def test_candidate_values_let_a_key_recover_the_value_from_a_text():
    text = "Thanks, Orla Brennan-Quist. Account ZX-88-4417-Q, phone (202) 555-0142."
    assert "Orla Brennan-Quist" in set(candidate_values(text, "name"))
    assert "ZX-88-4417-Q" in set(candidate_values(text, "account"))
    assert "(202) 555-0142" in set(candidate_values(text, "phone"))


def test_spans_are_numbers_codes_and_names_without_dates():
    spans = spans_of("Orla Quist paid 1,250.00 on 2025-03-01 for order ORD-550123; code 7731 0042 9981.")
    assert ("code", "ORD550123") in spans and ("number", "773100429981") in spans
    assert ("name", "orla quist") in spans
    assert not any(v.startswith("2025") for _, v in spans)


def test_template_look_alikes_share_no_rare_span_but_a_restatement_does():
    template = "Hi, I'm {name}. Order {order} arrived broken; account {account}. Thanks."

    def name(i: int) -> str:
        letters = "".join(chr(ord("a") + (i // 26 ** k) % 26) for k in range(3))
        return f"Ann{letters} Quill{letters}"

    texts = {f"r{i}": template.format(name=name(i), order=f"ORD-{100000 + i}", account=f"ACC-{20000000 + i}")
             for i in range(300)}
    texts["restated"] = f"Writing for {name(7)} about account ACC-20000007, order ORD-100007."
    frequencies = SpanFrequencies(texts)
    scope = ["r7"]
    outside = frequencies.outside(scope)
    assert confirms(frequencies.shared_rare("restated", scope, outside))
    look_alikes = [rid for rid in texts if rid not in ("r7", "restated")
                   and confirms(frequencies.shared_rare(rid, scope, outside))]
    assert look_alikes == []
    # A span another person's own records hold (a colleague's email named in the subject's ticket) is excluded.
    excluded = {("code", "ACC20000007"), ("code", "ORD100007"), ("name", name(7).casefold())}
    assert frequencies.shared_rare("restated", scope, outside, excluded) == Counter()


def test_rarity_scales_with_the_corpus_and_secrets_need_six_digits():
    assert rare_limit(100) == 2 and rare_limit(10_000) == 10
    texts = {"own": "My pin 4471, refund 12345 cents, code 7731-004, order ORD-550123.",
             "other": "Order ORD-550123 too."}
    texts |= {f"x{i}": f"ticket {i}: order ORD-999999" for i in range(50)}
    texts["own2"] = "Also order ORD-999999."
    # 4471 is too short to be a span, 12345 too few digits for a secret; ORD-999999 is in 50 other records.
    assert SpanFrequencies(texts).secrets_of(["own", "own2"]) == {"7731004", "ORD550123"}
