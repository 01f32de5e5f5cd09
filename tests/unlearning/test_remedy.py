"""Verify and escalate on real tiny models: an under-forgetting method escalates to exact shard retraining."""

from __future__ import annotations

from pathlib import Path

import pytest

from lethe.demo.corpus import generate_corpus
from unlearning.base_model import model_dir_sha256
from unlearning.errors import RemedyError
from unlearning.methods.base import RemedyInput
from unlearning.methods.remedy import remediate
from unlearning.probes import ProbeConfig, open_probe_model, probe_adapter
from unlearning.sharded import train_sharded_adapters
from unlearning.training import LoraTrainingConfig

CORPUS = generate_corpus(customers=30, seed=4, repeat_fraction=0.1, canary_fraction=0.0)
TEXTS = {r["id"]: r["text"] for r in CORPUS.records}
REPEATED = CORPUS.truth["repeated_record_ids"]
TRAINING = LoraTrainingConfig(epochs=8)


@pytest.fixture(scope="module")
def setting(tiny_base_model, tmp_path_factory):
    """Two shards: shard A holds the repeated tickets (memorized), shard B the rest; a holdout never trained."""
    repeated = {rid for group in REPEATED for rid in group}
    others = [rid for rid in TEXTS if rid not in repeated]
    holdout = {rid: TEXTS[rid] for rid in others[:30]}
    shard_a = {rid: TEXTS[rid] for rid in sorted(repeated) + others[30:45]}
    shard_b = {rid: TEXTS[rid] for rid in others[45:]}
    run = tmp_path_factory.mktemp("remedy") / "run"
    trained = train_sharded_adapters(tiny_base_model, {"a" * 64: list(shard_a.values()), "b" * 64: list(shard_b.values())},
                                     TRAINING, run, {"dataset_version": "test"})
    scope = REPEATED[0]
    return {"base": tiny_base_model, "run": run, "served": trained.served_path, "holdout": holdout,
            "forget": {rid: TEXTS[rid] for rid in scope},
            "shards": {"a" * 64: {r: t for r, t in shard_a.items() if r not in scope}, "b" * 64: shard_b},
            "retain": shard_b}


def _probe(setting):
    config = ProbeConfig(generate=False, bootstrap_resamples=200)
    return lambda path: probe_adapter(open_probe_model(setting["base"], path), setting["forget"], setting["holdout"],
                                      config)


def _inputs(setting, tmp_path: Path):
    def make(name: str) -> RemedyInput:
        return RemedyInput(setting["base"], setting["served"], setting["forget"], setting["retain"],
                           tmp_path / name, shards=setting["shards"], run_dir=setting["run"],
                           training_config=TRAINING.model_dump(mode="json"), manifest={"dataset_version": "derived"})
    return make


def test_under_forgetting_ascent_escalates_to_retrain_and_says_why(setting, tmp_path):
    probe = _probe(setting)
    before = probe(setting["served"])
    assert set(before.flagged) == set(setting["forget"]), before.flagged  # the repeated ticket is memorized
    served_digest = model_dir_sha256(setting["served"])
    result = remediate("gradient_ascent", {"steps": 1, "learning_rate": 1e-6}, _inputs(setting, tmp_path), probe)
    assert result.escalated and [a.outcome.method for a in result.attempts] == ["gradient_ascent", "retrain"]
    assert result.attempts[0].flagged and "still flagged after gradient_ascent" in result.escalation_reason
    assert not result.still_flagged
    assert not (tmp_path / "gradient_ascent").exists()  # the failed attempt's weights are gone
    details = result.final.outcome.details
    assert details["shards_retrained"] == ["a" * 64] and details["shards_reused"] == ["b" * 64]
    reused = Path(details["run_dir"]) / "shards" / ("b" * 16)
    assert model_dir_sha256(reused) == model_dir_sha256(setting["run"] / "shards" / ("b" * 16))
    assert model_dir_sha256(setting["served"]) == served_digest  # the served adapter is never touched


def test_without_escalation_the_flagged_records_are_reported(setting, tmp_path):
    result = remediate("gradient_ascent", {"steps": 1, "learning_rate": 1e-6}, _inputs(setting, tmp_path),
                       _probe(setting), escalate_to=None)
    assert not result.escalated and set(result.still_flagged) == set(setting["forget"])


def test_bad_methods_and_configs_fail_before_any_work(setting, tmp_path):
    with pytest.raises(RemedyError, match="unknown remedy method 'forget_harder'; choose one of"):
        remediate("forget_harder", None, _inputs(setting, tmp_path), _probe(setting))
    with pytest.raises(RemedyError, match="bad config for method 'npo': beta"):
        remediate("npo", {"beta": -1}, _inputs(setting, tmp_path), _probe(setting))
    with pytest.raises(RemedyError, match="unknown remedy method 'nope'"):
        remediate("retrain", None, _inputs(setting, tmp_path), _probe(setting), escalate_to="nope")
    assert not any(tmp_path.iterdir())
