"""Holm's step-down across a run: adjusted p-values, the family-wise rate it keeps, and the record p-value."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from erasure.statistics import adjust_family, family_tests, holm_adjusted, record_p_value
from unlearning.probes.report import PValueReport, RecordProbe


def _record(record_id: str, **p_values: float) -> RecordProbe:
    return RecordProbe(record_id=record_id, scores={}, flagged=False, flagged_by=[],
                       p_values={score: PValueReport(value=p, estimate="empirical", holdout=100)
                                 for score, p in p_values.items()})


def test_holm_adjusted_p_values_match_the_definition():
    # Sorted 0.01, 0.02, 0.03, 0.5 of m=4: 4*0.01, max(0.04, 3*0.02), max(0.06, 2*0.03), max(0.06, 0.5).
    assert holm_adjusted([0.03, 0.01, 0.5, 0.02]) == pytest.approx([0.06, 0.04, 0.5, 0.06])
    assert holm_adjusted([0.4, 0.9]) == pytest.approx([0.8, 0.9])  # capped, monotone
    assert holm_adjusted([0.01], family_size=10) == pytest.approx([0.1])  # tests made elsewhere count too
    assert holm_adjusted([]) == []


def test_holm_keeps_the_chance_of_any_false_flag_in_a_run_at_alpha():
    # 30 requests of 4 records each, every record a true null (uniform p-values): a per-request Bonferroni
    # calls some request incomplete in about 1 - 0.99**30 = 26% of runs; Holm over the run in at most 1%.
    # 4,000 simulated runs: the binomial sd of a 1% rate is 0.16%, so 2% is over 6 sd away.
    rng = np.random.default_rng(7)
    runs, alpha = 4000, 0.01
    any_holm = any_per_request = 0
    for _ in range(runs):
        p = rng.random(120)
        any_holm += min(holm_adjusted(list(p))) <= alpha
        any_per_request += (p.reshape(30, 4).min(axis=1) * 4 <= alpha).any()
    assert any_holm / runs <= 0.02
    assert any_per_request / runs >= 0.2


def test_a_record_p_value_is_its_smallest_score_p_value_times_the_scores():
    assert record_p_value(_record("r1", ratio=0.002, min_k_pp=0.3, es=0.9), 4) == pytest.approx(0.008)
    assert record_p_value(_record("r1", ratio=0.5), 4) == 1.0
    assert record_p_value(_record("r1"), 4) is None


def test_a_record_two_requests_share_is_one_test_of_the_family():
    # Only the scores and the records of a probe report count here.
    report = SimpleNamespace(scores=["ratio", "es"], records=[_record("r1", ratio=0.0001), _record("r2", ratio=0.2)])
    tests = family_tests([("after", "a-1", report, {"r1", "r2"}), ("after", "a-1", report, {"r1"}),
                          ("before", "a-0", report, {"r1"})])
    assert sorted(tests) == [("after", "a-1", "r1"), ("after", "a-1", "r2"), ("before", "a-0", "r1")]
    adjusted = adjust_family(tests, 0.01)
    assert adjusted[("after", "a-1", "r1")] == (pytest.approx(0.0004), True)  # 0.0002 * 2 tests
    assert adjusted[("after", "a-1", "r2")][1] is False
