"""Tiny random causal LMs of several architectures, built locally (no hub), sharing the demo's tokenizer."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, PhiConfig, Qwen2Config

FAMILIES = ("qwen2", "gpt2", "phi")


def _config(family: str, tokenizer):
    # Embedding rows rounded up to a multiple of 64, as released models pad them: a Qwen2 folder loads its
    # tokenizer as Qwen2Tokenizer (transformers 5 picks it by model_type), which adds a special token.
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id, "vocab_size": -(-(len(tokenizer) + 1) // 64) * 64}
    if family == "qwen2":
        return Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, max_position_embeddings=256, **ids)
    if family == "gpt2":
        return GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=256, **ids)
    if family == "phi":
        return PhiConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         max_position_embeddings=256, **ids)
    raise ValueError(f"unknown family {family!r}; use one of {FAMILIES}")


def tiny_model(family: str, tokenizer_dir: Path, seed: int = 0):
    """The model itself, in memory (random weights, seeded)."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(_config(family, tokenizer)), tokenizer


def build_tiny_family(family: str, tokenizer_dir: Path, out: Path) -> Path:
    """A model directory (config, safetensors, the tokenizer) of `family`, under `out`."""
    model, tokenizer = tiny_model(family, tokenizer_dir)
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
