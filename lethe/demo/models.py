"""The demo's tiny base model: pre-trained locally on tickets of OTHER fictitious customers."""

from __future__ import annotations

from pathlib import Path

from lethe.demo.corpus import generate_corpus

# Another seed than the fine-tuning corpus: the base model knows the domain, not the customers.
BASE_CORPUS = {"customers": 300, "seed": 1234}
PRETRAIN_STEPS = 300


def build_demo_base_model(out_dir: Path) -> Path:
    """Build (or reuse from cache) the demo base model and tokenizer in `out_dir`."""
    from unlearning.base_model import build_tiny_base_model

    texts = [r["text"] for r in generate_corpus(**BASE_CORPUS).records]
    return build_tiny_base_model(out_dir, texts, pretrain_steps=PRETRAIN_STEPS)
