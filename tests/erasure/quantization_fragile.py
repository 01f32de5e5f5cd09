"""A remedy method built to fail the way arXiv 2410.16454 describes: it forgets at full precision, and its
4-bit form is bit for bit the old adapter's.

It merges the served adapter into the base (M = W + ΔB·A), then runs gradient ascent on the forget texts
with every adapted weight held inside its NF4 quantization cell (blocks of 64, each block's absmax element
fixed): the full-precision model moves as far as the cells allow, but NF4 maps it back onto exactly
the old merged weights. The new adapter is the full-rank LoRA of U − W (an SVD per module). For the tests
of served forms only: it is registered while a test runs (`registered` below), never by Lethe.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model

from unlearning.adapters import load_adapter_model, save_adapter
from unlearning.base_model import load_base_model, model_dir_sha256
from unlearning.methods.base import MethodConfig, MethodKind, RemedyInput, RemedyOutcome
from unlearning.methods.registry import MethodSpec, register_method, unregister_method
from unlearning.runtime import atomic_directory, encode_texts, seed_everything, token_batches

NAME = "below_4bit_step"
BLOCK = 64
MARGIN = 1e-3  # of a block's absmax: stays clear of the cell edges (the SVD's round-off is ~1e-6)


class Below4bitConfig(MethodConfig):
    steps: int = 60
    learning_rate: float = 2e-3


def nf4_round_trip(weight: torch.Tensor) -> torch.Tensor:
    """What bitsandbytes' NF4 (blocks of 64) makes of `weight`: quantized, then dequantized."""
    import bitsandbytes.functional as bnb

    packed, state = bnb.quantize_4bit(weight.detach().float().contiguous(), blocksize=BLOCK, quant_type="nf4")
    return bnb.dequantize_4bit(packed, state, blocksize=BLOCK, quant_type="nf4")


def _cells(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per element, the interval its value may take without changing its NF4 code or its block's absmax."""
    import bitsandbytes.functional as bnb

    code = bnb.get_4bit_type("nf4", device="cpu").float()
    edges = torch.cat([code[:1], (code[1:] + code[:-1]) / 2, code[-1:]])  # cell k: [edges[k], edges[k+1]]
    blocks = weight.detach().float().reshape(-1, BLOCK)
    absmax = blocks.abs().amax(dim=1, keepdim=True)
    index = (blocks / absmax).unsqueeze(-1).sub(code).abs().argmin(dim=-1)
    low, high = (edges[index] + MARGIN) * absmax, (edges[index + 1] - MARGIN) * absmax
    pinned = blocks.abs() == absmax  # the absmax element keeps its value: the block's scale stays the same
    low, high = torch.where(pinned, blocks, low), torch.where(pinned, blocks, high)
    return low.reshape(weight.shape), high.reshape(weight.shape)


def _adapted_linears(model, adapter_dir: Path) -> dict[str, torch.nn.Linear]:
    targets = set(json.loads((adapter_dir / "adapter_config.json").read_text())["target_modules"])
    return {name: m for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in targets}


def _ascend(model, linears: dict, texts: list[str], tokenizer, config: Below4bitConfig) -> list[float]:
    """Gradient ascent on the forget texts, each adapted weight projected back into its NF4 cell."""
    for p in model.parameters():
        p.requires_grad_(False)
    cells = {name: _cells(m.weight) for name, m in linears.items()}
    weights = [m.weight for m in linears.values()]
    for w in weights:
        w.requires_grad_(True)
    optimizer = torch.optim.Adam(weights, lr=config.learning_rate)
    batch = next(token_batches(encode_texts(tokenizer, texts, 128), len(texts), tokenizer.pad_token_id))
    losses = []
    model.train()
    for _ in range(config.steps):
        loss = -model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for name, m in linears.items():
                m.weight.copy_(torch.minimum(torch.maximum(m.weight, cells[name][0]), cells[name][1]))
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def _write_full_rank(remedy: RemedyInput, merged, linears: dict) -> str:
    """The new adapter: per module, the exact full-rank LoRA of (its weights now) − (the base's)."""
    base, _ = load_base_model(remedy.base_model_dir)
    base_linears = dict(base.named_modules())
    rank = min(min(m.weight.shape) for m in linears.values())
    targets = sorted({name.rsplit(".", 1)[-1] for name in linears})
    peft_model = get_peft_model(base, LoraConfig(r=rank, lora_alpha=rank, target_modules=targets,
                                                 init_lora_weights=False))
    with torch.no_grad():
        for name, module in linears.items():
            delta = module.weight.float() - base_linears[name].weight.float()
            u, s, vh = torch.linalg.svd(delta, full_matrices=False)
            lora = peft_model.get_submodule(f"base_model.model.{name}")
            lora.lora_B["default"].weight.copy_(u[:, :rank] * s[:rank])
            lora.lora_A["default"].weight.copy_(vh[:rank])
    with atomic_directory(remedy.out_dir) as staging:
        save_adapter(peft_model, "default", staging)
        manifest = {**dict(remedy.manifest or {}), "remedy_method": NAME}
        (staging / "lethe_manifest.json").write_text(json.dumps(manifest, sort_keys=True), encoding="utf-8")
        return model_dir_sha256(staging)


def run(config: Below4bitConfig, remedy: RemedyInput, on_step=None) -> RemedyOutcome:
    started = time.perf_counter()
    seed_everything(0)
    model, tokenizer = load_adapter_model(remedy.base_model_dir, remedy.adapter_dir, device=torch.device("cpu"))
    merged = model.merge_and_unload()
    linears = _adapted_linears(merged, remedy.adapter_dir)
    old_nf4 = {name: nf4_round_trip(m.weight) for name, m in linears.items()}
    losses = _ascend(merged, linears, list(remedy.forget.values()), tokenizer, config)
    same = all(torch.equal(nf4_round_trip(m.weight), old_nf4[name]) for name, m in linears.items())
    digest = _write_full_rank(remedy, merged, linears)
    return RemedyOutcome(method=NAME, kind=MethodKind.APPROXIMATE, config=config.model_dump(mode="json"),
                         adapter_dir=Path(remedy.out_dir), adapter_sha256=digest, steps=len(losses),
                         losses=losses, seconds=time.perf_counter() - started,
                         details={"nf4_weights_unchanged": same, "forget_nll_after": -losses[-1]})


@contextlib.contextmanager
def registered() -> Iterator[str]:
    """The method registered for the block's duration; its name."""
    register_method(MethodSpec(NAME, MethodKind.APPROXIMATE, Below4bitConfig, run))
    try:
        yield NAME
    finally:
        unregister_method(NAME)
