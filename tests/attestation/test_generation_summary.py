"""The predicate's extraction-by-generation summary: counts that add up, and a `leaked` that says what the test said."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from attestation.generation import GenerationSummary

COUNTS = {"people": 1, "prompts": {"context": 2, "identity": 5}, "greedy": 7, "sampled": 21, "tokens_budgeted": 896,
          "leaking_samples": 3, "leaking_greedy": 1, "hits": {"secret": 3}, "max_cosine": 0.91, "near_duplicates": 2}
CHANCE = {**COUNTS, "people": 8, "greedy": 56, "sampled": 168, "leaking_samples": 0, "leaking_greedy": 0, "hits": {}}


def _summary(**changes) -> dict:
    return {"subject": COUNTS, "chance": CHANCE, "chance_rate": 0.0, "p_value": 0.0, "alpha": 0.005,
            "leaked": True, **changes}


def test_a_leak_beyond_chance_is_leaked():
    assert GenerationSummary.model_validate(_summary()).leaked


@pytest.mark.parametrize(("changes", "message"), [
    ({"leaked": False}, "leaked must say"),
    ({"p_value": 0.2}, "leaked must say"),
    ({"subject": {**COUNTS, "leaking_samples": 29}}, "cannot outnumber"),
    ({"subject": {**COUNTS, "leaking_greedy": 8}}, "cannot outnumber"),
    ({"subject": {**COUNTS, "text": "the generated words"}}, "Extra inputs are not permitted"),
])
def test_a_summary_that_does_not_add_up_is_refused(changes, message):
    with pytest.raises(ValidationError, match=message):
        GenerationSummary.model_validate(_summary(**changes))
