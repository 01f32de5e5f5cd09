"""Probes on real (tiny) models: scoring pass, windows, exposure, calibration, generation, bad input (CPU)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from lethe.demo.corpus import generate_corpus
from unlearning.base_model import build_tiny_base_model
from unlearning.errors import AdapterError, ProbeInputError
from unlearning.probes import (ProbeConfig, SecretSpan, exposure_of, generate_samples, identity_prompts,
                               open_probe_model, prefix_prompts, probe_adapter, score_texts)
from unlearning.probes.calibration import auc_with_ci, calibrated_p_value
from unlearning.probes.exposure import candidate_values, space_size
from unlearning.probes.scoring import TokenScores, record_scores
from unlearning.training import LoraTrainingConfig, train_lora_adapter

CORPUS = generate_corpus(customers=24, seed=5)
TEXTS = [r["text"] for r in CORPUS.records]


@pytest.fixture(scope="module")
def adapter(tiny_base_model, tmp_path_factory) -> Path:
    """A LoRA adapter trained briefly on the first half of a small corpus (the second half is never seen)."""
    out = tmp_path_factory.mktemp("probe-adapter") / "adapter"
    train_lora_adapter(tiny_base_model, TEXTS[: len(TEXTS) // 2], LoraTrainingConfig(epochs=3), out)
    return out


@pytest.fixture(scope="module")
def probe_model(tiny_base_model, adapter):
    return open_probe_model(tiny_base_model, adapter)


# --- scoring pass -------------------------------------------------------------------------------------

def same_scores(pm) -> dict[str, float]:
    """How closely two batchings of one computation agree: float32 (the CPU) to 2e-5; in bf16 (a GPU) the
    kernels differ by shape, so to bf16's precision (8 significant bits)."""
    return {"rtol": 0.0, "atol": 2e-5} if pm.dtype == torch.float32 else {"rtol": 2 ** -7, "atol": 2e-3}


def test_scores_do_not_depend_on_batch_size_or_vocab_chunking(probe_model):
    texts = TEXTS[:12]
    reference = score_texts(probe_model.model, probe_model.tokenizer, texts, batch_size=12)
    tolerance = same_scores(probe_model)
    for kwargs in ({"batch_size": 1}, {"batch_size": 5}, {"batch_size": 12, "vocab_chunk_elements": 1024}):
        other = score_texts(probe_model.model, probe_model.tokenizer, texts, **kwargs)
        for a, b in zip(reference, other):
            for name in ("nll", "ref_nll", "ratio", "min_k_pp"):
                assert getattr(a, name) == pytest.approx(getattr(b, name), rel=tolerance["rtol"],
                                                         abs=tolerance["atol"]), (kwargs, name)
            if probe_model.dtype == torch.float32:
                assert (a.es, a.em) == (b.es, b.em), kwargs
            else:  # an argmax between two logits equal to bf16 precision may flip: em moves by 1/tokens a flip
                assert abs(a.em - b.em) <= 2 / a.tokens, kwargs


@pytest.mark.slow
def test_compiled_scoring_gives_the_eager_scores(probe_model):
    if probe_model.dtype != torch.float32:
        pytest.skip("in bf16 fused kernels round differently; bench.probes_gpu --compile measures the gap")
    from unlearning.probes.scoring import score_token_sequences, text_token_ids

    sequences = text_token_ids(probe_model.tokenizer, TEXTS[:12])
    pad = probe_model.tokenizer.pad_token_id
    eager = score_token_sequences(probe_model.model, sequences, pad_id=pad, batch_size=5)
    compiled = score_token_sequences(probe_model.model, sequences, pad_id=pad, batch_size=5, compile_model=True)
    for a, b in zip(eager, compiled):
        assert np.allclose(a.logp, b.logp, atol=1e-4) and np.allclose(a.ref_logp, b.ref_logp, atol=1e-4)
        assert np.allclose(a.z, b.z, atol=1e-3) and (a.correct == b.correct).mean() > 0.99


def test_adapter_and_reference_passes_differ_and_reference_is_the_base_model(probe_model, tiny_base_model):
    from unlearning.adapters import sequence_nll

    scores = score_texts(probe_model.model, probe_model.tokenizer, TEXTS[:4])
    assert any(abs(s.nll - s.ref_nll) > 1e-3 for s in scores)
    # sequence_nll also scores the EOS token; the probes do not. Same order of magnitude, same model.
    base = sequence_nll(tiny_base_model, None, TEXTS[:4])
    assert all(abs(s.ref_nll - b) < 0.5 for s, b in zip(scores, base))


