"""The shard-reference statistic on hand-made NLL tables: the point is its arithmetic and its null."""

import numpy as np
import pytest

from unlearning.probes.report import ProbeConfig
from unlearning.probes.shard_reference import shard_reference

SHARDS, HOLDOUT, SCOPE = 4, 60, 20


def _tables(rng: np.random.Generator, own_offset: float, shard0_bias: float) -> tuple[list[dict], dict, list]:
    """NLLs of held-out and scope texts under 4 shard adapters; scope records all trained in shard 0.

    `own_offset`: how much likelier shard 0 finds its own records (memorization); `shard0_bias`: how much
    worse shard 0 scores every text (a retrained adapter that saw fewer records)."""
    holdout = [f"h{i}" for i in range(HOLDOUT)]
    scope = [f"s{i}" for i in range(SCOPE)]
    tables = [{} for _ in range(SHARDS)]
    for text in holdout + scope:
        base = rng.normal(3.0, 0.3)
        for k in range(SHARDS):
            nll = base + rng.normal(0, 0.05) + (shard0_bias if k == 0 else 0.0)
            tables[k][text] = nll - (own_offset if k == 0 and text in scope else 0.0)
    return tables, {s: 0 for s in scope}, holdout


def test_memorized_records_sit_above_the_holdout_scored_on_their_own_shard():
    tables, scope, holdout = _tables(np.random.default_rng(1), own_offset=0.5, shard0_bias=0.0)
    report = shard_reference(tables, scope, holdout, ProbeConfig(bootstrap_resamples=200))
    assert report.auc.value == 1.0 and all(r.above_holdout and r.own_shard == 0 for r in report.records.values())
    assert min(r.p_value for r in report.records.values()) == pytest.approx(1 / (HOLDOUT + 1))


@pytest.mark.parametrize("bias", [0.3, -0.3])
def test_a_shard_adapter_that_scores_everything_differently_is_not_read_as_membership(bias):
    # After an exact retrain the scope is OUT of its former shard, whose new adapter scores all texts 0.3
    # nats worse (or better). Its records must look like the holdout scored on that same shard: AUC near
    # 0.5, none above the range. (The null pooled over all 4 shards
    # that this replaced gave an AUC near 0.12, or 0.88: a quarter of the holdout on shard 0, the rest not.)
    tables, scope, holdout = _tables(np.random.default_rng(2), own_offset=0.0, shard0_bias=bias)
    report = shard_reference(tables, scope, holdout, ProbeConfig(bootstrap_resamples=200))
    assert report.auc.ci_low <= 0.5 <= report.auc.ci_high, report.auc
    assert not any(r.above_holdout for r in report.records.values())


def test_too_few_shards_or_held_out_records_are_refused():
    with pytest.raises(ValueError, match="two shards"):
        shard_reference([{"a": 1.0}], {"a": 0}, ["h1", "h2"], ProbeConfig())
