"""LoRA adapters on disk: save, load, read their deltas, merge shard adapters, score texts by NLL."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import PeftModel
from safetensors.torch import load_file

from unlearning.base_model import load_base_model, model_dir_sha256
from unlearning.errors import AdapterError, TrainingDataError
from unlearning.runtime import TokenBatch, atomic_directory, autocast, encode_texts, token_batches

__all__ = ["ADAPTER_FILES", "MergedAdapter", "adapter_delta_norms", "adapter_deltas", "load_adapter_model",
           "lora_b_all_zero", "mean_token_nll", "merge_shard_adapters", "read_adapter_config", "save_adapter",
           "sequence_nll"]

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
MERGE_RTOL = 1e-5  # float32 round-off of folding each shard's scaling into its A rows


@dataclass(frozen=True)
class MergedAdapter:
    """The one served adapter built from shard adapters: its directory, digest and total rank."""

    path: Path
    sha256: str
    rank: int
    shards: int


def save_adapter(peft_model: PeftModel, adapter_name: str, out_dir: Path) -> None:
    """Write one adapter of `peft_model` as exactly ADAPTER_FILES in `out_dir` (no model card)."""
    scratch = Path(out_dir) / ".peft"
    peft_model.save_pretrained(scratch, selected_adapters=[adapter_name])
    # peft writes a non-default adapter into a sub-folder named after it, and a README beside it.
    source = scratch if adapter_name == "default" else scratch / adapter_name
    for name in ADAPTER_FILES:
        os.replace(source / name, Path(out_dir) / name)
    shutil.rmtree(scratch)
    # peft writes target_modules from a set, in hash-seed order: sort it so the digest is stable across runs.
    config_path = Path(out_dir) / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_adapter_config(adapter_dir: Path) -> dict:
    """adapter_config.json of a plain LoRA adapter folder; AdapterError says what is missing or unsupported."""
    path = Path(adapter_dir) / "adapter_config.json"
    if not path.is_file() or not (Path(adapter_dir) / "adapter_model.safetensors").is_file():
        raise AdapterError(f"{adapter_dir} is not a LoRA adapter directory (needs {' and '.join(ADAPTER_FILES)})")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AdapterError(f"{path} is unreadable: {exc}") from exc
    # These change how a delta is computed or combined; refusing beats a silently wrong sum.
    unsupported = {k: config.get(k) for k in ("use_rslora", "use_dora", "rank_pattern", "alpha_pattern")
                   if config.get(k)}
    if config.get("peft_type") != "LORA" or unsupported:
        raise AdapterError(f"{adapter_dir} is not a plain LoRA adapter (peft_type={config.get('peft_type')}, "
                           f"{unsupported}); only plain LoRA adapters can be read and merged here")
    return config


def adapter_deltas(adapter_dir: Path, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Weight delta (alpha / r) · B · A of every adapted module, on the CPU, keyed by module name."""
    config = read_adapter_config(adapter_dir)
    scaling = config["lora_alpha"] / config["r"]
    tensors = load_file(Path(adapter_dir) / "adapter_model.safetensors", device="cpu")
    if any("lora_embedding" in key for key in tensors):
        raise AdapterError(f"{adapter_dir} adapts embeddings; only linear-layer LoRA is supported")
    deltas = {}
    for key, a in tensors.items():
        if key.endswith(".lora_A.weight"):
            module = key.removesuffix(".lora_A.weight")
            b = tensors[f"{module}.lora_B.weight"]
            deltas[module] = scaling * (b.to(dtype) @ a.to(dtype))
    return deltas


def adapter_delta_norms(adapter_dir: Path) -> dict[str, float]:
    """Frobenius norm of each module's weight delta: how much the adapter moves each layer."""
    return {module: float(delta.norm()) for module, delta in adapter_deltas(adapter_dir).items()}


def lora_b_all_zero(adapter_dir: Path) -> bool:
    """True when every LoRA B matrix is zero, i.e. the adapter changes nothing."""
    read_adapter_config(adapter_dir)
    tensors = load_file(Path(adapter_dir) / "adapter_model.safetensors", device="cpu")
    return not any(bool(t.any()) for key, t in tensors.items() if ".lora_B." in key)