def test_long_records_are_scored_in_windows_and_every_token_once(probe_model):
    long_text = " ".join(TEXTS[:6])
    short = score_texts(probe_model.model, probe_model.tokenizer, [long_text], context=32)[0]
    full = score_texts(probe_model.model, probe_model.tokenizer, [long_text])[0]
    n_tokens = len(probe_model.tokenizer(long_text, add_special_tokens=False)["input_ids"])
    assert short.tokens == full.tokens == n_tokens  # BOS + n tokens: n targets
    assert short.windows > 1 and short.windows == math.ceil((n_tokens + 1 - 32) / 16) + 1
    assert full.windows == (1 if n_tokens + 1 <= 256 else full.windows)


@pytest.mark.parametrize("correct, expected_es, expected_em", [
    ([True, True, True, True], 1.0, 1.0),
    ([False, True, False, True, True], 1 - 3 / 5, 3 / 5),
    ([True, True, True, False], 0.0, 3 / 4),
])
def test_extraction_strength_and_exact_memorization(correct, expected_es, expected_em):
    n = len(correct)
    tokens = TokenScores(logp=np.full(n, -1.0), ref_logp=np.full(n, -2.0), z=np.arange(n, dtype=float),
                         correct=np.array(correct), windows=1)
    scores = record_scores(tokens, k_fraction=0.5)
    assert scores.es == pytest.approx(expected_es) and scores.em == pytest.approx(expected_em)
    assert scores.nll == 1.0 and scores.ref_nll == 2.0 and scores.ratio == 0.5
    assert scores.min_k_pp == pytest.approx(np.arange(n)[: math.ceil(n / 2)].mean())


@pytest.mark.parametrize("texts, message", [
    (["fine", ""], "record 1 is empty"),
    (["   "], "record 0 is empty"),
    ([None], "record 0 is empty"),
])
def test_empty_records_are_refused_by_position(probe_model, texts, message):
    with pytest.raises(ProbeInputError, match=message):
        score_texts(probe_model.model, probe_model.tokenizer, texts)


# --- exposure ------------------------------------------------------------------------------------------

def test_candidates_keep_the_format_and_never_repeat():
    values = candidate_values("1234-ACC-56", 500, seed=3)
    assert len(set(values)) == 500 and "1234-ACC-56" not in values
    assert all(len(v) == 11 and v[4:9] == "-ACC-" and (v[:4] + v[9:]).isdigit() for v in values)
    words = candidate_values("abCD", 50, seed=3)  # no digits: the letters vary, keeping their case
    assert all(v[:2].islower() and v[2:].isupper() for v in words) and len(set(words)) == 50
    assert space_size("12-3") == pytest.approx(3 * math.log2(10)) and space_size("ACC-12") == space_size("12")
    with pytest.raises(ProbeInputError, match="digits or letters"):
        candidate_values("--", 1, seed=0)
    with pytest.raises(ProbeInputError, match="cannot draw 10 candidates"):
        candidate_values("7", 10, seed=0)


def test_exposure_is_within_bounds_and_seeded(probe_model):
    text = TEXTS[0] + " My recovery code is 4821-1177."
    start = text.rindex("4821")
    span = SecretSpan(start, start + 9)
    first = exposure_of(probe_model.model, probe_model.tokenizer, text, span, candidates=63, seed=1)
    again = exposure_of(probe_model.model, probe_model.tokenizer, text, span, candidates=63, seed=1)
    assert first == again and 1 <= first.rank <= 64
    assert first.exposure == pytest.approx(math.log2(64) - math.log2(first.rank))
    assert 0.0 <= first.exposure_fit <= first.space_bits == pytest.approx(8 * math.log2(10))
    assert 0.0 <= first.exposure_ref <= math.log2(64)  # the same candidates ranked by the base model
    bare = exposure_of(probe_model.model, probe_model.tokenizer, text, span, candidates=63, seed=1, reference=False)
    assert bare.exposure_ref is None and bare.exposure == first.exposure
    with pytest.raises(ProbeInputError, match="outside the"):
        exposure_of(probe_model.model, probe_model.tokenizer, text, SecretSpan(0, len(text) + 5))


