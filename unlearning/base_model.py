"""The base model: build a tiny local Llama-shaped LM and tokenizer, load any HF causal LM, digest its files."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM,
                          PreTrainedModel, PreTrainedTokenizerFast)
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING
from transformers.utils import logging as transformers_logging

from unlearning.errors import BaseModelError, TrainingDataError, UnlearningError
from unlearning.runtime import atomic_directory, encode_texts, fit_causal_lm, seed_everything, select_device

# A "Loading weights" bar per adapter load buried the CLI's own progress (a remedy loads a dozen).
transformers_logging.disable_progress_bar()

__all__ = ["BUILD_MARKER", "build_tiny_base_model", "check_model_dir", "load_base_model", "model_dir_sha256"]

BUILD_MARKER = "lethe_build.json"  # written last; a directory without it (or with a stale one) is rebuilt
BUILD_FORMAT = 1  # bump when the build recipe changes, so cached models are rebuilt
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>")
HOW_TO_FIX = ("point LETHE_BASE_MODEL at a Hugging Face causal LM directory (config.json, weights, tokenizer), "
              "or build the tiny demo model with unlearning.base_model.build_tiny_base_model")
# Pre-training recipe of the tiny model; recorded in the build marker so a change rebuilds.
PRETRAIN_LR = 3e-3
PRETRAIN_BATCH = 16


def model_dir_sha256(path: Path, *, exclude: Sequence[str] = ()) -> str:
    """SHA-256 over the sorted (relative name, bytes) of every file under a model or adapter directory."""
    root = Path(path)
    if not root.is_dir():
        raise UnlearningError(f"cannot digest {root}: it is not a directory")
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() not in exclude)
    for file in files:
        name = file.relative_to(root).as_posix().encode()
        data = file.read_bytes()
        # Length prefixes keep (name, bytes) boundaries unambiguous.
        digest.update(len(name).to_bytes(8, "big") + name + len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def _train_tokenizer(corpus: list[str], vocab_size: int, max_positions: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    # Digits one by one (as Llama does): a secret number is then a sequence of choices the model must learn.
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   model_max_length=max_positions)


def _build_versions() -> dict[str, str]:
    """Versions that change what the same recipe builds: a cached model built under others is rebuilt."""
    versions = {"torch": torch.__version__}
    for package in ("transformers", "tokenizers", "lethe"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def _build_record(corpus: list[str], **params) -> dict:
    corpus_sha = hashlib.sha256(json.dumps(corpus, ensure_ascii=False).encode()).hexdigest()
    return {"format": BUILD_FORMAT, "corpus_sha256": corpus_sha, "pretrain_lr": PRETRAIN_LR,
            "pretrain_batch": PRETRAIN_BATCH, "versions": _build_versions(), **params}


def _cached(out_dir: Path, record: dict) -> bool:
    marker = out_dir / BUILD_MARKER
    if not marker.is_file():
        return False
    try:
        stored = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # an unreadable marker is a stale build: rebuild
    return (isinstance(stored, dict) and stored.get("build") == record
            and stored.get("content_sha256") == model_dir_sha256(out_dir, exclude=(BUILD_MARKER,)))


def build_tiny_base_model(out_dir: Path, corpus: list[str], *, seed: int = 0, vocab_size: int = 2048,
                          hidden: int = 128, layers: int = 2, heads: int = 4, max_positions: int = 256,
                          pretrain_steps: int = 300) -> Path:
    """Build (or reuse, if already built from the same inputs) a tiny Llama LM pre-trained on `corpus`.

    `out_dir` belongs to the builder: unless it holds a complete build of the same inputs, it is replaced.
    """
    out_dir = Path(out_dir)
    if not corpus or any(not isinstance(text, str) or not text.strip() for text in corpus):
        raise TrainingDataError("the pre-training corpus must be a non-empty list of non-empty texts")
    if vocab_size < 300 or hidden % heads or min(hidden, layers, heads, max_positions, pretrain_steps) < 1:
        raise ValueError(f"bad tiny-model shape: vocab_size={vocab_size} (>= 300), hidden={hidden} divisible by "
                         f"heads={heads}, layers={layers}, max_positions={max_positions}, "
                         f"pretrain_steps={pretrain_steps} (all >= 1)")
    record = _build_record(corpus, seed=seed, vocab_size=vocab_size, hidden=hidden, layers=layers, heads=heads,
                           max_positions=max_positions, pretrain_steps=pretrain_steps)
    if _cached(out_dir, record):
        return out_dir
    seed_everything(seed)
    tokenizer = _train_tokenizer(corpus, vocab_size, max_positions)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=4 * hidden,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=max_positions, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=True)
    device = select_device()
    model = LlamaForCausalLM(config).to(device)
    sequences = encode_texts(tokenizer, corpus, max_positions)
    epochs = -(-pretrain_steps * PRETRAIN_BATCH // len(sequences))  # enough epochs to reach the step count
    losses = fit_causal_lm(model, sequences, pad_id=tokenizer.pad_token_id, epochs=epochs,
                           batch_size=PRETRAIN_BATCH, learning_rate=PRETRAIN_LR, seed=seed, device=device,
                           max_steps=pretrain_steps)
    with atomic_directory(out_dir) as staging:
        model.to("cpu").save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        # No timings in the marker: it is part of the directory digest, which must be reproducible.
        marker = {"build": record, "content_sha256": model_dir_sha256(staging), "final_loss": losses[-1]}
        (staging / BUILD_MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True), encoding="utf-8")
    return out_dir


def check_model_dir(path: Path) -> None:
    """Cheap checks that `path` holds a HF causal LM config; BaseModelError says what is wrong."""
    path = Path(path)
    if not path.is_dir():
        raise BaseModelError(f"base model directory {path} does not exist; {HOW_TO_FIX}")
    if not (path / "config.json").is_file():
        raise BaseModelError(f"{path} is not a Hugging Face model directory (no config.json); {HOW_TO_FIX}")
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError, KeyError) as exc:
        raise BaseModelError(f"{path}/config.json is unreadable ({exc}); {HOW_TO_FIX}") from exc
    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        raise BaseModelError(f"{path} holds a '{config.model_type}' model, not a causal LM; {HOW_TO_FIX}")


def load_base_model(path: Path, device: torch.device | None = None,
                    dtype: torch.dtype | None = None) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Load a HF causal LM and its tokenizer for evaluation; BaseModelError says what is wrong and how to fix it."""
    path = Path(path)
    check_model_dir(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError) as exc:
        raise BaseModelError(f"{path} has no usable tokenizer ({exc}); {HOW_TO_FIX}") from exc
    if tokenizer.eos_token_id is None:
        raise BaseModelError(f"the tokenizer in {path} has no EOS token; {HOW_TO_FIX}")
    if tokenizer.pad_token_id is None:
        # Padding is masked out everywhere (attention mask, labels -100), so its id never reaches a result.
        tokenizer.pad_token = tokenizer.eos_token
    try:
        model, info = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32,
                                                           output_loading_info=True)
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise BaseModelError(f"the weights in {path} are missing or unreadable ({exc}); {HOW_TO_FIX}") from exc
    if info.get("missing_keys") or info.get("mismatched_keys"):
        missing = sorted(info.get("missing_keys") or []) + sorted(map(str, info.get("mismatched_keys") or []))
        raise BaseModelError(f"the weights in {path} do not fit its config (missing or mismatched: "
                             f"{', '.join(missing[:5])}…); {HOW_TO_FIX}")
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        raise BaseModelError(f"the tokenizer in {path} has {len(tokenizer)} tokens, more than the model's "
                             f"embedding rows; {HOW_TO_FIX}")
    return model.to(device or select_device()).eval(), tokenizer
