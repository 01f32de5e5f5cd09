"""Tests of the torch side: tiny base model, LoRA training, shard merging, NLL scoring, memorization (CPU)."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from transformers import ViTConfig

import unlearning.training as training_module
from lethe.demo.corpus import generate_corpus
from unlearning.adapters import (adapter_deltas, load_adapter_model, lora_b_all_zero, merge_shard_adapters,
                                 sequence_nll)
from unlearning.base_model import BUILD_MARKER, build_tiny_base_model, load_base_model, model_dir_sha256
from unlearning.errors import AdapterError, BaseModelError, TrainingDataError
from unlearning.runtime import atomic_directory, encode_texts, token_batches
from unlearning.training import LoraTrainingConfig, train_lora_adapter

# The base model (tests/conftest.py) learns the domain from OTHER customers; the fine-tune corpus is the demo's.
FINE_TUNE_CORPUS = dict(customers=60, seed=7)
MINI_SHAPE = dict(vocab_size=300, hidden=32, layers=1, heads=2, max_positions=64, pretrain_steps=2)
QUICK = LoraTrainingConfig(epochs=2)


def texts_of(**kwargs) -> list[str]:
    return [record["text"] for record in generate_corpus(**kwargs).records]


@pytest.fixture(scope="session")
def base_dir(tiny_base_model) -> Path:
    """The session's tiny base model (the demo's recipe), built once and cached."""
    return tiny_base_model


@pytest.fixture(scope="session")
def fine_tune_texts() -> list[str]:
    return texts_of(**FINE_TUNE_CORPUS)


@pytest.fixture
def mini_dir(tmp_path) -> Path:
    """A very small model (seconds to build) for the cache, atomicity and error tests."""
    return build_tiny_base_model(tmp_path / "mini", texts_of(customers=10, seed=3), **MINI_SHAPE)


# --- base model: cache, atomicity, errors ---------------------------------------------------------------

def test_build_is_cached_and_reproducible(mini_dir):
    digest = model_dir_sha256(mini_dir)
    mtime = (mini_dir / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_base_model(mini_dir, texts_of(customers=10, seed=3), **MINI_SHAPE) == mini_dir
    assert (mini_dir / "model.safetensors").stat().st_mtime_ns == mtime
    assert model_dir_sha256(mini_dir) == digest


def test_dir_without_completion_marker_is_rebuilt_identically(mini_dir):
    digest = model_dir_sha256(mini_dir)
    (mini_dir / BUILD_MARKER).unlink()
    (mini_dir / "model.safetensors").write_bytes(b"half a model")
    build_tiny_base_model(mini_dir, texts_of(customers=10, seed=3), **MINI_SHAPE)
    assert model_dir_sha256(mini_dir) == digest  # same inputs, same seed: the same bytes


def test_other_corpus_is_not_taken_from_cache(mini_dir):
    digest = model_dir_sha256(mini_dir)
    build_tiny_base_model(mini_dir, texts_of(customers=10, seed=4), **MINI_SHAPE)
    assert model_dir_sha256(mini_dir) != digest


def test_failed_write_leaves_the_old_directory_and_no_debris(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "kept").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(out) as staging:
        (staging / "partial").write_text("new")
        raise RuntimeError("crash mid-write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == ["kept"]


@pytest.mark.parametrize("empty", [[], [""], ["ok", "   "]])
def test_build_refuses_empty_corpus(tmp_path, empty):
    with pytest.raises(TrainingDataError):
        build_tiny_base_model(tmp_path / "m", empty, **MINI_SHAPE)


def _break(kind: str, model_dir: Path, tmp_path: Path) -> Path:
    """Damage a copy of a good model directory in one way; return the path to load."""
    if kind == "missing dir":
        return tmp_path / "nowhere"
    if kind == "no config.json":
        (model_dir / "config.json").unlink()
    elif kind == "corrupt weights":
        (model_dir / "model.safetensors").write_bytes(b"\x00" * 64)
    elif kind == "no weights":
        (model_dir / "model.safetensors").unlink()
    elif kind == "weights do not fit config":
        config = json.loads((model_dir / "config.json").read_text())
        (model_dir / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 2}))
    elif kind == "not a causal LM":
        ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(model_dir)
    return model_dir


@pytest.mark.parametrize("kind, expected", [
    ("missing dir", "does not exist"),
    ("no config.json", "no config.json"),
    ("corrupt weights", "missing or unreadable"),
    ("no weights", "missing or unreadable"),
    ("weights do not fit config", "do not fit its config"),
    ("not a causal LM", "not a causal LM"),
])
def test_load_errors_name_the_path_and_the_fix(mini_dir, tmp_path, kind, expected):
    path = _break(kind, mini_dir, tmp_path)
    with pytest.raises(BaseModelError) as caught:
        load_base_model(path)
    message = str(caught.value)
    assert str(path) in message and expected in message and "LETHE_BASE_MODEL" in message


def test_importing_unlearning_does_not_import_torch():
    code = "import sys, unlearning; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- training -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("texts", [[], [""], ["fine", " \n"]])
def test_training_refuses_empty_texts(base_dir, tmp_path, texts):
    with pytest.raises(TrainingDataError):
        train_lora_adapter(base_dir, texts, QUICK, tmp_path / "adapter")
    assert not (tmp_path / "adapter").exists()


@pytest.mark.parametrize("bad", [{"r": 0}, {"dropout": 1.0}, {"learning_rate": 0}, {"epochs": 0},
                                 {"target_modules": ()}, {"max_length": 1}, {"unknown": 1}])
def test_config_validation(bad):
    with pytest.raises(ValidationError):
        LoraTrainingConfig(**bad)


def test_config_digest_is_canonical():
    assert LoraTrainingConfig().config_sha256() == LoraTrainingConfig(r=8).config_sha256()
    assert LoraTrainingConfig().config_sha256() != LoraTrainingConfig(seed=1).config_sha256()
    assert len(LoraTrainingConfig().config_sha256()) == 64


@pytest.mark.parametrize("engine", ["trainer", "loop"])
def test_training_changes_the_adapter_and_is_deterministic(base_dir, fine_tune_texts, tmp_path, engine):
    # The same adapter bytes for the same inputs on the same machine, through transformers' Trainer and the loop.
    texts, config = fine_tune_texts[:40], QUICK.model_copy(update={"engine": engine})
    first = train_lora_adapter(base_dir, texts, config, tmp_path / "a")
    second = train_lora_adapter(base_dir, texts, config, tmp_path / "b")
    other_seed = train_lora_adapter(base_dir, texts, config.model_copy(update={"seed": 1}), tmp_path / "c")
    assert not lora_b_all_zero(first.path)
    assert first.sha256 == second.sha256 == model_dir_sha256(first.path)
    assert other_seed.sha256 != first.sha256
    assert first.steps == 10 and len(first.losses) == 10 and first.final_loss > 0
    assert sorted(p.name for p in first.path.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    config = json.loads((first.path / "adapter_config.json").read_text())
    assert config["target_modules"] == sorted(config["target_modules"])  # set order would vary per process


def test_training_that_leaves_b_at_zero_is_refused(base_dir, fine_tune_texts, tmp_path, monkeypatch):
    import unlearning.hf_trainer

    no_step = lambda *args, **kwargs: [1.0]  # noqa: E731 - either engine, taking no step
    monkeypatch.setattr(training_module, "fit_causal_lm", no_step)
    monkeypatch.setattr(unlearning.hf_trainer, "fit_with_trainer", no_step)
    with pytest.raises(AdapterError, match="LoRA B"):
        train_lora_adapter(base_dir, fine_tune_texts[:8], QUICK, tmp_path / "adapter")
    assert not (tmp_path / "adapter").exists()


# --- merging and scoring --------------------------------------------------------------------------------

@pytest.mark.parametrize("weights", [None, [1.0, 1.0], [0.25, 2.0]])
def test_merged_adapter_is_base_plus_weighted_sum_of_shard_deltas(base_dir, fine_tune_texts, tmp_path, weights):
    # Different r and alpha per shard: the merge must keep each shard's own scaling alpha / r (here 16/3, 1).
    configs = [QUICK.model_copy(update={"r": 3, "alpha": 16.0}), QUICK.model_copy(update={"r": 8, "alpha": 8.0})]
    shards = [train_lora_adapter(base_dir, fine_tune_texts[i::2][:24], config, tmp_path / f"shard{i}").path
              for i, config in enumerate(configs)]
    merged = merge_shard_adapters(base_dir, shards, tmp_path / "merged", weights=weights)
    assert merged.rank == 11 and merged.sha256 == model_dir_sha256(merged.path)
    weights = weights or [0.5, 0.5]  # the default: the mean of the shard deltas

    # In float64 the only error left is float32 storage of the adapters, so "exact" can be checked tightly.
    cpu, f64 = torch.device("cpu"), torch.float64
    reference, tokenizer = load_base_model(base_dir, device=cpu, dtype=f64)
    with torch.no_grad():
        for weight, shard in zip(weights, shards):  # by hand: W + sum of w_i (alpha_i / r_i) B_i A_i
            for module, delta in adapter_deltas(shard, dtype=f64).items():
                reference.get_submodule(module.removeprefix("base_model.model.")).weight += weight * delta
    served, _ = load_adapter_model(base_dir, merged.path, device=cpu, dtype=f64)
    plain, _ = load_base_model(base_dir, device=cpu, dtype=f64)
    batch = next(token_batches(encode_texts(tokenizer, fine_tune_texts[:6], 128), 6, tokenizer.pad_token_id))
    with torch.no_grad():
        want, got, base = (model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
                           for model in (reference, served, plain))
    assert torch.allclose(got, want, atol=1e-5, rtol=0)
    assert (got - base).abs().max() > 1e-2  # and the shards really moved the model


def test_merge_refuses_a_directory_that_is_not_an_adapter(base_dir, tmp_path):
    with pytest.raises(AdapterError, match="not a LoRA adapter"):
        merge_shard_adapters(base_dir, [tmp_path], tmp_path / "merged")


def test_sequence_nll_does_not_depend_on_batching(base_dir, fine_tune_texts):
    texts = [fine_tune_texts[0], fine_tune_texts[1][:40], fine_tune_texts[2] + " " + fine_tune_texts[3]]
    batched = sequence_nll(base_dir, None, texts, batch_size=3)
    one_by_one = [sequence_nll(base_dir, None, [text], batch_size=1)[0] for text in texts]
    assert batched == pytest.approx(one_by_one, abs=1e-5)


# --- memorization: the evidence the probes will build on ------------------------------------------------

def test_fine_tune_memorizes_repeated_records_not_held_out_ones(base_dir, tmp_path):
    """Criterion, fixed before measuring: adapter NLL < 0.5 x base NLL for every repeated text, and the
    held-out records' mean NLL drop (base - adapter) below 1/3 of the repeated records' mean drop."""
    corpus = generate_corpus(**FINE_TUNE_CORPUS)
    text = {record["id"]: record["text"] for record in corpus.records}
    groups = corpus.truth["repeated_record_ids"]
    repeated_ids = {record_id for group in groups for record_id in group}
    others = sorted(record_id for record_id in text if record_id not in repeated_ids)
    held_out = set(random.Random(0).sample(others, round(0.1 * len(others))))
    train = [text[record_id] for record_id in sorted(text) if record_id not in held_out]

    adapter = train_lora_adapter(base_dir, train, LoraTrainingConfig(), tmp_path / "adapter")
    repeated = [text[group[0]] for group in groups]  # a group's texts are identical
    holdout = [text[record_id] for record_id in sorted(held_out)]
    rep_base, rep_adapter = sequence_nll(base_dir, None, repeated), sequence_nll(base_dir, adapter.path, repeated)
    hold_base, hold_adapter = sequence_nll(base_dir, None, holdout), sequence_nll(base_dir, adapter.path, holdout)
    rep_gap = statistics.mean(rep_base) - statistics.mean(rep_adapter)
    hold_gap = statistics.mean(hold_base) - statistics.mean(hold_adapter)
    print(f"\nfine-tune: {adapter.steps} steps on {len(train)} texts in {adapter.seconds:.1f} s, "
          f"final loss {adapter.final_loss:.3f}\nrepeated ({len(repeated)} groups): base "
          f"{[round(x, 3) for x in rep_base]} adapter {[round(x, 3) for x in rep_adapter]} gap {rep_gap:.3f}\n"
          f"held out ({len(holdout)}): base mean {statistics.mean(hold_base):.3f} adapter mean "
          f"{statistics.mean(hold_adapter):.3f} gap {hold_gap:.3f}")
    assert len(groups) >= 2 and len(holdout) >= 10
    assert all(after < 0.5 * before for before, after in zip(rep_base, rep_adapter))
    assert hold_gap < rep_gap / 3