def load_adapter_model(base_model_dir: Path, adapter_dir: Path, device: torch.device | None = None,
                       dtype: torch.dtype | None = None):
    """The base model with the adapter at `adapter_dir` on it (peft, eval mode), and the tokenizer."""
    read_adapter_config(adapter_dir)
    model, tokenizer = load_base_model(base_model_dir, device=device, dtype=dtype)
    return PeftModel.from_pretrained(model, str(adapter_dir)).eval(), tokenizer


def merge_shard_adapters(base_model_dir: Path, shard_adapter_dirs: list[Path], out_dir: Path,
                         weights: Sequence[float] | None = None) -> MergedAdapter:
    """Merge per-shard LoRA adapters into one whose weight delta is exactly sum(weight_i * delta_i).

    The default weights are 1/K (the mean): every shard learns the same domain shift, so a plain sum
    applies it K times over (measured: NLL 3-5x the base model's on the demo), while the mean keeps it
    once — and a record seen by one shard only keeps 1/K of its memorization.
    """
    if not shard_adapter_dirs:
        raise AdapterError("no shard adapters to merge")
    configs = [read_adapter_config(d) for d in shard_adapter_dirs]
    model, _ = load_base_model(base_model_dir, device=torch.device("cpu"))  # float32 on CPU: exact enough
    names = [f"shard_{i}" for i in range(len(shard_adapter_dirs))]
    peft_model = PeftModel.from_pretrained(model, str(shard_adapter_dirs[0]), adapter_name=names[0])
    for name, adapter_dir in zip(names[1:], shard_adapter_dirs[1:]):
        peft_model.load_adapter(str(adapter_dir), adapter_name=name)
    # peft's "cat" stacks weight·scaling_i·A_i as rows and B_i as columns, and sets lora_alpha = r = sum r_i
    # (scaling 1), so B·A = sum scaling_i·B_i·A_i: the exact sum (peft/tuners/lora/model.py, 0.21.2).
    if weights is None:
        weights = [1.0 / len(names)] * len(names)
    if len(weights) != len(names) or any(w <= 0 for w in weights):
        raise AdapterError(f"need one positive weight per shard adapter ({len(names)}), got {list(weights)}")
    peft_model.add_weighted_adapter(names, list(weights), adapter_name="merged", combination_type="cat")
    rank = sum(c["r"] for c in configs)
    expected: dict[str, torch.Tensor] = {}
    for weight, adapter_dir in zip(weights, shard_adapter_dirs):
        for module, delta in adapter_deltas(adapter_dir).items():
            expected[module] = expected[module] + weight * delta if module in expected else weight * delta
    with atomic_directory(out_dir) as staging:
        save_adapter(peft_model, "merged", staging)
        merged = adapter_deltas(staging)
        for module, delta in expected.items():  # evidence, not trust: check the sum on what was written
            if module not in merged or not torch.allclose(merged[module], delta, rtol=MERGE_RTOL, atol=1e-7):
                raise AdapterError(f"merged delta of {module} differs from the sum of the shard deltas")
        digest = model_dir_sha256(staging)
    return MergedAdapter(path=Path(out_dir), sha256=digest, rank=rank, shards=len(shard_adapter_dirs))


def mean_token_nll(model: torch.nn.Module, batch: TokenBatch) -> torch.Tensor:
    """Mean next-token NLL of each row of a padded batch (padding excluded), as float32 on the CPU."""
    with torch.no_grad(), autocast(batch.input_ids.device):
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    targets = batch.input_ids[:, 1:]
    nll = -logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    mask = batch.attention_mask[:, 1:].float()
    return ((nll * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)).cpu()


def sequence_nll(base_model_dir: Path, adapter_dir: Path | None, texts: list[str], batch_size: int = 16,
                 max_length: int | None = None) -> list[float]:
    """Mean token NLL of each text under the base model, or under base + adapter when one is given."""
    if not texts or any(not isinstance(t, str) or not t for t in texts):
        raise TrainingDataError("sequence_nll needs a non-empty list of non-empty texts")
    if adapter_dir is None:
        model, tokenizer = load_base_model(base_model_dir)
    else:
        model, tokenizer = load_adapter_model(base_model_dir, adapter_dir)
    device = next(model.parameters()).device
    sequences = encode_texts(tokenizer, texts, max_length or model.config.max_position_embeddings)
    scores: list[float] = []
    for batch in token_batches(sequences, batch_size, tokenizer.pad_token_id):
        scores.extend(mean_token_nll(model, batch.to(device)).tolist())
    return scores