def test_continuations_of_a_shared_prefix_score_as_the_full_sequences(probe_model):
    from unlearning.probes.continuations import score_continuations
    from unlearning.probes.scoring import score_token_sequences

    tokenizer = probe_model.tokenizer
    prefix = [tokenizer.bos_token_id] + tokenizer(TEXTS[1], add_special_tokens=False)["input_ids"]
    tails = [tokenizer(f" code {v}", add_special_tokens=False)["input_ids"] for v in ("12", "4821-1177", "9", "77 x")]
    tails.append(tails[1][:1])  # one token: scored from the prefix's last position alone
    scored, ref = score_continuations(probe_model.model, prefix, tails, pad_id=0, batch_size=2)
    full = score_token_sequences(probe_model.model, [prefix + t for t in tails], pad_id=0, batch_size=5)
    for tail, a, r, f in zip(tails, scored, ref, full):
        assert len(a) == len(tail)
        np.testing.assert_allclose(a, f.logp[len(prefix) - 1:], **same_scores(probe_model))
        np.testing.assert_allclose(r, f.ref_logp[len(prefix) - 1:], **same_scores(probe_model))
    assert any(not np.allclose(a, r, atol=1e-3) for a, r in zip(scored, ref))  # the adapter pass is not the base's
    with pytest.raises(ProbeInputError, match="at least one token"):
        score_continuations(probe_model.model, prefix, [tails[0], []], pad_id=0)


# --- calibration ---------------------------------------------------------------------------------------

def test_p_values_are_empirical_inside_the_holdout_and_fitted_beyond_it():
    holdout = np.linspace(0.0, 1.0, 99)
    inside = calibrated_p_value(0.505, holdout, fit_tail=True)
    assert inside.estimate == "empirical" and inside.value == pytest.approx((1 + 49) / 100)
    beyond = calibrated_p_value(5.0, holdout, fit_tail=True)
    assert beyond.estimate == "normal-fit" and beyond.value < 1 / 100
    discrete = calibrated_p_value(5.0, holdout, fit_tail=False)
    assert discrete.estimate == "empirical" and discrete.value == pytest.approx(1 / 100)


def test_auc_is_one_half_for_the_same_distribution_and_one_when_separated():
    rng = np.random.default_rng(0)
    same = auc_with_ci(rng.normal(size=300), rng.normal(size=300))
    assert same.ci_low < 0.5 < same.ci_high and abs(same.value - 0.5) < 0.08
    apart = auc_with_ci(np.arange(10) + 100.0, np.arange(10, dtype=float))
    assert apart.value == 1.0 and apart.ci_low == 1.0
    with pytest.raises(ProbeInputError, match="both sides"):
        auc_with_ci(np.array([]), np.arange(3.0))


def _people_with_records(rng, people: int, per_person: int):
    """Values where each person's records share that person's offset (like their name and e-mail digits)."""
    offsets = rng.normal(size=people)
    values = np.repeat(offsets, per_person) + 0.3 * rng.normal(size=people * per_person)
    return values, [f"person-{i}" for i in range(people) for _ in range(per_person)]


def test_auc_interval_resampling_people_covers_one_half_where_resampling_records_does_not():
    # Forget and holdout people from one distribution (an exact retrain): the true AUC is 0.5. Six records
    # per person move together, so 36 forget records are 6 draws, not 36; the record-level interval misses.
    rng = np.random.default_rng(5)
    covered = {"records": 0, "people": 0}
    runs = 60
    for seed in range(runs):
        forget, forget_people = _people_with_records(rng, 6, 6)
        holdout, holdout_people = _people_with_records(rng, 12, 6)
        by_record = auc_with_ci(forget, holdout, resamples=200, seed=seed)
        by_people = auc_with_ci(forget, holdout, forget_groups=forget_people, holdout_groups=holdout_people,
                                resamples=200, seed=seed)
        assert by_people.value == by_record.value and (by_people.forget_people, by_people.holdout_people) == (6, 12)
        assert by_record.forget_people is None
        covered["records"] += by_record.ci_low <= 0.5 <= by_record.ci_high
        covered["people"] += by_people.ci_low <= 0.5 <= by_people.ci_high
    assert covered["people"] / runs >= 0.85, covered  # nominal 0.95; 57 of 60 with these seeds
    assert covered["records"] / runs <= 0.80, covered  # 42 of 60
    with pytest.raises(ProbeInputError, match="forget_groups names 2 people for 36 values"):
        auc_with_ci(forget, holdout, forget_groups=["a", "b"])


def test_probe_report_flags_trained_repeats_holds_ids_only(probe_model):
    half = len(TEXTS) // 2
    ids = [r["id"] for r in CORPUS.records]
    scope = dict(zip(ids[:6], TEXTS[:6]))
    holdout = dict(zip(ids[half:], TEXTS[half:]))
    report = probe_adapter(probe_model, scope, holdout, ProbeConfig(generate=False, bootstrap_resamples=200))
    assert [r.record_id for r in report.records] == ids[:6]
    assert report.holdout_ids == len(holdout) and report.holdout_stats["ratio"]["n"] == len(holdout)
    assert set(report.auc) == {"ratio", "min_k_pp", "es", "em"} and 0.0 <= report.holdout_false_flag_rate <= 1.0
    dumped = report.model_dump_json()
    assert all(text[:30] not in dumped for text in TEXTS)
    json.loads(dumped)


