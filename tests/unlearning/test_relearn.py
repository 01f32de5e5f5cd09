"""The relearning check's fine-tune (unlearning.relearn): on retained texts only, seeded, recorded."""

from __future__ import annotations

import statistics

import pytest
import torch

from lethe.demo.corpus import generate_corpus
from unlearning.adapters import sequence_nll
from unlearning.base_model import model_dir_sha256
from unlearning.errors import TrainingDataError
from unlearning.relearn import RelearnConfig, relearn_adapter
from unlearning.training import LoraTrainingConfig, train_lora_adapter


@pytest.fixture(scope="module")
def served(tiny_base_model, tmp_path_factory):
    """A small adapter and ten texts it never trained on (the retained records of the check)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny steps: one thread is faster on a shared 2-core machine (tests/unlearning)
    corpus = generate_corpus(customers=8, seed=3)
    texts = sorted({r["text"] for r in corpus.records})
    adapter = tmp_path_factory.mktemp("relearn") / "served"
    train_lora_adapter(tiny_base_model, texts[:8], LoraTrainingConfig(epochs=2), adapter)
    yield {"base": tiny_base_model, "adapter": adapter, "retain": texts[8:18]}
    torch.set_num_threads(threads)


def test_relearning_trains_on_the_retained_texts_and_is_seeded(served, tmp_path):
    config = RelearnConfig(steps=6, batch_size=4)
    facts = relearn_adapter(served["base"], served["adapter"], served["retain"], config, tmp_path / "a")
    again = relearn_adapter(served["base"], served["adapter"], served["retain"], config, tmp_path / "b")
    assert facts.steps == again.steps == 6 and facts.retain_records == 10 and facts.config == config
    assert model_dir_sha256(tmp_path / "a") == model_dir_sha256(tmp_path / "b")  # same seed, same bytes
    assert model_dir_sha256(tmp_path / "a") != model_dir_sha256(served["adapter"])  # the served one is only read
    before = statistics.mean(sequence_nll(served["base"], served["adapter"], served["retain"]))
    after = statistics.mean(sequence_nll(served["base"], tmp_path / "a", served["retain"]))
    assert after < before  # it learned what it was given (6 steps at 1e-3: NLL falls by ~0.3 nats here)


def test_relearning_needs_retained_texts_and_a_sane_config(served, tmp_path):
    with pytest.raises(TrainingDataError, match="needs retained records"):
        relearn_adapter(served["base"], served["adapter"], [], RelearnConfig(), tmp_path / "x")
    with pytest.raises(ValueError, match="steps"):
        RelearnConfig(steps=0)
    assert not (tmp_path / "x").exists()