def test_a_second_probe_of_the_adapter_reuses_its_scores_and_reports_the_same(probe_model):
    import re

    from unlearning.probes import runner
    from unlearning.probes.exposure import SecretSpan

    half = len(TEXTS) // 2
    ids = [r["id"] for r in CORPUS.records]
    holdout = dict(zip(ids[half:], TEXTS[half:]))
    digits = re.search(r"\d{3,}", TEXTS[0])
    secrets = {ids[0]: [SecretSpan(digits.start(), digits.end(), "number")]}
    config = ProbeConfig(generate=False, bootstrap_resamples=200, exposure_candidates=31)
    runner._SCORES.items.clear()
    runner._EXPOSURES.items.clear()
    first = probe_adapter(probe_model, {ids[0]: TEXTS[0]}, holdout, config, secrets=secrets)
    scored = len(runner._SCORES.items)
    assert scored == len(set(holdout.values()) | {TEXTS[0]}) and len(runner._EXPOSURES.items) == 1
    # The engine's next request on the same adapter: the holdout and the first record come from the memo.
    second = probe_adapter(probe_model, dict(zip(ids[:2], TEXTS[:2])), holdout, config, secrets=secrets)
    assert len(runner._SCORES.items) == scored + (TEXTS[1] not in holdout.values())
    assert second.records[0].scores == first.records[0].scores
    assert second.records[0].exposures == first.records[0].exposures
    assert second.holdout_stats == first.holdout_stats
    runner._SCORES.items.clear()  # computed afresh, the same figures
    runner._EXPOSURES.items.clear()
    fresh = probe_adapter(probe_model, {ids[0]: TEXTS[0]}, holdout, config, secrets=secrets)
    assert fresh.records[0].scores == first.records[0].scores and fresh.holdout_stats == first.holdout_stats
    assert fresh.records[0].exposures == first.records[0].exposures


def test_probe_refuses_bad_scope_and_holdout(probe_model):
    ids = [r["id"] for r in CORPUS.records]
    with pytest.raises(ProbeInputError, match="no scope records"):
        probe_adapter(probe_model, {}, dict(zip(ids, TEXTS)))
    with pytest.raises(ProbeInputError, match="at least 2 holdout"):
        probe_adapter(probe_model, {ids[0]: TEXTS[0]}, {ids[1]: TEXTS[1]})
    with pytest.raises(ProbeInputError, match="both in scope and in the holdout"):
        probe_adapter(probe_model, {ids[0]: TEXTS[0]}, dict(zip(ids[:3], TEXTS[:3])))
    with pytest.raises(ValidationError):
        ProbeConfig(alpha=0.0)


# --- generation ----------------------------------------------------------------------------------------

def test_generation_is_seeded_and_batched(probe_model):
    prompts = prefix_prompts(probe_model.tokenizer, dict(zip(["a", "b"], TEXTS[:2])), 8)
    prompts += identity_prompts(["Jane Roe"])
    assert [p.kind for p in prompts].count("identity") == 5 and prompts[0].record_id == "a"
    kwargs = dict(samples_per_prompt=2, max_new_tokens=12, seed=5, batch_size=4)
    first = generate_samples(probe_model.model, probe_model.tokenizer, prompts, **kwargs)
    again = generate_samples(probe_model.model, probe_model.tokenizer, prompts, **kwargs)
    assert first == again and len(first) == 2 * len(prompts)
    assert [s.prompt for s in first] == [i for i in range(len(prompts)) for _ in range(2)]
    other = generate_samples(probe_model.model, probe_model.tokenizer, prompts, **{**kwargs, "seed": 6})
    assert other != first
    with pytest.raises(ProbeInputError, match="temperature"):
        generate_samples(probe_model.model, probe_model.tokenizer, prompts, temperature=0.0)


# --- adapters that do not fit --------------------------------------------------------------------------

def test_an_adapter_from_another_base_model_is_refused(tiny_base_model, adapter, tmp_path):
    other_base = build_tiny_base_model(tmp_path / "other-base", TEXTS[:20], vocab_size=300, hidden=32, layers=1,
                                       heads=2, max_positions=64, pretrain_steps=2)
    with pytest.raises(AdapterError, match="does not fit the base model"):
        open_probe_model(other_base, adapter)
    stamped = tmp_path / "stamped"
    shutil.copytree(adapter, stamped)
    (stamped / "lethe_manifest.json").write_text(json.dumps({"base_model_sha256": "ab" * 32}))
    with pytest.raises(AdapterError, match="was trained on base model abababab"):
        open_probe_model(tiny_base_model, stamped)
